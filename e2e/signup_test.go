package e2e

import (
	"context"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/tenant"
)

var signupLinkRE = regexp.MustCompile(`/signup/verify/[A-Za-z0-9_-]+`)

// TestSignupOnBrandedPage: a visitor signs up on Initech's reseller signup page (its colours and
// copy), sees the address checked live (reserved, then available), picks a template, confirms the
// e-mail with the link read from the outbox, watches the setup progress and lands signed in, as
// admin, in the new tenant's portal, which is Initech Partners' child.
func TestSignupOnBrandedPage(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.goTo("/signup/" + demo.ResellerBrand)
	b.ok(b.expect.Locator(b.testID("portal-tenant")).ToHaveText("Initech Partner Cloud"), "the brand's name")
	b.ok(b.expect.Locator(b.testID("signup-headline")).ToHaveText("Your practice, online with Initech"), "the brand's headline")
	bg, err := b.testID("signup-submit").Evaluate("el => getComputedStyle(el).backgroundColor", nil)
	b.ok(err, "read the button colour")
	if bg != "rgb(180, 83, 9)" {
		t.Errorf("submit button is %v, want the brand's #b45309", bg)
	}
	// The honeypot is in the form but off the screen (and out of the tab order).
	right, err := b.page.Locator("#f-website").Evaluate("el => el.getBoundingClientRect().right", nil)
	b.ok(err, "locate the honeypot")
	if r, ok := right.(float64); !ok || r > 0 {
		if i, ok := right.(int); !ok || i > 0 {
			t.Errorf("the honeypot field is on screen (right edge %v)", right)
		}
	}

	slug := "sunrise-dental-" + time.Now().Format("150405")
	email := "owner@" + slug + ".example"
	b.ok(b.page.Locator("#f-org_name").Fill("Sunrise Dental"), "organisation")
	b.ok(b.page.Locator("#f-slug").Fill("admin"), "a reserved address")
	b.ok(b.expect.Locator(b.testID("slug-status")).ToHaveAttribute("data-status", "reserved"), "reserved, said live")
	b.ok(b.page.Locator("#f-slug").Fill(slug), "a free address")
	b.ok(b.expect.Locator(b.testID("slug-status")).ToHaveAttribute("data-status", "available"), "available, said live")
	b.ok(b.page.Locator("#f-email").Fill(email), "e-mail")
	b.ok(b.page.Locator("#f-password").Fill("a-long-enough-password"), "password")
	b.ok(b.page.GetByLabel("Standard SaaS").Check(), "choose the Standard SaaS template")
	b.wantFitsWidth("signup page")
	b.screenshot("signup-branded-390")
	b.ok(b.testID("signup-submit").Click(), "submit")
	b.ok(b.expect.Locator(b.testID("signup-sent")).ToContainText("Check your inbox"), "asked to confirm the e-mail")

	// The link, from the outbox.
	var text string
	if err := b.db.App.Raw("SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'signup.verify' AND to_addr = ?", email).Scan(&text).Error; err != nil {
		t.Fatal(err)
	}
	link := signupLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no verification link in %q", text)
	}
	b.goTo(link)
	b.ok(b.expect.Locator(b.testID("signup-progress")).ToBeVisible(), "the progress page")
	b.screenshot("signup-progress-390")
	// htmx polls until the tenant is ready, then goes on to the portal.
	b.ok(b.page.WaitForURL(b.url+"/t/"+slug, playwright.PageWaitForURLOptions{Timeout: playwright.Float(60000)}), "lands in the portal")
	b.ok(b.expect.Locator(b.testID("portal-me")).ToContainText(email), "signed in as the admin who signed up")
	b.ok(b.expect.Locator(b.testID("portal-role")).ToContainText("admin"), "as admin")
	b.ok(b.expect.Locator(b.testID("portal-tenant")).ToContainText("Sunrise Dental"), "the tenant's name")
	fg, err := b.testID("portal-tenant").Evaluate("el => getComputedStyle(el).color", nil)
	b.ok(err, "read the portal's name colour")
	if fg != "rgb(180, 83, 9)" {
		t.Errorf("the portal is in %v, want the reseller brand's #b45309 (over the template's default)", fg)
	}
	b.wantFitsWidth("portal after signup")
	b.screenshot("signup-portal-390")

	kid, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Get(context.Background(), "initech-partners")
	if err != nil {
		t.Fatal(err)
	}
	if kid.ParentID == nil || *kid.ParentID != parent.ID || kid.State != "active" {
		t.Fatalf("new tenant %+v, want an active child of Initech Partners", kid)
	}
	// The link worked once.
	b.allowConsoleError(409)
	if status := b.goTo(link); status != 409 {
		t.Errorf("second use of the link: %d", status)
	}
}
