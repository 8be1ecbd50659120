// Package e2e drives Tenantry's admin portal in a real browser (Debian's Chromium through
// playwright-go), one test per user journey. Each test serves the app in-process on an
// httptest server over a migrated test database and browses it in a fresh browser context
// whose requests may not leave that server and whose console must stay free of errors.
//
// Prerequisites: `make e2e-deps` (the Makefile exports PLAYWRIGHT_DRIVER_PATH and CHROMIUM_PATH)
// and a PostgreSQL server (see internal/db/dbtest). Screenshots land in e2e/screenshots/.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/web"
)

// The platform admin every test on the package database signs in as; the executive comes from
// the demo seed.
const (
	adminEmail    = "admin@e2e.test"
	adminName     = "Ada Admin"
	adminPassword = "correct-horse-battery"
	execName      = "Erin Executive"
)

// extraTenants are added to the demo's tenants so the list spans more than one page.
const extraTenants = 6

const screenshotDir = "screenshots"

// browser is the one Chromium every test opens its contexts in; TestMain launches it.
var browser playwright.Browser

// TestMain launches the browser once for the package, around dbtest.Main.
func TestMain(m *testing.M) { os.Exit(runWithBrowser(m)) }

// runWithBrowser starts the Playwright driver and Chromium, then runs the tests on the package's
// test database. A missing driver or browser fails the package: these journeys are part of CI.
func runWithBrowser(m *testing.M) int {
	driverDir := os.Getenv("PLAYWRIGHT_DRIVER_PATH")
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if err := checkPrerequisites(driverDir, chromium); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n"+
			"e2e: run `make e2e-deps`, then run the tests through make (it exports both variables) or with\n"+
			"e2e:   PLAYWRIGHT_DRIVER_PATH=$PWD/.cache/playwright-driver-1.52.0 CHROMIUM_PATH=/usr/bin/chromium go test ./e2e/\n", err)
		return 1
	}
	pw, err := playwright.Run(&playwright.RunOptions{DriverDirectory: driverDir, SkipInstallBrowsers: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the Playwright driver in %s: %v (run `make e2e-deps`)\n", driverDir, err)
		return 1
	}
	defer func() {
		if err := pw.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop playwright:", err)
		}
	}()
	browser, err = pw.Chromium.Launch(playwright.BrowserTypeLaunchOptions{
		ExecutablePath: playwright.String(chromium),
		Headless:       playwright.Bool(true),
		Args: []string{"--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage"},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: launch %s: %v (run `make e2e-deps`)\n", chromium, err)
		return 1
	}
	defer browser.Close()
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return dbtest.Main(m)
}

func checkPrerequisites(driverDir, chromium string) error {
	if driverDir == "" {
		return errors.New("PLAYWRIGHT_DRIVER_PATH is not set")
	}
	if _, err := os.Stat(filepath.Join(driverDir, "package", "cli.js")); err != nil {
		return fmt.Errorf("no Playwright driver in PLAYWRIGHT_DRIVER_PATH=%s: %w", driverDir, err)
	}
	if fi, err := os.Stat(chromium); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("no chromium executable at CHROMIUM_PATH=%s", chromium)
	}
	return nil
}

// config varies a test's set-up; the zero value is the seeded package database on a desktop.
type config struct {
	// DB, when set, is served instead of the seeded package database.
	DB *db.DB
	// Width and Height of the viewport; zero means 1280x900.
	Width, Height int
}

// bundle is what a journey works with: the app, a browser context on it and its first page.
type bundle struct {
	t      *testing.T
	db     *db.DB
	url    string // the test server, without a trailing slash
	page   playwright.Page
	expect playwright.PlaywrightAssertions

	mu       sync.Mutex
	offsite  []string // requests aimed elsewhere than the test server (aborted)
	problems []string // console errors and uncaught page errors
	allowed  []*regexp.Regexp
}

// setup serves the app over the database in cfg and opens a guarded page on it.
func setup(t *testing.T, cfg config) *bundle {
	t.Helper()
	d := cfg.DB
	if d == nil {
		d = dbtest.Open(t)
		seedPackageDatabase(t, d)
	}
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	startProvisioning(t, d) // tenants created in the UI are provisioned by River jobs (provisioning_test.go)
	b := &bundle{t: t, db: d, url: ts.URL, expect: playwright.NewPlaywrightAssertions(5000)}
	b.page = b.newPage(cfg.Width, cfg.Height)
	return b
}

