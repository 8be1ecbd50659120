package demo_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// The demo seed's templates: created once, applied to their tenants, HIPAA Clinic one version
// ahead of its tenants; seeding again changes nothing.
func TestSeedTemplates(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	for range 2 {
		// Tenant roles (t_<id>) are cluster-wide: test packages running at the same time in other
		// databases may GRANT on the same role at once, which PostgreSQL refuses with "tuple
		// concurrently updated". Seeding is idempotent, so that error alone is retried.
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if _, err = demo.Seed(ctx, d, false, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "tuple concurrently updated") {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	svc := templates.NewService(d)
	res, err := svc.List(ctx, templates.ListQuery{Status: "all"})
	if err != nil || res.Total != 5 {
		t.Fatalf("%d templates, %v", res.Total, err)
	}
	hipaa, err := svc.BySlugOrName(ctx, "HIPAA Clinic")
	if err != nil || hipaa.Latest.Number != 2 || hipaa.Tenants != 2 {
		t.Fatalf("HIPAA Clinic %+v %v", hipaa, err)
	}
	ev, err := tenant.NewService(d, dbtest.Logger(t)).Get(ctx, "evergreen-clinics")
	if err != nil {
		t.Fatal(err)
	}
	dr, err := svc.Drift(ctx, ev.ID)
	if err != nil || dr.Template == nil || !dr.Behind || dr.From.Number != 1 || len(dr.Upgrades) == 0 {
		t.Fatalf("drift %+v %v", dr, err)
	}
}
