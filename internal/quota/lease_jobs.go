package quota

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// LeaseReconcileArgs asks for the leases of crashed nodes to be taken back.
type LeaseReconcileArgs struct{}

// Kind names the job in River.
func (LeaseReconcileArgs) Kind() string { return "quota.lease_reconcile" }

// LeaseReconcileWorker returns the leases past expires_at + DefaultLeaseGrace that their node
// never returned (see ReconcileLeases).
type LeaseReconcileWorker struct {
	river.WorkerDefaults[LeaseReconcileArgs]
	Service *Service
}

// Work reconciles the abandoned leases.
func (w *LeaseReconcileWorker) Work(ctx context.Context, _ *river.Job[LeaseReconcileArgs]) error {
	_, err := w.Service.ReconcileLeases(ctx, DefaultLeaseGrace)
	return err
}

// LeaseReconcileInterval is how often the reconciler runs. A node that still has traffic for a
// key reconciles that key's abandoned leases itself before refusing a consume, so this only
// bounds how long an idle tenant's counter shows a crashed node's chunk.
const LeaseReconcileInterval = 15 * time.Second

// LeaseReconcilePeriodic runs the reconciler every LeaseReconcileInterval, on one node.
func LeaseReconcilePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(LeaseReconcileInterval),
		func() (river.JobArgs, *river.InsertOpts) { return LeaseReconcileArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
