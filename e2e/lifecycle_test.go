package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

var e2eMaster = sync.OnceValue(func() keys.Master {
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	m, err := keys.NewLocalMaster(b)
	if err != nil {
		panic(err)
	}
	return m
})

// TestLifecycleJourney: the admin decommissions a tenant from its Lifecycle tab with a two-day
// notice; the lifecycle clock is moved (as the minute tick would find it days later), the
// tenant's users see the read-only banner, the export is downloaded and verifies against its
// manifest, the purge after retention shows the certificate, which the public /verify page
// accepts as uploaded, and refuses with one byte changed.
func TestLifecycleJourney(t *testing.T) {
	d := dbtest.Open(t)
	seedPackageDatabase(t, d)
	master := e2eMaster()
	keySvc := keys.NewService(d.App, master)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t), Keys: keySvc, Master: master, ExportDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b := &bundle{t: t, db: d, url: ts.URL, expect: playwright.NewPlaywrightAssertions(5000)}
	b.page = b.newPage(0, 0)
	b.allowConsoleError(http.StatusUnprocessableEntity)
	b.allowConsoleError(http.StatusLocked)

	lc := srv.Lifecycle()
	var mu sync.Mutex
	start := time.Now().UTC().Truncate(time.Minute)
	now := start
	lc.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(days float64) {
		t.Helper()
		mu.Lock()
		now = start.Add(time.Duration(days * 24 * float64(time.Hour)))
		mu.Unlock()
		if err := lc.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	r := make([]byte, 3)
	_, _ = rand.Read(r)
	slug := "leaving-" + hex.EncodeToString(r)
	tn, err := tenant.NewService(d, dbtest.Logger(t), tenant.WithKeys(keySvc)).Create(ctx, adminEmail,
		tenant.NewTenant{Slug: slug, Name: "Leaving Co " + hex.EncodeToString(r), PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenantauth.NewService(d).CreateUser(ctx, tn.ID, "e2e", tenantauth.NewUser{Email: "owner@leaving.example", Name: "Owner",
		Role: tenantauth.RoleAdmin, Password: adminPassword}); err != nil {
		t.Fatal(err)
	}

	// Start from the Lifecycle tab.
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/tenants/" + slug)
	b.ok(b.testID("tab-lifecycle").Click(), "open the Lifecycle tab")
	b.wantPath("/admin/tenants/" + slug + "/lifecycle")
	b.ok(b.page.Locator("#f-reason").Fill("Customer moved to another provider"), "fill the reason")
	b.ok(b.page.Locator("#f-notice_days").Fill("2"), "fill the notice")
	b.ok(b.testID("lifecycle-start-submit").Click(), "start decommissioning")
	b.ok(b.expect.Locator(b.testID("timeline")).ToBeVisible(), "timeline shown")
	b.ok(b.expect.Locator(b.testID("lifecycle-reason")).ToHaveText("Customer moved to another provider"), "reason shown")
	b.ok(b.expect.Locator(b.testID("campaign").Locator("tbody tr")).ToHaveCount(4), "campaign: start, T-1, suspension, export ready")
	b.screenshot("lifecycle-started")

	// Read-only: the tenant's user sees the banner.
	advance(1.5)
	user := b.newPage(0, 0)
	goTo(t, user, b.url+"/t/"+slug+"/login")
	b.ok(user.Locator("#f-email").Fill("owner@leaving.example"), "fill e-mail")
	b.ok(user.Locator("#f-password").Fill(adminPassword), "fill password")
	b.ok(user.GetByRole("button", playwright.PageGetByRoleOptions{Name: "Sign in"}).Click(), "sign in to the portal")
	b.ok(b.expect.Locator(user.GetByTestId("lifecycle-banner")).ToContainText("read-only"), "read-only banner")

	// Suspension and export: the admin downloads the archive; it verifies.
	advance(2.01)
	b.goTo("/admin/tenants/" + slug + "/lifecycle")
	b.ok(b.expect.Locator(b.testID("exports").Locator("[data-state=done]")).ToHaveCount(1), "export done")
	dl, err := b.page.ExpectDownload(func() error { return b.testID("export-download").Click() })
	b.ok(err, "download the export")
	zipPath := filepath.Join(t.TempDir(), "export.zip")
	b.ok(dl.SaveAs(zipPath), "save the export")
	m, err := lifecycle.VerifyArchive(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.Tenant.Slug != slug || len(m.Tables) == 0 {
		t.Fatalf("manifest %+v", m.Tenant)
	}

	// After retention (30 days) the tick purges; the certificate is shown.
	advance(40)
	b.goTo("/admin/tenants/" + slug + "/lifecycle")
	b.ok(b.expect.Locator(b.testID("certificate")).ToBeVisible(), "certificate shown")
	b.screenshot("lifecycle-purged")
	dl, err = b.page.ExpectDownload(func() error { return b.testID("certificate-json").Click() })
	b.ok(err, "download the certificate")
	certPath := filepath.Join(t.TempDir(), "certificate.json")
	b.ok(dl.SaveAs(certPath), "save the certificate")

	// /verify accepts it as uploaded.
	b.goTo("/verify")
	b.ok(b.testID("verify-file").SetInputFiles(certPath), "choose the file")
	b.ok(b.testID("verify-submit").Click(), "verify")
	b.ok(b.expect.Locator(b.testID("verify-valid")).ToContainText("this platform's key"), "valid, platform key")
	b.ok(b.expect.Locator(b.testID("verified-tenant")).ToContainText(slug), "tenant shown")

	// One changed byte fails.
	doc, err := os.ReadFile(certPath)
	b.ok(err, "read the certificate")
	edited := strings.Replace(string(doc), "Customer moved", "Customer moveD", 1)
	b.ok(b.testID("verify-document").Fill(edited), "paste an edited certificate")
	b.ok(b.testID("verify-submit").Click(), "verify the edited one")
	b.ok(b.expect.Locator(b.testID("verify-invalid")).ToBeVisible(), "edited certificate refused")

	// On a phone: the Lifecycle tab, the policies page and /verify fit the width.
	b.page = b.newPage(phoneWidth, phoneHeight)
	b.signIn(adminEmail, adminPassword, "/admin")
	for _, path := range []string{"/admin/tenants/" + slug + "/lifecycle", "/admin/lifecycle/policies", "/verify"} {
		b.goTo(path)
		b.wantFitsWidth(path)
	}
	b.screenshot("lifecycle-mobile-verify")
}
