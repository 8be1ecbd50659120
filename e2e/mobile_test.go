package e2e

import (
	"testing"

	"github.com/playwright-community/playwright-go"
)

const phoneWidth, phoneHeight = 390, 844

// TestPhoneLayout: at 390 px the pages fit the screen (wide tables scroll inside their own
// container), the Menu button opens the navigation, and the sign-in form works from the
// keyboard alone.
func TestPhoneLayout(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	kb := b.page.Keyboard()

	// Keyboard only: the e-mail field has the focus, Tab reaches the password, Enter submits.
	b.goTo("/login")
	b.ok(b.expect.Locator(b.page.Locator("#f-email")).ToBeFocused(), "e-mail focused on load")
	b.ok(kb.Type(adminEmail), "type e-mail")
	b.ok(kb.Press("Tab"), "Tab")
	b.ok(b.expect.Locator(b.page.Locator("#f-password")).ToBeFocused(), "Tab moves to the password")
	b.ok(kb.Type(adminPassword), "type password")
	b.ok(kb.Press("Enter"), "Enter")
	b.wantPath("/admin")
	b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(adminName), "signed in with the keyboard")
	b.wantFitsWidth("dashboard")

	b.goTo("/admin/tenants")
	b.ok(b.expect.Locator(b.testID("tenant-row").First()).ToBeVisible(), "tenant rows")
	b.wantFitsWidth("tenant list")
	b.screenshot("tenant-list-390")

	// The sidebar gives way to the Menu button, which opens the same links.
	menu := b.testID("mobile-nav")
	b.ok(b.expect.Locator(menu.Locator("summary")).ToHaveText("Menu"), "Menu button")
	b.ok(b.expect.Locator(b.page.Locator("aside > nav")).ToBeHidden(), "desktop navigation hidden")
	links := menu.GetByRole("link")
	b.ok(b.expect.Locator(links.First()).ToBeHidden(), "menu closed at first")
	b.ok(menu.Locator("summary").Click(), "open the menu")
	b.ok(b.expect.Locator(links).ToHaveText([]string{"Dashboard", "Tenants", "Provisioning", "Templates", "Brands", "Approvals", "Quotas", "Billing", "Settings", "Isolation", "Audit trail", "Outbox", "Platform users"}), "menu links")
	for i := 0; i < 4; i++ {
		b.ok(b.expect.Locator(links.Nth(i)).ToBeVisible(), "menu link visible")
	}
	b.ok(b.expect.Locator(menu.GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Tenants"})).ToHaveAttribute("aria-current", "page"), "current section marked")
	b.wantFitsWidth("open menu")
	b.screenshot("menu-open-390")
	b.ok(menu.GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Audit trail"}).Click(), "follow a menu link")
	b.wantPath("/admin/audit")

	// A child tenant has the longest breadcrumbs; the other pages must fit too.
	for _, path := range []string{"/admin/tenants/acme-americas-retail", "/admin/tenants/acme-americas-retail/audit",
		"/admin/tenants/new", "/admin/audit", "/admin/users"} {
		b.goTo(path)
		b.ok(b.expect.Locator(b.page.Locator("main h1").First()).ToBeVisible(), path+": heading")
		b.wantFitsWidth(path)
		if path == "/admin/tenants/acme-americas-retail" {
			b.screenshot("tenant-detail-390")
		}
	}
}

// wantFitsWidth checks that the page does not scroll sideways, naming the elements that stick
// out of the viewport (outside containers that scroll on their own) when it does.
func (b *bundle) wantFitsWidth(where string) {
	b.t.Helper()
	// A page's text can be found before its stylesheet applies (seen on a loaded machine: an
	// unstyled select as wide as its longest option); measure the page as it is shown.
	b.ok(b.page.WaitForLoadState(playwright.PageWaitForLoadStateOptions{State: playwright.LoadStateLoad}), "page loaded")
	v, err := b.page.Evaluate(`() => {
		const width = window.innerWidth;
		const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
			const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; } return false; };
		const out = [];
		for (const el of document.body.querySelectorAll('*')) {
			const r = el.getBoundingClientRect();
			if (r.width > 0 && r.right > width + 0.5 && !scrolls(el)) {
				out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + [...el.classList].slice(0, 3).join('.') + ' right=' + Math.round(r.right));
			}
		}
		return {scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 8)};
	}`)
	b.ok(err, "measure the page width")
	m, _ := v.(map[string]interface{})
	sw, _ := m["scrollWidth"].(int)
	w, _ := m["width"].(int)
	if w != phoneWidth || sw > w {
		b.t.Errorf("%s: page is %d px wide in a %d px viewport (want <= %d); sticking out: %v", where, sw, w, phoneWidth, m["out"])
	}
}