// newPage opens a page in a fresh browser context (its own cookies) with the guards on: any
// request not aimed at the test server is aborted and fails the test, and so does any console
// error or uncaught exception not announced with allowConsoleError.
func (b *bundle) newPage(width, height int) playwright.Page {
	t := b.t
	t.Helper()
	if width == 0 {
		width, height = 1280, 900
	}
	bc, err := browser.NewContext(playwright.BrowserNewContextOptions{
		Viewport: &playwright.Size{Width: width, Height: height},
		Locale:   playwright.String("en-GB"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bc.Close(); err != nil {
			t.Log("close browser context:", err)
		}
	})
	bc.SetDefaultTimeout(10000)
	err = bc.Route("**/*", func(r playwright.Route) {
		u := r.Request().URL()
		if u != b.url && !strings.HasPrefix(u, b.url+"/") {
			b.mu.Lock()
			b.offsite = append(b.offsite, r.Request().Method()+" "+u)
			b.mu.Unlock()
			_ = r.Abort()
			return
		}
		_ = r.Continue()
	})
	if err != nil {
		t.Fatal(err)
	}
	bc.OnConsole(func(m playwright.ConsoleMessage) {
		if m.Type() != "error" {
			return
		}
		where := ""
		if loc := m.Location(); loc != nil {
			where = " (" + loc.URL + ")"
		}
		b.problem("console error: " + m.Text() + where)
	})
	bc.OnWebError(func(e playwright.WebError) { b.problem("page error: " + e.Error().Error()) })
	t.Cleanup(b.checkGuards) // runs before the context closes
	page, err := bc.NewPage()
	if err != nil {
		t.Fatal(err)
	}
	return page
}

func (b *bundle) problem(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, re := range b.allowed {
		if re.MatchString(msg) {
			return
		}
	}
	b.problems = append(b.problems, msg)
}

// allowConsoleError accepts the console error Chromium logs for a response with this status,
// for journeys that expect one (a 401 sign-in, a 403 or 404 page, a 422 form).
func (b *bundle) allowConsoleError(status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, regexp.MustCompile(fmt.Sprintf(`^console error: Failed to load resource: the server responded with a status of %d \(`, status)))
}

func (b *bundle) checkGuards() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.offsite {
		b.t.Errorf("request left the test server (aborted): %s", u)
	}
	for _, p := range b.problems {
		b.t.Errorf("browser reported: %s", p)
	}
}

// seeded records that the package database holds the admin, the demo data and the extra tenants.
var seeded struct {
	sync.Mutex
	done bool
}

// seedPackageDatabase fills the package database once per test binary.
func seedPackageDatabase(t *testing.T, d *db.DB) {
	t.Helper()
	seeded.Lock()
	defer seeded.Unlock()
	if seeded.done {
		return
	}
	ctx := context.Background()
	if _, err := identity.NewService(d.App).SetupFirstAdmin(ctx,
		identity.NewUser{Email: adminEmail, Name: adminName, Password: adminPassword}, "e2e:seed"); err != nil {
		t.Fatal("seed admin:", err)
	}
	if _, err := demo.Seed(ctx, d, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal("seed demo:", err)
	}
	tenants := tenant.NewService(d, slog.New(slog.DiscardHandler))
	for i := 1; i <= extraTenants; i++ {
		_, err := tenants.Create(ctx, adminEmail, tenant.NewTenant{
			Slug: fmt.Sprintf("extra-%02d", i), Name: fmt.Sprintf("Extra Tenant %02d", i), PlanKey: "starter"})
		if err != nil {
			t.Fatal("seed extra tenants:", err)
		}
	}
	seeded.done = true
}

// ok fails the test at once on a Playwright error (an action or an assertion that timed out).
func (b *bundle) ok(err error, what string) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// goTo loads path on the test server and returns the main response's status.
func (b *bundle) goTo(path string) int {
	b.t.Helper()
	return goTo(b.t, b.page, b.url+path)
}

