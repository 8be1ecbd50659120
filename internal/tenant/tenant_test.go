package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func setup(t *testing.T) *tenant.Service {
	t.Helper()
	return tenant.NewService(dbtest.Open(t), dbtest.Logger(t))
}

func TestCreateValidates(t *testing.T) {
	svc := setup(t)
	ctx := context.Background()
	if _, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: "taken", Name: "Taken", PlanKey: "free"}); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name  string
		in    tenant.NewTenant
		field string
	}{
		{"empty name", tenant.NewTenant{Slug: "ok-slug", PlanKey: "free"}, "name"},
		{"blank name", tenant.NewTenant{Slug: "ok-slug", Name: "   ", PlanKey: "free"}, "name"},
		{"empty slug", tenant.NewTenant{Name: "X", PlanKey: "free"}, "slug"},
		{"slug with spaces", tenant.NewTenant{Slug: "bad slug", Name: "X", PlanKey: "free"}, "slug"},
		{"slug ending in hyphen", tenant.NewTenant{Slug: "bad-", Name: "X", PlanKey: "free"}, "slug"},
		{"slug too long", tenant.NewTenant{Slug: string(long), Name: "X", PlanKey: "free"}, "slug"},
		{"duplicate slug", tenant.NewTenant{Slug: "taken", Name: "X", PlanKey: "free"}, "slug"},
		{"duplicate slug in capitals", tenant.NewTenant{Slug: "TAKEN", Name: "X", PlanKey: "free"}, "slug"},
		{"no plan", tenant.NewTenant{Slug: "ok-slug", Name: "X"}, "plan"},
		{"unknown plan", tenant.NewTenant{Slug: "ok-slug", Name: "X", PlanKey: "platinum"}, "plan"},
		{"unknown parent", tenant.NewTenant{Slug: "ok-slug", Name: "X", PlanKey: "free", ParentSlug: "ghost"}, "parent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Create(ctx, "test", tc.in)
			if !errors.Is(err, validation.ErrInvalid) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			if msg := validation.Fields(err)[tc.field]; msg == "" {
				t.Fatalf("no message for %q in %v", tc.field, err)
			}
			if _, err := svc.Get(ctx, "ok-slug"); !errors.Is(err, tenant.ErrNotFound) {
				t.Fatalf("invalid input stored a tenant: %v", err)
			}
		})
	}
}

