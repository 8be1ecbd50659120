package e2e

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestQuotaChartGrantAndBell: the usage chart draws from the local echarts under the CSP (no
// console error, no request off the server), switches granularity and refreshes without a
// reload; an admin adds a grant and sees it on the row; an alert lights the header bell.
func TestQuotaChartGrantAndBell(t *testing.T) {
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")
	ctx := context.Background()
	tn, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(ctx, "hooli")
	if err != nil {
		t.Fatal(err)
	}
	svc := quota.NewService(b.db)
	if _, err := svc.SetLimit(ctx, "e2e", tn.ID, "compute_vcpu_hours", 800, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 600, "e2e-chart-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RollUp(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	b.goTo("/admin/tenants/hooli/quotas?dimension=compute_vcpu_hours")
	chart := b.page.Locator(`[data-testid="quota-chart"]`)
	b.ok(b.expect.Locator(chart.Locator("canvas").First()).ToBeVisible(), "echarts draws the hourly chart")
	b.setMarker()
	b.ok(firstErr(b.page.Locator(`[data-testid="quota-chart-form"] select[name="granularity"]`).SelectOption(playwright.SelectOptionValues{Values: &[]string{"day"}})), "by day")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="quota-chart"][data-granularity="day"] canvas`).First()).ToBeVisible(), "the daily chart replaces it")
	b.wantNoReload("chart granularity switch")
	b.screenshot("quota-chart")

	// A grant from the form shows on the row.
	form := b.testID("grant-form")
	b.ok(firstErr(form.Locator(`select[name="dimension"]`).SelectOption(playwright.SelectOptionValues{Values: &[]string{"compute_vcpu_hours"}})), "grant dimension")
	b.ok(form.Locator(`input[name="amount"]`).Fill("500"), "grant amount")
	b.ok(form.Locator(`input[name="reason"]`).Fill("Launch week"), "grant reason")
	b.ok(form.Locator(`input[name="ends_at"]`).Fill(time.Now().UTC().Add(72*time.Hour).Format("2006-01-02T15:04")), "grant end")
	b.ok(b.testID("grant-add").Click(), "add the grant")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="grant-row"][data-state="active"]`)).ToHaveCount(1), "grant listed")
	row := b.page.Locator(`[data-testid="quota-row"][data-dimension="compute_vcpu_hours"]`)
	b.ok(b.expect.Locator(row.Locator(`[data-testid="quota-grants"]`)).ToHaveText("+500 granted"), "grant on the row")

	// An alert (900 of 1,500 is past 50 %): the bell in the header shows it.
	if _, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 300, "e2e-chart-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.EvaluateAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	b.goTo("/admin/tenants/hooli/quotas")
	b.ok(b.expect.Locator(b.testID("quota-bell-count")).ToBeVisible(), "the bell counts unread alerts")
	b.ok(b.testID("quota-bell").Click(), "open the alerts")
	b.wantPath("/admin/quotas/alerts")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="alert-row"]`).First()).ToBeVisible(), "alerts listed")

	// The platform page's chart draws too.
	b.goTo("/admin/quotas?dimension=compute_vcpu_hours")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="quota-chart"] canvas`).First()).ToBeVisible(), "platform chart")
}

func firstErr[T any](_ T, err error) error { return err }

// TestQuotaPagesPhone (on a tenant the other quota journeys leave alone): at 390 px the Quotas tab (chart, grants, alerts), the scaling rules and
// the alerts pages fit the screen, and the chart draws.
func TestQuotaPagesPhone(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.signIn(adminEmail, adminPassword, "/admin")
	ctx := context.Background()
	tn, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(ctx, "acme-americas-retail")
	if err != nil {
		t.Fatal(err)
	}
	svc := quota.NewService(b.db)
	if _, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 5, "e2e-phone-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RollUp(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	b.goTo("/admin/tenants/acme-americas-retail/quotas?dimension=network_egress_gb")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="quota-chart"] canvas`).First()).ToBeVisible(), "chart at 390 px")
	b.wantFitsWidth("quotas tab")
	b.screenshot("quotas-tab-390")
	for _, path := range []string{"/admin/quotas", "/admin/quotas/rules", "/admin/quotas/alerts"} {
		b.goTo(path)
		b.ok(b.expect.Locator(b.page.Locator("main h1").First()).ToBeVisible(), path+": heading")
		b.wantFitsWidth(path)
	}
}
