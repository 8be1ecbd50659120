package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/lifecycle"
)

// BenchmarkExport1M measures the export of a tenant whose schema holds one table of 1,000,000
// rows (besides its usual tables): rows/s, and MB/s of table data written (JSON Lines + CSV,
// before compression) with the archive's size. Each iteration is a full export into a new zip.
//
//	go test -run '^$' -bench Export1M -benchtime 3x -timeout 30m ./internal/lifecycle/
func BenchmarkExport1M(b *testing.B) {
	bb := setup(b)
	ctx := context.Background()
	tn := bb.tenant(b, "")
	schema := db.TenantSchema(tn.ID)
	if _, err := bb.d.OwnerPool.Exec(ctx, `CREATE TABLE `+schema+`.orders (id bigint PRIMARY KEY, customer text NOT NULL,
		amount_cents bigint NOT NULL, status text NOT NULL, placed_at timestamptz NOT NULL, meta jsonb NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := bb.d.OwnerPool.Exec(ctx, `INSERT INTO `+schema+`.orders
		SELECT g, 'customer-' || (g % 5000), (g * 37) % 100000, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
		       timestamptz '2030-01-01' + g * interval '1 minute', jsonb_build_object('sku', 'SKU-' || (g % 977), 'qty', 1 + g % 9)
		FROM generate_series(1, 1000000) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := bb.d.OwnerPool.Exec(ctx, "ANALYZE "+schema+".orders"); err != nil {
		b.Fatal(err)
	}
	var rows, raw, archive int64
	var took time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := bb.svc.RequestExport(ctx, "bench", tn.ID)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := bb.svc.RunExport(ctx, e.ID); err != nil {
			b.Fatal(err)
		}
		took += time.Since(t0)
		e, _ = bb.svc.ExportByID(ctx, tn.ID, e.ID)
		var m lifecycle.Manifest
		if err := json.Unmarshal(e.Manifest, &m); err != nil {
			b.Fatal(err)
		}
		for _, t := range m.Tables {
			rows += t.Rows
		}
		for _, f := range m.Files {
			raw += f.Bytes
		}
		archive += e.Bytes
		os.Remove(bb.svc.ArchivePath(e))
	}
	b.StopTimer()
	secs := took.Seconds()
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(float64(raw)/secs/1e6, "MB/s")
	b.ReportMetric(float64(archive)/float64(b.N)/1e6, "zip-MB")
	b.ReportMetric(float64(raw)/float64(b.N)/1e6, "raw-MB")
}

// BenchmarkPurge20Tables measures the purge of a tenant whose schema has 20 more tables of 1,000
// rows each: capture the facts (exact row counts), delete the archive and platform rows, drop the
// schema and role, destroy the keyset, sign and store the certificate. Setting each tenant up
// (decommissioning, export, retention) is outside the timer.
//
//	go test -run '^$' -bench Purge20Tables -benchtime 5x -timeout 30m ./internal/lifecycle/
func BenchmarkPurge20Tables(b *testing.B) {
	bb := setup(b)
	ctx := context.Background()
	var took time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bb.at(0)
		tn := bb.tenant(b, "")
		schema := db.TenantSchema(tn.ID)
		for j := 0; j < 20; j++ {
			tbl := fmt.Sprintf("%s.data_%02d", schema, j)
			if _, err := bb.d.OwnerPool.Exec(ctx, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v text); INSERT INTO "+tbl+" SELECT g, md5(g::text) FROM generate_series(1, 1000) g"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bb.svc.Start(ctx, "bench", tn.ID, lifecycle.StartInput{Reason: "bench", NoticeDays: 1}); err != nil {
			b.Fatal(err)
		}
		bb.at(1.1)
		bb.tick(b)
		bb.at(40)
		if err := bb.svc.PurgeCheck(ctx, tn.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		// Roles are cluster-wide: DROP ROLE can trip over another test database being dropped at
		// that moment ("cache lookup failed for database"). A purge resumes, so try again.
		var err error
		for try := 0; try < 3; try++ {
			if _, err = bb.svc.Purge(ctx, "bench", tn.ID); err == nil {
				break
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(t0)
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/purge")
}
