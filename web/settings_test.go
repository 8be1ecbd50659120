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

func TestSettingsCascadeInTheUI(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	svc := tenant.NewService(b.db, dbtest.Logger(t))
	for _, n := range [][2]string{{"set-parent", ""}, {"set-child", "set-parent"}} {
		if _, err := svc.Create(ctx, "test", tenant.NewTenant{Slug: n[0], Name: n[0], PlanKey: "free", ParentSlug: n[1]}); err != nil {
			t.Fatal(err)
		}
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	hx := http.Header{"Hx-Request": {"true"}}
	row := func(body string) (value, source string, canEdit bool) {
		d := parse(t, "<table>"+body+"</table>") // a bare <tr> loses its cells outside a table
		return strings.TrimSpace(d.Find(`[data-testid="setting-value"]`).Text()), strings.TrimSpace(d.Find(`[data-testid="setting-source"]`).Text()),
			d.Find(`[data-testid="setting-edit"]`).Length() == 1
	}
	tok := c.token("/admin/tenants/set-parent/settings")
	const key = "security.password_min_length"

	// A bad value comes back at the field with 422; nothing is stored.
	res, body := c.do(http.MethodPost, "/admin/tenants/set-parent/settings/"+key, url.Values{"value": {"3"}, "_csrf": {tok}}, hx)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(parse(t, "<table>"+body+"</table>").Find(`[data-testid="setting-error"]`).Text(), "from 10 to 128") {
		t.Fatalf("bad value: %d\n%s", res.StatusCode, body)
	}
	// The parent overrides and locks; the child inherits and may not override.
	res, body = c.do(http.MethodPost, "/admin/tenants/set-parent/settings/"+key, url.Values{"value": {"16"}, "lock": {"true"}, "_csrf": {tok}}, hx)
	if v, src, _ := row(body); res.StatusCode != 200 || v != "16" || src != "set on this tenant" {
		t.Fatalf("parent override: %d %q %q", res.StatusCode, v, src)
	}
	_, body = c.get("/admin/tenants/set-child/settings")
	d := parse(t, body)
	r := d.Find(`[data-testid="setting-row"][data-key="` + key + `"]`)
	if got := strings.TrimSpace(r.Find(`[data-testid="setting-source"]`).Text()); got != "locked by set-parent" || r.Find(`[data-testid="setting-edit"]`).Length() != 0 {
		t.Fatalf("child sees %q, edit offered: %v", got, r.Find(`[data-testid="setting-edit"]`).Length())
	}
	res, _ = c.do(http.MethodPost, "/admin/tenants/set-child/settings/"+key, url.Values{"value": {"20"}, "_csrf": {tok}}, hx)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("override under a lock: %d, want 422", res.StatusCode)
	}
	// Reset at the parent: the child falls back to the default.
	_, body = c.do(http.MethodPost, "/admin/tenants/set-parent/settings/"+key+"/reset", url.Values{"_csrf": {tok}}, hx)
	if v, src, canEdit := row(body); v != "10" || src != "default" || !canEdit {
		t.Fatalf("after reset: %q %q edit=%v", v, src, canEdit)
	}
	// The platform's own level, and the diff.
	res, _ = c.do(http.MethodPost, "/admin/settings/flags.sso", url.Values{"value": {"true"}, "_csrf": {tok}}, hx)
	if res.StatusCode != 200 {
		t.Fatalf("platform override: %d", res.StatusCode)
	}
	c.do(http.MethodPost, "/admin/tenants/set-child/settings/flags.sso", url.Values{"value": {"false"}, "_csrf": {tok}}, hx)
	_, body = c.get("/admin/settings/diff?a=set-parent&b=set-child")
	diff := parse(t, body).Find(`[data-testid="diff-row"][data-different="true"]`)
	if diff.Length() != 1 || !strings.Contains(diff.Text(), "flags.sso") {
		t.Fatalf("diff rows: %d %q", diff.Length(), diff.Text())
	}
	if res, _ := c.get("/admin/settings/diff?a=set-parent&b=nobody"); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("diff with an unknown slug: %d", res.StatusCode)
	}

	// Executives see the values but no Override button, and cannot post.
	exec := b.user(t, identity.RoleExecutive)
	e := b.client(t)
	e.signIn(exec.Email)
	_, body = e.get("/admin/settings")
	if parse(t, body).Find(`[data-testid="setting-edit"]`).Length() != 0 || parse(t, body).Find(`[data-testid="setting-row"]`).Length() == 0 {
		t.Fatal("executive view of the platform settings is wrong")
	}
	if res, _ := e.do(http.MethodPost, "/admin/settings/flags.sso", url.Values{"value": {"false"}, "_csrf": {e.token("/admin/settings")}}, hx); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive override: %d", res.StatusCode)
	}
}
