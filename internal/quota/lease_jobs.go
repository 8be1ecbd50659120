package quota

import (
	"context"
	"fmt"
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

// Work reconciles the abandoned leases, then forgets the leases returned more than
// LeaseRetention ago.
func (w *LeaseReconcileWorker) Work(ctx context.Context, _ *river.Job[LeaseReconcileArgs]) error {
	if _, err := w.Service.ReconcileLeases(ctx, DefaultLeaseGrace); err != nil {
		return err
	}
	_, err := w.Service.PruneLeases(ctx, time.Now().Add(-LeaseRetention))
	return err
}

// LeaseRetention is how long returned leases are kept (for operators looking into a tenant's
// counter); a hot tenant takes a lease every few seconds, so they are not kept for ever.
const LeaseRetention = 24 * time.Hour

// PruneLeases deletes the leases returned before `before`, in batches, and returns how many.
// Open leases are never deleted.
func (s *Service) PruneLeases(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.db.AppPool.Exec(ctx, `DELETE FROM tenantry.quota_leases WHERE id = ANY (ARRAY(
			SELECT id FROM tenantry.quota_leases WHERE returned_at IS NOT NULL AND returned_at < $1 LIMIT 10000))`, before)
		if err != nil {
			return total, fmt.Errorf("quota: prune leases: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
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
