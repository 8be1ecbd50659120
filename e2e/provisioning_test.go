package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/provisioning"
)

// stepDelay slows every provisioning step down, so a journey can watch a run progress.
var stepDelay atomic.Int64

// startProvisioning works provisioning runs on d while the test runs, as `tenantry serve` does.
func startProvisioning(t *testing.T, d *db.DB) {
	t.Helper()
	svc := provisioning.NewService(d, dbtest.Logger(t), provisioning.WithFaults(func(ctx context.Context, _ string, _ int) error {
		select {
		case <-time.After(time.Duration(stepDelay.Load())):
		case <-ctx.Done():
		}
		return nil
	}))
	c, err := provisioning.NewClient(d.AppPool, svc, 2, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.StopAndCancel(ctx)
	})
}

// TestProvisionFromTemplate: an admin creates a tenant from a template with an admin e-mail and
// watches every step of the run complete on the tenant page, without a reload; the state in the
// header turns active; the Provisioning page lists the run as done.
func TestProvisionFromTemplate(t *testing.T) {
	stepDelay.Store(int64(250 * time.Millisecond))
	t.Cleanup(func() { stepDelay.Store(0) })
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")
	n := runs.Add(1)
	slug, name := fmt.Sprintf("templated-co-%d", n), fmt.Sprintf("Templated Co %d", n)

	b.goTo("/admin/tenants/new")
	b.ok(b.page.Locator("#f-name").Fill(name), "fill name")
	b.ok(b.page.Locator("#f-slug").Fill(slug), "fill slug")
	_, err := b.page.Locator("#f-template").SelectOption(playwright.SelectOptionValues{Labels: &[]string{"Standard SaaS"}})
	b.ok(err, "choose template")
	b.ok(b.page.Locator("#f-admin_email").Fill("owner@"+slug+".example.com"), "fill admin e-mail")
	b.ok(b.page.GetByRole("button", role("Create tenant")).Click(), "create")
	b.wantPath("/admin/tenants/" + slug)
	b.setMarker()

	panel := b.testID("provisioning-run")
	b.ok(b.expect.Locator(panel).ToBeVisible(), "progress panel")
	// The run is seen at work, then done, while the page stays.
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="run-step"][data-state="running"], [data-testid="run-step"][data-state="done"]`).First()).ToBeVisible(), "a step at work")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="provisioning-run"][data-state="done"]`)).ToBeVisible(playwright.LocatorAssertionsToBeVisibleOptions{Timeout: playwright.Float(20000)}), "run done")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="run-step"][data-state="done"]`)).ToHaveCount(len(provisioning.Steps)), "every step done")
	b.ok(b.expect.Locator(b.testID("run-progress-text")).ToHaveText(fmt.Sprintf("%d of %d steps", len(provisioning.Steps), len(provisioning.Steps))), "progress text")
	b.ok(b.expect.Locator(panel.GetByRole("progressbar")).ToHaveAttribute("aria-valuenow", "100"), "full bar")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="run-step"][data-step="apply configuration"]`)).ToContainText("Standard SaaS v"), "template applied")
	b.ok(b.expect.Locator(b.page.Locator("[data-testid=tenant-name] + p [data-state]")).ToHaveText("active"), "header state active")
	b.wantNoReload("watching the run")
	b.screenshot("provisioning-done")

	b.goTo("/admin/provisioning?state=done&q=" + slug)
	b.ok(b.expect.Locator(b.page.Locator(fmt.Sprintf(`[data-testid="run-row"][data-slug=%q]`, slug))).ToHaveCount(1), "listed as done")
	b.screenshot("provisioning-list")
}

// TestProvisioningPagesAt390: the Provisioning page, a run, the bulk upload form and a batch
// preview fit a phone's width.
func TestProvisioningPagesAt390(t *testing.T) {
	b := setup(t, config{Width: 390, Height: 844})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/provisioning")
	b.ok(b.expect.Locator(b.testID("run-filters")).ToBeVisible(), "filters")
	b.wantFitsWidth("provisioning list")
	b.goTo("/admin/provisioning/bulk")
	b.ok(b.expect.Locator(b.testID("bulk-form")).ToBeVisible(), "upload form")
	b.wantFitsWidth("bulk upload form")
	b.screenshot("provisioning-bulk-390")
}
