package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestTenantPortalSignIn: a tenant admin signs in on the tenant's branded page from the keyboard,
// sees their tenant's users, and with the same browser is sent to the sign-in page of any other
// tenant's portal, which shows none of that tenant's data.
func TestTenantPortalSignIn(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.allowConsoleError(http.StatusUnauthorized)
	kb := b.page.Keyboard()

	b.goTo("/t/acme-holdings")
	b.wantPath("/t/acme-holdings/login")
	b.ok(b.expect.Locator(b.testID("portal-tenant")).ToHaveText("Acme Holdings"), "branded with the tenant's name")
	b.ok(b.expect.Locator(b.page.Locator("h1")).ToHaveText("Sign in to Acme Holdings"), "sign-in heading")
	b.ok(b.expect.Locator(b.testID("current-user")).ToHaveCount(0), "no platform frame")
	b.wantFitsWidth("portal sign-in")
	b.screenshot("portal-signin-390")

	// A wrong password first: refused without saying which half was wrong.
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToBeFocused(), "e-mail focused on load")
	b.ok(kb.Type(demo.TenantAdminEmail("acme-holdings")), "type e-mail")
	b.ok(kb.Press("Tab"), "Tab")
	b.ok(kb.Type("not-the-password"), "type a wrong password")
	b.ok(kb.Press("Enter"), "Enter")
	b.ok(b.expect.Locator(b.testID("signin-error")).ToHaveText("Wrong e-mail or password."), "wrong password refused")
	b.ok(b.expect.Locator(b.page.Locator("#f-password")).ToBeFocused(), "password focused after a refusal")
	b.ok(kb.Type(demo.Password), "type the password")
	b.ok(kb.Press("Enter"), "Enter")
	b.wantPath("/t/acme-holdings")
	b.ok(b.expect.Locator(b.testID("portal-user")).ToContainText("Alex Admin"), "signed in as the tenant admin")
	b.ok(b.expect.Locator(b.testID("portal-me")).ToContainText(demo.TenantAdminEmail("acme-holdings")), "home says who you are")
	rows := b.testID("portal-user-row")
	b.ok(b.expect.Locator(rows.First()).ToBeVisible(), "the tenant's users are listed")
	emails, err := rows.EvaluateAll("rows => rows.map(r => r.dataset.email)")
	b.ok(err, "read user rows")
	for _, e := range emails.([]interface{}) {
		if !strings.HasSuffix(e.(string), "@acme-holdings.example") {
			t.Errorf("Acme's admin sees user %v of another tenant", e)
		}
	}
	b.ok(b.expect.Locator(b.testID("act-as-banner")).ToHaveCount(0), "no act-as banner for a tenant admin")
	b.wantFitsWidth("portal home")
	b.screenshot("portal-home-390")

	// Another tenant's portal with Acme's session: its sign-in page, none of its data.
	b.goTo("/t/northwind-group")
	b.wantPath("/t/northwind-group/login")
	b.ok(b.expect.Locator(b.testID("portal-tenant")).ToHaveText("Northwind Group"), "Northwind's sign-in page")
	b.ok(b.expect.Locator(b.testID("portal-user-row")).ToHaveCount(0), "no users of Northwind shown")
	body, err := b.page.Content()
	b.ok(err, "page content")
	if strings.Contains(body, "@northwind-group.example") || strings.Contains(body, "@acme-holdings.example") {
		t.Error("Northwind's sign-in page shows a tenant user's e-mail")
	}
	// Acme's credentials are unknown to Northwind.
	b.fillSignIn(demo.TenantAdminEmail("acme-holdings"), demo.Password)
	b.ok(b.expect.Locator(b.testID("signin-error")).ToBeVisible(), "Acme's admin cannot sign in to Northwind")
	b.wantPath("/t/northwind-group/login")

	// Acme's session still works, and signing out ends it.
	b.goTo("/t/acme-holdings")
	b.ok(b.expect.Locator(b.testID("portal-user")).ToContainText("Alex Admin"), "still signed in to Acme")
	b.ok(b.page.GetByRole("button", role("Sign out")).Click(), "sign out")
	b.wantPath("/t/acme-holdings/login")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("signed out of Acme Holdings"), "signed-out message")
}

