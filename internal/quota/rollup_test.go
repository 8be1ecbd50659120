package quota_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/quota"
)

func TestRollUp(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	h := func(hour int) time.Time { return day.Add(time.Duration(hour)*time.Hour + 10*time.Minute) }
	if err := svc.ReportUsage(ctx, tn.ID, []quota.Report{
		{Dimension: "network_egress_gb", Value: 3, At: h(1)},
		{Dimension: "network_egress_gb", Value: 4, At: h(1)},
		{Dimension: "network_egress_gb", Value: 5, At: h(2)},
		{Dimension: "storage_gb", Value: 2, At: h(1)},
		{Dimension: "storage_gb", Value: 4, At: h(2)},
	}); err != nil {
		t.Fatal(err)
	}
	// Events younger than the cut-off wait for the next run.
	if n, err := svc.RollUp(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("rolled up %d recent events, %v", n, err)
	}
	n, err := svc.RollUp(ctx, time.Now().Add(time.Second))
	if err != nil || n < 5 {
		t.Fatalf("rolled up %d, %v", n, err)
	}
	if n, err := svc.RollUp(ctx, time.Now().Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("second run rolled up %d again, %v", n, err)
	}
	hours, err := svc.Usage(ctx, tn.ID, "network_egress_gb", "hour", day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(hours) != 2 || hours[0].Start != day.Add(time.Hour) || hours[0].Total != 7 || hours[0].Events != 2 || hours[1].Total != 5 {
		t.Fatalf("hourly egress: %+v", hours)
	}
	days, err := svc.Usage(ctx, tn.ID, "storage_gb", "day", day, day.AddDate(0, 0, 1))
	if err != nil || len(days) != 1 || days[0].Peak != 4 || days[0].Events != 2 || days[0].Start != day {
		t.Fatalf("daily storage: %+v %v", days, err)
	}
	// New events add to the existing buckets.
	if err := svc.ReportUsage(ctx, tn.ID, []quota.Report{{Dimension: "network_egress_gb", Value: 10, At: h(2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RollUp(ctx, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	days, _ = svc.Usage(ctx, tn.ID, "network_egress_gb", "day", day, day.AddDate(0, 0, 1))
	if len(days) != 1 || days[0].Total != 22 || days[0].Events != 4 {
		t.Fatalf("daily egress after more events: %+v", days)
	}
	if _, err := svc.Usage(ctx, tn.ID, "network_egress_gb", "week", day, day); err == nil {
		t.Fatal("unknown granularity accepted")
	}
}

func TestPruneIdempotencyKeys(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	for _, k := range []string{"old", "new"} {
		if _, err := svc.Consume(ctx, tn.ID, "api_requests", 1, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_consumptions SET created_at = now() - interval '8 days' WHERE tenant_id = $1 AND idempotency_key = 'old'", tn.ID); err != nil {
		t.Fatal(err)
	}
	n, err := svc.PruneIdempotencyKeys(ctx, time.Now().Add(-quota.IdempotencyWindow))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	// The recent key still answers from memory; the forgotten one consumes again.
	if r, err := svc.Consume(ctx, tn.ID, "api_requests", 1, "new"); err != nil || !r.Replayed || r.Used != 2 {
		t.Fatalf("recent key: %+v %v", r, err)
	}
	if r, err := svc.Consume(ctx, tn.ID, "api_requests", 1, "old"); err != nil || r.Replayed || r.Used != 3 {
		t.Fatalf("forgotten key: %+v %v", r, err)
	}
}
