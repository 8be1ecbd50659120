package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

func setPolicy(t *testing.T, b *testBundle, tn tenant.Tenant, key, value string) {
	t.Helper()
	if _, err := settings.NewService(b.db.App, tenant.NewService(b.db, dbtest.Logger(t))).Set(context.Background(), "ops", &tn, key, value, false); err != nil {
		t.Fatal(err)
	}
}

// actionsSince lists the tenant's audit actions, oldest first, after the first skip events.
func actionsSince(t *testing.T, b *testBundle, tn tenant.Tenant, skip int) []string {
	t.Helper()
	es := tenantEvents(t, b, tn)
	var out []string
	for i := len(es) - 1 - skip; i >= 0; i-- {
		out = append(out, es[i].Action)
	}
	return out
}

// TestPortalAccountVoluntaryMFA: a member of a tenant without the policy turns two-step sign-in
// on from Your account (QR and secret, wrong code refused), is then asked for a code at sign-in,
// cannot turn it off while the tenant requires it, and turns it off with a current code after.
func TestPortalAccountVoluntaryMFA(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "acct", "Account Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	u := b.tenantUser(t, tn, "mo@acct.example", tenantauth.RoleMember)
	base := "/t/" + tn.Slug
	c := b.client(t)
	res, body := c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base)
	if got := parse(t, c.getBody(base)).Find(`[data-testid="portal-account"]`).AttrOr("href", ""); got != base+"/account" {
		t.Fatalf("header link to the account page: %q", got)
	}
	doc := parse(t, c.getBody(base+"/account"))
	if doc.Find(`[data-testid="account-mfa"]`).AttrOr("data-state", "") != "off" || doc.Find(`[data-testid="account-mfa-start"]`).Length() != 1 {
		t.Fatalf("account page before setup:\n%s", c.getBody(base+"/account"))
	}
	tok := c.token(base + "/account")
	res, body = c.post(base+"/account/mfa/start", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, base+"/account")
	doc = parse(t, c.getBody(base+"/account"))
	secret := doc.Find(`[data-testid="mfa-secret"]`).AttrOr("data-secret", "")
	if len(secret) < 32 || !strings.HasPrefix(doc.Find(`img[data-testid="mfa-qr"]`).AttrOr("src", ""), "data:image/png;base64,") {
		t.Fatalf("setup shows no secret or QR code (%q)", secret)
	}
	if enrolled(t, b, tn, u) {
		t.Fatal("enrolled before any code")
	}
	res, body = c.post(base+"/account/mfa", url.Values{"code": {"000000"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="mfa-error"]`).Length() != 1 || enrolled(t, b, tn, u) {
		t.Fatalf("wrong setup code: %d", res.StatusCode)
	}
	// Codes move forward a step each time (one step of clock drift is accepted either way), as
	// a used step is never accepted again.
	code, _ := totp.GenerateCode(secret, time.Now().Add(-30*time.Second))
	res, body = c.post(base+"/account/mfa", url.Values{"code": {code}, "_csrf": {tok}})
	wantRedirect(t, res, body, base+"/account")
	if !enrolled(t, b, tn, u) {
		t.Fatal("not enrolled after a right code")
	}
	doc = parse(t, c.getBody(base+"/account"))
	if doc.Find(`[data-testid="account-mfa"]`).AttrOr("data-state", "") != "on" || doc.Find(`[data-testid="account-mfa-disable"]`).Length() != 1 {
		t.Fatal("account page does not show it on with a way to turn it off")
	}

	// Next sign-in asks for a code.
	c.post(base+"/logout", url.Values{"_csrf": {c.token(base)}})
	signInWithCode(t, c, tn, u.Email, secret, time.Now())

	// Required by the tenant: no way to turn it off, and a post is refused.
	setPolicy(t, b, tn, tenantauth.MFAPolicyKey, "true")
	doc = parse(t, c.getBody(base+"/account"))
	if doc.Find(`[data-testid="account-mfa-required"]`).Length() != 1 || doc.Find(`[data-testid="account-mfa-disable"]`).Length() != 0 {
		t.Fatal("the account page offers turning off a required factor")
	}
	later, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	res, body = c.post(base+"/account/mfa/disable", url.Values{"code": {later}, "_csrf": {c.token(base + "/account")}})
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "requires two-step sign-in") || !enrolled(t, b, tn, u) {
		t.Fatalf("turning off while required: %d", res.StatusCode)
	}

	// Not required any more: a wrong code is refused, a current one turns it off.
	setPolicy(t, b, tn, tenantauth.MFAPolicyKey, "false")
	tok = c.token(base + "/account")
	if res, _ := c.post(base+"/account/mfa/disable", url.Values{"code": {"12345x"}, "_csrf": {tok}}); res.StatusCode != http.StatusUnprocessableEntity || !enrolled(t, b, tn, u) {
		t.Fatalf("turning off with a wrong code: %d", res.StatusCode)
	}
	res, body = c.post(base+"/account/mfa/disable", url.Values{"code": {later}, "_csrf": {tok}})
	wantRedirect(t, res, body, base+"/account")
	if enrolled(t, b, tn, u) {
		t.Fatal("still enrolled after turning it off")
	}
	want := []string{"user.signed_in", "user.mfa_failed", "user.mfa_enrolled", "user.password_accepted", "user.mfa_verified", "user.signed_in", "user.mfa_failed", "user.mfa_disabled"}
	if got := actionsSince(t, b, tn, 1); !slices.Equal(got, want) {
		t.Fatalf("audit trail:\n got %v\nwant %v", got, want)
	}
	// Password alone again.
	c.post(base+"/logout", url.Values{"_csrf": {c.token(base)}})
	res, body = c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base)
}

// TestPortalSignInAuditOrder: with a second factor, the trail reads password accepted, code
// verified, signed in — never signed in before the code; a refused code leaves no signed_in.
func TestPortalSignInAuditOrder(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "order", "Order Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	u := b.tenantUser(t, tn, "ola@order.example", tenantauth.RoleMember)
	secret := enrolDirect(t, b, k, tn, u) // user.created, user.mfa_enrolled
	base := "/t/" + tn.Slug
	c := b.client(t)
	res, body := c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base+"/mfa")
	if got := actionsSince(t, b, tn, 2); !slices.Equal(got, []string{"user.password_accepted"}) {
		t.Fatalf("after the password: %v", got)
	}
	tok := c.token(base + "/mfa")
	c.post(base+"/mfa", url.Values{"code": {"000000"}, "_csrf": {tok}})
	if got := actionsSince(t, b, tn, 2); slices.Contains(got, "user.signed_in") {
		t.Fatalf("signed in without a right code: %v", got)
	}
	code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	res, body = c.post(base+"/mfa", url.Values{"code": {code}, "_csrf": {tok}})
	wantRedirect(t, res, body, base)
	want := []string{"user.password_accepted", "user.mfa_failed", "user.mfa_verified", "user.signed_in"}
	if got := actionsSince(t, b, tn, 2); !slices.Equal(got, want) {
		t.Fatalf("audit order:\n got %v\nwant %v", got, want)
	}
	es := tenantEvents(t, b, tn)
	if !strings.Contains(string(es[0].Detail), "totp") {
		t.Fatalf("signed_in detail %s", es[0].Detail)
	}
	if got, _ := tenantauth.NewService(b.db).Get(ctx, tn.ID, u.ID); got.LastSignInAt == nil {
		t.Fatal("last sign-in not set when the session started")
	}
}

// TestPortalAccountChangePassword: wrong current password or a weak new one → field errors and
// nothing changed; a good change keeps this browser signed in and signs out the others.
func TestPortalAccountChangePassword(t *testing.T) {
	b := setup(t)
	tn := b.portalTenant(t, "pw", "Password Co")
	u := b.tenantUser(t, tn, "pia@pw.example", tenantauth.RoleMember)
	setPolicy(t, b, tn, "security.password_min_length", "16")
	base := "/t/" + tn.Slug
	c, other := b.client(t), b.client(t)
	for _, cl := range []*client{c, other} {
		res, body := cl.portalSignIn(tn.Slug, u.Email, password)
		wantRedirect(t, res, body, base)
	}
	hash := func() string {
		var h string
		b.db.Owner.Raw(fmt.Sprintf("SELECT password_hash FROM %s.users WHERE id = ?", db.TenantSchema(tn.ID)), u.ID).Scan(&h)
		return h
	}
	before := hash()
	doc := parse(t, c.getBody(base+"/account"))
	if !strings.Contains(doc.Find(`[data-field="new_password"]`).Text(), "16 characters") {
		t.Fatal("the form does not state the tenant's minimum length")
	}
	tok := c.token(base + "/account")
	cases := []struct {
		form  url.Values
		field string
	}{
		{url.Values{"current_password": {"wrong-password-1"}, "new_password": {"a-very-long-new-password"}, "confirm_password": {"a-very-long-new-password"}}, "current_password"},
		{url.Values{"current_password": {password}, "new_password": {"only-15-chars!!"}, "confirm_password": {"only-15-chars!!"}}, "new_password"},
		{url.Values{"current_password": {password}, "new_password": {"short"}, "confirm_password": {"short"}}, "new_password"},
		{url.Values{"current_password": {password}, "new_password": {"a-very-long-new-password"}, "confirm_password": {"something-else-entirely"}}, "confirm_password"},
	}
	for _, tc := range cases {
		tc.form.Set("_csrf", tok)
		res, body := c.post(base+"/account/password", tc.form)
		d := parse(t, body)
		if res.StatusCode != http.StatusUnprocessableEntity || d.Find(`[data-testid="error-`+tc.field+`"]`).Length() != 1 {
			t.Fatalf("%v: status %d, want 422 with an error on %s\n%s", tc.form, res.StatusCode, tc.field, body)
		}
		if d.Find(`#f-new_password`).AttrOr("value", "") != "" {
			t.Fatal("a password was echoed back into the form")
		}
		if hash() != before {
			t.Fatalf("%v: the password changed", tc.form)
		}
	}
	res, body := c.post(base+"/account/password", url.Values{"_csrf": {tok}, "current_password": {password},
		"new_password": {"a-very-long-new-password"}, "confirm_password": {"a-very-long-new-password"}})
	wantRedirect(t, res, body, base+"/account")
	if hash() == before {
		t.Fatal("the password did not change")
	}
	if res, _ := c.get(base + "/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("this browser signed out by its own change: %d", res.StatusCode)
	}
	res, body = other.get(base)
	wantRedirect(t, res, body, base+"/login")
	if res, _ := other.portalSignIn(tn.Slug, u.Email, password); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old password still works: %d", res.StatusCode)
	}
	res, body = other.portalSignIn(tn.Slug, u.Email, "a-very-long-new-password")
	wantRedirect(t, res, body, base)
	if got := actionsSince(t, b, tn, 0); !slices.Contains(got, "user.password_changed") {
		t.Fatalf("not audited: %v", got)
	}
}
