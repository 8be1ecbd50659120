package identity

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// PruneAttemptsArgs asks for old sign-in attempts to be deleted.
type PruneAttemptsArgs struct{}

// Kind names the job in River.
func (PruneAttemptsArgs) Kind() string { return "identity.prune_sign_in_attempts" }

// PruneAttemptsWorker deletes sign-in attempts the throttle no longer needs.
type PruneAttemptsWorker struct {
	river.WorkerDefaults[PruneAttemptsArgs]
	Service *Service
}

// Work deletes attempts older than a day.
func (w *PruneAttemptsWorker) Work(ctx context.Context, _ *river.Job[PruneAttemptsArgs]) error {
	_, err := w.Service.PruneAttempts(ctx)
	return err
}

// PruneAttemptsPeriodic runs the prune hourly.
func PruneAttemptsPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PruneAttemptsArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
