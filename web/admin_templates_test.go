package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/web"
)

// multipartPost submits fields (and, when fileField is set, one file) as multipart/form-data.
func (c *client) multipartPost(path string, fields url.Values, fileField, fileName string, data []byte, header http.Header) (*http.Response, string) {
	c.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range fields {
		for _, v := range vs {
			_ = w.WriteField(k, v)
		}
	}
	if fileField != "" {
		fw, err := w.CreateFormFile(fileField, fileName)
		if err != nil {
			c.t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	_ = w.Close()
	req, err := http.NewRequest(http.MethodPost, c.base+path, &buf)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func testPNG(t *testing.T, w, h int, noise bool) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rnd := make([]byte, w*h*4)
	_, _ = rand.Read(rnd)
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(x), uint8(y), 120, 255}
			if noise {
				i := (y*w + x) * 4
				c = color.RGBA{rnd[i], rnd[i+1], rnd[i+2], 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func templateForm(name, compliance, tok string) url.Values {
	return url.Values{"_csrf": {tok}, "name": {name}, "tenant_type": {"company"}, "industry": {"healthcare"}, "compliance": {compliance},
		"plan": {"starter"}, "seed_dataset": {"sample-projects"}, "quota.seats.soft": {"20"}, "quota.seats.hard": {"25"},
		"setting.flags.sso": {"true"}, "setting.branding.primary_colour": {"#0f766e"}}
}

func countTemplates(t *testing.T, b *testBundle, name string) int {
	t.Helper()
	var n int64
	if err := b.db.App.Table("tenantry.templates").Where("name = ?", name).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// The template forms: create, field errors with nothing stored, compliance locks explained and
// enforced, edit into a new version, history, clone, archive, audit, read-only executives.
func TestTemplateForms(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tok := c.token("/admin/templates/new")

	// Empty list state for a search that matches nothing.
	_, body := c.get("/admin/templates?q=zzz-no-such-template")
	if parse(t, body).Find(`[data-testid="empty-state"]`).Length() != 1 {
		t.Fatal("no empty state")
	}

	// Field errors: every bad field is reported at once and nothing is stored.
	bad := templateForm("Form Clinic", "hipaa", tok)
	bad.Set("setting.branding.primary_colour", "teal")
	bad.Set("setting.security.mfa_required", "false") // forged: the form shows it locked
	bad.Set("setting.security.audit_retention_days", "400")
	bad.Set("quota.seats.soft", "many")
	res, body := c.multipartPost("/admin/templates", bad, "", "", nil, nil)
	d := parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %d", res.StatusCode)
	}
	for field, want := range map[string]string{
		"setting.branding.primary_colour":       "#rrggbb",
		"setting.security.mfa_required":         "HIPAA requires MFA",
		"setting.security.audit_retention_days": "six years",
		"quota.seats":                           "whole numbers",
	} {
		if got := d.Find(`[data-testid="error-` + field + `"]`).Text(); !strings.Contains(got, want) {
			t.Errorf("error at %s = %q, want %q", field, got, want)
		}
	}
	if countTemplates(t, b, "Form Clinic") != 0 {
		t.Fatal("a refused form stored a template")
	}
	// The locked fields explain themselves.
	mfa := d.Find(`[data-testid="template-setting"][data-key="security.mfa_required"]`)
	if mfa.AttrOr("data-locked", "") != "true" || mfa.Find("select[disabled]").Length() != 1 || !strings.Contains(mfa.Find(`[data-testid="lock-reason"]`).Text(), "HIPAA requires MFA") {
		t.Fatalf("MFA not shown locked: %s", mfa.Text())
	}
	// Switching the profile re-renders the form with that profile's locks.
	res, body = c.do(http.MethodPost, "/admin/templates/preview", templateForm("Form Clinic", "pci-dss", tok), http.Header{"Hx-Request": {"true"}})
	pw := parse(t, body).Find(`[data-testid="template-setting"][data-key="security.password_min_length"]`)
	if res.StatusCode != 200 || !strings.Contains(pw.Find(`[data-testid="lock-reason"]`).Text(), "PCI-DSS requires passwords of at least 12") {
		t.Fatalf("preview: %d %q", res.StatusCode, pw.Text())
	}

	// A good form creates version 1 and is audited.
	res, _ = c.multipartPost("/admin/templates", templateForm("Form Clinic", "hipaa", tok), "", "", nil, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	tp, err := templates.NewService(b.db).BySlugOrName(context.Background(), "form-clinic")
	if err != nil || tp.Latest.Number != 1 || tp.Latest.Settings["security.mfa_required"] != "true" || tp.Latest.Quotas["seats"].Hard != 25 {
		t.Fatalf("created %+v %v", tp.Latest, err)
	}
	var audits int64
	b.db.App.Table("tenantry.audit_events").Where("action = 'template.created' AND target = 'form-clinic'").Count(&audits)
	if audits != 1 {
		t.Fatalf("%d template.created events", audits)
	}
	_, body = c.get("/admin/templates")
	if parse(t, body).Find(`[data-testid="template-row"][data-slug="form-clinic"]`).Length() != 1 {
		t.Fatal("not listed")
	}

	// Edit: the form comes filled in; saving makes version 2; history shows both.
	_, body = c.get(loc + "/edit")
	if v, _ := parse(t, body).Find(`#f-setting\.branding\.primary_colour`).Attr("value"); v != "#0f766e" {
		t.Fatalf("edit form colour %q", v)
	}
	edit := templateForm("Form Clinic", "hipaa", tok)
	edit.Set("plan", "professional")
	edit.Set("note", "Professional plan")
	if res, _ = c.multipartPost(loc, edit, "", "", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d", res.StatusCode)
	}
	_, body = c.get(loc)
	d = parse(t, body)
	if d.Find(`[data-testid="version"]`).Length() != 2 || !strings.Contains(d.Find(`[data-testid="version"][data-number="2"]`).Text(), "Professional plan") {
		t.Fatalf("history: %s", d.Find(`[data-testid="version-history"]`).Text())
	}
	if !strings.Contains(d.Text(), "HIPAA requires MFA") {
		t.Fatal("the template page does not explain the lock")
	}

	// Clone: a name already taken is refused at the field; a new one makes version 1.
	if res, body = c.post(loc+"/clone", url.Values{"_csrf": {tok}, "name": {"Form Clinic"}}); res.StatusCode != http.StatusUnprocessableEntity ||
		parse(t, body).Find(`[data-testid="error-name"]`).Length() != 1 {
		t.Fatalf("clone under a taken name: %d", res.StatusCode)
	}
	if res, _ = c.post(loc+"/clone", url.Values{"_csrf": {tok}, "name": {"Form Dental"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("clone: %d", res.StatusCode)
	}
	// Archive: gone from the default list, shown under Archived.
	if res, _ = c.post(loc+"/archive", url.Values{"_csrf": {tok}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("archive: %d", res.StatusCode)
	}
	_, body = c.get("/admin/templates?q=form")
	if d := parse(t, body); d.Find(`[data-slug="form-clinic"]`).Length() != 0 || d.Find(`[data-slug="form-dental"]`).Length() != 1 {
		t.Fatal("archived template still listed as active")
	}
	_, body = c.get("/admin/templates?status=archived&q=form")
	if parse(t, body).Find(`[data-slug="form-clinic"]`).Length() != 1 {
		t.Fatal("archived template not under Archived")
	}

	// Executives read, but get no forms and cannot post.
	exec := b.user(t, identity.RoleExecutive)
	e := b.client(t)
	e.signIn(exec.Email)
	if res, _ := e.get(loc); res.StatusCode != 200 {
		t.Fatalf("executive view: %d", res.StatusCode)
	}
	if res, _ := e.get("/admin/templates/new"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive new form: %d", res.StatusCode)
	}
	if res, _ := e.multipartPost("/admin/templates", templateForm("Exec Made", "none", e.token("/admin/templates")), "", "", nil, nil); res.StatusCode != http.StatusForbidden || countTemplates(t, b, "Exec Made") != 0 {
		t.Fatalf("executive create: %d", res.StatusCode)
	}
}

// Logo uploads: a non-image or an oversized file is refused at the field with nothing changed;
// a PNG is stored and served at its URL, in a template and in the Settings tab.
func TestLogoUpload(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tok := c.token("/admin/templates/new")
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>`)
	big := testPNG(t, 400, 400, true)
	if len(big) <= 256<<10 {
		t.Fatalf("test image only %d bytes", len(big))
	}
	for name, data := range map[string][]byte{"logo.svg": svg, "logo.png": []byte("GIF89a not a png"), "big.png": big} {
		res, body := c.multipartPost("/admin/templates", templateForm("Logo Co", "none", tok), "logo", name, data, nil)
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-logo"]`).Length() != 1 {
			t.Fatalf("%s: %d", name, res.StatusCode)
		}
	}
	var images int64
	b.db.App.Table("tenantry.setting_images").Count(&images)
	if countTemplates(t, b, "Logo Co") != 0 || images != 0 {
		t.Fatalf("refused uploads stored something: %d images", images)
	}
	logo := testPNG(t, 64, 32, false)
	res, _ := c.multipartPost("/admin/templates", templateForm("Logo Co", "none", tok), "logo", "logo.png", logo, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("good logo: %d", res.StatusCode)
	}
	_, body := c.get(res.Header.Get("Location"))
	src, ok := parse(t, body).Find(`img[alt="Logo"]`).Attr("src")
	if !ok || !strings.HasPrefix(src, "/media/images/") {
		t.Fatalf("logo not shown: %q", src)
	}
	anon := b.client(t) // logos are public: signup pages show them
	res, got := anon.get(src)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || got != string(logo) {
		t.Fatalf("serving the logo: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res, _ := anon.get("/media/images/" + strings.Repeat("0", 64)); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown image: %d", res.StatusCode)
	}

	// The Settings tab: the same checks on a tenant's logo.
	tn := b.apiTenant(t)
	hx := http.Header{"Hx-Request": {"true"}}
	path := "/admin/tenants/" + tn.Slug + "/settings/branding.logo"
	res, body = c.multipartPost(path, url.Values{"_csrf": {tok}}, "file", "x.svg", svg, hx)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "PNG or JPEG") {
		t.Fatalf("svg in settings: %d %s", res.StatusCode, body)
	}
	res, body = c.multipartPost(path, url.Values{"_csrf": {tok}}, "file", "big.png", big, hx)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "256 KB") {
		t.Fatalf("oversized in settings: %d", res.StatusCode)
	}
	var set int64
	b.db.App.Table("tenantry.setting_values").Where("tenant_id = ? AND key = 'branding.logo'", tn.ID).Count(&set)
	if set != 0 {
		t.Fatal("a refused upload changed the setting")
	}
	res, body = c.multipartPost(path, url.Values{"_csrf": {tok}}, "file", "logo.png", logo, hx)
	if res.StatusCode != 200 || !strings.Contains(body, src) {
		t.Fatalf("logo in settings: %d %s", res.StatusCode, body)
	}
}

// secretsBundle is a server with a key service, and tenants that have keysets.
func secretsBundle(t *testing.T) (*testBundle, *tenant.Service) {
	t.Helper()
	d := dbtest.Open(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.NewService(d.App, master)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t), Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{db: d, users: identity.NewService(d.App)}
	b.ts = newTestServer(t, srv)
	return b, tenant.NewService(d, dbtest.Logger(t), tenant.WithKeys(k))
}

// A secret set in the Settings tab is never rendered: not in the row, the tab, the diff, the
// audit trail, the drift panel or the API; a refused value is not echoed back either.
func TestSecretsNeverRendered(t *testing.T) {
	b, ts := secretsBundle(t)
	ctx := context.Background()
	tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "secret-co", Name: "Secret Co", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "secret-other", Name: "Other", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := templates.NewService(b.db).Create(ctx, "test", templates.Input{Name: "Secretive", TenantType: "company", Industry: "general",
		Compliance: "none", PlanKey: "free", SeedDataset: "empty", Settings: map[string]string{"flags.sso": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.App.Transaction(func(tx *gorm.DB) error { return templates.NewService(b.db).Apply(tx, tn.ID, tp.Latest, "test") }); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tok := c.token("/admin/tenants/secret-co/settings")
	hx := http.Header{"Hx-Request": {"true"}}
	const secret = "whsec_NEVER-SHOW-7f3a9c"
	path := "/admin/tenants/secret-co/settings/integrations.webhook_secret"

	// The edit form offers an empty password field.
	_, body := c.do(http.MethodGet, path+"/edit", nil, hx)
	if in := parse(t, "<table>"+body+"</table>").Find(`input[name="value"]`); in.AttrOr("type", "") != "password" || in.AttrOr("value", "x") != "" {
		t.Fatalf("secret edit field: %s", body)
	}
	// A refused value (too long) is not echoed back.
	long := secret + strings.Repeat("x", 5000)
	res, body := c.do(http.MethodPost, path, url.Values{"_csrf": {tok}, "value": {long}}, hx)
	if res.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, secret) {
		t.Fatalf("refused secret: %d, echoed=%v", res.StatusCode, strings.Contains(body, secret))
	}
	res, body = c.do(http.MethodPost, path, url.Values{"_csrf": {tok}, "value": {secret}}, hx)
	if res.StatusCode != 200 || strings.Contains(body, secret) || !strings.Contains(body, "set on ") || !strings.Contains(body, admin.Email) {
		t.Fatalf("set secret: %d %s", res.StatusCode, body)
	}
	// The platform level refuses secrets (no tenant key).
	if res, _ := c.do(http.MethodPost, "/admin/settings/integrations.webhook_secret", url.Values{"_csrf": {tok}, "value": {secret}}, hx); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("platform secret: %d", res.StatusCode)
	}
	issued, err := apikeys.NewService(b.db).Create(ctx, "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	res2, api := b.apiCall(t, http.MethodGet, "/api/v1/settings", issued.FullKey, nil)
	var all map[string]any
	if res2.StatusCode != 200 || json.Unmarshal(api, &all) != nil || all["integrations.webhook_secret"] != nil {
		t.Fatalf("API: %d %s", res2.StatusCode, api)
	}
	pages := map[string]string{"api": string(api)}
	for _, p := range []string{"/admin/tenants/secret-co/settings", "/admin/tenants/secret-co", "/admin/tenants/secret-co/audit",
		"/admin/settings/diff?a=secret-co&b=secret-other", "/admin/audit", "/admin/audit.csv", "/admin/settings"} {
		res, body := c.get(p)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", p, res.StatusCode)
		}
		pages[p] = body
	}
	_, pages["template panel"] = c.do(http.MethodGet, "/admin/tenants/secret-co/template", nil, hx)
	var stored string
	b.db.App.Raw("SELECT value FROM tenantry.setting_values WHERE tenant_id = ? AND key = 'integrations.webhook_secret'", tn.ID).Scan(&stored)
	if stored == "" {
		t.Fatal("secret not stored")
	}
	for p, body := range pages {
		if strings.Contains(body, secret) || strings.Contains(body, stored) {
			t.Errorf("%s shows the secret or its ciphertext", p)
		}
	}
	_ = other
}

// The tenant page's Template section: the version the tenant was made from, then drift after
// the template gains a version and the tenant overrides a value.
func TestTenantTemplateSection(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	svc := templates.NewService(b.db)
	in := templates.Input{Name: "Panel Std", TenantType: "company", Industry: "general", Compliance: "soc2", PlanKey: "starter", SeedDataset: "empty",
		Settings: map[string]string{"flags.beta_reports": "true"}}
	tp, err := svc.Create(ctx, "test", in)
	if err != nil {
		t.Fatal(err)
	}
	tn := b.apiTenant(t)
	plain := b.apiTenant(t)
	if err := b.db.App.Transaction(func(tx *gorm.DB) error { return svc.Apply(tx, tn.ID, tp.Latest, "test") }); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	hx := http.Header{"Hx-Request": {"true"}}
	_, body := c.get("/admin/tenants/" + tn.Slug)
	if parse(t, body).Find(`[data-testid="tenant-template-loading"]`).AttrOr("hx-get", "") != "/admin/tenants/"+tn.Slug+"/template" {
		t.Fatal("overview does not load the Template section")
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/"+plain.Slug+"/template", nil, hx)
	if !strings.Contains(body, "not made from a template") {
		t.Fatalf("plain tenant: %s", body)
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/"+tn.Slug+"/template", nil, hx)
	d := parse(t, body)
	if d.Find(`[data-testid="template-version"]`).Text() != "Panel Std v1" || d.Find(`[data-testid="drift-none"]`).Length() != 1 {
		t.Fatalf("fresh: %s", body)
	}
	// The Settings tab names the template as the source, and its compliance lock.
	_, body = c.get("/admin/tenants/" + tn.Slug + "/settings")
	d = parse(t, body)
	if src := strings.TrimSpace(d.Find(`[data-key="flags.beta_reports"] [data-testid="setting-source"]`).Text()); src != "template Panel Std v1" {
		t.Errorf("flag source %q", src)
	}
	mfa := d.Find(`[data-key="security.mfa_required"]`)
	if src := strings.TrimSpace(mfa.Find(`[data-testid="setting-source"]`).Text()); src != "locked by template Panel Std v1 (SOC 2)" ||
		!strings.Contains(mfa.Find(`[data-testid="setting-lock-reason"]`).Text(), "SOC 2") || mfa.Find(`[data-testid="setting-edit"]`).Length() != 0 {
		t.Errorf("mfa source %q", src)
	}
	in.Settings["flags.beta_reports"] = "false"
	if _, err := svc.Edit(ctx, "test", tp.ID, in); err != nil {
		t.Fatal(err)
	}
	tok := c.token("/admin/tenants/" + tn.Slug + "/settings")
	if res, _ := c.do(http.MethodPost, "/admin/tenants/"+tn.Slug+"/settings/flags.beta_reports", url.Values{"_csrf": {tok}, "value": {"false"}}, hx); res.StatusCode != 200 {
		t.Fatalf("override: %d", res.StatusCode)
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/"+tn.Slug+"/template", nil, hx)
	d = parse(t, body)
	rows := d.Find(`[data-testid="drift-row"]`)
	if !strings.Contains(d.Find(`[data-testid="drift-behind"]`).Text(), "Panel Std v2") || rows.Length() != 2 ||
		!strings.Contains(rows.Eq(0).Text(), "Beta reports") || !strings.Contains(rows.Eq(1).Text(), "set on this tenant") {
		t.Fatalf("drift: %s", body)
	}
	// Upgrading to the latest version: a stale form changes nothing, the current one applies it.
	up := d.Find(`[data-testid="template-upgrade"]`).Closest("form")
	version := up.Find(`input[name="version"]`).AttrOr("value", "")
	if res, _ := c.post("/admin/tenants/"+tn.Slug+"/template/upgrade", url.Values{"_csrf": {tok}, "version": {"1"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("stale upgrade: %d", res.StatusCode)
	}
	if dr, _ := svc.Drift(ctx, tn.ID); dr.From.Number != 1 {
		t.Fatal("a stale upgrade form applied a version")
	}
	if res, _ := c.post("/admin/tenants/"+tn.Slug+"/template/upgrade", url.Values{"_csrf": {tok}, "version": {version}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("upgrade: %d", res.StatusCode)
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/"+tn.Slug+"/template", nil, hx)
	d = parse(t, body)
	if d.Find(`[data-testid="template-version"]`).Text() != "Panel Std v2" || d.Find(`[data-testid="drift-none"]`).Length() != 1 {
		t.Fatalf("after the upgrade: %s", body)
	}
}