func goTo(t *testing.T, page playwright.Page, url string) int {
	t.Helper()
	resp, err := page.Goto(url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if resp == nil {
		t.Fatalf("open %s: no response", url)
	}
	return resp.Status()
}

// testID locates elements by their data-testid hook.
func (b *bundle) testID(id string) playwright.Locator {
	return b.page.GetByTestId(id)
}

// wantPath waits until the page's address is path (with any query when path has none).
func (b *bundle) wantPath(path string) {
	b.t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(b.url+path) + `(\?.*)?$`)
	if strings.Contains(path, "?") {
		re = regexp.MustCompile("^" + regexp.QuoteMeta(b.url+path) + "$")
	}
	b.ok(b.expect.Page(b.page).ToHaveURL(re), "address should be "+path)
}

// signIn uses the sign-in form and waits for the dashboard (or the page the sign-in returns to).
func (b *bundle) signIn(email, password, landing string) {
	b.t.Helper()
	b.goTo("/login")
	b.fillSignIn(email, password)
	b.wantPath(landing)
	b.ok(b.expect.Locator(b.testID("current-user")).ToBeVisible(), "signed in")
}

func (b *bundle) fillSignIn(email, password string) {
	b.t.Helper()
	b.ok(b.page.Locator("#f-email").Fill(email), "fill e-mail")
	b.ok(b.page.Locator("#f-password").Fill(password), "fill password")
	b.ok(b.page.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Sign in"}).Click(), "click Sign in")
}

// setMarker leaves a value on window that only survives if the page is not reloaded.
func (b *bundle) setMarker() {
	b.t.Helper()
	_, err := b.page.Evaluate("() => { window.__marker = 1 }")
	b.ok(err, "set marker")
}

// wantNoReload checks that the marker set by setMarker is still there.
func (b *bundle) wantNoReload(after string) {
	b.t.Helper()
	v, err := b.page.Evaluate("() => window.__marker")
	b.ok(err, "read marker")
	if n, _ := v.(int); n != 1 {
		b.t.Fatalf("%s reloaded the page (window.__marker = %v): want an htmx swap", after, v)
	}
}

// screenshot saves a full-page PNG as e2e/screenshots/<name>.png.
func (b *bundle) screenshot(name string) {
	b.t.Helper()
	_, err := b.page.Screenshot(playwright.PageScreenshotOptions{
		Path: playwright.String(filepath.Join(screenshotDir, name+".png")), FullPage: playwright.Bool(true)})
	b.ok(err, "screenshot "+name)
}

// rowSlugs returns the data-slug of every row of the tenant table, in order.
func (b *bundle) rowSlugs() []string {
	b.t.Helper()
	v, err := b.testID("tenant-row").EvaluateAll("rows => rows.map(r => r.dataset.slug)")
	b.ok(err, "read tenant rows")
	list, _ := v.([]interface{})
	out := make([]string, len(list))
	for i, s := range list {
		out[i], _ = s.(string)
	}
	return out
}

// listSlugs asks the registry itself which slugs a query returns, for comparison with the page.
func (b *bundle) listSlugs(q tenant.ListQuery) ([]string, int64) {
	b.t.Helper()
	res, err := tenant.NewService(b.db, slog.New(slog.DiscardHandler)).List(context.Background(), q)
	if err != nil {
		b.t.Fatal(err)
	}
	out := make([]string, len(res.Items))
	for i, it := range res.Items {
		out[i] = it.Slug
	}
	return out, res.Total
}

// wantRows waits until the tenant table shows exactly these slugs, in this order. (It polls
// from Go: page.WaitForFunction compiles its predicate in the page, which the CSP forbids.)
func (b *bundle) wantRows(want []string, after string) {
	b.t.Helper()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = b.rowSlugs(); slices.Equal(got, want) {
			return
		}
	}
	b.t.Fatalf("%s: rows = %v, want %v", after, got, want)
}

// statusOf runs action (a click that submits a form, say) and returns the status of the first
// response to a request for path.
func (b *bundle) statusOf(path string, action func() error) int {
	b.t.Helper()
	target := b.url + path
	resp, err := b.page.ExpectResponse(func(u string) bool { return u == target || strings.HasPrefix(u, target+"?") }, action)
	b.ok(err, "response to "+path)
	return resp.Status()
}
