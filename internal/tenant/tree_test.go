package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMoveSubtree(t *testing.T) {
	d := dbtest.Open(t)
	svc := tenant.NewService(d, dbtest.Logger(t))
	ctx := context.Background()
	mk := func(slug, parent string) tenant.Tenant {
		t.Helper()
		tn, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: slug, Name: slug, PlanKey: "free", ParentSlug: parent})
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	hold := mk("mv-holding", "")
	other := mk("mv-other", "")
	div := mk("mv-division", "mv-holding")
	team := mk("mv-team", "mv-division")
	mk("mv-squad", "mv-team")

	for name, tc := range map[string]struct{ slug, parent string }{
		"unknown parent":     {"mv-division", "mv-ghost"},
		"itself":             {"mv-division", "mv-division"},
		"under a descendant": {"mv-division", "mv-squad"},
		"already there":      {"mv-division", "mv-holding"},
		"root already root":  {"mv-holding", ""},
	} {
		if _, err := svc.Move(ctx, "ops", tc.slug, tc.parent); validation.Fields(err)["parent"] == "" {
			t.Errorf("%s: %v, want an error at parent", name, err)
		}
	}
	if _, err := svc.Move(ctx, "ops", "mv-nobody", ""); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}

	plan, err := svc.PlanMove(ctx, "mv-division", "mv-other")
	if err != nil || plan.Descendants != 2 || plan.From.ID != hold.ID || plan.To.ID != other.ID {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	if _, err := svc.Move(ctx, "ops@example.com", "mv-division", "mv-other"); err != nil {
		t.Fatal(err)
	}
	got, _ := svc.Get(ctx, "mv-squad")
	want := fmt.Sprintf("%d.%d.%d.%d", other.ID, div.ID, team.ID, got.ID)
	if got.Path != want {
		t.Fatalf("squad path after the move = %q, want %q", got.Path, want)
	}
	events, _, _ := audit.List(ctx, d.App, audit.Query{TenantID: &div.ID, Search: "tenant.moved", Page: 1, PerPage: 5})
	if len(events) != 1 || events[0].Actor != "ops@example.com" {
		t.Fatalf("audit = %+v", events)
	}
	roots, err := svc.Nodes(ctx, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, n := range roots {
		counts[n.Slug] = n.Children
	}
	if counts["mv-holding"] != 0 || counts["mv-other"] != 1 {
		t.Fatalf("child counts after the move: %v", counts)
	}
	kids, _ := svc.Nodes(ctx, &other.ID, 10)
	if len(kids) != 1 || kids[0].Slug != "mv-division" || kids[0].Children != 1 {
		t.Fatalf("children of other: %+v", kids)
	}
	// To the top level.
	if _, err := svc.Move(ctx, "ops", "mv-team", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Get(ctx, "mv-team"); got.ParentID != nil || got.Path != fmt.Sprint(team.ID) {
		t.Fatalf("team after moving to the top: parent %v path %q", got.ParentID, got.Path)
	}
}
