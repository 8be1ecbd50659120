package e2e

import (
	"testing"

	"github.com/playwright-community/playwright-go"
)

// TestSettingsOverrideAndReset: on a tenant's Settings tab an admin overrides a setting inline,
// sees a bad value refused at the field, sees the child inherit it, then resets it — all without
// a page reload.
func TestSettingsOverrideAndReset(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(422)
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/tenants/acme-holdings/settings")
	b.setMarker()
	row := b.page.Locator(`[data-testid="setting-row"][data-key="backup.retention_days"]`)
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-source"]`)).ToHaveText("default"), "starts at the default")

	b.ok(row.Locator(`[data-testid="setting-edit"]`).Click(), "override")
	input := row.Locator("input[name=value]")
	b.ok(input.Fill("0"), "type a bad value")
	b.ok(row.GetByRole("button", playwright.LocatorGetByRoleOptions{Name: "Save"}).Click(), "save the bad value")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-error"]`)).ToContainText("from 1 to 3650"), "error at the field")
	b.ok(b.expect.Locator(row.Locator("input[name=value]")).ToHaveValue("0"), "input kept")

	b.ok(row.Locator("input[name=value]").Fill("90"), "type a good value")
	b.ok(row.GetByRole("button", playwright.LocatorGetByRoleOptions{Name: "Save"}).Click(), "save")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-value"]`)).ToHaveText("90"), "new value shown")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-source"]`)).ToHaveText("set on this tenant"), "source is the tenant")
	b.wantNoReload("override")
	b.screenshot("settings-override")

	// A child inherits it, naming where it comes from.
	b.goTo("/admin/tenants/acme-europe/settings")
	child := b.page.Locator(`[data-testid="setting-row"][data-key="backup.retention_days"]`)
	b.ok(b.expect.Locator(child.Locator(`[data-testid="setting-source"]`)).ToHaveText("inherited from Acme Holdings"), "child inherits")

	b.goTo("/admin/tenants/acme-holdings/settings")
	b.setMarker()
	b.ok(row.Locator(`[data-testid="setting-reset"]`).Click(), "reset")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-source"]`)).ToHaveText("default"), "back to the default")
	b.ok(b.expect.Locator(row.Locator(`[data-testid="setting-value"]`)).ToHaveText("30"), "default value")
	b.wantNoReload("reset")
}

// TestTreeBrowser: the tree opens a branch on demand and a search opens the branches to its hits.
func TestTreeBrowser(t *testing.T) {
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/tree")
	b.setMarker()
	holding := b.page.Locator(`[data-testid="tree-node"][data-slug="acme-holdings"]`)
	b.ok(b.expect.Locator(b.page.Locator(`[data-slug="acme-europe"]`)).ToHaveCount(0), "children not loaded yet")
	b.ok(holding.Locator(`[data-testid="tree-expand"]`).First().Click(), "expand Acme Holdings")
	b.ok(b.expect.Locator(holding.Locator(`[data-slug="acme-europe"]`)).ToBeVisible(), "its children appear")
	b.wantNoReload("expand")

	b.ok(b.page.Locator("#f-tree-q").Fill("acme-americas-retail"), "search")
	hit := b.page.Locator(`[data-slug="acme-holdings"] [data-slug="acme-americas"] [data-slug="acme-americas-retail"]`)
	b.ok(b.expect.Locator(hit).ToBeVisible(), "the branch to the hit is open")
	b.ok(b.expect.Locator(b.page.Locator(`[data-slug="globex"]`)).ToHaveCount(0), "unrelated roots are hidden")
	b.wantNoReload("search")
	b.screenshot("tree-search")
}
