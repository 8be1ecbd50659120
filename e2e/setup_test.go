package e2e

import (
	"net/http"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/db/dbtest"
)

// TestFirstRunSetup: on an installation without an admin, sign-in leads to the first-run page;
// bad input is answered at the fields with the input kept; good input creates the admin and
// signs them in; from then on the first-run page is closed and leads to sign-in.
func TestFirstRunSetup(t *testing.T) {
	b := setup(t, config{DB: dbtest.NewDatabase(t)})
	b.allowConsoleError(http.StatusUnprocessableEntity)

	b.goTo("/login")
	b.wantPath("/setup")
	b.ok(b.expect.Locator(b.page.GetByRole("heading", playwright.PageGetByRoleOptions{Name: "Welcome to Tenantry"})).ToBeVisible(), "setup heading")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToBeFocused(), "name field focused first")

	name, badEmail := "Sam Setup", "sam-at-example"
	b.ok(b.page.Locator("#f-name").Fill(name), "fill name")
	b.ok(b.page.Locator("#f-email").Fill(badEmail), "fill e-mail")
	b.ok(b.page.Locator("#f-password").Fill("short"), "fill password")
	submit := b.page.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Create admin and sign in"})
	if got := b.statusOf("/setup", func() error { return submit.Click() }); got != http.StatusUnprocessableEntity {
		t.Errorf("invalid setup: status %d, want 422", got)
	}
	b.wantPath("/setup")
	b.ok(b.expect.Locator(b.testID("error-email")).ToContainText("valid e-mail"), "e-mail error")
	b.ok(b.expect.Locator(b.testID("error-password")).ToContainText("at least 10 characters"), "password error")
	b.ok(b.expect.Locator(b.testID("error-name")).ToHaveCount(0), "no name error")
	// The errors sit at their fields and are tied to them for screen readers.
	b.ok(b.expect.Locator(b.page.Locator("[data-field=email] [data-testid=error-email]")).ToBeVisible(), "e-mail error at its field")
	b.ok(b.expect.Locator(b.page.Locator("[data-field=password] [data-testid=error-password]")).ToBeVisible(), "password error at its field")
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToHaveAttribute("aria-invalid", "true"), "e-mail marked invalid")
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToHaveAttribute("aria-describedby", "e-email"), "e-mail described by its error")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToHaveValue(name), "name kept")
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToHaveValue(badEmail), "e-mail kept")
	b.screenshot("setup-errors")

	b.ok(b.page.Locator("#f-email").Fill("sam@example.com"), "fix e-mail")
	b.ok(b.page.Locator("#f-password").Fill("a-long-enough-password"), "fix password")
	b.ok(submit.Click(), "submit setup")
	b.wantPath("/admin")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(name), "signed in as the new admin")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText("admin"), "with the admin role")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("Welcome, "+name), "welcome flash")

	// Set-up is done: a signed-out browser is sent from /setup to the sign-in form.
	anon := b.newPage(0, 0)
	goTo(t, anon, b.url+"/setup")
	b.ok(b.expect.Page(anon).ToHaveURL(b.url+"/login"), "/setup redirects to /login")
	b.ok(b.expect.Locator(anon.GetByRole("heading", playwright.PageGetByRoleOptions{Name: "Sign in"})).ToBeVisible(), "sign-in form")
	// And the admin just created can sign in there.
	b.ok(anon.Locator("#f-email").Fill("sam@example.com"), "fill e-mail")
	b.ok(anon.Locator("#f-password").Fill("a-long-enough-password"), "fill password")
	b.ok(anon.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Sign in"}).Click(), "sign in")
	b.ok(b.expect.Page(anon).ToHaveURL(b.url+"/admin"), "dashboard")
}
