package e2e

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/signup"
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

	// The new admin invites a colleague from Users.
	b.ok(b.testID("portal-nav").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Users"}).Click(), "open Users")
	b.wantPath("/t/" + slug + "/users")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="user-row"][data-email="`+email+`"]`)).ToBeVisible(), "the admin is listed")
	b.ok(b.testID("invite-form").Locator("#f-email").Fill("hygienist@"+slug+".example"), "colleague's e-mail")
	b.ok(b.testID("invite-form").GetByRole("button", playwright.LocatorGetByRoleOptions{Name: "Send invitation"}).Click(), "invite")
	b.ok(b.expect.Locator(b.page.Locator(`[data-testid="invitation-row"][data-email="hygienist@`+slug+`.example"]`)).ToBeVisible(), "the invitation is open")
	b.wantFitsWidth("portal users")
	b.screenshot("portal-users-390")

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

// TestBrandsAndApprovalsPages: a platform admin on a phone edits Initech's brand (a refused colour
// is explained at the field, then a good one saved) and sees the change on its signup page; a
// signup held for approval appears in the Approvals queue and is rejected with a reason.
func TestBrandsAndApprovalsPages(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	b.allowConsoleError(422)
	// Put the brand back for the other journeys, whatever happens.
	orig, err := signup.NewService(b.db, slog.New(slog.DiscardHandler), nil, "").BrandBySlug(context.Background(), demo.ResellerBrand)
	b.ok(err, "read the brand")
	t.Cleanup(func() {
		in := signup.BrandInput{Slug: orig.Slug, DisplayName: orig.DisplayName, LogoURL: orig.LogoURL, PrimaryColour: orig.PrimaryColour, AccentColour: orig.AccentColour,
			Headline: orig.Headline, Blurb: orig.Blurb, TemplateIDs: orig.TemplateIDs, PlanKey: orig.PlanKey, Approval: orig.Approval}
		if _, err := signup.NewService(b.db, slog.New(slog.DiscardHandler), nil, "").UpdateBrand(context.Background(), "e2e", orig.ID, in); err != nil {
			t.Error(err)
		}
	})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/brands")
	row := b.page.Locator(`[data-testid="brand-row"][data-slug="` + demo.ResellerBrand + `"]`)
	b.ok(b.expect.Locator(row).ToBeVisible(), "Initech's brand listed")
	b.wantFitsWidth("brands list")
	b.screenshot("brands-390")
	b.ok(row.GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Initech Partner Cloud"}).Click(), "open the brand")
	b.ok(b.page.Locator("#f-accent_colour").Fill("teal"), "a colour that is not #rrggbb")
	b.ok(b.testID("brand-save").Click(), "save")
	b.ok(b.expect.Locator(b.testID("error-accent_colour")).ToContainText("#rrggbb"), "refused at the field")
	b.ok(b.page.Locator("#f-accent_colour").Fill("#0f766e"), "a good colour")
	_, err = b.page.Locator("#f-approval").SelectOption(playwright.SelectOptionValues{Values: &[]string{"held"}})
	b.ok(err, "hold signups")
	b.ok(b.page.Locator("#f-headline").Fill("Dental practices, online"), "new headline")
	b.ok(b.testID("brand-save").Click(), "save")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("saved"), "saved")
	b.wantFitsWidth("brand form")
	b.screenshot("brand-form-390")

	// A held signup, made and confirmed outside the browser, waits in Approvals.
	slug := "held-clinic-" + time.Now().Format("150405")
	email := "owner@" + slug + ".example"
	svc := signup.NewService(b.db, slog.New(slog.DiscardHandler), nil, "")
	br, err := svc.BrandBySlug(context.Background(), demo.ResellerBrand)
	b.ok(err, "brand")
	if br.Headline != "Dental practices, online" || !br.Held() {
		t.Fatalf("brand not saved: %+v", br)
	}
	if _, err := svc.Submit(context.Background(), br, signup.Input{OrgName: "Held Clinic", Slug: slug, Email: email, Password: "a-long-enough-password", RemoteAddr: "192.0.2.77",
		TemplateID: strconv.FormatInt(br.TemplateIDs[0], 10)}); err != nil {
		t.Fatal(err)
	}
	var text string
	b.ok(b.db.App.Raw("SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'signup.verify' AND to_addr = ?", email).Scan(&text).Error, "read the link")
	tok := strings.TrimPrefix(signupLinkRE.FindString(text), "/signup/verify/")
	if _, err := svc.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	b.goTo("/admin/approvals")
	item := b.page.Locator(`[data-testid="approval-row"][data-slug="` + slug + `"]`)
	b.ok(b.expect.Locator(item).ToContainText("Held Clinic"), "the held signup is in the queue")
	b.wantFitsWidth("approvals")
	b.screenshot("approvals-390")
	b.ok(item.Locator(`input[name="reason"]`).Fill("We only onboard existing Initech customers."), "reason")
	b.ok(item.GetByTestId("approval-reject").Click(), "reject")
	b.ok(b.expect.Locator(b.testID("flashes")).ToContainText("Rejected Held Clinic"), "rejected")
	b.ok(b.expect.Locator(item).ToHaveCount(0), "no longer waiting")
}
