package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
)

func TestTreeAndMove(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	svc := tenant.NewService(b.db, dbtest.Logger(t))
	for _, n := range [][2]string{{"tree-holding", ""}, {"tree-division", "tree-holding"}, {"tree-team", "tree-division"}, {"tree-other", ""}} {
		if _, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: n[0], Name: strings.ToUpper(n[0][:1]) + n[0][1:], PlanKey: "free", ParentSlug: n[1]}); err != nil {
			t.Fatal(err)
		}
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)

	// Roots only, the holding offering to expand; children come on demand.
	_, body := c.get("/admin/tree")
	doc := parse(t, body)
	if doc.Find(`[data-testid="tree-node"][data-slug="tree-holding"]`).Length() != 1 || doc.Find(`[data-slug="tree-division"]`).Length() != 0 {
		t.Fatalf("roots view wrong:\n%s", doc.Find(`[data-testid="tree"]`).Text())
	}
	var holdingID string
	_ = b.db.AppPool.QueryRow(ctx, "SELECT id::text FROM tenants WHERE slug = 'tree-holding'").Scan(&holdingID)
	_, body = c.do(http.MethodGet, "/admin/tree/children/"+holdingID, nil, http.Header{"Hx-Request": {"true"}})
	if d := parse(t, body); d.Find(`[data-slug="tree-division"]`).Length() != 1 || d.Find(`[data-testid="current-user"]`).Length() != 0 {
		t.Fatalf("children fragment:\n%s", body)
	}
	// A search opens the branch down to the hit.
	_, body = c.get("/admin/tree?q=tree-team")
	doc = parse(t, body)
	if doc.Find(`[data-slug="tree-holding"] [data-slug="tree-division"] [data-slug="tree-team"]`).Length() != 1 || doc.Find(`[data-slug="tree-other"]`).Length() != 0 {
		t.Fatalf("search did not expand to the hit:\n%s", doc.Find(`#tree`).Text())
	}

	// Move: a cycle is refused at the field, a preview says what moves, the confirmation moves.
	tok := c.token("/admin/tenants/tree-division/move")
	res, body := c.post("/admin/tenants/tree-division/move", url.Values{"parent": {"tree-team"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(parse(t, body).Find(`[data-testid="error-parent"]`).Text(), "cycle") {
		t.Fatalf("cycle: %d", res.StatusCode)
	}
	_, body = c.post("/admin/tenants/tree-division/move", url.Values{"parent": {"tree-other"}, "_csrf": {tok}})
	if pv := parse(t, body).Find(`[data-testid="move-preview"]`).Text(); !strings.Contains(pv, "1 descendant") {
		t.Fatalf("preview = %q", pv)
	}
	holding, _ := svc.Get(ctx, "tree-holding")
	if got, _ := svc.Get(ctx, "tree-division"); got.ParentID == nil || *got.ParentID != holding.ID {
		t.Fatalf("the preview moved the tenant: %+v", got)
	}
	res, _ = c.post("/admin/tenants/tree-division/move", url.Values{"parent": {"tree-other"}, "confirm": {"yes"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("move: %d", res.StatusCode)
	}
	other, _ := svc.Get(ctx, "tree-other")
	team, _ := svc.Get(ctx, "tree-team")
	if !strings.HasPrefix(team.Path, other.Path+".") {
		t.Fatalf("team path %q is not under other %q", team.Path, other.Path)
	}
}