func TestCreateRecordsTreeAndAudit(t *testing.T) {
	d := dbtest.Open(t)
	svc := tenant.NewService(d, dbtest.Logger(t))
	ctx := context.Background()
	parent, err := svc.Create(ctx, "alice@example.com", tenant.NewTenant{Slug: "tree-parent", Name: "Parent Co", PlanKey: "enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	child, err := svc.Create(ctx, "alice@example.com", tenant.NewTenant{Slug: " Tree-Child ", Name: " Child Co ", PlanKey: "starter", ParentSlug: "tree-parent"})
	if err != nil {
		t.Fatal(err)
	}
	if child.Slug != "tree-child" || child.Name != "Child Co" || child.State != "active" {
		t.Fatalf("child not normalised: %+v", child)
	}
	if child.ParentID == nil || *child.ParentID != parent.ID || child.Path != fmt.Sprintf("%d.%d", parent.ID, child.ID) {
		t.Fatalf("child tree fields: parent %v path %q", child.ParentID, child.Path)
	}
	anc, err := svc.Ancestors(ctx, child)
	if err != nil || len(anc) != 1 || anc[0].ID != parent.ID {
		t.Fatalf("ancestors = %v, %v", anc, err)
	}
	kids, err := svc.Children(ctx, parent)
	if err != nil || len(kids) != 1 || kids[0].ID != child.ID {
		t.Fatalf("children = %v, %v", kids, err)
	}
	events, _, err := audit.List(ctx, d.App, audit.Query{TenantID: &child.ID, Page: 1, PerPage: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[1].Action != "tenant.created" || events[1].Actor != "alice@example.com" || events[1].Target != "tree-child" ||
		events[0].Action != "tenant.activated" || events[0].Target != "tree-child" {
		t.Fatalf("audit events = %+v", events)
	}
	var schemaExists bool
	if err := d.OwnerPool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", db.TenantSchema(child.ID)).Scan(&schemaExists); err != nil || !schemaExists {
		t.Fatalf("tenant schema %s missing after Create (%v)", db.TenantSchema(child.ID), err)
	}
	if n, err := audit.Verify(ctx, d.App); err != nil || n < 2 {
		t.Fatalf("audit chain: %d events, %v", n, err)
	}
}

func TestListSearchFilterSortPaginate(t *testing.T) {
	d := dbtest.Open(t)
	svc := tenant.NewService(d, dbtest.Logger(t))
	ctx := context.Background()
	// A namespace of its own, so other tests' tenants do not disturb the counts.
	for i := 1; i <= 7; i++ {
		plan := "starter"
		if i%2 == 0 {
			plan = "professional"
		}
		if _, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: fmt.Sprintf("zlist-%02d", i), Name: fmt.Sprintf("Zebra List %02d", i), PlanKey: plan}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.App.Exec("UPDATE tenantry.tenants SET state = 'suspended' WHERE slug = 'zlist-03'").Error; err != nil {
		t.Fatal(err)
	}
	slugs := func(r tenant.ListResult) []string {
		var out []string
		for _, it := range r.Items {
			out = append(out, it.Slug)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		q     tenant.ListQuery
		total int64
		first []string
	}{
		{"search by name, any case", tenant.ListQuery{Search: "zebra LIST", PerPage: 3}, 7, []string{"zlist-01", "zlist-02", "zlist-03"}},
		{"search by slug", tenant.ListQuery{Search: "zlist-05"}, 1, []string{"zlist-05"}},
		{"second page", tenant.ListQuery{Search: "zebra", PerPage: 3, Page: 2}, 7, []string{"zlist-04", "zlist-05", "zlist-06"}},
		{"last page", tenant.ListQuery{Search: "zebra", PerPage: 3, Page: 3}, 7, []string{"zlist-07"}},
		{"sort descending", tenant.ListQuery{Search: "zebra", Sort: "slug", Desc: true, PerPage: 2}, 7, []string{"zlist-07", "zlist-06"}},
		{"filter by plan", tenant.ListQuery{Search: "zebra", Plan: "professional"}, 3, []string{"zlist-02", "zlist-04", "zlist-06"}},
		{"filter by state", tenant.ListQuery{Search: "zebra", State: "suspended"}, 1, []string{"zlist-03"}},
		{"wildcards are literal", tenant.ListQuery{Search: "zebra%list"}, 0, nil},
		{"unknown sort falls back to name", tenant.ListQuery{Search: "zebra", Sort: "password", PerPage: 1}, 7, []string{"zlist-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := svc.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != tc.total {
				t.Fatalf("total = %d, want %d", res.Total, tc.total)
			}
			if got := slugs(res); fmt.Sprint(got) != fmt.Sprint(tc.first) {
				t.Fatalf("slugs = %v, want %v", got, tc.first)
			}
		})
	}
}

// A tenant whose schema preparation was interrupted stays in provisioning and is completed by
// FinishProvisioning, without duplicating anything.
func TestFinishProvisioningCompletesInterruptedTenants(t *testing.T) {
	d := dbtest.Open(t)
	svc := tenant.NewService(d, dbtest.Logger(t))
	ctx := context.Background()
	var id int64
	// A registry row as a crash right after registration leaves it: no schema, an old timestamp.
	err := d.OwnerPool.QueryRow(ctx, `INSERT INTO tenantry.tenants (slug, name, plan_key, state, updated_at)
		VALUES ('crashed-co', 'Crashed Co', 'free', 'provisioning', now() - interval '5 minutes') RETURNING id`).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		n, err := svc.FinishProvisioning(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{1: 1, 2: 0}[run]; n != want {
			t.Fatalf("run %d completed %d tenants, want %d", run, n, want)
		}
	}
	got, err := svc.Get(ctx, "crashed-co")
	if err != nil || got.State != "active" {
		t.Fatalf("after the sweep: %+v, %v", got, err)
	}
	events, _, _ := audit.List(ctx, d.App, audit.Query{TenantID: &id, Page: 1, PerPage: 10})
	if len(events) != 1 || events[0].Action != "tenant.activated" {
		t.Fatalf("audit = %+v, want exactly one tenant.activated", events)
	}
}

func TestNetworkSettings(t *testing.T) {
	d := dbtest.Open(t)
	svc := tenant.NewService(d, dbtest.Logger(t))
	ctx := context.Background()
	for _, slug := range []string{"net-a", "net-b"} {
		if _, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: slug, Name: slug, PlanKey: "free"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := svc.SetNetwork(ctx, "ops@example.com", "net-a", tenant.Network{Allowlist: "203.0.113.0/24, 198.51.100.7\n2001:db8::/32", Hostname: "Portal.Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	reread, _ := svc.Get(ctx, "net-a")
	if reread.IPAllowlist.String() != "203.0.113.0/24\n198.51.100.7/32\n2001:db8::/32" || *reread.Hostname != "portal.example.com" {
		t.Fatalf("stored %q %v (returned %v)", reread.IPAllowlist, reread.Hostname, got.IPAllowlist)
	}
	for addr, want := range map[string]bool{"203.0.113.9": true, "198.51.100.7": true, "198.51.100.8": false, "::ffff:203.0.113.1": true, "2001:db8::1": true, "10.0.0.1": false} {
		if reread.IPAllowlist.Allows(netip.MustParseAddr(addr)) != want {
			t.Errorf("Allows(%s) = %v, want %v", addr, !want, want)
		}
	}
	if byHost, err := svc.ByHostname(ctx, "PORTAL.example.com"); err != nil || byHost.Slug != "net-a" {
		t.Fatalf("ByHostname: %v %v", byHost.Slug, err)
	}
	for field, n := range map[string]tenant.Network{
		"ip_allowlist": {Allowlist: "10.0.0.1/8"},
		"hostname":     {Hostname: "https://x.example.com/path"},
	} {
		if _, err := svc.SetNetwork(ctx, "ops", "net-b", n); validation.Fields(err)[field] == "" {
			t.Errorf("%s: %v, want a field error", field, err)
		}
	}
	if _, err := svc.SetNetwork(ctx, "ops", "net-b", tenant.Network{Hostname: "portal.example.com"}); validation.Fields(err)["hostname"] == "" {
		t.Errorf("taken host name accepted: %v", err)
	}
	if b, _ := svc.Get(ctx, "net-b"); len(b.IPAllowlist) != 0 || b.Hostname != nil {
		t.Fatalf("refused changes were stored: %+v", b)
	}
	if (tenant.CIDRList{}).Allows(netip.MustParseAddr("10.1.2.3")) != true {
		t.Fatal("an empty allowlist must allow every address")
	}
}
