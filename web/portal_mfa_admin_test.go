package web_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// enrolDirect sets up user u's second factor through the package and returns its secret.
func enrolDirect(t *testing.T, b *testBundle, k *keys.Service, tn tenant.Tenant, u tenantauth.User) string {
	t.Helper()
	m := tenantauth.NewMFA(tenantauth.NewService(b.db), k)
	e, err := m.NewEnrolment(tn, u)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(e.Secret, time.Now().Add(-30*time.Second))
	if err := m.Enrol(context.Background(), tn.ID, u, e, code, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return e.Secret
}

func enrolled(t *testing.T, b *testBundle, tn tenant.Tenant, u tenantauth.User) bool {
	t.Helper()
	ok, err := tenantauth.NewMFA(tenantauth.NewService(b.db), nil).Enrolled(context.Background(), tn.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func signInWithCode(t *testing.T, c *client, tn tenant.Tenant, email, secret string, at time.Time) {
	t.Helper()
	base := "/t/" + tn.Slug
	res, body := c.portalSignIn(tn.Slug, email, password)
	wantRedirect(t, res, body, base+"/mfa")
	code, _ := totp.GenerateCode(secret, at)
	res, body = c.post(base+"/mfa", url.Values{"code": {code}, "_csrf": {c.token(base + "/mfa")}})
	wantRedirect(t, res, body, base)
}

// TestMFAResetByPlatformAdmin: the tenant's Users tab shows who has two-step sign-in; a platform
// admin resets it (CSRF needed, executives refused), the user's sessions end, both audit chains
// record it, and the user is asked to enrol again at the next sign-in when the tenant requires it.
func TestMFAResetByPlatformAdmin(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "mfar", "Reset Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	u := b.tenantUser(t, tn, "rita@reset.example", tenantauth.RoleMember)
	b.tenantUser(t, tn, "plain@reset.example", tenantauth.RoleMember)
	secret := enrolDirect(t, b, k, tn, u)
	// Rita is signed in to the portal.
	rc := b.client(t)
	signInWithCode(t, rc, tn, u.Email, secret, time.Now().Add(30*time.Second))
	if res, _ := rc.get("/t/" + tn.Slug); res.StatusCode != http.StatusOK {
		t.Fatal("rita not signed in")
	}

	admin, exec := b.user(t, identity.RoleAdmin), b.user(t, identity.RoleExecutive)
	usersTab := "/admin/tenants/" + tn.Slug + "/users"
	resetURL := usersTab + "/" + strconv.FormatInt(u.ID, 10) + "/mfa-reset"

	// The executive sees the state but no reset, and a reset is refused.
	ec := b.client(t)
	ec.signIn(exec.Email)
	doc := parse(t, ec.getBody(usersTab))
	row := doc.Find(`[data-testid="tenant-user-row"][data-email="rita@reset.example"]`)
	if row.Find(`[data-testid="tenant-user-mfa"]`).AttrOr("data-mfa", "") != "on" ||
		doc.Find(`[data-testid="tenant-user-row"][data-email="plain@reset.example"] [data-testid="tenant-user-mfa"]`).AttrOr("data-mfa", "") != "off" {
		t.Fatalf("two-step column wrong:\n%s", ec.getBody(usersTab))
	}
	if doc.Find(`[data-testid="tenant-user-mfa-reset"]`).Length() != 0 {
		t.Fatal("an executive is offered the reset")
	}
	if res, body := ec.post(resetURL, url.Values{"_csrf": {ec.token(usersTab)}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive reset: %d, want 403\n%s", res.StatusCode, body)
	}

	ac := b.client(t)
	ac.signIn(admin.Email)
	doc = parse(t, ac.getBody(usersTab))
	form := doc.Find(`[data-testid="tenant-user-row"][data-email="rita@reset.example"] form`).Has(`[data-testid="tenant-user-mfa-reset"]`)
	if form.AttrOr("action", "") != resetURL || !strings.Contains(form.AttrOr("data-confirm", ""), "rita@reset.example") || form.AttrOr("onsubmit", "") == "" {
		t.Fatalf("reset form: action %q confirm %q", form.AttrOr("action", ""), form.AttrOr("data-confirm", ""))
	}
	if doc.Find(`[data-testid="tenant-user-row"][data-email="plain@reset.example"] [data-testid="tenant-user-mfa-reset"]`).Length() != 0 {
		t.Fatal("reset offered for a user without two-step sign-in")
	}
	// Without the CSRF token: refused, nothing changes.
	if res, _ := ac.post(resetURL, url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("reset without CSRF: %d, want 403", res.StatusCode)
	}
	if !enrolled(t, b, tn, u) {
		t.Fatal("reset without CSRF or by an executive removed the factor")
	}

	res, body := ac.post(resetURL, url.Values{"_csrf": {ac.token(usersTab)}})
	wantRedirect(t, res, body, usersTab)
	if enrolled(t, b, tn, u) {
		t.Fatal("still enrolled after the reset")
	}
	if !strings.Contains(ac.getBody(usersTab), "is reset") {
		t.Fatal("no flash after the reset")
	}
	// Rita's session is over.
	res, body = rc.get("/t/" + tn.Slug)
	wantRedirect(t, res, body, "/t/"+tn.Slug+"/login")
	// Both chains.
	var tenantActs []string
	for _, e := range tenantEvents(t, b, tn) {
		tenantActs = append(tenantActs, e.Action+" by "+e.Actor)
	}
	if !slices.Contains(tenantActs, "user.mfa_reset by platform:"+admin.Email) {
		t.Fatalf("tenant chain: %v", tenantActs)
	}
	if acts := platformActions(t, b, tn); !slices.Contains(acts, "tenant.user_mfa_reset by "+admin.Email) {
		t.Fatalf("platform chain: %v", acts)
	}
	// Again: nothing to reset, said so.
	res, body = ac.post(resetURL, url.Values{"_csrf": {ac.token(usersTab)}})
	wantRedirect(t, res, body, usersTab)
	if !strings.Contains(ac.getBody(usersTab), "nothing to reset") {
		t.Fatal("no message for a user without a factor")
	}

	// With the policy on, Rita's next sign-in goes to enrolment (not the code prompt).
	setPolicy(t, b, tn, tenantauth.MFAPolicyKey, "true")
	res, body = rc.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, "/t/"+tn.Slug+"/mfa")
	if parse(t, rc.getBody("/t/"+tn.Slug+"/mfa")).Find(`[data-testid="mfa-enrol"]`).Length() != 1 {
		t.Fatal("after a reset the user is not asked to enrol again")
	}
}

// TestPortalMFAResetByTenantAdmin: a tenant admin resets a member's factor from the portal's
// Users page; members are refused; nobody resets their own there.
func TestPortalMFAResetByTenantAdmin(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "pmr", "Portal Reset Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	adm := b.tenantUser(t, tn, "ada@pr.example", tenantauth.RoleAdmin)
	mem := b.tenantUser(t, tn, "max@pr.example", tenantauth.RoleMember)
	other := b.tenantUser(t, tn, "oli@pr.example", tenantauth.RoleMember)
	admSecret := enrolDirect(t, b, k, tn, adm)
	enrolDirect(t, b, k, tn, mem)
	base := "/t/" + tn.Slug

	// A member may not reset anybody's.
	oc := b.client(t)
	res, body := oc.portalSignIn(tn.Slug, other.Email, password)
	wantRedirect(t, res, body, base)
	if res, body := oc.post(base+"/users/"+strconv.FormatInt(mem.ID, 10)+"/mfa-reset", url.Values{"_csrf": {oc.token(base)}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("member reset: %d, want 403\n%s", res.StatusCode, body)
	}
	if !enrolled(t, b, tn, mem) {
		t.Fatal("a member reset someone's factor")
	}

	ac := b.client(t)
	signInWithCode(t, ac, tn, adm.Email, admSecret, time.Now().Add(30*time.Second))
	doc := parse(t, ac.getBody(base+"/users"))
	if doc.Find(`[data-testid="user-row"][data-email="max@pr.example"] [data-testid="user-mfa-reset"]`).Length() != 1 {
		t.Fatal("no reset for an enrolled member")
	}
	if doc.Find(`[data-testid="user-row"][data-email="ada@pr.example"] [data-testid="user-mfa-reset"]`).Length() != 0 ||
		doc.Find(`[data-testid="user-row"][data-email="oli@pr.example"] [data-testid="user-mfa-reset"]`).Length() != 0 {
		t.Fatal("reset offered for oneself or a user without a factor")
	}
	// One's own: refused even when posted.
	res, body = ac.post(base+"/users/"+strconv.FormatInt(adm.ID, 10)+"/mfa-reset", url.Values{"_csrf": {ac.token(base + "/users")}})
	if res.StatusCode != http.StatusConflict || parse(t, body).Find(`[data-testid="user-change-error"]`).Length() != 1 || !enrolled(t, b, tn, adm) {
		t.Fatalf("own reset: %d\n%s", res.StatusCode, body)
	}
	res, body = ac.post(base+"/users/"+strconv.FormatInt(mem.ID, 10)+"/mfa-reset", url.Values{"_csrf": {ac.token(base + "/users")}})
	wantRedirect(t, res, body, base+"/users")
	if enrolled(t, b, tn, mem) {
		t.Fatal("member still enrolled after the admin's reset")
	}
	es := tenantEvents(t, b, tn)
	if es[0].Action != "user.mfa_reset" || es[0].Actor != adm.Email || es[0].Target != mem.Email {
		t.Fatalf("last tenant event %+v", es[0])
	}
	// A tenant admin's reset stays in the tenant's chain.
	for _, a := range platformActions(t, b, tn) {
		if strings.HasPrefix(a, "tenant.user_mfa_reset") {
			t.Fatalf("a tenant admin's reset in the platform chain: %s", a)
		}
	}
}

// TestPortalMFAResetWhileActingAs: a platform admin acting as the tenant's admin resets a user's
// factor from the portal (both chains record it) and has no account page of their own there.
func TestPortalMFAResetWhileActingAs(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "actr", "Acting Reset Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	mem := b.tenantUser(t, tn, "mae@actr.example", tenantauth.RoleMember)
	enrolDirect(t, b, k, tn, mem)
	admin := b.user(t, identity.RoleAdmin)
	ac := b.client(t)
	ac.signIn(admin.Email)
	usersTab := "/admin/tenants/" + tn.Slug + "/users"
	base := "/t/" + tn.Slug
	res, body := ac.post(base+"/act-as", url.Values{"_csrf": {ac.token(usersTab)}, "reason": {"Ticket 99: user lost their phone"}})
	wantRedirect(t, res, body, base)
	if res, _ := ac.get(base + "/account"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("acting admin's account page: %d, want 403", res.StatusCode)
	}
	if parse(t, ac.getBody(base)).Find(`[data-testid="portal-account"]`).Length() != 0 {
		t.Fatal("the header links an acting admin to an account page")
	}
	res, body = ac.post(base+"/users/"+strconv.FormatInt(mem.ID, 10)+"/mfa-reset", url.Values{"_csrf": {ac.token(base + "/users")}})
	wantRedirect(t, res, body, base+"/users")
	if enrolled(t, b, tn, mem) {
		t.Fatal("still enrolled")
	}
	if es := tenantEvents(t, b, tn); es[0].Action != "user.mfa_reset" || es[0].Actor != "platform:"+admin.Email {
		t.Fatalf("tenant event %+v", es[0])
	}
	if acts := platformActions(t, b, tn); !slices.Contains(acts, "tenant.user_mfa_reset by "+admin.Email) {
		t.Fatalf("platform chain: %v", acts)
	}
}
