package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

func userRowID(t *testing.T, b *testBundle, tn tenant.Tenant, email string) string {
	t.Helper()
	for _, u := range mustUsers(t, b, tn) {
		if u.Email == email {
			return itoa64(u.ID)
		}
	}
	t.Fatalf("no user %s", email)
	return ""
}

func mustUsers(t *testing.T, b *testBundle, tn tenant.Tenant) []tenantauth.User {
	t.Helper()
	us, err := tenantauth.NewService(b.db).List(context.Background(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func userByEmail(t *testing.T, b *testBundle, tn tenant.Tenant, email string) tenantauth.User {
	t.Helper()
	for _, u := range mustUsers(t, b, tn) {
		if u.Email == email {
			return u
		}
	}
	t.Fatalf("no user %s", email)
	return tenantauth.User{}
}

func TestPortalUserManagement(t *testing.T) {
	b := setup(t)
	a := b.portalTenant(t, "a", "Alpha Rentals")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	b.tenantUser(t, a, "sam@alpha.example", tenantauth.RoleMember)
	for _, e := range []string{"u1@alpha.example", "u2@alpha.example", "zed@alpha.example"} {
		b.tenantUser(t, a, e, tenantauth.RoleMember)
	}
	base := "/t/" + a.Slug
	ann := b.client(t)
	if res, body := ann.portalSignIn(a.Slug, "ann@alpha.example", password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d\n%s", res.StatusCode, body)
	}

	// List with search.
	_, body := ann.get(base + "/users?q=zed")
	doc := parse(t, body)
	if doc.Find(`[data-testid="user-row"]`).Length() != 1 || doc.Find(`[data-testid="user-row"]`).AttrOr("data-email", "") != "zed@alpha.example" {
		t.Fatalf("search\n%s", body)
	}
	_, body = ann.get(base + "/users?q=nobody-like-this")
	if parse(t, body).Find(`[data-testid="empty-state"]`).Length() != 1 {
		t.Fatal("no empty state for a search without hits")
	}
	tok := ann.token(base + "/users")

	// Invite: a bad e-mail is refused at the field, a good one queues the invitation e-mail.
	res, body := ann.post(base+"/invitations", url.Values{"_csrf": {tok}, "email": {"not an e-mail"}, "role": {"member"}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-email"]`).Length() != 1 {
		t.Fatalf("bad invitation: %d", res.StatusCode)
	}
	tenants := tenant.NewService(b.db, slog.New(slog.DiscardHandler))
	if _, err := settings.NewService(b.db.App, tenants).Set(context.Background(), "test", &a, "branding.primary_colour", "#be123c", false); err != nil {
		t.Fatal(err)
	}
	res, body = ann.post(base+"/invitations", url.Values{"_csrf": {tok}, "email": {"new@alpha.example"}, "role": {"admin"}})
	wantRedirect(t, res, body, base+"/users")
	var n int64
	b.db.App.Raw("SELECT count(*) FROM tenantry.mail_outbox WHERE kind = 'invitation' AND to_addr = 'new@alpha.example' AND tenant_id = ?", a.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d invitation e-mails", n)
	}
	// Drawn in the tenant's look, with the single-use link in both parts.
	var inv struct{ Subject, TextBody, HTMLBody string }
	b.db.App.Raw("SELECT subject, text_body, html_body FROM tenantry.mail_outbox WHERE kind = 'invitation' AND to_addr = 'new@alpha.example'").Scan(&inv)
	if !strings.Contains(inv.Subject, "Alpha Rentals") || !strings.Contains(inv.HTMLBody, "#be123c") || !strings.Contains(inv.HTMLBody, "Alpha Rentals") ||
		!strings.Contains(inv.HTMLBody, base+"/invitations/") || !strings.Contains(inv.TextBody, base+"/invitations/") {
		t.Fatalf("invitation e-mail not branded: %+v", inv)
	}
	if parse(t, ann.getBody(base+"/users")).Find(`[data-testid="invitation-row"][data-email="new@alpha.example"]`).Length() != 1 {
		t.Error("open invitation not listed")
	}

	// Role change and the guards.
	sam := userRowID(t, b, a, "sam@alpha.example")
	res, body = ann.post(base+"/users/"+sam+"/role", url.Values{"_csrf": {tok}, "role": {"admin"}})
	wantRedirect(t, res, body, base+"/users")
	if u := userByEmail(t, b, a, "sam@alpha.example"); u.Role != tenantauth.RoleAdmin {
		t.Fatalf("sam is %s", u.Role)
	}
	annID := userRowID(t, b, a, "ann@alpha.example")
	res, body = ann.post(base+"/users/"+annID+"/deactivate", url.Values{"_csrf": {tok}})
	if res.StatusCode != http.StatusConflict || !strings.Contains(parse(t, body).Find(`[data-testid="user-change-error"]`).Text(), "yourself") {
		t.Fatalf("deactivate self: %d", res.StatusCode)
	}
	res, _ = ann.post(base+"/users/"+annID+"/role", url.Values{"_csrf": {tok}, "role": {"member"}})
	if res.StatusCode != http.StatusConflict {
		t.Fatalf("demote self: %d", res.StatusCode)
	}

	// Deactivate sam: their session ends and they cannot sign in; reactivate.
	samC := b.client(t)
	samC.portalSignIn(a.Slug, "sam@alpha.example", password)
	res, body = ann.post(base+"/users/"+sam+"/deactivate", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, base+"/users")
	if res, _ := samC.get(base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a deactivated user's session still works: %d", res.StatusCode)
	}
	if res, _ := b.client(t).portalSignIn(a.Slug, "sam@alpha.example", password); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a deactivated user signed in: %d", res.StatusCode)
	}
	res, body = ann.post(base+"/users/"+sam+"/reactivate", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, base+"/users")
	if res, _ := b.client(t).portalSignIn(a.Slug, "sam@alpha.example", password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reactivated user cannot sign in: %d", res.StatusCode)
	}

	// The last active admin: sam (admin) is demoted by ann; then ann is the only admin, and an
	// acting platform admin cannot demote or deactivate her.
	ann.post(base+"/users/"+sam+"/role", url.Values{"_csrf": {tok}, "role": {"member"}})
	// Members cannot manage users nor read the audit trail.
	member := b.client(t)
	member.portalSignIn(a.Slug, "u1@alpha.example", password)
	mtok := member.token(base)
	for _, p := range []string{base + "/users", base + "/audit"} {
		if res, _ := member.get(p); res.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s: %d", p, res.StatusCode)
		}
	}
	for _, p := range []string{"/users/" + sam + "/role", "/users/" + sam + "/deactivate", "/invitations"} {
		if res, _ := member.post(base+p, url.Values{"_csrf": {mtok}, "role": {"admin"}, "email": {"x@alpha.example"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("member POST %s: %d", p, res.StatusCode)
		}
	}
	if u := userByEmail(t, b, a, "sam@alpha.example"); u.Role != tenantauth.RoleMember || !u.Active() {
		t.Fatalf("a member changed sam: %+v", u)
	}
	_, err := tenantauth.NewService(b.db).SetActive(context.Background(), a.ID, userByEmail(t, b, a, "ann@alpha.example").ID, 0, "platform:x", false)
	if err != tenantauth.ErrLastAdmin {
		t.Fatalf("deactivate the last admin: %v", err)
	}
	_, err = tenantauth.NewService(b.db).SetRole(context.Background(), a.ID, userByEmail(t, b, a, "ann@alpha.example").ID, 0, "platform:x", tenantauth.RoleMember)
	if err != tenantauth.ErrLastAdmin {
		t.Fatalf("demote the last admin: %v", err)
	}

	// Every change is in the tenant's own audit trail, searchable from the portal.
	_, body = ann.get(base + "/audit?q=deactivated")
	doc = parse(t, body)
	if doc.Find(`[data-testid="portal-audit-row"][data-action="user.deactivated"]`).Length() != 1 || doc.Find(`[data-testid="portal-audit-row"][data-action="user.role_changed"]`).Length() != 0 {
		t.Fatalf("audit search\n%s", body)
	}
	_, body = ann.get(base + "/audit")
	doc = parse(t, body)
	for _, action := range []string{"user.role_changed", "user.reactivated", "invitation.created"} {
		if doc.Find(`[data-testid="portal-audit-row"][data-action="`+action+`"]`).Length() == 0 {
			t.Errorf("no %s in the portal's audit trail", action)
		}
	}
}

func TestPortalBrandingInherited(t *testing.T) {
	b := setup(t)
	parent := b.portalTenant(t, "p", "Parent Group")
	ctx := context.Background()
	tenants := tenant.NewService(b.db, slog.New(slog.DiscardHandler))
	child, err := tenants.Create(ctx, "test", tenant.NewTenant{Slug: parent.Slug + "-c", Name: "Child Shop", PlanKey: "starter", ParentSlug: parent.Slug})
	if err != nil {
		t.Fatal(err)
	}
	set := settings.NewService(b.db.App, tenants)
	if _, err := set.Set(ctx, "test", &parent, "branding.primary_colour", "#0f766e", false); err != nil {
		t.Fatal(err)
	}
	b.tenantUser(t, child, "kim@child.example", tenantauth.RoleAdmin)
	c := b.client(t)
	_, body := c.get("/t/" + child.Slug + "/login")
	if !strings.Contains(body, "--brand:#0f766e") || parse(t, body).Find(`[data-testid="portal-tenant"]`).Text() != "Child Shop" {
		t.Fatalf("child sign-in page does not inherit the parent's colour\n%s", body)
	}
	if _, err := set.Set(ctx, "test", &child, "branding.name", "Child Shop Online", false); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Set(ctx, "test", &child, "branding.primary_colour", "#b91c1c", false); err != nil {
		t.Fatal(err)
	}
	c.portalSignIn(child.Slug, "kim@child.example", password)
	_, body = c.get("/t/" + child.Slug)
	doc := parse(t, body)
	if !strings.Contains(body, "--brand:#b91c1c") || strings.Contains(body, "--brand:#0f766e") || !strings.Contains(doc.Find(`[data-testid="portal-tenant"]`).Text(), "Child Shop Online") {
		t.Fatalf("child's own branding not applied\n%s", body)
	}
	if doc.Find(`[data-testid="portal-number"]`).Length() < 3 {
		t.Error("overview without key numbers")
	}
	// The parent keeps its own look.
	_, body = c.get("/t/" + parent.Slug + "/login")
	if !strings.Contains(body, "--brand:#0f766e") {
		t.Fatal("parent's portal lost its colour")
	}
}
