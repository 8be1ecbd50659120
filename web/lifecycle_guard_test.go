package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

// One master key for the package database: the certificate signing key it wraps is shared.
var lifecycleMaster = sync.OnceValue(func() keys.Master {
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	m, err := keys.NewLocalMaster(b)
	if err != nil {
		panic(err)
	}
	return m
})

type lifecycleBundle struct {
	*testBundle
	lc  *lifecycle.Service
	mu  sync.Mutex
	now time.Time
}

func setupLifecycle(t *testing.T) *lifecycleBundle {
	t.Helper()
	d := dbtest.Open(t)
	master := lifecycleMaster()
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t), Keys: keys.NewService(d.App, master),
		Master: master, ExportDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b := &lifecycleBundle{testBundle: &testBundle{db: d, users: identity.NewService(d.App)}, lc: srv.Lifecycle(),
		now: time.Date(2031, 3, 1, 8, 0, 0, 0, time.UTC)}
	b.ts = newTestServer(t, srv)
	b.lc.SetClock(func() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now })
	return b
}

// at moves the lifecycle clock to days after the start and runs the periodic tick.
func (b *lifecycleBundle) at(t *testing.T, days float64) {
	t.Helper()
	b.mu.Lock()
	b.now = time.Date(2031, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(days * 24 * float64(time.Hour)))
	b.mu.Unlock()
	if err := b.lc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (b *lifecycleBundle) state(t *testing.T, id int64) string {
	t.Helper()
	var s string
	if err := b.db.AppPool.QueryRow(context.Background(), "SELECT state FROM tenantry.tenants WHERE id = $1", id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func apiCode(t *testing.T, body []byte) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an API error: %s", body)
	}
	return e
}

// TestLifecycleDegradation decommissions a tenant through the admin UI on a moved clock and
// checks, at each step, what its portal users and its API keys get: banners while in notice,
// 423 for every write while read-only (portal pages, quota consumption, usage reports) with GETs
// still working, sign-in and keys refused with the reason and a contact once suspended; then the
// admin downloads the export, the purge issues a certificate that /verify accepts, and a changed
// byte is refused.
func TestLifecycleDegradation(t *testing.T) {
	b := setupLifecycle(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	b.tenantUser(t, tn, "boss@acme.example", tenantauth.RoleAdmin)
	issued, err := apikeys.NewService(b.db).Create(ctx, "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	key := issued.FullKey
	admin := b.user(t, identity.RoleAdmin)
	ac := b.client(t)
	ac.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/lifecycle"

	// A start without a reason is refused at the field and changes nothing.
	res, body := ac.post(tab+"/start", url.Values{"reason": {""}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-reason"]`).Length() != 1 {
		t.Fatalf("empty reason: %d", res.StatusCode)
	}
	res, body = ac.post(tab+"/start", url.Values{"reason": {"Contract ended"}, "notice_days": {"10"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d\n%s", res.StatusCode, body)
	}
	doc := parse(t, ac.getBody(tab))
	if got := doc.Find(`[data-testid="timeline"] li`).Length(); got != 5 {
		t.Fatalf("timeline has %d steps", got)
	}
	if got := doc.Find(`[data-testid="campaign"] tbody tr`).Length(); got != 5 {
		t.Fatalf("campaign has %d messages", got)
	}

	// Notice: everything works, with a banner.
	uc := b.client(t)
	if res, body := uc.portalSignIn(tn.Slug, "boss@acme.example", password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in in notice: %d\n%s", res.StatusCode, body)
	}
	home := parse(t, uc.getBody("/t/"+tn.Slug))
	if banner := home.Find(`[data-testid="lifecycle-banner"]`).Text(); !strings.Contains(banner, "being decommissioned") || !strings.Contains(banner, "Contract ended") {
		t.Fatalf("notice banner %q", banner)
	}

	// Read-only.
	b.at(t, 3.5)
	if s := b.state(t, tn.ID); s != "degraded" {
		t.Fatalf("state %s", s)
	}
	home = parse(t, uc.getBody("/t/"+tn.Slug))
	if banner := home.Find(`[data-testid="lifecycle-banner"]`).Text(); !strings.Contains(banner, "read-only") {
		t.Fatalf("read-only banner %q", banner)
	}
	if href, _ := home.Find(`[data-testid="lifecycle-banner-export"]`).Attr("href"); href != "/t/"+tn.Slug+"/export" {
		t.Fatalf("tenant admin's banner links the export page at %q", href)
	}
	res, body = uc.post("/t/"+tn.Slug+"/users", url.Values{"email": {"new@acme.example"}, "name": {"New"}, "role": {"member"},
		"password": {password}, "_csrf": {uc.token("/t/" + tn.Slug)}})
	if res.StatusCode != http.StatusLocked || !strings.Contains(body, "read-only") || !strings.Contains(body, "support@tenantry.example") {
		t.Fatalf("portal write while read-only: %d\n%s", res.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/quota/consume", "/api/v1/usage"} {
		res, body := b.apiCall(t, http.MethodPost, path, key, nil)
		if e := apiCode(t, body); res.StatusCode != http.StatusLocked || e.Error.Code != "tenant_read_only" || !strings.Contains(e.Error.Message, "Contract ended") {
			t.Fatalf("POST %s while read-only: %d %s", path, res.StatusCode, body)
		}
	}
	for _, path := range []string{"/api/v1/quota", "/api/v1/tenant"} {
		if res, body := b.apiCall(t, http.MethodGet, path, key, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s while read-only: %d %s", path, res.StatusCode, body)
		}
	}

	// Suspended, then exported: sign-in and keys refused, naming the reason and the contact.
	b.at(t, 10.01)
	if s := b.state(t, tn.ID); s != "exported" {
		t.Fatalf("state %s", s)
	}
	res, body = b.client(t).get("/t/" + tn.Slug + "/login")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "Contract ended") || !strings.Contains(body, "support@tenantry.example") {
		t.Fatalf("sign-in page when closed: %d\n%s", res.StatusCode, body)
	}
	fresh := b.client(t)
	res, body = fresh.post("/t/"+tn.Slug+"/login", url.Values{"email": {"boss@acme.example"}, "password": {password}, "_csrf": {fresh.token("/login")}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "sign-in is refused") {
		t.Fatalf("sign-in when closed: %d\n%s", res.StatusCode, body)
	}
	if res, _ := uc.get("/t/" + tn.Slug); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("old session still works: %d", res.StatusCode)
	}
	if res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", key, nil); res.StatusCode < 400 {
		t.Fatalf("API key after suspension: %d %s", res.StatusCode, body)
	}

	// The admin downloads the export; it verifies against its manifest.
	e, ok, err := b.lc.LatestExport(ctx, tn.ID, true)
	if err != nil || !ok {
		t.Fatalf("no export: %v", err)
	}
	res, body = ac.get(tab + "/exports/" + strconv.FormatInt(e.ID, 10) + "/download")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	zipPath := filepath.Join(t.TempDir(), "export.zip")
	os.WriteFile(zipPath, []byte(body), 0o600)
	if _, err := lifecycle.VerifyArchive(zipPath); err != nil {
		t.Fatal(err)
	}
	// Purge before retention is refused with the reason.
	res, _ = ac.post(tab+"/purge", url.Values{"_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusSeeOther || b.state(t, tn.ID) != "exported" {
		t.Fatalf("early purge: %d, state %s", res.StatusCode, b.state(t, tn.ID))
	}
	if blocked := parse(t, ac.getBody(tab)).Find(`[data-testid="purge-blocked"]`).Text(); !strings.Contains(blocked, "retention") {
		t.Fatalf("purge-blocked %q", blocked)
	}

	// After retention the tick purges; the certificate verifies on /verify, and one changed byte fails.
	b.at(t, 45)
	if s := b.state(t, tn.ID); s != "purged" {
		t.Fatalf("state %s", s)
	}
	res, cert := ac.get(tab + "/certificate.json")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("certificate: %d", res.StatusCode)
	}
	if res, pdf := ac.get(tab + "/certificate.pdf"); res.StatusCode != http.StatusOK || !strings.HasPrefix(pdf, "%PDF") {
		t.Fatalf("pdf: %d", res.StatusCode)
	}
	vc := b.client(t)
	res, body = vc.post("/verify", url.Values{"document": {cert}, "_csrf": {vc.token("/verify")}})
	vdoc := parse(t, body)
	if res.StatusCode != http.StatusOK || vdoc.Find(`[data-testid="verify-valid"]`).Length() != 1 || !strings.Contains(vdoc.Find(`[data-testid="verified-tenant"]`).Text(), tn.Slug) {
		t.Fatalf("verify: %d\n%s", res.StatusCode, body)
	}
	if !strings.Contains(body, "this platform's key") {
		t.Fatal("key not recognised as the platform's")
	}
	tampered := strings.Replace(cert, `"rows": 1`, `"rows": 2`, 1)
	if tampered == cert {
		tampered = strings.Replace(cert, "Contract ended", "Contract endeD", 1)
	}
	res, body = vc.post("/verify", url.Values{"document": {tampered}, "_csrf": {vc.token("/verify")}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="verify-invalid"]`).Length() != 1 {
		t.Fatalf("tampered certificate: %d", res.StatusCode)
	}
	// Upload as a file too.
	var mb bytes.Buffer
	mw := multipart.NewWriter(&mb)
	mw.WriteField("_csrf", vc.token("/verify"))
	fw, _ := mw.CreateFormFile("file", "cert.json")
	fw.Write([]byte(cert))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, vc.base+"/verify", &mb)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	ures, err := vc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ubody, _ := io.ReadAll(ures.Body)
	ures.Body.Close()
	if ures.StatusCode != http.StatusOK || !strings.Contains(string(ubody), `data-testid="verify-valid"`) {
		t.Fatalf("upload: %d\n%s", ures.StatusCode, ubody)
	}

	// Cancel after purge is refused.
	res, _ = ac.post(tab+"/cancel", url.Values{"note": {"undo"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusSeeOther || b.state(t, tn.ID) != "purged" {
		t.Fatalf("cancel after purge: %d %s", res.StatusCode, b.state(t, tn.ID))
	}
}

// TestLifecycleChildrenChoice: a parent with children cannot start without a choice.
func TestLifecycleChildrenChoice(t *testing.T) {
	b := setupLifecycle(t)
	parent := b.apiTenant(t)
	ctx := context.Background()
	if _, err := b.lc.Start(ctx, "x", parent.ID, lifecycle.StartInput{Reason: "r"}); err != nil {
		t.Fatal(err) // no children: fine
	}
	_ = b.lc.Cancel(ctx, "x", parent.ID, "again with a child")
	child := b.apiTenant(t)
	if _, err := b.db.AppPool.Exec(ctx, "UPDATE tenantry.tenants SET parent_id = $1 WHERE id = $2", parent.ID, child.ID); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	ac := b.client(t)
	ac.signIn(admin.Email)
	tab := "/admin/tenants/" + parent.Slug + "/lifecycle"
	res, body := ac.post(tab+"/start", url.Values{"reason": {"Closing"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-children_action"]`).Length() != 1 {
		t.Fatalf("start without a choice for children: %d\n%s", res.StatusCode, body)
	}
	if s := b.state(t, parent.ID); s != "active" {
		t.Fatalf("state %s", s)
	}
	res, _ = ac.post(tab+"/start", url.Values{"reason": {"Closing"}, "children_action": {"decommission"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusSeeOther || b.state(t, child.ID) != "notice" {
		t.Fatalf("decommission with children: %d, child %s", res.StatusCode, b.state(t, child.ID))
	}
}

// TestLifecycleAdminActions: editing a campaign message (a broken template is refused at the
// field), setting a legal hold (a reason is required; the purge then says why it is blocked),
// and the tenant admin's export page in the portal (members are refused; the archive downloads).
func TestLifecycleAdminActions(t *testing.T) {
	b := setupLifecycle(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	b.tenantUser(t, tn, "owner@shop.example", tenantauth.RoleAdmin)
	b.tenantUser(t, tn, "staff@shop.example", tenantauth.RoleMember)
	admin := b.user(t, identity.RoleAdmin)
	ac := b.client(t)
	ac.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/lifecycle"
	if res, body := ac.post(tab+"/start", url.Values{"reason": {"Shop closed"}, "notice_days": {"20"}, "_csrf": {ac.token(tab)}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d\n%s", res.StatusCode, body)
	}
	msgs, err := b.lc.Campaign(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	var t7 lifecycle.Message
	for _, m := range msgs {
		if m.Key == "t-7" {
			t7 = m
		}
	}
	edit := tab + "/messages/" + strconv.FormatInt(t7.ID, 10)
	form := parse(t, ac.getBody(edit+"/edit")).Find(`[data-testid="message-edit"]`)
	if form.Length() != 1 {
		t.Fatal("no edit form")
	}
	if pv := form.Find(`[data-testid="message-preview"]`).Text(); !strings.Contains(pv, tn.Name+" closes in 7 days") || !strings.Contains(pv, "Shop closed") {
		t.Fatalf("preview %q", pv)
	}
	res, body := ac.post(edit, url.Values{"subject": {"{{.Nope}} closes"}, "body": {"x"}, "scheduled_at": {"2031-03-15T09:00"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-subject"]`).Length() != 1 {
		t.Fatalf("broken template: %d", res.StatusCode)
	}
	res, _ = ac.post(edit, url.Values{"subject": {"One week left for {{.Tenant}}"}, "body": {"Bye from {{.Contact}}"}, "scheduled_at": {"2031-03-15T09:00"}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save message: %d", res.StatusCode)
	}
	row := parse(t, ac.getBody(tab)).Find(`[data-testid="message-` + strconv.FormatInt(t7.ID, 10) + `"]`).Text()
	if !strings.Contains(row, "One week left for "+tn.Name) || !strings.Contains(row, "15 Mar 2031 09:00 UTC") {
		t.Fatalf("edited row %q", row)
	}
	// The already sent start message cannot be edited.
	if res, _ := ac.get(tab + "/messages/" + strconv.FormatInt(msgs[0].ID, 10) + "/edit"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("edit a sent message: %d", res.StatusCode)
	}

	// Legal hold: a reason is required; once set, the purge is blocked with who and why.
	res, body = ac.post(tab+"/hold", url.Values{"hold_reason": {" "}, "_csrf": {ac.token(tab)}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-hold_reason"]`).Length() != 1 {
		t.Fatalf("empty hold: %d", res.StatusCode)
	}
	ac.post(tab+"/hold", url.Values{"hold_reason": {"Tax audit 2031"}, "_csrf": {ac.token(tab)}})
	b.at(t, 20.1)
	b.at(t, 80)
	if s := b.state(t, tn.ID); s != "exported" {
		t.Fatalf("state %s under legal hold", s)
	}
	doc := parse(t, ac.getBody(tab))
	if held := doc.Find(`[data-testid="legal-hold-active"]`).Text(); !strings.Contains(held, "Tax audit 2031") || !strings.Contains(held, admin.Email) {
		t.Fatalf("hold shown as %q", held)
	}
	if blocked := doc.Find(`[data-testid="purge-blocked"]`).Text(); !strings.Contains(blocked, "legal hold") || !strings.Contains(blocked, "Tax audit 2031") {
		t.Fatalf("purge-blocked %q", blocked)
	}
	// The export list's poll answers the fragment alone (the archive, past its 30 days, is deleted).
	res, body = ac.do(http.MethodGet, tab+"/exports", nil, http.Header{"HX-Request": {"true"}})
	if frag := parse(t, body); res.StatusCode != http.StatusOK || frag.Find(`#lifecycle-exports li[data-state="deleted"]`).Length() != 1 || frag.Find("nav").Length() != 0 {
		t.Fatalf("exports fragment: %d\n%s", res.StatusCode, body)
	}
	var held int64
	b.db.AppPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = $1 AND action = 'tenant.legal_hold_set'", tn.ID).Scan(&held)
	if held != 1 {
		t.Fatalf("legal hold audited %d times", held)
	}
}

// TestPortalExport: a tenant admin asks for an export in the portal and downloads it; a member
// may not; the export still works while the tenant is read-only.
func TestPortalExport(t *testing.T) {
	b := setupLifecycle(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	b.tenantUser(t, tn, "owner@export.example", tenantauth.RoleAdmin)
	b.tenantUser(t, tn, "staff@export.example", tenantauth.RoleMember)
	if _, err := b.lc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Plan ended", NoticeDays: 10}); err != nil {
		t.Fatal(err)
	}
	b.at(t, 4) // read-only
	mc := b.client(t)
	mc.portalSignIn(tn.Slug, "staff@export.example", password)
	if res, _ := mc.get("/t/" + tn.Slug + "/export"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("member export page: %d", res.StatusCode)
	}
	uc := b.client(t)
	uc.portalSignIn(tn.Slug, "owner@export.example", password)
	page := "/t/" + tn.Slug + "/export"
	if res, body := uc.post(page, url.Values{"_csrf": {uc.token(page)}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("ask for an export while read-only: %d\n%s", res.StatusCode, body)
	}
	if _, err := b.lc.RunOpenExports(ctx); err != nil {
		t.Fatal(err)
	}
	link, ok := parse(t, uc.getBody(page)).Find(`[data-testid="portal-export-download"]`).Attr("href")
	if !ok {
		t.Fatal("no download link")
	}
	res, body := uc.get(link)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "PK") {
		t.Fatalf("download: %d", res.StatusCode)
	}
	if res, _ := mc.get(link); res.StatusCode != http.StatusForbidden {
		t.Fatalf("member download: %d", res.StatusCode)
	}
}

// TestLifecyclePolicies: the policies page edits the global policy (out-of-range and missing
// values refused at the field) and adds a plan override that a tenant on the plan then gets.
func TestLifecyclePolicies(t *testing.T) {
	b := setupLifecycle(t)
	admin := b.user(t, identity.RoleAdmin)
	ac := b.client(t)
	ac.signIn(admin.Email)
	page := "/admin/lifecycle/policies"
	doc := parse(t, ac.getBody(page))
	if doc.Find(`[data-testid="p-global-"]`).Length() != 1 || doc.Find(`[data-testid="p-compliance-hipaa"]`).Length() != 1 {
		t.Fatal("global policy or HIPAA override not listed")
	}
	res, body := ac.post(page, url.Values{"scope": {"global"}, "key": {""}, "notice_days": {"0"}, "read_only_days": {"7"}, "retention_days": {""},
		"export_keep_days": {"30"}, "contact_email": {"not an address"}, "_csrf": {ac.token(page)}})
	d := parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || d.Find(`[data-testid="error-notice_days"]`).Length() != 1 ||
		d.Find(`[data-testid="error-retention_days"]`).Length() != 1 || d.Find(`[data-testid="error-contact_email"]`).Length() != 1 {
		t.Fatalf("bad global policy: %d", res.StatusCode)
	}
	res, _ = ac.post(page, url.Values{"scope": {"plan"}, "key": {"plan:starter"}, "retention_days": {"120"}, "_csrf": {ac.token(page)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add override: %d", res.StatusCode)
	}
	tn := b.apiTenant(t)
	tn.PlanKey = "starter"
	p, err := b.lc.PolicyFor(context.Background(), tn)
	if err != nil || p.RetentionDays != 120 || p.Sources["retention_days"] != "plan starter" || p.NoticeDays != 30 {
		t.Fatalf("starter policy %+v (%v)", p, err)
	}
	res, _ = ac.post(page, url.Values{"scope": {"plan"}, "key": {"starter"}, "delete": {"1"}, "_csrf": {ac.token(page)}})
	if p, _ := b.lc.PolicyFor(context.Background(), tn); res.StatusCode != http.StatusSeeOther || p.RetentionDays != 30 {
		t.Fatalf("remove override: %d, retention %d", res.StatusCode, p.RetentionDays)
	}
}

// TestSuspendedAPIKeyNamesReason: while suspended (before the export revokes keys), an API key is
// refused with the decommissioning's reason and the contact address.
func TestSuspendedAPIKeyNamesReason(t *testing.T) {
	b := setupLifecycle(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	issued, err := apikeys.NewService(b.db).Create(ctx, "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.lc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Fraud investigation", NoticeDays: 5}); err != nil {
		t.Fatal(err)
	}
	// Suspended, its export not run yet (no worker in this test).
	b.mu.Lock()
	b.now = b.now.Add(6 * 24 * time.Hour)
	b.mu.Unlock()
	if _, err := b.lc.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.lc.Advance(ctx); err != nil {
		t.Fatal(err)
	}
	if s := b.state(t, tn.ID); s != "suspended" {
		t.Fatalf("state %s", s)
	}
	res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
	e := apiCode(t, body)
	if res.StatusCode != http.StatusForbidden || e.Error.Code != "tenant_not_serving" || !strings.Contains(e.Error.Message, "Fraud investigation") ||
		!strings.Contains(e.Error.Message, "support@tenantry.example") {
		t.Fatalf("suspended key: %d %s", res.StatusCode, body)
	}
}