// TestActAsBanner: a platform admin opens a tenant's Users tab, must give a reason, then acts as
// the tenant's admin with a banner naming them and the reason on the portal; Stop returns to the
// admin portal, and both audit trails hold the start and the stop.
func TestActAsBanner(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusUnprocessableEntity)
	b.signIn(adminEmail, adminPassword, "/admin")

	b.goTo("/admin/tenants/globex/users")
	b.ok(b.expect.Locator(b.testID("tenant-user-row").First()).ToBeVisible(), "Globex's users listed from its schema")
	b.ok(b.expect.Locator(b.testID("tenant-user-row").First()).ToHaveAttribute("data-email", demo.TenantAdminEmail("globex")), "Globex's admin listed")
	act := b.page.GetByRole("button", role("Act as tenant admin"))
	b.ok(act.Click(), "act as without a reason")
	b.ok(b.expect.Locator(b.testID("error-reason")).ToBeVisible(), "a reason is required")
	b.ok(b.expect.Locator(b.page.Locator("#f-reason")).ToBeFocused(), "the reason field has the focus")
	b.wantPath("/t/globex/act-as")
	b.screenshot("tenant-users-act-as-error")

	b.ok(b.page.GetByLabel("Reason").Fill("Ticket 4711: restore Alex's access"), "type a reason")
	b.ok(b.page.Keyboard().Press("Enter"), "submit with Enter")
	b.wantPath("/t/globex")
	banner := b.testID("act-as-banner")
	b.ok(b.expect.Locator(banner).ToContainText("You are acting as an admin of Globex Corporation as "+adminName), "banner names tenant and admin")
	b.ok(b.expect.Locator(banner).ToContainText("reason: Ticket 4711: restore Alex's access"), "banner shows the reason")
	b.ok(b.expect.Locator(b.testID("portal-user-row").First()).ToBeVisible(), "acting admin sees the tenant's users")
	b.screenshot("portal-act-as")

	// The banner stays on every portal page, also at phone width.
	b.ok(b.page.SetViewportSize(phoneWidth, phoneHeight), "phone width")
	b.goTo("/t/globex")
	b.ok(b.expect.Locator(banner).ToBeVisible(), "banner after reload")
	b.wantFitsWidth("act-as portal")
	b.screenshot("portal-act-as-390")
	b.ok(b.page.SetViewportSize(1280, 900), "desktop width")

	b.ok(b.testID("act-as-stop").Click(), "Stop")
	b.wantPath("/admin/tenants/globex/users")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("You stopped acting as an admin of Globex Corporation"), "stopped message")
	b.goTo("/t/globex")
	b.wantPath("/t/globex/login")

	ctx := context.Background()
	g, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(ctx, "globex")
	b.ok(err, "load globex")
	events, err := audit.ListTenant(ctx, b.db, g.ID, 2)
	b.ok(err, "tenant trail")
	if len(events) != 2 || events[0].Action != "act_as.stopped" || events[1].Action != "act_as.started" || events[1].Actor != "platform:"+adminEmail {
		t.Errorf("Globex's trail ends with %+v, want act_as.started then act_as.stopped by platform:%s", events, adminEmail)
	}
	if _, err := audit.VerifyTenant(ctx, b.db, g.ID); err != nil {
		t.Errorf("Globex's trail: %v", err)
	}
	platform, _, err := audit.List(ctx, b.db.App, audit.Query{TenantID: &g.ID, Page: 1, PerPage: 2})
	b.ok(err, "platform trail")
	if len(platform) != 2 || platform[0].Action != "tenant.act_as_stopped" || platform[1].Action != "tenant.act_as_started" || !strings.Contains(string(platform[1].Detail), "Ticket 4711") {
		t.Errorf("platform trail for Globex ends with %+v", platform)
	}
}
