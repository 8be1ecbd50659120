package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/tenant"
)

// runs numbers the tenants a journey creates, so -count=N reruns on the same database.
var runs atomic.Int64

func role(name string) playwright.PageGetByRoleOptions {
	return playwright.PageGetByRoleOptions{Name: name, Exact: playwright.Bool(true)}
}

func selectValue(v string) playwright.SelectOptionValues {
	return playwright.SelectOptionValues{Values: &[]string{v}}
}

// TestCreateTenant: the form refuses invalid input and a taken slug at the fields without
// storing anything; valid input lands on the new tenant's page with a confirmation and the
// tenant in the list; a child tenant's breadcrumbs lead through its parent.
func TestCreateTenant(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusUnprocessableEntity)
	b.signIn(adminEmail, adminPassword, "/admin")
	n := runs.Add(1)
	slug, name := fmt.Sprintf("journey-co-%d", n), fmt.Sprintf("Journey Co %d", n)
	_, before := b.listSlugs(tenant.ListQuery{})

	b.goTo("/admin/tenants")
	b.ok(b.page.GetByRole("link", role("New tenant")).First().Click(), "click New tenant")
	b.wantPath("/admin/tenants/new")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToBeFocused(), "name field focused")
	create := b.page.GetByRole("button", role("Create tenant"))
	submit := func() error { return create.Click() }

	// Invalid: no name, a slug with capitals and punctuation, no plan.
	b.ok(b.page.Locator("#f-slug").Fill("Bad Slug!"), "fill slug")
	if got := b.statusOf("/admin/tenants", submit); got != http.StatusUnprocessableEntity {
		t.Errorf("invalid tenant: status %d, want 422", got)
	}
	b.ok(b.expect.Locator(b.page.Locator("[data-field=name] [data-testid=error-name]")).ToHaveText("Enter the tenant's name."), "name error")
	b.ok(b.expect.Locator(b.page.Locator("[data-field=slug] [data-testid=error-slug]")).ToContainText("lowercase letters"), "slug error")
	b.ok(b.expect.Locator(b.page.Locator("[data-field=plan] [data-testid=error-plan]")).ToHaveText("Choose a plan."), "plan error")
	b.ok(b.expect.Locator(b.page.Locator("#f-slug")).ToHaveValue("Bad Slug!"), "slug kept")
	b.ok(b.expect.Locator(b.testID("error-parent")).ToHaveCount(0), "no parent error")
	b.screenshot("tenant-new-errors")
	if _, total := b.listSlugs(tenant.ListQuery{}); total != before {
		t.Fatalf("invalid form stored something: %d tenants, want %d", total, before)
	}

	// A slug that is taken: the error is at the slug; the rest of the input is kept.
	b.ok(b.page.Locator("#f-name").Fill(name), "fill name")
	b.ok(b.page.Locator("#f-slug").Fill("acme-europe"), "fill taken slug")
	_, err := b.page.Locator("#f-plan").SelectOption(selectValue("professional"))
	b.ok(err, "choose plan")
	if got := b.statusOf("/admin/tenants", submit); got != http.StatusUnprocessableEntity {
		t.Errorf("taken slug: status %d, want 422", got)
	}
	b.ok(b.expect.Locator(b.page.Locator("[data-field=slug] [data-testid=error-slug]")).ToHaveText("This slug is already taken."), "taken slug error")
	b.ok(b.expect.Locator(b.testID("error-name")).ToHaveCount(0), "name accepted")
	b.ok(b.expect.Locator(b.testID("error-plan")).ToHaveCount(0), "plan accepted")
	b.ok(b.expect.Locator(b.page.Locator("#f-name")).ToHaveValue(name), "name kept")
	b.ok(b.expect.Locator(b.page.Locator("#f-plan")).ToHaveValue("professional"), "plan kept")
	if _, total := b.listSlugs(tenant.ListQuery{}); total != before {
		t.Fatalf("taken slug stored something: %d tenants, want %d", total, before)
	}

	// Valid.
	b.ok(b.page.Locator("#f-slug").Fill(slug), "fill slug")
	b.ok(create.Click(), "create tenant")
	b.wantPath("/admin/tenants/" + slug)
	b.ok(b.expect.Locator(b.testID("flashes")).ToHaveText("Tenant "+name+" created; provisioning has started."), "created flash")
	b.ok(b.expect.Locator(b.testID("flashes").GetByRole("status")).ToHaveCount(1), "flash announced as status")
	b.ok(b.expect.Locator(b.testID("tenant-name")).ToHaveText(name), "tenant name")
	b.ok(b.expect.Locator(b.testID("tenant-slug")).ToHaveText(slug), "tenant slug")
	b.ok(b.expect.Locator(b.page.Locator("[data-testid=tenant-name] + p [data-state]")).ToHaveText("active"), "state")
	b.ok(b.expect.Locator(b.page.Locator("[data-testid=tenant-name] + p")).ToContainText("Professional"), "plan name")
	b.screenshot("tenant-detail")
	b.goTo("/admin/tenants?q=" + slug)
	b.wantRows([]string{slug}, "list searched for the new tenant")
	if _, total := b.listSlugs(tenant.ListQuery{}); total != before+1 {
		t.Errorf("after create: %d tenants, want %d", total, before+1)
	}
	b.goTo("/admin/tenants")
	b.ok(b.expect.Locator(b.testID("total")).ToHaveText(strconv.FormatInt(before+1, 10)), "list total counts the new tenant")

	// A child: the parent comes prefilled from ?parent= and shows in the breadcrumbs.
	childSlug, childName := slug+"-child", name+" Child"
	b.goTo("/admin/tenants/new?parent=" + slug)
	b.ok(b.expect.Locator(b.page.Locator("#f-parent")).ToHaveValue(slug), "parent prefilled")
	b.ok(b.page.Locator("#f-name").Fill(childName), "fill child name")
	b.ok(b.page.Locator("#f-slug").Fill(childSlug), "fill child slug")
	_, err = b.page.Locator("#f-plan").SelectOption(selectValue("starter"))
	b.ok(err, "choose plan")
	b.ok(create.Click(), "create child")
	b.wantPath("/admin/tenants/" + childSlug)
	crumbs := b.testID("breadcrumbs")
	b.ok(b.expect.Locator(crumbs.Locator("a")).ToHaveText([]string{"Tenants", name}), "breadcrumb links")
	b.ok(b.expect.Locator(crumbs.Locator("a").Nth(1)).ToHaveAttribute("href", "/admin/tenants/"+slug), "parent crumb address")
	b.ok(b.expect.Locator(crumbs.Locator("[aria-current=page]")).ToHaveText(childName), "current crumb")
	b.ok(b.expect.Locator(b.testID("parent-link")).ToHaveText(name), "parent in overview")

	b.ok(crumbs.GetByRole("link", playwright.LocatorGetByRoleOptions{Name: name}).Click(), "go to parent")
	b.wantPath("/admin/tenants/" + slug)
	b.ok(b.expect.Locator(b.testID("children").GetByRole("link")).ToHaveText([]string{childName}), "parent lists the child")
	b.goTo("/admin/tenants?q=" + slug)
	b.ok(b.expect.Locator(b.page.Locator(fmt.Sprintf("[data-slug=%q]", slug))).ToContainText("1 child"), "list counts the child")
	b.ok(b.expect.Locator(b.page.Locator(fmt.Sprintf("[data-slug=%q]", childSlug))).ToContainText(slug), "list shows the parent")
}

