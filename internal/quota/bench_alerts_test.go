package quota_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
)

// BenchmarkEvaluateAlerts measures one run of the alert evaluator (every 5 s on one node) over
// 1,000 tenants × 6 dimensions in use: the first run records their crossings (about 3,000
// alerts, no notifier), the steady state finds nothing new. Consume itself does no alert work.
func BenchmarkEvaluateAlerts(b *testing.B) {
	d := dbtest.NewDatabase(b) // a fresh database: exactly these 6,000 limits
	svc := quota.NewService(d)
	ctx := context.Background()
	run := time.Now().UnixNano()
	_, err := d.OwnerPool.Exec(ctx, `
		WITH t AS (
			INSERT INTO tenantry.tenants (slug, name, plan_key)
			SELECT 'ba-' || $1::text || '-' || g, 'Alert bench ' || g, 'free' FROM generate_series(1, 1000) g
			RETURNING id)
		INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit, used, period_start)
		SELECT t.id, d.key, 800, 1000, (t.id * 37 + d.position * 101) % 1100,
		       CASE WHEN d.reset_period = 'none' THEN '-infinity'::timestamptz
		            ELSE date_trunc(CASE d.reset_period WHEN 'hourly' THEN 'hour' WHEN 'daily' THEN 'day' ELSE 'month' END, now(), 'UTC') END
		  FROM t CROSS JOIN tenantry.quota_dimensions d`, fmt.Sprint(run))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	first, err := svc.EvaluateAlerts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	firstRun := time.Since(t0)
	b.ResetTimer()
	for range b.N {
		got, err := svc.EvaluateAlerts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 0 {
			b.Fatalf("steady state recorded %d alerts", len(got))
		}
	}
	b.ReportMetric(float64(len(first)), "alerts-first-run")
	b.ReportMetric(float64(firstRun.Milliseconds()), "first-run-ms")
}
