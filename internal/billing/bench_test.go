package billing_test

import (
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/db/dbtest"
)

// BenchmarkGenerate100k bills one month of 100,000 tenants: 1,000 roots with 9 children each and
// 10 grandchildren per child; every third child pays for itself, so 4,000 invoices carry
// 100,000 sections. Each tenant has three days of usage on three dimensions; every plan prices
// five dimensions, so every section has six lines. Run it with -benchtime 1x: the one iteration
// bills January 2025 from scratch (a second one would be the idempotent no-op).
func BenchmarkGenerate100k(b *testing.B) {
	d := dbtest.NewDatabase(b)
	s := billing.NewService(d)
	for _, plan := range []string{"free", "starter", "professional", "enterprise"} {
		err := s.SetPlanPrices(ctx, "bench", plan, billing.PriceInput{Base: "49.00",
			Unit:     map[string]string{"compute_vcpu_hours": "0.045", "storage_gb": "0.12", "network_egress_gb": "0.09", "api_requests": "0.0003", "seats": "8"},
			Included: map[string]string{"compute_vcpu_hours": "200", "storage_gb": "50", "network_egress_gb": "100", "api_requests": "100000", "seats": "5"}})
		if err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO tenantry.tenants (slug, name, plan_key, created_at)
		 SELECT 'r' || i, 'Root ' || i, (ARRAY['starter','professional','enterprise'])[1 + i % 3], '2024-01-01' FROM generate_series(1, 1000) i`,
		`INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id, created_at)
		 SELECT 'c' || r.id || '-' || j, 'Child ' || r.id || '-' || j, 'professional', r.id, '2024-01-01'
		   FROM tenantry.tenants r CROSS JOIN generate_series(1, 9) j WHERE r.parent_id IS NULL`,
		`INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id, created_at)
		 SELECT 'g' || c.id || '-' || k, 'Grandchild ' || c.id || '-' || k, 'starter', c.id, '2024-01-01'
		   FROM tenantry.tenants c CROSS JOIN generate_series(1, 10) k WHERE c.slug LIKE 'c%'`,
		`INSERT INTO tenantry.tenant_billing (tenant_id, mode) SELECT id, 'self' FROM tenantry.tenants WHERE slug LIKE 'c%' AND id % 3 = 0`,
		`INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
		 SELECT t.id, dim, 'day', m + (day || ' days')::interval, 50 + t.id % 400, 20 + t.id % 90, 24
		   FROM tenantry.tenants t
		   CROSS JOIN (VALUES ('compute_vcpu_hours'), ('storage_gb'), ('api_requests')) d (dim)
		   CROSS JOIN generate_series(0, 20, 10) day
		   CROSS JOIN (VALUES ('2025-01-01'::timestamptz)) months (m)`,
		`ANALYZE`,
	} {
		if _, err := d.OwnerPool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var tenants, payers int
	if err := d.OwnerPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tenantry.tenants),
		(SELECT count(*) FROM tenantry.tenants WHERE parent_id IS NULL) + (SELECT count(*) FROM tenantry.tenant_billing)`).Scan(&tenants, &payers); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d tenants, %d paying, in %s", tenants, payers, time.Since(start).Round(time.Second))
	b.ResetTimer()
	for i := range b.N {
		month := time.Date(2025, time.Month(1+i%12), 1, 0, 0, 0, 0, time.UTC)
		res, err := s.Generate(ctx, "bench", month)
		if err != nil {
			b.Fatal(err)
		}
		if res.Created != payers {
			b.Fatalf("%d invoices, want %d", res.Created, payers)
		}
	}
	again := time.Now()
	if res, err := s.Generate(ctx, "bench", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || res.Created != 0 {
		b.Fatalf("second run: %+v %v", res, err)
	}
	b.Logf("second run of the same month (nothing to do): %s", time.Since(again).Round(time.Millisecond))
	b.StopTimer()
	var sections, lines int
	if err := d.OwnerPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tenantry.invoice_sections), (SELECT count(*) FROM tenantry.invoice_lines)`).Scan(&sections, &lines); err != nil {
		b.Fatal(err)
	}
	perRun := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(perRun.Seconds(), "s/month")
	b.ReportMetric(float64(sections)/float64(b.N)/perRun.Seconds(), "sections/s")
	b.ReportMetric(float64(lines)/float64(b.N)/perRun.Seconds(), "lines/s")
}
