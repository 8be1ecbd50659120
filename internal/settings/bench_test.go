package settings_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
)

// BenchmarkHierarchy100k builds a registry of 100,000 tenants (20 roots, each new tenant under a
// uniformly random earlier one, which gives a shallow tree, depth 4 or 5; one parent with 1,000 children) with settings set at several levels, then measures the
// effective settings (all keys) of a deepest tenant and one page (200) of the big parent's
// children, as the tree browser loads them. Setup takes about a minute.
func BenchmarkHierarchy100k(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b)
	_, err := d.OwnerPool.Exec(ctx, `
		DO $$
		DECLARE i int; p bigint; base bigint;
		BEGIN
			FOR i IN 1..20 LOOP
				INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ('h-' || i, 'Root ' || i, 'enterprise');
			END LOOP;
			INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ('h-big', 'Big parent', 'enterprise');
			FOR i IN 1..1000 LOOP
				INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id)
				SELECT 'h-big-' || i, 'Big child ' || i, 'starter', id FROM tenantry.tenants WHERE slug = 'h-big';
			END LOOP;
			-- Tenant ids need not start at 1 (test databases start them at a random point).
			SELECT min(id) - 1 INTO base FROM tenantry.tenants;
			FOR i IN 21..98979 LOOP
				SELECT id INTO p FROM tenantry.tenants
				 WHERE nlevel(path) < 8 AND id >= base + (random() * i)::bigint ORDER BY id LIMIT 1;
				INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id) VALUES ('h-' || i, 'Tenant ' || i, 'starter', p);
			END LOOP;
		END $$`)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.OwnerPool.Exec(ctx, "VACUUM ANALYZE tenantry.tenants"); err != nil { // the steady state autovacuum reaches
		b.Fatal(err)
	}
	ts := tenant.NewService(d, dbtest.Logger(b))
	s := settings.NewService(d.App, ts)
	var deepSlug string
	if err := d.OwnerPool.QueryRow(ctx, "SELECT slug FROM tenantry.tenants ORDER BY nlevel(path) DESC, id LIMIT 1").Scan(&deepSlug); err != nil {
		b.Fatal(err)
	}
	deep, err := ts.Get(ctx, deepSlug)
	if err != nil {
		b.Fatal(err)
	}
	ancestors, err := ts.Ancestors(ctx, deep)
	if err != nil {
		b.Fatal(err)
	}
	// Values along the way: the platform, the root (locked), a middle ancestor, the tenant.
	set := func(t *tenant.Tenant, key, v string, lock bool) {
		if _, err := s.Set(ctx, "bench", t, key, v, lock); err != nil {
			b.Fatal(err)
		}
	}
	set(nil, "backup.retention_days", "60", false)
	set(&ancestors[0], "flags.sso", "true", true)
	set(&ancestors[len(ancestors)/2], "notify.channel", "webhook", false)
	set(&deep, "flags.new_dashboard", "true", false)
	big, err := ts.Get(ctx, "h-big")
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, lat []time.Duration) {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	// The same tenant before it has a template: the cost of the template level, measured under
	// the same machine load as the run after.
	b.Run("effective-settings-before-templates", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := s.Effective(ctx, &deep); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
	// The template level too: the deep tenant and its root were made from templates, the root's
	// carrying compliance locks that bind the whole subtree.
	tpls := templates.NewService(d)
	std, err := tpls.Create(ctx, "bench", templates.Input{Name: "Bench Standard", TenantType: "company", Industry: "general", Compliance: "none",
		PlanKey: "starter", SeedDataset: "empty", Settings: map[string]string{"flags.beta_reports": "true", "branding.primary_colour": "#123456"}})
	if err != nil {
		b.Fatal(err)
	}
	hipaa, err := tpls.Create(ctx, "bench", templates.Input{Name: "Bench HIPAA", TenantType: "company", Industry: "healthcare", Compliance: "hipaa",
		PlanKey: "enterprise", SeedDataset: "empty"})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.App.Transaction(func(tx *gorm.DB) error {
		if err := tpls.Apply(tx, deep.ID, std.Latest, "bench"); err != nil {
			return err
		}
		return tpls.Apply(tx, ancestors[0].ID, hipaa.Latest, "bench")
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("effective-settings-depth-"+strconv.Itoa(len(ancestors)+1), func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			all, err := s.Effective(ctx, &deep)
			if err != nil {
				b.Fatal(err)
			}
			if all[1].Kind != settings.FromTemplate || all[1].Key.Key != "flags.beta_reports" {
				b.Fatalf("template level not resolved: %+v", all[1])
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
	b.Run("tree-children-of-1000", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			nodes, err := ts.Nodes(ctx, &big.ID, 200)
			if err != nil || len(nodes) != 200 {
				b.Fatalf("%d nodes, %v", len(nodes), err)
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
}
