package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// rollupBatch bounds how many events one transaction folds in.
const rollupBatch = 50_000

// RollupLag is how old an event must be before the periodic job folds it in: the watermark is
// an event id, and ids are taken when a row is inserted, not when it commits, so the job leaves
// the most recent minute alone for any transaction still in flight. (Consumes are single
// statements and usage batches short transactions, so a minute is ample.)
const RollupLag = time.Minute

// RollUp folds the usage events recorded before `before` that are not rolled up yet into hourly
// and daily buckets (sum, peak and count per tenant and dimension), moving the watermark in the
// same transaction; concurrent runs queue on the watermark row. It returns the events folded in.
func (s *Service) RollUp(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := pgx.BeginFunc(ctx, s.db.AppPool, func(tx pgx.Tx) error {
			var last int64
			if err := tx.QueryRow(ctx, "SELECT last_event_id FROM tenantry.usage_rollup_progress WHERE id = 1 FOR UPDATE").Scan(&last); err != nil {
				return err
			}
			var upto *int64
			if err := tx.QueryRow(ctx, `SELECT max(id) FROM (SELECT id FROM tenantry.usage_events
				WHERE id > $1 AND recorded_at < $2 ORDER BY id LIMIT $3) b`, last, before, rollupBatch).Scan(&upto); err != nil {
				return err
			}
			if upto == nil {
				return nil
			}
			_, err := tx.Exec(ctx, `
				INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
				SELECT e.tenant_id, e.dimension, g.granularity, date_trunc(g.granularity, e.occurred_at, 'UTC'),
				       sum(e.value), max(e.value), count(*)
				  FROM tenantry.usage_events e CROSS JOIN (VALUES ('hour'), ('day')) g (granularity)
				 WHERE e.id > $1 AND e.id <= $2
				 GROUP BY 1, 2, 3, 4
				ON CONFLICT (tenant_id, dimension, granularity, bucket_start) DO UPDATE
				   SET total = usage_rollups.total + EXCLUDED.total,
				       peak = GREATEST(usage_rollups.peak, EXCLUDED.peak),
				       events = usage_rollups.events + EXCLUDED.events`, last, *upto)
			if err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM tenantry.usage_events WHERE id > $1 AND id <= $2", last, *upto).Scan(&n); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "UPDATE tenantry.usage_rollup_progress SET last_event_id = $1, updated_at = now() WHERE id = 1", *upto)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("quota: roll up usage: %w", err)
		}
		total += n
		if n < rollupBatch {
			return total, nil
		}
	}
}

// Bucket is one hour or day of a tenant's usage of a dimension.
type Bucket struct {
	Start  time.Time
	Total  int64 // sum of values: amount used for counters
	Peak   int64 // highest value: highest level for gauges
	Events int64
}

// Usage returns the tenant's rolled-up usage of dimension by granularity ("hour" or "day") for
// buckets starting in [from, to), oldest first. Only buckets with events are returned.
func (s *Service) Usage(ctx context.Context, tenantID int64, dimension, granularity string, from, to time.Time) ([]Bucket, error) {
	if _, err := s.dimension(ctx, dimension); err != nil {
		return nil, err
	}
	if granularity != "hour" && granularity != "day" {
		return nil, fmt.Errorf("quota: usage: granularity %q is not hour or day", granularity)
	}
	rows, err := s.db.AppPool.Query(ctx, `SELECT bucket_start, total, peak, events FROM tenantry.usage_rollups
		WHERE tenant_id = $1 AND dimension = $2 AND granularity = $3 AND bucket_start >= $4 AND bucket_start < $5
		ORDER BY bucket_start`, tenantID, dimension, granularity, from, to)
	if err != nil {
		return nil, fmt.Errorf("quota: usage: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Bucket, error) {
		var b Bucket
		err := r.Scan(&b.Start, &b.Total, &b.Peak, &b.Events)
		b.Start = b.Start.UTC()
		return b, err
	})
}

// RollupArgs asks for the usage events to be rolled up.
type RollupArgs struct{}

// Kind names the job in River.
func (RollupArgs) Kind() string { return "quota.rollup" }

// RollupWorker folds recent usage events into the hourly and daily rollups.
type RollupWorker struct {
	river.WorkerDefaults[RollupArgs]
	Service *Service
}

// Work rolls up every event older than RollupLag, then forgets idempotency keys older than
// IdempotencyWindow.
func (w *RollupWorker) Work(ctx context.Context, _ *river.Job[RollupArgs]) error {
	if _, err := w.Service.RollUp(ctx, time.Now().Add(-RollupLag)); err != nil {
		return err
	}
	_, err := w.Service.PruneIdempotencyKeys(ctx, time.Now().Add(-IdempotencyWindow))
	return err
}

// IdempotencyWindow is how long a consume's idempotency key is remembered: a retry within it
// gets the first answer; after it, the key is forgotten and would consume again.
const IdempotencyWindow = 7 * 24 * time.Hour

// PruneIdempotencyKeys forgets the answers to consumes made before `before`, in batches, and
// returns how many it deleted. Without it the table would gain a row per consume for ever.
func (s *Service) PruneIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.db.AppPool.Exec(ctx, `DELETE FROM tenantry.quota_consumptions WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM tenantry.quota_consumptions WHERE created_at < $1 LIMIT 10000))`, before)
		if err != nil {
			return total, fmt.Errorf("quota: prune idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}

// RollupPeriodic runs the rollup every minute, on one node.
func RollupPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return RollupArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// PlatformUsage returns every tenant's rolled-up usage of dimension added together, by
// granularity, for buckets starting in [from, to), oldest first (Peak is the largest tenant's).
func (s *Service) PlatformUsage(ctx context.Context, dimension, granularity string, from, to time.Time) ([]Bucket, error) {
	if _, err := s.dimension(ctx, dimension); err != nil {
		return nil, err
	}
	if granularity != "hour" && granularity != "day" {
		return nil, fmt.Errorf("quota: usage: granularity %q is not hour or day", granularity)
	}
	rows, err := s.db.AppPool.Query(ctx, `SELECT bucket_start, sum(total)::bigint, max(peak), sum(events)::bigint FROM tenantry.usage_rollups
		WHERE dimension = $1 AND granularity = $2 AND bucket_start >= $3 AND bucket_start < $4
		GROUP BY bucket_start ORDER BY bucket_start`, dimension, granularity, from, to)
	if err != nil {
		return nil, fmt.Errorf("quota: platform usage: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Bucket, error) {
		var b Bucket
		err := r.Scan(&b.Start, &b.Total, &b.Peak, &b.Events)
		b.Start = b.Start.UTC()
		return b, err
	})
}
