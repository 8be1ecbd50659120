package e2e

import (
	"testing"

	"github.com/playwright-community/playwright-go"
)

// TestTemplatesInBrowser: an admin starts a template, picks HIPAA and sees the MFA field locked
// with the reason (no reload), is refused a weaker audit retention at the field, saves, edits
// into version 2 and finds both in the history; a demo tenant made from an older version of HIPAA
// Clinic shows its template and drift on its Overview.
func TestTemplatesInBrowser(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(422)
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/templates")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="template-row"][data-slug="hipaa-clinic"]`)).ToBeVisible(), "demo template listed")

	b.goTo("/admin/templates/new")
	b.setMarker()
	b.ok(b.page.Locator("#f-name").Fill("E2E Clinic"), "name")
	_, err := b.page.Locator(`[data-testid="compliance-select"]`).SelectOption(playwright.SelectOptionValues{Values: &[]string{"hipaa"}})
	b.ok(err, "choose HIPAA")
	mfa := b.page.Locator(`[data-testid="template-setting"][data-key="security.mfa_required"]`)
	b.ok(b.expect.Locator(mfa.Locator(`[data-testid="lock-reason"]`)).ToContainText("HIPAA requires MFA"), "MFA locked with the reason")
	b.ok(b.expect.Locator(mfa.Locator("select")).ToBeDisabled(), "MFA cannot be changed")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToHaveValue("E2E Clinic"), "input kept across the profile change")
	b.wantNoReload("compliance change")
	b.screenshot("template-form-hipaa")

	b.ok(b.page.Locator(`[id="f-setting.security.audit_retention_days"]`).Fill("365"), "weaker retention")
	b.ok(b.testID("template-save").Click(), "save")
	b.ok(b.expect.Locator(b.testID("error-setting.security.audit_retention_days")).ToContainText("six years"), "refused at the field")
	b.ok(b.page.Locator(`[id="f-setting.security.audit_retention_days"]`).Fill("2555"), "seven years")
	b.ok(b.testID("template-save").Click(), "save again")
	b.ok(b.expect.Locator(b.testID("template-name")).ToHaveText("E2E Clinic"), "template page")
	b.ok(b.expect.Locator(b.testID("version")).ToHaveCount(1), "version 1")

	b.ok(b.page.GetByRole("link", playwright.PageGetByRoleOptions{Name: "Edit", Exact: playwright.Bool(true)}).Click(), "edit")
	_, err = b.page.Locator("#f-plan").SelectOption(playwright.SelectOptionValues{Values: &[]string{"enterprise"}})
	b.ok(err, "another plan")
	b.ok(b.page.Locator("#f-note").Fill("Enterprise plan"), "note")
	b.ok(b.testID("template-save").Click(), "save the edit")
	b.ok(b.expect.Locator(b.testID("version")).ToHaveCount(2), "two versions")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="version"][data-number="2"]`)).ToContainText("Enterprise plan"), "the note in the history")
	b.screenshot("template-history")

	b.goTo("/admin/tenants/evergreen-clinics")
	section := b.testID("tenant-template")
	b.ok(b.expect.Locator(section.Locator(`[data-testid="template-version"]`)).ToHaveText("HIPAA Clinic v1"), "made from v1")
	b.ok(b.expect.Locator(section.Locator(`[data-testid="drift-behind"]`)).ToContainText("HIPAA Clinic v2"), "a newer version")
	b.ok(b.expect.Locator(section.Locator(`[data-testid="drift-row"]`).First()).ToBeVisible(), "drift rows")
	b.screenshot("tenant-template-drift")
}

// TestTemplatesOnPhone: at 390 px the template list, form, page and a tenant's Template section
// fit the screen.
func TestTemplatesOnPhone(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/templates")
	b.ok(b.expect.Locator(b.testID("template-row").First()).ToBeVisible(), "template rows")
	b.wantFitsWidth("template list")
	b.goTo("/admin/templates/new")
	b.ok(b.expect.Locator(b.testID("template-form")).ToBeVisible(), "form")
	b.wantFitsWidth("template form")
	b.screenshot("template-form-390")
	b.goTo("/admin/tenants/evergreen-clinics")
	b.ok(b.expect.Locator(b.testID("tenant-template")).ToBeVisible(), "Template section")
	b.wantFitsWidth("tenant Template section")
	b.screenshot("tenant-template-390")
}
