package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// TestAccountVoluntaryMFA: in a tenant that does not require MFA, a member signs in with the
// password alone, opens Your account from the header, sets up two-step sign-in from the QR
// code's secret (a wrong code first), sees it on, signs out, and is asked for a code at the next
// sign-in, which gets them in. At 390 px.
func TestAccountVoluntaryMFA(t *testing.T) {
	b, k := setupWithKeys(t, phoneWidth, phoneHeight)
	b.allowConsoleError(http.StatusUnprocessableEntity)
	ctx := context.Background()
	tenants := tenant.NewService(b.db, slog.New(slog.DiscardHandler))
	tn, err := tenants.Create(ctx, "e2e", tenant.NewTenant{Slug: "mfa-optional", Name: "MFA Optional", PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, nil, tn.ID); err != nil {
		t.Fatal(err)
	}
	const email, pw = "milo@mfa-optional.example", "correct-horse-battery"
	if _, err := tenantauth.NewService(b.db).CreateUser(ctx, tn.ID, "e2e", tenantauth.NewUser{Email: email, Name: "Milo Member", Role: tenantauth.RoleMember, Password: pw}); err != nil {
		t.Fatal(err)
	}

	b.goTo("/t/mfa-optional/login")
	b.fillSignIn(email, pw)
	b.wantPath("/t/mfa-optional") // no second factor yet: straight in
	b.ok(b.testID("portal-account").Click(), "open Your account")
	b.wantPath("/t/mfa-optional/account")
	b.ok(b.expect.Locator(b.testID("account-mfa-status")).ToHaveText("Off"), "off at first")
	b.ok(b.testID("account-mfa-start").Click(), "set up")
	b.wantPath("/t/mfa-optional/account")
	qr := b.testID("mfa-qr")
	b.ok(b.expect.Locator(qr).ToBeVisible(), "QR code shown")
	loaded, err := qr.Evaluate("img => img.complete && img.naturalWidth > 0", nil)
	b.ok(err, "read the QR image")
	if loaded != true {
		t.Fatal("the QR code image did not load")
	}
	secret, err := b.testID("mfa-secret").GetAttribute("data-secret")
	b.ok(err, "read the secret")
	if len(secret) < 32 {
		t.Fatalf("secret on the page %q", secret)
	}
	b.wantFitsWidth("account page, setup")
	b.screenshot("portal-account-mfa-setup-390")

	b.ok(b.testID("mfa-code").Fill("000000"), "type a wrong code")
	b.ok(b.testID("mfa-submit").Click(), "submit")
	b.ok(b.expect.Locator(b.testID("mfa-error")).ToContainText("not right"), "wrong code refused")
	// The first code is a step back (within the accepted drift), so the sign-in code below is new.
	code, err := totp.GenerateCode(secret, time.Now().Add(-30*time.Second))
	b.ok(err, "compute the code")
	b.ok(b.testID("mfa-code").Fill(code), "type the code")
	b.ok(b.page.Keyboard().Press("Enter"), "Enter")
	b.wantPath("/t/mfa-optional/account")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("Two-step sign-in is on"), "turned on")
	b.ok(b.expect.Locator(b.testID("account-mfa-status")).ToHaveText("On"), "shown on")
	b.ok(b.expect.Locator(b.testID("account-mfa-disable")).ToBeVisible(), "can be turned off (not required)")
	b.wantFitsWidth("account page, on")

	b.ok(b.page.GetByRole("button", role("Sign out")).Click(), "sign out")
	b.wantPath("/t/mfa-optional/login")
	b.fillSignIn(email, pw)
	b.wantPath("/t/mfa-optional/mfa")
	b.ok(b.expect.Locator(b.testID("mfa-verify")).ToBeVisible(), "code prompt")
	next, err := totp.GenerateCode(secret, time.Now())
	b.ok(err, "compute the sign-in code")
	b.ok(b.testID("mfa-code").Fill(next), "type the code")
	b.ok(b.testID("mfa-submit").Click(), "submit")
	b.wantPath("/t/mfa-optional")
	b.ok(b.expect.Locator(b.testID("portal-user")).ToContainText("Milo Member"), "signed in with a code")
	b.screenshot("portal-account-mfa-signed-in-390")
}
