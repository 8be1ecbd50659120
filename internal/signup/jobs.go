package signup

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// FinishArgs asks for every signup whose provisioning run is done to be finished (the admin's
// chosen password set, the "ready" e-mail queued): those approved while the visitor was away,
// or whose visitor closed the progress page.
type FinishArgs struct{}

// Kind names the job in River.
func (FinishArgs) Kind() string { return "signup.finish" }

// FinishWorker works FinishArgs.
type FinishWorker struct {
	river.WorkerDefaults[FinishArgs]
	Service *Service
}

// Work finishes the signups whose runs are done.
func (w *FinishWorker) Work(ctx context.Context, _ *river.Job[FinishArgs]) error {
	_, err := w.Service.FinishAll(ctx)
	return err
}

// FinishPeriodic runs FinishAll every 15 seconds.
func FinishPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(15*time.Second),
		func() (river.JobArgs, *river.InsertOpts) { return FinishArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
