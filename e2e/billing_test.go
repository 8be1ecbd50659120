package e2e

import (
	"testing"

	"github.com/playwright-community/playwright-go"
)

// TestBillingJourney at phone width: the seeded Billing page filters to overdue invoices without
// reloading, an invoice opens with its sections and takes a partial payment, and a child
// tenant's Billing tab says who pays for it and why.
func TestBillingJourney(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/billing")
	rows := b.testID("invoice-row")
	b.ok(b.expect.Locator(rows.First()).ToBeVisible(), "seeded invoices listed")
	b.wantFitsWidth("billing list")
	b.screenshot("billing-list-390")

	b.setMarker()
	_, err := b.page.Locator("#f-status").SelectOption(playwright.SelectOptionValues{Values: &[]string{"overdue"}})
	b.ok(err, "filter overdue")
	b.ok(b.expect.Locator(rows.First()).ToHaveAttribute("data-status", "overdue"), "overdue rows")
	b.wantNoReload("status filter")
	b.wantPath("/admin/billing?status=overdue")
	n, err := b.page.Locator(`[data-testid="invoice-row"]:not([data-status="overdue"])`).Count()
	b.ok(err, "count other rows")
	if n != 0 {
		t.Fatalf("%d rows of another status under the overdue filter", n)
	}

	// An overdue invoice: sections, then a partial payment.
	b.ok(rows.First().Locator("a").First().Click(), "open the invoice")
	b.ok(b.expect.Locator(b.testID("invoice-number")).ToContainText("Invoice INV-"), "invoice page")
	b.ok(b.expect.Locator(b.testID("invoice-section").First()).ToBeVisible(), "a section per tenant")
	b.wantFitsWidth("invoice page")
	b.screenshot("billing-invoice-390")
	balance, err := b.testID("invoice-balance").TextContent()
	b.ok(err, "read balance")
	b.ok(b.page.Locator("#f-amount").Fill("1.00"), "amount")
	b.ok(b.page.Locator("#f-reference").Fill("e2e partial"), "reference")
	b.ok(b.testID("pay-submit").Click(), "record payment")
	b.ok(b.expect.Locator(b.testID("payment").Last()).ToContainText("e2e partial"), "payment listed")
	b.ok(b.expect.Locator(b.testID("invoice-balance")).Not().ToHaveText(balance), "balance went down")

	// A child billed to its parent by inheritance.
	b.goTo("/admin/tenants/acme-europe/billing")
	b.ok(b.expect.Locator(b.testID("billing-reason")).ToContainText("Billed to Acme Holdings (inherited)"), "who pays and why")
	b.wantFitsWidth("tenant billing tab")
	b.screenshot("billing-tenant-tab-390")

	// Plans & prices: a bad unit price is refused at its field.
	b.goTo("/admin/billing/plans/starter")
	b.ok(b.page.Locator("#f-price_storage_gb").Fill("0.12345"), "bad price")
	b.allowConsoleError(422) // the refused form comes back as 422 with its field errors
	b.ok(b.testID("plan-save").Click(), "save")
	b.ok(b.expect.Locator(b.testID("error-price_storage_gb")).ToContainText("at most 4 decimal places"), "field error")
	b.wantFitsWidth("plan form")
}
