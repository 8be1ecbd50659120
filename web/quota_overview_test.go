package web_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

func TestQuotaOverview(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ts := tenant.NewService(b.db, dbtest.Logger(t))
	q := quota.NewService(b.db)
	// Three tenants at 100 %, 90 % and 30 % of a 1,000-request hard limit.
	for i, used := range []int64{1000, 900, 300} {
		tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: fmt.Sprintf("qo-%d", i), Name: fmt.Sprintf("QO %d", i), PlanKey: "free"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.SetLimit(ctx, "test", tn.ID, "api_requests", 800, 1000); err != nil {
			t.Fatal(err)
		}
		if res, err := q.Consume(ctx, tn.ID, "api_requests", used, fmt.Sprintf("qo-%d", i)); err != nil || !res.Allowed {
			t.Fatalf("consume %d: %+v %v", used, res, err)
		}
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	_, body := c.get("/admin/quotas")
	doc := parse(t, body)
	// Other tests of the package may have tenants of their own in these lists.
	if doc.Find(`[data-testid="blocked"] [data-testid="pressure-row"][data-slug="qo-0"]`).Length() != 1 {
		t.Fatal("qo-0 (at its hard limit) is not listed as blocked")
	}
	if doc.Find(`[data-testid="nearest"] [data-slug="qo-0"]`).Length() != 0 {
		t.Fatal("a blocked tenant is also listed as nearest")
	}
	var nearest []string
	for _, n := range doc.Find(`[data-testid="nearest"] [data-testid="pressure-row"]`).Nodes {
		for _, a := range n.Attr {
			if a.Key == "data-slug" {
				nearest = append(nearest, a.Val)
			}
		}
	}
	pos := map[string]int{}
	for i, slug := range nearest {
		pos[slug] = i + 1
	}
	if pos["qo-1"] == 0 || pos["qo-2"] == 0 || pos["qo-1"] > pos["qo-2"] {
		t.Fatalf("nearest = %v, want qo-1 (90 %%) before qo-2 (30 %%)", nearest)
	}
}
