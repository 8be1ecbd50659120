package tenant

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// FinishProvisioningArgs asks for tenants stuck in provisioning to be completed.
type FinishProvisioningArgs struct{}

// Kind names the job in River.
func (FinishProvisioningArgs) Kind() string { return "tenant.finish_provisioning" }

// FinishProvisioningWorker completes tenants whose schema preparation was interrupted.
type FinishProvisioningWorker struct {
	river.WorkerDefaults[FinishProvisioningArgs]
	Service *Service
}

// Work retries every tenant left in provisioning for over a minute.
func (w *FinishProvisioningWorker) Work(ctx context.Context, _ *river.Job[FinishProvisioningArgs]) error {
	_, err := w.Service.FinishProvisioning(ctx, time.Minute)
	return err
}

// FinishProvisioningPeriodic runs the sweep every minute, on one node.
func FinishProvisioningPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return FinishProvisioningArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
