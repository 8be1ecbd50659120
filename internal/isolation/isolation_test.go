package isolation_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/isolation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestVerifier(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	v := isolation.New(d, dbtest.Logger(t))

	run, err := v.Run(ctx, "manual")
	if err != nil || run.Pairs != 0 || run.Summary() != "Nothing to check: fewer than two tenants have their own schema." {
		t.Fatalf("empty registry: %+v, %v", run, err)
	}

	var ids []int64
	for _, slug := range []string{"iso-a", "iso-b"} {
		var id int64
		if err := d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id", slug).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := d.EnsureTenantPlane(ctx, id, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	run, err = v.Run(ctx, "manual")
	if err != nil {
		t.Fatalf("sound setup reported: %v", err)
	}
	if run.Pairs != 1 || run.Probes != 7 || run.Failures != 0 || run.FinishedAt == nil {
		t.Fatalf("run = %+v", run)
	}
	results, err := isolation.Results(ctx, d.App, run.ID)
	if err != nil || len(results) != 7 {
		t.Fatalf("results: %d, %v", len(results), err)
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("probe %q failed on a sound setup: %s", r.Probe, r.Detail)
		}
	}

	// Someone grants each tenant role the other's schema: the verifier must notice.
	a, b := db.TenantSchema(ids[0]), db.TenantSchema(ids[1])
	for _, g := range [][2]string{{a, b}, {b, a}} {
		for _, sql := range []string{"GRANT USAGE ON SCHEMA " + g[1] + " TO " + g[0], "GRANT SELECT ON " + g[1] + ".users TO " + g[0]} {
			if _, err := d.OwnerPool.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	run, err = v.Run(ctx, "manual")
	if !errors.Is(err, isolation.ErrBreach) || run.Failures != 1 {
		t.Fatalf("breach not reported: %+v, %v", run, err)
	}
	results, _ = isolation.Results(ctx, d.App, run.ID)
	if results[0].Passed || results[0].Probe != "sql: read B's schema under A's role" {
		t.Fatalf("first result should be the failed read probe: %+v", results[0])
	}
	events, _, err := audit.List(ctx, d.App, audit.Query{Search: "isolation.breach", Page: 1, PerPage: 5})
	if err != nil || len(events) != 1 {
		t.Fatalf("breach audit events: %d, %v", len(events), err)
	}
	runs, err := isolation.Latest(ctx, d.App, 10)
	if err != nil || len(runs) != 3 || runs[0].ID != run.ID {
		t.Fatalf("history: %+v, %v", runs, err)
	}
}
