package e2e

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
	"github.com/pquerna/otp/totp"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

// setupWithKeys is setup with a master key, so tenants can hold encrypted secrets (the TOTP
// secrets of their users).
func setupWithKeys(t *testing.T, width, height int) (*bundle, *keys.Service) {
	t.Helper()
	d := dbtest.Open(t)
	seedPackageDatabase(t, d)
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
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b := &bundle{t: t, db: d, url: ts.URL, expect: playwright.NewPlaywrightAssertions(5000)}
	b.page = b.newPage(width, height)
	return b, k
}

// TestMFAEnrolmentAndSignIn: a tenant requires MFA; its user signs in with the password, is
// sent to enrol, reads the secret off the page, confirms with a code computed from it, and
// lands in the portal. Nothing of the portal is reachable in between. Signed out and back, the
// user is asked for a code (the enrolment code no longer works) and gets in with a fresh one.
func TestMFAEnrolmentAndSignIn(t *testing.T) {
	b, k := setupWithKeys(t, phoneWidth, phoneHeight)
	b.allowConsoleError(http.StatusUnprocessableEntity)
	ctx := context.Background()
	tenants := tenant.NewService(b.db, slog.New(slog.DiscardHandler))
	tn, err := tenants.Create(ctx, "e2e", tenant.NewTenant{Slug: "mfa-works", Name: "MFA Works", PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	const email, pw = "maya@mfa-works.example", "correct-horse-battery"
	if _, err := tenantauth.NewService(b.db).CreateUser(ctx, tn.ID, "e2e", tenantauth.NewUser{Email: email, Name: "Maya Second", Role: tenantauth.RoleAdmin, Password: pw}); err != nil {
		t.Fatal(err)
	}
	// The tenant's security policy: MFA required (as an admin sets it on the Settings tab).
	if _, err := settings.NewService(b.db.App, tenants).Set(ctx, "e2e", &tn, tenantauth.MFAPolicyKey, "true", false); err != nil {
		t.Fatal(err)
	}

	b.goTo("/t/mfa-works/login")
	b.fillSignIn(email, pw)
	b.wantPath("/t/mfa-works/mfa")
	b.ok(b.expect.Locator(b.testID("mfa-enrol")).ToBeVisible(), "enrolment page")
	qr := b.testID("mfa-qr")
	b.ok(b.expect.Locator(qr).ToBeVisible(), "QR code shown")
	loaded, err := qr.Evaluate("img => img.complete && img.naturalWidth > 0", nil)
	b.ok(err, "read the QR image")
	if loaded != true {
		t.Fatal("the QR code image did not load (CSP or a broken data: URI)")
	}
	secret, err := b.testID("mfa-secret").GetAttribute("data-secret")
	b.ok(err, "read the secret")
	if len(secret) < 32 {
		t.Fatalf("secret on the page %q", secret)
	}
	b.wantFitsWidth("MFA enrolment")
	b.screenshot("portal-mfa-enrol-390")

	// Before the second factor the portal itself is closed.
	b.goTo("/t/mfa-works")
	b.wantPath("/t/mfa-works/login")
	b.goTo("/t/mfa-works/mfa")
	b.ok(b.expect.Locator(b.testID("mfa-secret")).ToHaveAttribute("data-secret", secret), "same secret on return")

	// A wrong code first, then the right one, typed from the keyboard.
	b.ok(b.testID("mfa-code").Fill("000000"), "type a wrong code")
	b.ok(b.testID("mfa-submit").Click(), "submit")
	b.ok(b.expect.Locator(b.testID("mfa-error")).ToContainText("not right"), "wrong code refused")
	enrolCode, err := totp.GenerateCode(secret, time.Now())
	b.ok(err, "compute the code")
	b.ok(b.testID("mfa-code").Fill(enrolCode), "type the code")
	b.ok(b.page.Keyboard().Press("Enter"), "Enter")
	b.wantPath("/t/mfa-works")
	b.ok(b.expect.Locator(b.testID("portal-user")).ToContainText("Maya Second"), "signed in after enrolment")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("Two-step sign-in is set up"), "enrolment confirmed")

	// Sign out and in again: a code is asked for.
	b.ok(b.page.GetByRole("button", role("Sign out")).Click(), "sign out")
	b.wantPath("/t/mfa-works/login")
	b.fillSignIn(email, pw)
	b.wantPath("/t/mfa-works/mfa")
	b.ok(b.expect.Locator(b.testID("mfa-verify")).ToBeVisible(), "code prompt")
	b.ok(b.testID("mfa-code").Fill(enrolCode), "replay the enrolment code")
	b.ok(b.testID("mfa-submit").Click(), "submit")
	b.ok(b.expect.Locator(b.testID("mfa-error")).ToBeVisible(), "a used code is refused")
	// The next step's code: fresh, and within the accepted clock drift.
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	b.ok(err, "compute the next code")
	b.ok(b.testID("mfa-code").Fill(next), "type a fresh code")
	b.ok(b.testID("mfa-submit").Click(), "submit")
	b.wantPath("/t/mfa-works")
	b.ok(b.expect.Locator(b.testID("portal-user")).ToContainText("Maya Second"), "signed in with a code")
	b.screenshot("portal-mfa-signed-in-390")
}
