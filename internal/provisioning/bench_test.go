package provisioning_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/provisioning"
)

// BenchmarkProvisioningRuns measures whole provisioning runs (all ten steps: schema and role,
// tenant migrations, keyset, quotas, admin invitation and its e-mail, seed data, activation,
// ready e-mail) completed per minute by one River client with 2 workers, end to end: from the
// first Start to the last run done, Starts included.
func BenchmarkProvisioningRuns(b *testing.B) {
	d := dbtest.Open(b)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		b.Fatal(err)
	}
	queue := fmt.Sprintf("prov_bench_%d", time.Now().UnixNano())
	svc := provisioning.NewService(d, dbtest.Logger(b), provisioning.WithKeys(keys.NewService(d.App, master)), provisioning.WithQueue(queue))
	client, err := provisioning.NewClient(d.AppPool, svc, 2, dbtest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.Stop(ctx)
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1e9)

	b.ResetTimer()
	began := time.Now()
	ids := make([]int64, b.N)
	for i := range b.N {
		slug := fmt.Sprintf("%s-%d", prefix, i)
		r, err := svc.Start(ctx, provisioning.Request{Name: "Bench " + slug, Slug: slug, PlanKey: "starter",
			AdminEmail: "admin@" + slug + ".example.com", Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	var took []time.Duration
	for _, id := range ids {
		for {
			r, err := svc.Run(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if r.State == provisioning.StateFailed {
				b.Fatalf("run %d failed: %s", id, r.Error)
			}
			if r.State == provisioning.StateDone {
				took = append(took, r.FinishedAt.Sub(*r.StartedAt))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(b.N)/elapsed.Minutes(), "runs/min")
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-run-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Milliseconds()), "p99-run-ms")
	rows, err := d.AppPool.Query(ctx, `SELECT name, avg(duration_ms)::int FROM tenantry.provisioning_steps
		WHERE run_id = ANY($1) GROUP BY name, position ORDER BY position`, ids)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ms int
		if err := rows.Scan(&name, &ms); err != nil {
			b.Fatal(err)
		}
		b.Logf("step %-24s avg %d ms", name, ms)
	}
}
