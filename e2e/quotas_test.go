package e2e

import (
	"context"
	"log/slog"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestQuotaLiveBar: an admin edits a limit inline, then usage arrives from a governed service
// and the row's numbers, bar and state update on their own, without a reload.
func TestQuotaLiveBar(t *testing.T) {
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")
	ctx := context.Background()
	tn, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(ctx, "hooli")
	if err != nil {
		t.Fatal(err)
	}
	b.goTo("/admin/tenants/hooli/quotas")
	b.setMarker()
	row := b.page.Locator(`[data-testid="quota-row"][data-dimension="api_requests"]`)
	b.ok(row.Locator(`[data-testid="quota-edit"]`).Click(), "edit the API requests limit")
	form := b.page.Locator(`[data-testid="quota-form-row"][data-dimension="api_requests"]`)
	b.ok(form.Locator(`input[name="soft"]`).Fill("800"), "soft limit")
	b.ok(form.Locator(`input[name="hard"]`).Fill("1000"), "hard limit")
	b.ok(form.Locator(`[data-testid="quota-save"]`).Click(), "save")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="quota-used"]`)).ToHaveText("0 of 1,000 used"), "new limit shown")

	// A governed service consumes: the row follows within its polling interval.
	if _, err := quota.NewService(b.db).Consume(ctx, tn.ID, "api_requests", 900, "e2e-live-bar"); err != nil {
		t.Fatal(err)
	}
	b.ok(b.expect.Locator(row.Locator(`[data-testid="quota-used"]`)).ToHaveText("900 of 1,000 used", playwright.LocatorAssertionsToHaveTextOptions{Timeout: playwright.Float(12000)}), "usage appears without a reload")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="quota-state"]`)).ToHaveText("Over soft limit"), "state follows")
	b.wantNoReload("live quota updates")
	b.screenshot("quotas-live")
}