// TestTenantListHTMX: search, the state filter, the pager and the sort headers update the results
// in place through htmx (no reload), put the view in the address, and that address, loaded
// directly, shows the same results.
func TestTenantListHTMX(t *testing.T) {
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")

	first, total := b.listSlugs(tenant.ListQuery{})
	if total <= 50 {
		t.Fatalf("the list needs more than one page: only %d tenants", total)
	}
	b.goTo("/admin/tenants")
	b.wantRows(first, "first page")
	b.ok(b.expect.Locator(b.testID("total")).ToHaveText(strconv.FormatInt(total, 10)), "total")
	b.screenshot("tenant-list")
	b.setMarker()

	// Search, typed like a person types.
	b.ok(b.page.Locator("#f-q").PressSequentially("acme", playwright.LocatorPressSequentiallyOptions{Delay: playwright.Float(40)}), "type search")
	acme, n := b.listSlugs(tenant.ListQuery{Search: "acme"})
	if n < 2 {
		t.Fatalf("demo data should have several acme tenants, has %d", n)
	}
	b.wantRows(acme, "search acme")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?(.*&)?q=acme(&|$)`)), "search in the address")
	b.ok(b.expect.Locator(b.testID("total")).ToHaveText(strconv.FormatInt(n, 10)), "filtered total")
	b.wantNoReload("search")

	// The state filter, on top of the search.
	_, err := b.page.Locator("#f-state").SelectOption(selectValue("notice"))
	b.ok(err, "filter by state")
	acmeNotice, _ := b.listSlugs(tenant.ListQuery{Search: "acme", State: "notice"})
	if len(acmeNotice) == 0 || len(acmeNotice) == len(acme) {
		t.Fatalf("demo data should have some, not all, acme tenants in notice: %v", acmeNotice)
	}
	b.wantRows(acmeNotice, "state filter")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?(.*&)?state=notice(&|$)`)), "state in the address")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`[?&]q=acme(&|$)`)), "search still in the address")
	b.wantNoReload("state filter")
	shared := b.page.URL()

	// Back goes to the previous view, still without a reload.
	b.ok(goBack(b.page), "back")
	b.wantRows(acme, "back to the search")
	b.wantNoReload("back")

	// The pushed address is shareable: loaded directly it shows the same view.
	goTo(t, b.page, shared)
	b.wantRows(acmeNotice, "shared address")
	b.ok(b.expect.Locator(b.page.Locator("#f-q")).ToHaveValue("acme"), "search box filled from the address")
	b.ok(b.expect.Locator(b.page.Locator("#f-state")).ToHaveValue("notice"), "state filter set from the address")

	// The pager.
	b.goTo("/admin/tenants")
	b.setMarker()
	b.ok(b.testID("pagination").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Next"}).Click(), "next page")
	second, _ := b.listSlugs(tenant.ListQuery{Page: 2})
	b.wantRows(second, "page 2")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?page=2$`)), "page in the address")
	b.ok(b.expect.Locator(b.testID("pagination")).ToContainText("page 2 of 2"), "pager position")
	b.ok(b.expect.Locator(b.testID("pagination").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Previous"})).ToBeVisible(), "previous link")
	b.ok(b.expect.Locator(b.testID("pagination").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Next"})).ToHaveCount(0), "no next link on the last page")
	b.wantNoReload("next page")

	// The sort headers: first ascending, then, clicked again, descending.
	created := b.page.Locator("thead").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "Created"})
	b.ok(created.Click(), "sort by created")
	byCreated, _ := b.listSlugs(tenant.ListQuery{Sort: "created"})
	b.wantRows(byCreated, "sorted by created")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?sort=created$`)), "sort in the address, back on page 1")
	b.ok(b.expect.Locator(b.page.Locator("th").Filter(playwright.LocatorFilterOptions{HasText: "Created"})).ToHaveAttribute("aria-sort", "ascending"), "aria-sort ascending")
	b.ok(created.Click(), "sort by created, descending")
	byCreatedDesc, _ := b.listSlugs(tenant.ListQuery{Sort: "created", Desc: true})
	b.wantRows(byCreatedDesc, "sorted by created, descending")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?dir=desc&sort=created$`)), "direction in the address")
	b.ok(b.expect.Locator(b.page.Locator("th").Filter(playwright.LocatorFilterOptions{HasText: "Created"})).ToHaveAttribute("aria-sort", "descending"), "aria-sort descending")
	b.wantNoReload("sort headers")

	goTo(t, b.page, b.page.URL())
	b.wantRows(byCreatedDesc, "sorted address loaded directly")

	// A search after sorting keeps the sort, and the pushed address carries no empty parameters.
	b.setMarker()
	b.ok(b.page.Locator("#f-q").PressSequentially("acme", playwright.LocatorPressSequentiallyOptions{Delay: playwright.Float(40)}), "search while sorted")
	acmeByCreatedDesc, _ := b.listSlugs(tenant.ListQuery{Search: "acme", Sort: "created", Desc: true})
	b.wantRows(acmeByCreatedDesc, "search keeps the sort")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/tenants\?dir=desc&q=acme&sort=created$`)), "canonical address with search and sort")
	b.wantNoReload("search while sorted")
}

