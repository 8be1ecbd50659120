package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/tenantry/tenantry/internal/identity"
)

// Plain clients send no Sec-Fetch-Site: they must echo the token from the cookie.
func TestCSRFWithoutSecFetchSite(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)

	form := url.Values{"name": {"No Token"}, "slug": {"no-token"}, "plan": {"free"}}
	res, body := c.post("/admin/tenants", form)
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without token: status %d, want 403", res.StatusCode)
	}
	if doc := parse(t, body); doc.Find(`[data-testid="error-page"][data-status="403"]`).Length() != 1 {
		t.Fatalf("POST without token did not render the 403 page:\n%s", body)
	}
	form.Set("_csrf", "forged-token-value-that-does-not-match")
	if res, _ := c.post("/admin/tenants", form); res.StatusCode != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: status %d, want 403", res.StatusCode)
	}
	if n := countTenants(t, b.db, "no-token"); n != 0 {
		t.Fatalf("refused requests stored %d tenants", n)
	}

	form.Set("_csrf", c.token("/admin/tenants/new"))
	if res, body := c.post("/admin/tenants", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST with the token: status %d, want 303\n%s", res.StatusCode, body)
	}
	if n := countTenants(t, b.db, "no-token"); n != 1 {
		t.Fatalf("POST with the token stored %d tenants, want 1", n)
	}

	// htmx sends the token in a header instead of the form.
	tok := c.token("/admin/tenants/new")
	res, _ = c.do(http.MethodPost, "/admin/tenants", url.Values{"name": {"Header Token"}, "slug": {"header-token"}, "plan": {"free"}},
		http.Header{"X-Csrf-Token": {tok}, "Hx-Request": {"true"}})
	if res.StatusCode != http.StatusNoContent || res.Header.Get("HX-Redirect") != "/admin/tenants/header-token" {
		t.Fatalf("htmx POST with header token: status %d, HX-Redirect %q", res.StatusCode, res.Header.Get("HX-Redirect"))
	}
}

// Browsers send Sec-Fetch-Site: same-origin passes without a token, cross-site never does.
func TestCSRFWithSecFetchSite(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)

	c.secFetchSite = "cross-site"
	tok := c.token("/admin/tenants/new")
	res, _ := c.post("/admin/tenants", url.Values{"name": {"Cross"}, "slug": {"cross-site"}, "plan": {"free"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: status %d, want 403", res.StatusCode)
	}
	if n := countTenants(t, b.db, "cross-site"); n != 0 {
		t.Fatal("cross-site POST stored a tenant")
	}

	c.secFetchSite = "same-origin"
	res, body := c.post("/admin/tenants", url.Values{"name": {"Same"}, "slug": {"same-origin"}, "plan": {"free"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin POST: status %d, want 303\n%s", res.StatusCode, body)
	}
	if n := countTenants(t, b.db, "same-origin"); n != 1 {
		t.Fatal("same-origin POST did not store the tenant")
	}
}
