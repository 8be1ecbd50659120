package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// portalTenant creates an active tenant with its schema, named after the test.
func (b *testBundle) portalTenant(t *testing.T, suffix, name string) tenant.Tenant {
	t.Helper()
	slug := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + suffix
	if len(slug) > 60 {
		slug = slug[len(slug)-60:]
		slug = strings.TrimLeft(slug, "-")
	}
	tn, err := tenant.NewService(b.db, dbtest.Logger(t)).Create(context.Background(), "test", tenant.NewTenant{Slug: slug, Name: name, PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (b *testBundle) tenantUser(t *testing.T, tn tenant.Tenant, email string, role tenantauth.Role) tenantauth.User {
	t.Helper()
	u, err := tenantauth.NewService(b.db).CreateUser(context.Background(), tn.ID, "test",
		tenantauth.NewUser{Email: email, Name: "Name of " + email, Role: role, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (b *testBundle) tenantUsers(t *testing.T, tn tenant.Tenant) []string {
	t.Helper()
	us, err := tenantauth.NewService(b.db).List(context.Background(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Email
	}
	return out
}

// portalSignIn signs in on tenant slug's sign-in page and returns the response.
func (c *client) portalSignIn(slug, email, pw string) (*http.Response, string) {
	c.t.Helper()
	return c.post("/t/"+slug+"/login", url.Values{"email": {email}, "password": {pw}, "_csrf": {c.token("/t/" + slug + "/login")}})
}

func (c *client) getBody(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	return body
}

func wantRedirect(t *testing.T, res *http.Response, body, to string) {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != to {
		t.Fatalf("status %d to %q, want 303 to %q\n%s", res.StatusCode, res.Header.Get("Location"), to, body)
	}
}

func tenantEvents(t *testing.T, b *testBundle, tn tenant.Tenant) []audit.TenantEvent {
	t.Helper()
	if _, err := audit.VerifyTenant(context.Background(), b.db, tn.ID); err != nil {
		t.Fatalf("tenant chain: %v", err)
	}
	es, err := audit.ListTenant(context.Background(), b.db, tn.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func platformActions(t *testing.T, b *testBundle, tn tenant.Tenant) []string {
	t.Helper()
	if _, err := audit.Verify(context.Background(), b.db.App); err != nil {
		t.Fatalf("platform chain: %v", err)
	}
	es, _, err := audit.List(context.Background(), b.db.App, audit.Query{TenantID: &tn.ID, Page: 1, PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action + " by " + e.Actor
	}
	return out
}

func TestPortalSessionBoundToOneTenant(t *testing.T) {
	b := setup(t)
	a, other := b.portalTenant(t, "a", "Alpha Rentals"), b.portalTenant(t, "b", "Bravo Freight")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	b.tenantUser(t, a, "sam@alpha.example", tenantauth.RoleMember)
	b.tenantUser(t, other, "secret-bob@bravo.example", tenantauth.RoleAdmin)
	c := b.client(t)

	res, body := c.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	res, body = c.get("/t/" + a.Slug + "/login")
	if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="portal-tenant"]`).Text() != "Alpha Rentals" {
		t.Fatalf("sign-in page: status %d, not branded Alpha Rentals\n%s", res.StatusCode, body)
	}
	res, body = c.portalSignIn(a.Slug, "ann@alpha.example", "wrong-password-here")
	if res.StatusCode != http.StatusUnauthorized || parse(t, body).Find(`[data-testid="signin-error"]`).Length() != 1 {
		t.Fatalf("wrong password: status %d\n%s", res.StatusCode, body)
	}
	res, body = c.portalSignIn(a.Slug, "ann@alpha.example", password)
	wantRedirect(t, res, body, "/t/"+a.Slug)

	res, body = c.get("/t/" + a.Slug)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || !strings.Contains(doc.Find(`[data-testid="portal-me"]`).Text(), "ann@alpha.example") {
		t.Fatalf("home: status %d, not signed in as ann\n%s", res.StatusCode, body)
	}
	var emails []string
	doc.Find(`[data-testid="portal-user-row"]`).Each(func(_ int, s *goquery.Selection) { emails = append(emails, s.AttrOr("data-email", "")) })
	if strings.Join(emails, ",") != "ann@alpha.example,sam@alpha.example" {
		t.Errorf("tenant admin sees users %v, want Alpha's two", emails)
	}
	if doc.Find(`[data-testid="portal-user-form"]`).Length() != 1 || doc.Find(`[data-testid="act-as-banner"]`).Length() != 0 {
		t.Error("tenant admin's home: want the add-user form and no act-as banner")
	}

	// Alpha's session on Bravo's pages: Bravo's sign-in page, never Bravo's data.
	res, body = c.get("/t/" + other.Slug)
	wantRedirect(t, res, body, "/t/"+other.Slug+"/login")
	res, body = c.get("/t/" + other.Slug + "/login")
	doc = parse(t, body)
	if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="portal-signin"]`).Length() != 1 ||
		doc.Find(`[data-testid="portal-tenant"]`).Text() != "Bravo Freight" || strings.Contains(body, "secret-bob") || strings.Contains(body, "ann@alpha") {
		t.Fatalf("Bravo's sign-in page with Alpha's session: status %d\n%s", res.StatusCode, body)
	}
	tok := c.token("/t/" + other.Slug + "/login")
	res, body = c.post("/t/"+other.Slug+"/users", url.Values{"_csrf": {tok}, "name": {"Mallory"}, "email": {"mallory@alpha.example"}, "role": {"admin"}, "password": {password}})
	wantRedirect(t, res, body, "/t/"+other.Slug+"/login")
	if got := b.tenantUsers(t, other); len(got) != 1 {
		t.Errorf("Bravo's users after Alpha's session posted there: %v", got)
	}
	// Alpha's user does not exist in Bravo.
	if res, body := c.portalSignIn(other.Slug, "ann@alpha.example", password); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("Alpha's user signing in to Bravo: status %d, want 401\n%s", res.StatusCode, body)
	}
	// The failed attempt on Bravo left the Alpha session alone.
	if res, body := c.get("/t/" + a.Slug); res.StatusCode != http.StatusOK {
		t.Errorf("Alpha home after visiting Bravo: status %d\n%s", res.StatusCode, body)
	}
	// Signing in to Bravo rebinds the one portal session to Bravo: Alpha asks to sign in again.
	if res, body := c.portalSignIn(other.Slug, "secret-bob@bravo.example", password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in to Bravo: %d\n%s", res.StatusCode, body)
	}
	res, body = c.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")

	// Forged and unknown addresses are 404 pages.
	for _, path := range []string{"/t/no-such-tenant", "/t/no-such-tenant/login", "/t/" + a.Slug + "/no-such-page", "/t/" + strings.ToUpper(a.Slug)} {
		res, body := c.get(path)
		if res.StatusCode != http.StatusNotFound || parse(t, body).Find(`[data-testid="error-page"]`).AttrOr("data-status", "") != "404" {
			t.Errorf("GET %s: status %d, want the 404 page", path, res.StatusCode)
		}
	}
	res, body = c.post("/t/no-such-tenant/login", url.Values{"_csrf": {tok}, "email": {"ann@alpha.example"}, "password": {password}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("POST to a forged slug: status %d, want 404\n%s", res.StatusCode, body)
	}
}

func TestPortalSignInRefusals(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.portalTenant(t, "a", "Alpha Rentals")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	tenants := tenant.NewService(b.db, dbtest.Logger(t))

	// An address outside the allowlist is refused, even claiming an allowed one in a header.
	if _, err := tenants.SetNetwork(ctx, "test", a.Slug, tenant.Network{Allowlist: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	c := b.client(t)
	form := url.Values{"email": {"ann@alpha.example"}, "password": {password}, "_csrf": {c.token("/t/" + a.Slug + "/login")}}
	res, body := c.do(http.MethodPost, "/t/"+a.Slug+"/login", form, http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Real-Ip": {"10.1.2.3"}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(parse(t, body).Find(`[data-testid="signin-error"]`).Text(), "not allowed from your network") {
		t.Fatalf("sign-in from outside the allowlist: status %d\n%s", res.StatusCode, body)
	}
	res, body = c.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	if _, err := tenants.SetNetwork(ctx, "test", a.Slug, tenant.Network{Allowlist: "127.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	res, body = c.portalSignIn(a.Slug, "ann@alpha.example", password)
	wantRedirect(t, res, body, "/t/"+a.Slug)

	// Suspending the tenant closes its portal: the open session ends, sign-in is refused.
	tok := c.token("/t/" + a.Slug)
	if err := b.db.Owner.Exec("UPDATE tenantry.tenants SET state = 'suspended' WHERE id = ?", a.ID).Error; err != nil {
		t.Fatal(err)
	}
	res, body = c.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	res, body = c.get("/t/" + a.Slug + "/login")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(parse(t, body).Find(`[data-testid="portal-closed"]`).Text(), "suspended") {
		t.Fatalf("sign-in page of a suspended tenant: status %d\n%s", res.StatusCode, body)
	}
	res, body = c.post("/t/"+a.Slug+"/login", url.Values{"email": {"ann@alpha.example"}, "password": {password}, "_csrf": {tok}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in to a suspended tenant: status %d, want 403\n%s", res.StatusCode, body)
	}
	if err := b.db.Owner.Exec("UPDATE tenantry.tenants SET state = 'active' WHERE id = ?", a.ID).Error; err != nil {
		t.Fatal(err)
	}
	res, body = c.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login") // the session ended; reactivation does not revive it
}

func TestPortalUsersAndSessions(t *testing.T) {
	b := setup(t)
	a := b.portalTenant(t, "a", "Alpha Rentals")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	b.tenantUser(t, a, "sam@alpha.example", tenantauth.RoleMember)

	member := b.client(t)
	member.portalSignIn(a.Slug, "sam@alpha.example", password)
	res, body := member.get("/t/" + a.Slug)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="portal-users"]`).Length() != 0 || doc.Find(`[data-testid="portal-user-form"]`).Length() != 0 {
		t.Fatalf("member's home: status %d, must show no users and no form\n%s", res.StatusCode, body)
	}
	res, body = member.post("/t/"+a.Slug+"/users", url.Values{"_csrf": {member.token("/t/" + a.Slug)}, "name": {"Eve"}, "email": {"eve@alpha.example"}, "role": {"admin"}, "password": {password}})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("member adding a user: status %d, want 403\n%s", res.StatusCode, body)
	}
	// The error page stays in the tenant's frame and leads back to the portal, not to /admin.
	if href := parse(t, body).Find(`[data-testid="error-home"]`).AttrOr("href", ""); href != "/t/"+a.Slug {
		t.Errorf("portal error page leads to %q, want /t/%s", href, a.Slug)
	}

	admin := b.client(t)
	admin.portalSignIn(a.Slug, "ann@alpha.example", password)
	tok := admin.token("/t/" + a.Slug)
	res, body = admin.post("/t/"+a.Slug+"/users", url.Values{"_csrf": {tok}, "name": {"Eve"}, "email": {"not-an-email"}, "role": {"admin"}, "password": {password}})
	doc = parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-email"]`).Length() != 1 || doc.Find("#f-name").AttrOr("value", "") != "Eve" {
		t.Fatalf("invalid user: status %d, want 422 with the e-mail error and the input kept\n%s", res.StatusCode, body)
	}
	res, body = admin.post("/t/"+a.Slug+"/users", url.Values{"_csrf": {tok}, "name": {"Eve"}, "email": {"eve@alpha.example"}, "role": {"member"}, "password": {password}})
	wantRedirect(t, res, body, "/t/"+a.Slug)
	if got := strings.Join(b.tenantUsers(t, a), ","); got != "ann@alpha.example,eve@alpha.example,sam@alpha.example" {
		t.Errorf("users after add: %s", got)
	}
	if es := tenantEvents(t, b, a); es[0].Action != "user.created" || es[0].Actor != "ann@alpha.example" || es[0].Target != "eve@alpha.example" {
		t.Errorf("last tenant event = %+v, want ann's user.created for eve", es[0])
	}
	eve := b.client(t)
	if res, body := eve.portalSignIn(a.Slug, "eve@alpha.example", password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("new user signs in: %d\n%s", res.StatusCode, body)
	}

	// Sign out everywhere ends Eve's other session too (the epoch moved on).
	eve2 := b.client(t)
	eve2.portalSignIn(a.Slug, "eve@alpha.example", password)
	res, body = eve.post("/t/"+a.Slug+"/logout-all", url.Values{"_csrf": {eve.token("/t/" + a.Slug)}})
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	res, body = eve2.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	// Plain sign-out ends only this browser's session.
	res, body = admin.post("/t/"+a.Slug+"/logout", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	res, body = admin.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	if res, _ := member.get("/t/" + a.Slug); res.StatusCode != http.StatusOK {
		t.Errorf("member's session after others signed out: %d", res.StatusCode)
	}
}

func TestActAs(t *testing.T) {
	b := setup(t)
	a, other := b.portalTenant(t, "a", "Alpha Rentals"), b.portalTenant(t, "b", "Bravo Freight")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	admin, exec := b.user(t, identity.RoleAdmin), b.user(t, identity.RoleExecutive)
	usersTab := "/admin/tenants/" + a.Slug + "/users"

	// An executive sees the users but may not act as the tenant's admin.
	ec := b.client(t)
	ec.signIn(exec.Email)
	res, body := ec.get(usersTab)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="tenant-user-row"]`).AttrOr("data-email", "") != "ann@alpha.example" ||
		doc.Find(`[data-testid="act-as-form"]`).Length() != 0 || doc.Find(`[data-testid="act-as-denied"]`).Length() != 1 {
		t.Fatalf("executive's users tab: status %d\n%s", res.StatusCode, body)
	}
	res, body = ec.post("/t/"+a.Slug+"/act-as", url.Values{"_csrf": {ec.token(usersTab)}, "reason": {"Ticket 1: just looking around"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive acting as: status %d, want 403\n%s", res.StatusCode, body)
	}
	if res, body := ec.get("/t/" + a.Slug); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("executive reached the portal: %d\n%s", res.StatusCode, body)
	}

	// A platform admin must give a reason.
	ac := b.client(t)
	ac.signIn(admin.Email)
	tok := ac.token(usersTab)
	if parse(t, ac.getBody(usersTab)).Find(`[data-testid="act-as-form"]`).Length() != 1 {
		t.Fatal("admin's users tab has no act-as form")
	}
	for _, reason := range []string{"", "short"} {
		res, body := ac.post("/t/"+a.Slug+"/act-as", url.Values{"_csrf": {tok}, "reason": {reason}})
		doc := parse(t, body)
		if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-reason"]`).Length() != 1 || doc.Find("#f-reason").AttrOr("value", "x") != reason {
			t.Fatalf("reason %q: status %d, want 422 with the reason error\n%s", reason, res.StatusCode, body)
		}
	}
	res, body = ac.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
	if es := tenantEvents(t, b, a); len(es) != 1 { // only ann's user.created
		t.Fatalf("refused act-as wrote tenant events: %+v", es)
	}
	for _, act := range platformActions(t, b, a) {
		if strings.Contains(act, "act_as") {
			t.Fatalf("refused act-as wrote a platform event: %s", act)
		}
	}

	// With a reason the portal opens, with the banner on every page.
	res, body = ac.post("/t/"+a.Slug+"/act-as", url.Values{"_csrf": {tok}, "reason": {"Ticket 4711: reset Ann's access"}})
	wantRedirect(t, res, body, "/t/"+a.Slug)
	res, body = ac.get("/t/" + a.Slug)
	doc = parse(t, body)
	banner := doc.Find(`[data-testid="act-as-banner"]`).Text()
	if res.StatusCode != http.StatusOK || !strings.Contains(banner, "Alpha Rentals") || !strings.Contains(banner, admin.Name) ||
		!strings.Contains(banner, "Ticket 4711: reset Ann's access") || doc.Find(`[data-testid="act-as-stop"]`).Length() != 1 {
		t.Fatalf("acting home: status %d, banner %q\n%s", res.StatusCode, banner, body)
	}
	if doc.Find(`[data-testid="portal-user-row"]`).AttrOr("data-email", "") != "ann@alpha.example" || doc.Find(`[data-testid="portal-user-form"]`).Length() != 1 {
		t.Error("acting admin does not see the tenant's users and the add-user form")
	}
	res, body = ac.post("/t/"+a.Slug+"/users", url.Values{"_csrf": {tok}, "name": {"Rita"}, "email": {"rita@alpha.example"}, "role": {"admin"}, "password": {password}})
	wantRedirect(t, res, body, "/t/"+a.Slug)
	res, body = ac.get("/t/" + a.Slug)
	if !strings.Contains(parse(t, body).Find(`[data-testid="act-as-banner"]`).Text(), "Ticket 4711") {
		t.Errorf("banner missing on the page after a change\n%s", body)
	}
	// The act-as session is for Alpha only.
	res, body = ac.get("/t/" + other.Slug)
	wantRedirect(t, res, body, "/t/"+other.Slug+"/login")

	res, body = ac.post("/t/"+a.Slug+"/act-as/stop", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, usersTab)
	res, body = ac.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")

	// Both trails have the start and the stop; the tenant's also the change made meanwhile.
	var got []string
	for _, e := range tenantEvents(t, b, a) {
		got = append(got, e.Action+" by "+e.Actor)
	}
	want := []string{"act_as.stopped by platform:" + admin.Email, "user.created by platform:" + admin.Email, "act_as.started by platform:" + admin.Email, "user.created by test"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tenant trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	plat := platformActions(t, b, a)
	if len(plat) < 2 || plat[0] != "tenant.act_as_stopped by "+admin.Email || plat[1] != "tenant.act_as_started by "+admin.Email {
		t.Errorf("platform trail for the tenant: %v", plat)
	}
	es := tenantEvents(t, b, a)
	if !strings.Contains(string(es[2].Detail), "Ticket 4711") {
		t.Errorf("act_as.started detail %s lacks the reason", es[2].Detail)
	}

	// Signing out of the platform ends the act-as session too, on the record.
	ac.post("/t/"+a.Slug+"/act-as", url.Values{"_csrf": {tok}, "reason": {"Ticket 4712: check settings"}})
	ac.post("/logout", url.Values{"_csrf": {tok}})
	res, body = ac.get("/t/" + a.Slug)
	wantRedirect(t, res, body, usersTab)
	if es := tenantEvents(t, b, a); es[0].Action != "act_as.stopped" || !strings.Contains(string(es[0].Detail), tenantauth.EndRevoked) {
		t.Errorf("after platform sign-out, last tenant event = %s %s, want act_as.stopped (revoked)", es[0].Action, es[0].Detail)
	}

	// Nobody acts as the admin of a suspended tenant.
	ac.signIn(admin.Email)
	tok = ac.token(usersTab)
	if err := b.db.Owner.Exec("UPDATE tenantry.tenants SET state = 'suspended' WHERE id = ?", a.ID).Error; err != nil {
		t.Fatal(err)
	}
	if parse(t, ac.getBody(usersTab)).Find(`[data-testid="act-as-closed"]`).Length() != 1 {
		t.Error("suspended tenant's users tab does not say act-as is closed")
	}
	res, body = ac.post("/t/"+a.Slug+"/act-as", url.Values{"_csrf": {tok}, "reason": {"Ticket 4713: look at the data"}})
	wantRedirect(t, res, body, usersTab)
	res, body = ac.get("/t/" + a.Slug)
	wantRedirect(t, res, body, "/t/"+a.Slug+"/login")
}

func TestPortalOnOwnHostname(t *testing.T) {
	b := setup(t)
	a, other := b.portalTenant(t, "a", "Alpha Rentals"), b.portalTenant(t, "b", "Bravo Freight")
	b.tenantUser(t, a, "ann@alpha.example", tenantauth.RoleAdmin)
	if _, err := tenant.NewService(b.db, dbtest.Logger(t)).SetNetwork(context.Background(), "test", a.Slug, tenant.Network{Hostname: "portal.alpha.example"}); err != nil {
		t.Fatal(err)
	}
	c := b.client(t)
	host := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, b.ts.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "Portal.Alpha.Example:443"
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res, string(out)
	}
	res, body := host(http.MethodGet, "/", nil)
	wantRedirect(t, res, body, "/login")
	res, body = host(http.MethodGet, "/login", nil)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="portal-tenant"]`).Text() != "Alpha Rentals" || doc.Find(`form[action="/login"]`).Length() != 1 {
		t.Fatalf("own host sign-in page: status %d\n%s", res.StatusCode, body)
	}
	tok := doc.Find(`input[name="_csrf"]`).AttrOr("value", "")
	res, body = host(http.MethodPost, "/login", url.Values{"_csrf": {tok}, "email": {"ann@alpha.example"}, "password": {password}})
	wantRedirect(t, res, body, "/")
	res, body = host(http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(parse(t, body).Find(`[data-testid="portal-me"]`).Text(), "ann@alpha.example") {
		t.Fatalf("own host home: status %d\n%s", res.StatusCode, body)
	}
	// Nothing but this tenant's portal is reachable on its host name.
	for _, path := range []string{"/admin", "/admin/tenants", "/t/" + other.Slug + "/login", "/setup"} {
		if res, _ := host(http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the tenant's host: status %d, want 404", path, res.StatusCode)
		}
	}
	if res, _ := host(http.MethodGet, "/static/css/app.css", nil); res.StatusCode != http.StatusOK {
		t.Errorf("static files on the tenant's host: status %d", res.StatusCode)
	}
	// The platform host is unaffected.
	if res, _ := c.get("/login"); res.StatusCode != http.StatusOK && res.StatusCode != http.StatusSeeOther {
		t.Errorf("platform /login: %d", res.StatusCode)
	}
}
