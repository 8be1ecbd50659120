package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/tenant"
)

// TestSignIn: a wrong password is refused with 401 on the sign-in page, keeping the e-mail; the
// right one opens the dashboard; signing out returns to the sign-in page with a message; a
// signed-out deep link, or an htmx request after the session ended, comes back to the same view
// after signing in.
func TestSignIn(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusUnauthorized)

	if got := b.goTo("/login"); got != http.StatusOK {
		t.Fatalf("GET /login = %d, want 200", got)
	}
	b.ok(b.expect.Locator(b.page.GetByRole("heading", playwright.PageGetByRoleOptions{Name: "Sign in"})).ToBeVisible(), "sign-in heading")
	b.screenshot("sign-in")

	status := b.statusOf("/login", func() error { b.fillSignIn(adminEmail, "not-the-password"); return nil })
	if status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", status)
	}
	b.ok(b.expect.Locator(b.testID("signin-error")).ToHaveText("Wrong e-mail or password."), "sign-in error")
	b.wantPath("/login")
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToHaveValue(adminEmail), "e-mail kept")
	b.ok(b.expect.Locator(b.page.Locator("#f-password")).ToHaveValue(""), "password not echoed")
	b.ok(b.expect.Locator(b.testID("current-user")).ToHaveCount(0), "not signed in")

	b.ok(b.page.Locator("#f-password").Fill(adminPassword), "fill password")
	b.ok(b.page.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Sign in"}).Click(), "sign in")
	b.wantPath("/admin")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(adminName), "current user")
	b.ok(b.expect.Locator(b.page.GetByRole("heading", playwright.PageGetByRoleOptions{Name: "Dashboard"})).ToBeVisible(), "dashboard")
	b.ok(b.expect.Locator(b.testID("kpi-total")).ToBeVisible(), "tenant total")
	b.screenshot("dashboard")

	b.ok(b.page.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Sign out"}).Click(), "sign out")
	b.wantPath("/login")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("You are signed out."), "signed-out flash")
	if got := b.goTo("/admin"); got != http.StatusOK {
		t.Errorf("GET /admin after sign-out ended with %d", got)
	}
	b.wantPath("/login?next=" + url.QueryEscape("/admin"))

	// Deep link: the sign-in page remembers where the visitor was going.
	deep := "/admin/tenants?state=active"
	b.goTo(deep)
	b.wantPath("/login?next=" + url.QueryEscape(deep))
	b.fillSignIn(adminEmail, adminPassword)
	b.wantPath(deep)
	b.ok(b.expect.Locator(b.page.Locator("#f-state")).ToHaveValue("active"), "state filter kept")
	b.ok(b.expect.Locator(b.page.Locator("[data-testid=tenant-row] [data-state]").First()).ToHaveText("active"), "active rows")
	b.ok(b.expect.Locator(b.page.Locator("[data-testid=tenant-row] [data-state]:not([data-state=active])")).ToHaveCount(0), "only active rows")

	// The session ends while the list is open: the next htmx request leads to the sign-in page,
	// which then returns to the view the visitor asked for.
	b.ok(b.page.Context().ClearCookies(), "end the session")
	b.ok(b.page.Locator("#f-q").Fill("acme"), "search while signed out")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/login\?next=%2Fadmin%2Ftenants%3F.*q%3Dacme`)), "sent to sign in")
	b.fillSignIn(adminEmail, adminPassword)
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?(.*&)?q=acme(&|$)`)), "back to the search")
	want, _ := b.listSlugs(tenant.ListQuery{Search: "acme", State: "active"})
	b.wantRows(want, "search after signing in again")
}
