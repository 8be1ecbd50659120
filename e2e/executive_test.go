package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestExecutiveReadOnly: an executive reads the registry but is offered no way to change it,
// and the server refuses the changes anyway (a submitted form, a hand-made request) with a 403
// page, storing nothing.
func TestExecutiveReadOnly(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusForbidden)
	b.signIn(demo.ExecutiveEmail, demo.Password, "/admin")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(execName), "signed in as the executive")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText("executive"), "with the executive role")
	_, before := b.listSlugs(tenant.ListQuery{})

	b.goTo("/admin/tenants")
	b.ok(b.expect.Locator(b.testID("tenant-row").First()).ToBeVisible(), "the registry is readable")
	b.ok(b.expect.Locator(b.page.GetByRole("link", role("New tenant"))).ToHaveCount(0), "no New tenant button")

	// The create form, reached by address, is refused before anything is typed into it.
	status := b.statusOf("/admin/tenants/new", func() error {
		_, err := b.page.Goto(b.url + "/admin/tenants/new")
		return err
	})
	if status != http.StatusForbidden {
		t.Errorf("executive opening the create form: status %d, want 403", status)
	}
	b.ok(b.expect.Locator(b.testID("error-page")).ToHaveAttribute("data-status", "403"), "403 page")
	b.ok(b.expect.Locator(b.testID("error-page")).ToContainText("read-only"), "403 page says why")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(execName), "still signed in, inside the layout")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToHaveCount(0), "no form to fill")
	if _, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(context.Background(), "sneaky-co"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("executive's tenant was stored (Get: %v)", err)
	}
	if _, total := b.listSlugs(tenant.ListQuery{}); total != before {
		t.Errorf("%d tenants after the refused create, want %d", total, before)
	}

	// Platform users: listed, but no add-user form.
	b.goTo("/admin/users")
	b.ok(b.expect.Locator(b.testID("user-row").First()).ToBeVisible(), "users listed")
	b.ok(b.expect.Locator(b.testID("user-form")).ToHaveCount(0), "no add-user form")

	// Requests made by hand, with a valid CSRF token from the page, are refused too.
	token, err := b.page.Locator("input[name=_csrf]").First().InputValue()
	b.ok(err, "read the CSRF token")
	for path, form := range map[string]map[string]interface{}{
		"/admin/users":   {"_csrf": token, "name": "Mallory", "email": "mallory@e2e.test", "role": "admin", "password": "a-long-enough-password"},
		"/admin/tenants": {"_csrf": token, "name": "Sneaky Co", "slug": "sneaky-co", "plan": "starter"},
	} {
		resp, err := b.page.Request().Post(b.url+path, playwright.APIRequestContextPostOptions{Form: form, MaxRedirects: playwright.Int(0)})
		b.ok(err, "POST "+path)
		if resp.Status() != http.StatusForbidden {
			t.Errorf("executive POST %s by hand: status %d, want 403", path, resp.Status())
		}
	}
	users, err := identity.NewService(b.db.App).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Email == "mallory@e2e.test" {
			t.Error("executive's hand-made request added a platform user")
		}
	}
	if _, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(context.Background(), "sneaky-co"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("executive's hand-made request stored a tenant (Get: %v)", err)
	}
}