func goBack(p playwright.Page) error {
	_, err := p.GoBack()
	return err
}

// TestTenantTabs: the tenant page's tabs swap in place through htmx and put the tab in the
// address; the audit tab lists the tenant's creation; unknown tenants and tabs get a 404 page
// inside the portal's layout.
func TestTenantTabs(t *testing.T) {
	b := setup(t, config{})
	b.allowConsoleError(http.StatusNotFound)
	n := runs.Add(1)
	slug := fmt.Sprintf("tabs-co-%d", n)
	if _, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).Create(context.Background(), adminEmail,
		tenant.NewTenant{Slug: slug, Name: fmt.Sprintf("Tabs Co %d", n), PlanKey: "enterprise"}); err != nil {
		t.Fatal(err)
	}
	b.signIn(adminEmail, adminPassword, "/admin")

	b.goTo("/admin/tenants/" + slug)
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "overview"), "overview tab first")
	b.ok(b.expect.Locator(b.testID("tab-overview")).ToHaveAttribute("aria-current", "page"), "overview tab current")
	b.setMarker()

	b.ok(b.testID("tab-audit").Click(), "open the audit tab")
	b.wantPath("/admin/tenants/" + slug + "/audit")
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "audit"), "audit panel")
	b.ok(b.expect.Locator(b.testID("tab-audit")).ToHaveAttribute("aria-current", "page"), "audit tab current")
	b.ok(b.expect.Locator(b.testID("tab-overview")).Not().ToHaveAttribute("aria-current", "page"), "overview tab no longer current")
	rows := b.testID("audit-row")
	b.ok(b.expect.Locator(rows).ToHaveCount(2), "two events for the tenant: created, then activated")
	b.ok(b.expect.Locator(rows.Nth(0).Locator("td").Nth(2)).ToHaveText("tenant.activated"), "tenant.activated event, newest first")
	created := rows.Nth(1)
	b.ok(b.expect.Locator(created.Locator("td").Nth(2)).ToHaveText("tenant.created"), "tenant.created event")
	b.ok(b.expect.Locator(created.Locator("td").Nth(1)).ToHaveText(adminEmail), "actor")
	b.ok(b.expect.Locator(created.Locator("td").Nth(3)).ToHaveText(slug), "target")
	b.wantNoReload("audit tab")
	b.screenshot("tenant-audit-tab")

	// The tab's own search swaps the tab in place: one tab bar, the search box kept.
	b.ok(b.page.Locator("#f-audit-q").Fill("no-such-event"), "search the tenant's events")
	b.ok(b.expect.Page(b.page).ToHaveURL(b.url+"/admin/tenants/"+slug+"/audit?q=no-such-event"), "search in the address")
	b.ok(b.expect.Locator(b.testID("empty-state")).ToContainText("No events match"), "nothing matches")
	b.ok(b.expect.Locator(b.page.GetByRole("navigation", playwright.PageGetByRoleOptions{Name: "Tenant sections"})).ToHaveCount(1), "one tab bar")
	b.ok(b.expect.Locator(b.page.Locator("#f-audit-q")).ToHaveValue("no-such-event"), "search box kept")
	b.ok(b.page.Locator("#f-audit-q").Fill("tenant.created"), "search again")
	b.ok(b.expect.Locator(rows).ToHaveCount(1), "the creation matches")
	b.wantNoReload("tenant audit search")

	b.ok(b.testID("tab-lifecycle").Click(), "open the lifecycle tab")
	b.wantPath("/admin/tenants/" + slug + "/lifecycle")
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "lifecycle"), "lifecycle panel")
	b.ok(b.testID("tab-overview").Click(), "back to overview")
	b.wantPath("/admin/tenants/" + slug)
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "overview"), "overview panel")
	b.wantNoReload("tab switches")

	// A tab's address loaded directly opens the page on that tab.
	b.goTo("/admin/tenants/" + slug + "/audit")
	b.ok(b.expect.Locator(b.testID("tab-panel")).ToHaveAttribute("data-tab", "audit"), "audit tab from the address")
	b.ok(b.expect.Locator(b.testID("tenant-name")).ToHaveText(fmt.Sprintf("Tabs Co %d", n)), "whole page around it")

	for _, path := range []string{"/admin/tenants/no-such-tenant", "/admin/tenants/" + slug + "/no-such-tab"} {
		if got := b.goTo(path); got != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, got)
		}
		b.ok(b.expect.Locator(b.testID("error-page")).ToHaveAttribute("data-status", "404"), path+": 404 page")
		b.ok(b.expect.Locator(b.testID("current-user")).ToContainText(adminName), path+": inside the signed-in layout")
		b.ok(b.expect.Locator(b.page.GetByRole("navigation", playwright.PageGetByRoleOptions{Name: "Main"}).Last()).ToBeVisible(), path+": with the main navigation")
		b.ok(b.expect.Locator(b.testID("request-id")).Not().ToBeEmpty(), path+": request id for support")
	}
}

// TestAuditTrail: the platform audit trail verifies its chain and searches in place.
func TestAuditTrail(t *testing.T) {
	b := setup(t, config{})
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/audit")
	b.ok(b.expect.Locator(b.testID("chain-status")).ToContainText("Hash chain verified"), "chain verified")
	b.ok(b.expect.Locator(b.testID("audit-row").First()).ToBeVisible(), "events listed")
	b.screenshot("audit")
	b.setMarker()
	b.ok(b.page.Locator("#f-audit-q").PressSequentially("demo.seeded", playwright.LocatorPressSequentiallyOptions{Delay: playwright.Float(20)}), "search events")
	b.ok(b.expect.Page(b.page).ToHaveURL(regexp.MustCompile(`/admin/audit\?q=demo\.seeded$`)), "search in the address")
	b.ok(b.expect.Locator(b.testID("audit-row")).ToHaveCount(1), "one seed event")
	b.ok(b.expect.Locator(b.testID("audit-row").Locator("td").Nth(2)).ToHaveText("demo.seeded"), "the seed event")
	b.ok(b.expect.Locator(b.page.Locator("#f-audit-q")).ToBeFocused(), "search box keeps the focus after the swap")
	b.wantNoReload("audit search")
}
