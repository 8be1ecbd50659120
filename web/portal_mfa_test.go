package web_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

// withKeyService is withKeys that also returns the key service, to give tenants keysets.
func withKeyService(t *testing.T) (*testBundle, *keys.Service) {
	t.Helper()
	d := dbtest.Open(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.NewService(d.App, master)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t), Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{db: d, users: identity.NewService(d.App)}
	b.ts = newTestServer(t, srv)
	return b, k
}

func TestPortalMFARequiredEnrolThenCode(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "mfa", "MFA Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	u := b.tenantUser(t, tn, "mia@mfa.example", tenantauth.RoleAdmin)
	if _, err := settings.NewService(b.db.App, tenant.NewService(b.db, dbtest.Logger(t))).Set(ctx, "ops", &tn, tenantauth.MFAPolicyKey, "true", false); err != nil {
		t.Fatal(err)
	}
	base := "/t/" + tn.Slug
	c := b.client(t)

	res, body := c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base+"/mfa")
	// Between the password and the code the browser is not signed in: no portal page, no write.
	res, body = c.get(base)
	wantRedirect(t, res, body, base+"/login")
	if res, _ := c.post(base+"/users", url.Values{"email": {"x@mfa.example"}, "name": {"X"}, "role": {"member"},
		"password": {password}, "_csrf": {c.token(base + "/mfa")}}); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != base+"/login" {
		t.Fatalf("adding a user before the second factor: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if slices.Contains(b.tenantUsers(t, tn), "x@mfa.example") {
		t.Fatal("a user was added before the second factor")
	}

	// The enrolment page: QR code as a data: PNG, and the secret as text.
	_, body = c.get(base + "/mfa")
	doc := parse(t, body)
	if doc.Find(`[data-testid="mfa-enrol"]`).Length() != 1 {
		t.Fatalf("no enrolment page:\n%s", body)
	}
	if src, _ := doc.Find(`img[data-testid="mfa-qr"]`).Attr("src"); !strings.HasPrefix(src, "data:image/png;base64,") {
		t.Fatalf("QR code src %.40q", src)
	}
	secret, _ := doc.Find(`[data-testid="mfa-secret"]`).Attr("data-secret")
	if len(secret) < 32 {
		t.Fatalf("secret %q", secret)
	}
	// A refresh shows the same secret (it lives in the pending cookie until confirmed).
	if again, _ := parse(t, c.getBody(base+"/mfa")).Find(`[data-testid="mfa-secret"]`).Attr("data-secret"); again != secret {
		t.Fatal("the secret changed on refresh")
	}

	tok := c.token(base + "/mfa")
	res, body = c.post(base+"/mfa", url.Values{"code": {"000000"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="mfa-error"]`).Length() != 1 {
		t.Fatalf("wrong enrolment code: %d", res.StatusCode)
	}
	enrolCode, _ := totp.GenerateCode(secret, time.Now())
	res, body = c.post(base+"/mfa", url.Values{"code": {enrolCode}, "_csrf": {tok}})
	wantRedirect(t, res, body, base)
	if res, _ := c.get(base); res.StatusCode != http.StatusOK {
		t.Fatalf("portal after enrolment: %d", res.StatusCode)
	}

	// Sign out, sign in again: now a code is asked for, and the enrolment code is spent.
	c.post(base+"/logout", url.Values{"_csrf": {c.token(base)}})
	res, body = c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base+"/mfa")
	_, body = c.get(base + "/mfa")
	if parse(t, body).Find(`[data-testid="mfa-verify"]`).Length() != 1 {
		t.Fatalf("no code prompt:\n%s", body)
	}
	tok = c.token(base + "/mfa")
	if res, _ := c.post(base+"/mfa", url.Values{"code": {enrolCode}, "_csrf": {tok}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("enrolment code replayed: %d", res.StatusCode)
	}
	if res, _ := c.get(base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal after a refused code: %d", res.StatusCode)
	}
	// The next step's code is within the accepted clock drift and not used yet.
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	res, body = c.post(base+"/mfa", url.Values{"code": {next}, "_csrf": {tok}})
	wantRedirect(t, res, body, base)
	if res, _ := c.get(base); res.StatusCode != http.StatusOK {
		t.Fatalf("portal after the code: %d", res.StatusCode)
	}
	// The pending step is over: /mfa sends a signed-in user home.
	res, body = c.get(base + "/mfa")
	wantRedirect(t, res, body, base)

	var actions []string
	for _, e := range tenantEvents(t, b, tn) {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"user.mfa_enrolled", "user.mfa_failed", "user.mfa_verified"} {
		if !slices.Contains(actions, want) {
			t.Errorf("tenant audit lacks %s: %v", want, actions)
		}
	}
}

func TestPortalMFAWrongCodesThrottled(t *testing.T) {
	b, k := withKeyService(t)
	ctx := context.Background()
	tn := b.portalTenant(t, "mfat", "Throttle Co")
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	u := b.tenantUser(t, tn, "tom@mfat.example", tenantauth.RoleMember)
	e, err := tenantauth.NewMFA(tenantauth.NewService(b.db), k).NewEnrolment(tn, u)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(e.Secret, time.Now().Add(-30*time.Second))
	if err := tenantauth.NewMFA(tenantauth.NewService(b.db), k).Enrol(ctx, tn.ID, u, e, code, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	// Enrolled without the policy: the code is still asked for.
	base := "/t/" + tn.Slug
	c := b.client(t)
	res, body := c.portalSignIn(tn.Slug, u.Email, password)
	wantRedirect(t, res, body, base+"/mfa")
	tok := c.token(base + "/mfa")
	for i := 0; i < tenantauth.MaxFailuresPerEmail; i++ {
		if res, _ := c.post(base+"/mfa", url.Values{"code": {"99999x"}, "_csrf": {tok}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d: %d", i, res.StatusCode)
		}
	}
	good, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
	res, body = c.post(base+"/mfa", url.Values{"code": {good}, "_csrf": {tok}})
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong codes") {
		t.Fatalf("right code after %d wrong ones: %d", tenantauth.MaxFailuresPerEmail, res.StatusCode)
	}
	if res, _ := c.get(base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal while throttled: %d", res.StatusCode)
	}
}
