package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/tenant"
)

// TestAPIKeys: on a tenant's "API keys" tab the admin creates a key, sees it once with a working
// Copy button, the key calls the API; the list then shows only its prefix; dismissing the
// revoke confirmation keeps the key, accepting it revokes the key and the API refuses it. The
// tab fits a phone's width.
func TestAPIKeys(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusUnprocessableEntity)
	n := runs.Add(1)
	tn, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Create(context.Background(), adminEmail,
		tenant.NewTenant{Slug: fmt.Sprintf("keys-co-%d", n), Name: fmt.Sprintf("Keys Co %d", n), PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	b.ok(b.page.Context().GrantPermissions([]string{"clipboard-read", "clipboard-write"}), "clipboard permissions")
	b.signIn(adminEmail, adminPassword, "/admin")

	b.goTo("/admin/tenants/" + tn.Slug)
	b.setMarker()
	b.ok(b.testID("tab-api-keys").Click(), "open the API keys tab")
	b.wantPath("/admin/tenants/" + tn.Slug + "/api-keys")
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "api-keys"), "API keys panel")
	b.wantNoReload("API keys tab")
	b.ok(b.expect.Locator(b.testID("empty-state")).ToContainText("No API keys yet"), "no keys yet")

	// A missing name is refused at its field.
	b.ok(b.page.GetByRole("button", role("Create key")).Click(), "submit without a name")
	b.ok(b.expect.Locator(b.testID("error-name")).ToBeVisible(), "name error")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToBeFocused(), "the field in error has the focus")

	b.ok(b.page.Locator("#f-name").Fill("billing service"), "fill name")
	b.ok(b.page.Locator("#f-expires_on").Fill("2099-12-31"), "fill expiry")
	b.ok(b.page.GetByRole("button", role("Create key")).Click(), "create the key")
	b.ok(b.expect.Locator(b.testID("issued-key-panel")).ToContainText("only this once"), "shown-once warning")
	key, err := b.testID("issued-key").InputValue()
	b.ok(err, "read the key")
	m := regexp.MustCompile(`^(tnt_\d+_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$`).FindStringSubmatch(key)
	if m == nil {
		t.Fatalf("issued key %q has not the documented format", key)
	}
	b.ok(b.page.GetByRole("button", role("Copy")).Click(), "copy the key")
	b.ok(b.expect.Locator(b.page.GetByRole("button", role("Copied"))).ToBeVisible(), "copy confirmed")
	copied, err := b.page.Evaluate("() => navigator.clipboard.readText()")
	b.ok(err, "read the clipboard")
	if copied != key {
		t.Fatalf("clipboard holds %q, want the key", copied)
	}
	b.screenshot("api-key-created")
	if status := b.apiStatus(key); status != http.StatusOK {
		t.Fatalf("the new key gets %d from the API", status)
	}

	// Seen again, the tab lists the key by its prefix only.
	b.goTo("/admin/tenants/" + tn.Slug + "/api-keys")
	b.ok(b.expect.Locator(b.testID("issued-key")).ToHaveCount(0), "the key is not shown again")
	row := b.testID("api-key-row").Filter(playwright.LocatorFilterOptions{HasText: "billing service"})
	b.ok(b.expect.Locator(row.GetByTestId("api-key-prefix")).ToHaveText(m[1]+"…"), "prefix listed")
	b.ok(b.expect.Locator(row).ToHaveAttribute("data-status", "active"), "active")
	content, err := b.page.Content()
	b.ok(err, "page content")
	if regexp.MustCompile(regexp.QuoteMeta(key)).MatchString(content) {
		t.Fatal("the full key is in the page again")
	}

	// At phone width the tab fits (the table scrolls inside its own box).
	b.ok(b.page.SetViewportSize(phoneWidth, phoneHeight), "phone width")
	b.wantFitsWidth("API keys tab")
	b.ok(b.page.SetViewportSize(1280, 900), "desktop width")

	// Dismissing the confirmation changes nothing; accepting it revokes the key.
	var accept atomic.Bool
	b.page.OnDialog(func(d playwright.Dialog) {
		if accept.Load() {
			_ = d.Accept()
		} else {
			_ = d.Dismiss()
		}
	})
	b.ok(row.GetByTestId("revoke-key").Click(), "revoke, then dismiss")
	b.ok(b.expect.Locator(row).ToHaveAttribute("data-status", "active"), "still active after dismissing")
	if status := b.apiStatus(key); status != http.StatusOK {
		t.Fatalf("after a dismissed revoke the key gets %d", status)
	}
	accept.Store(true)
	b.ok(row.GetByTestId("revoke-key").Click(), "revoke, then accept")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("is revoked"), "revocation confirmed")
	b.ok(b.expect.Locator(row).ToHaveAttribute("data-status", "revoked"), "listed as revoked")
	b.ok(b.expect.Locator(row.GetByTestId("revoke-key")).ToHaveCount(0), "no revoke button on a revoked key")
	if status := b.apiStatus(key); status != http.StatusUnauthorized {
		t.Fatalf("the revoked key gets %d, want 401", status)
	}
}

// apiStatus calls GET /api/v1/tenant with key and returns the status.
func (b *bundle) apiStatus(key string) int {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+"/api/v1/tenant", nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}
