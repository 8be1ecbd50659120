package isolation

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"
)

// VerifyArgs asks for a verifier run.
type VerifyArgs struct {
	Trigger string `json:"trigger"`
}

// Kind names the job in River.
func (VerifyArgs) Kind() string { return "isolation.verify" }

// VerifyWorker runs the verifier.
type VerifyWorker struct {
	river.WorkerDefaults[VerifyArgs]
	Verifier *Verifier
}

// Work runs the probes. A breach is a result, recorded and audited, not a job failure to retry.
func (w *VerifyWorker) Work(ctx context.Context, job *river.Job[VerifyArgs]) error {
	trigger := job.Args.Trigger
	if trigger == "" {
		trigger = "schedule"
	}
	_, err := w.Verifier.Run(ctx, trigger)
	if errors.Is(err, ErrBreach) {
		return nil
	}
	return err
}

// Periodic runs the verifier every interval (hourly by default), on one node.
func Periodic(interval time.Duration) *river.PeriodicJob {
	if interval <= 0 {
		interval = time.Hour
	}
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return VerifyArgs{Trigger: "schedule"}, nil }, nil)
}
