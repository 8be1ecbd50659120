package db_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"
	"testing/fstest"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/migrations"
)

// BenchmarkTenantRead compares one indexed read inside a tenant transaction (BEGIN, app.tenant_id,
// SET LOCAL ROLE, the read through the scoping plugin, COMMIT) with the same read unscoped (one
// statement on a pool connection). Run with -cpu 1 and 16 parallel clients via the sub-benchmarks.
func BenchmarkTenantRead(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b)
	var id int64
	if err := d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ('bench-read', 'Bench', 'free') ON CONFLICT (slug) DO UPDATE SET name = excluded.name RETURNING id").Scan(&id); err != nil {
		b.Fatal(err)
	}
	if err := d.EnsureTenantPlane(ctx, id, dbtest.Logger(b)); err != nil {
		b.Fatal(err)
	}
	schema := db.TenantSchema(id)
	if _, err := d.OwnerPool.Exec(ctx, "INSERT INTO "+schema+".users (email, name, role) SELECT 'u'||g||'@bench.example', 'User '||g, 'member' FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"); err != nil {
		b.Fatal(err)
	}
	var maxID int64
	if err := d.OwnerPool.QueryRow(ctx, "SELECT max(id) FROM "+schema+".users").Scan(&maxID); err != nil {
		b.Fatal(err)
	}
	scoped := func() error {
		return d.InTenant(ctx, id, func(tx *gorm.DB) error {
			var u tenantUser
			return tx.First(&u, rand.Int64N(maxID)+1).Error
		})
	}
	unscoped := func() error {
		var email string
		return d.OwnerPool.QueryRow(ctx, "SELECT email FROM "+schema+".users WHERE id = $1", rand.Int64N(maxID)+1).Scan(&email)
	}
	for _, clients := range []int{1, 16} {
		for _, tc := range []struct {
			name string
			read func() error
		}{{"scoped", scoped}, {"unscoped", unscoped}} {
			b.Run(fmt.Sprintf("%s/%d-clients", tc.name, clients), func(b *testing.B) {
				b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 here
				if clients == 1 {
					for b.Loop() {
						if err := tc.read(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := tc.read(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkTenantPlaneCreate measures creating one tenant's schema, role and tables (all tenant
// migrations) when 500 and then 5,000 tenants already exist. Slow to set up (minutes): run it on
// its own, e.g. go test -run '^$' -bench TenantPlaneCreate -benchtime 20x ./internal/db/
func BenchmarkTenantPlaneCreate(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b)
	log := dbtest.Logger(b)
	next := 0
	grow := func(to int) {
		for ; next < to; next++ {
			var id int64
			if err := d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id",
				fmt.Sprintf("plane-bench-%d", next)).Scan(&id); err != nil {
				b.Fatal(err)
			}
			if err := d.EnsureTenantPlane(ctx, id, log); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, existing := range []int{500, 5000} {
		grow(existing)
		b.Run(fmt.Sprintf("with-%d-tenants", existing), func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				b.StopTimer()
				var id int64
				if err := d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id",
					fmt.Sprintf("plane-bench-%d", next)).Scan(&id); err != nil {
					b.Fatal(err)
				}
				next++
				b.StartTimer()
				start := time.Now()
				if err := d.EnsureTenantPlane(ctx, id, log); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkMigrateAllTenants applies one new tenant migration (a column with a default) to every
// schema of 1,000 tenants, as `tenantry migrate` does after an upgrade.
func BenchmarkMigrateAllTenants(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b)
	log := dbtest.Logger(b)
	var have int
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname ~ '^t_[0-9]+$'").Scan(&have); err != nil {
		b.Fatal(err)
	}
	for i := have; i < 1000; i++ {
		var id int64
		if err := d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id",
			fmt.Sprintf("migrate-bench-%d", i)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		if err := d.EnsureTenantPlane(ctx, id, log); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		set := fstest.MapFS{}
		if err := fs.WalkDir(migrations.Tenant, "tenant", func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := fs.ReadFile(migrations.Tenant, path)
			set[e.Name()] = &fstest.MapFile{Data: data}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		set[fmt.Sprintf("%05d_bench.sql", 90000+i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"-- +goose Up\nALTER TABLE users ADD COLUMN bench_%d boolean NOT NULL DEFAULT false;\n-- +goose Down\nALTER TABLE users DROP COLUMN bench_%d;\n", i, i))}
		b.StartTimer()
		n, err := d.MigrateTenantsWith(ctx, log, set)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "schemas")
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sorted := append([]time.Duration(nil), lat...)
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if sorted[j] < sorted[i] {
				sorted[i], sorted[j] = sorted[j], sorted[i]
			}
		}
	}
	b.ReportMetric(float64(sorted[len(sorted)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(sorted[len(sorted)*99/100].Microseconds())/1000, "p99-ms")
}
