package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/tenant"
)

// provisioningWorkers works provisioning runs (the default queue, as the server enqueues) until
// the test ends.
func provisioningWorkers(t testing.TB, d *db.DB) {
	t.Helper()
	svc := provisioning.NewService(d, dbtest.Logger(t), provisioning.WithRetry(2, 10*time.Millisecond))
	c, err := provisioning.NewClient(d.AppPool, svc, 2, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = c.Stop(stop)
		cancel()
	})
}

// resellerBrand creates a reseller tenant with a brand on it.
func (b *testBundle) resellerBrand(t *testing.T, approval, colour string) (tenant.Tenant, signup.Brand) {
	t.Helper()
	owner := b.portalTenant(t, "reseller", "Reseller Holdings")
	svc := signup.NewService(b.db, dbtest.Logger(t), nil, "")
	br, err := svc.CreateBrand(context.Background(), "test", signup.BrandInput{Slug: owner.Slug + "-b", DisplayName: "Reseller Cloud",
		PrimaryColour: colour, AccentColour: "#0f766e", Headline: "Join Reseller Cloud", Blurb: "Set up in a minute.",
		PlanKey: "starter", Approval: approval, TenantSlug: owner.Slug})
	if err != nil {
		t.Fatal(err)
	}
	return owner, br
}

var verifyLinkRE = regexp.MustCompile(`/signup/verify/[A-Za-z0-9_-]+`)

// verifyLink reads the newest verification link sent to email from the outbox.
func verifyLink(t testing.TB, d *db.DB, email string) string {
	t.Helper()
	var text string
	if err := d.App.Raw("SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'signup.verify' AND to_addr = ? ORDER BY id DESC LIMIT 1", email).Scan(&text).Error; err != nil || text == "" {
		t.Fatalf("no verification e-mail to %s: %v", email, err)
	}
	link := verifyLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no link in %q", text)
	}
	return link
}

func signupForm(c *client, path string, v url.Values) (*http.Response, string) {
	v.Set("_csrf", c.token(path))
	return c.post(path, v)
}

func TestSignupPageIsBrandedAndRefusesBadInput(t *testing.T) {
	b := setup(t)
	owner, br := b.resellerBrand(t, signup.ApprovalAutomatic, "#b45309")
	c := b.client(t)
	path := "/signup/" + br.Slug
	res, body := c.get(path)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "--brand:#b45309") || doc.Find(`[data-testid="portal-tenant"]`).Text() != "Reseller Cloud" ||
		doc.Find(`[data-testid="signup-headline"]`).Text() != "Join Reseller Cloud" || doc.Find(`input[name="website"]`).Length() != 1 {
		t.Fatalf("signup page: %d\n%s", res.StatusCode, body)
	}
	if res, _ := c.get("/signup/no-such-brand"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown brand: %d", res.StatusCode)
	}
	good := url.Values{"org_name": {"Good Co"}, "slug": {owner.Slug + "-new"}, "email": {"x@good.example"}, "password": {password}}
	cases := []struct {
		field, key, value string
	}{
		{"org_name", "org_name", ""},
		{"slug", "slug", owner.Slug}, // taken
		{"slug", "slug", "admin"},
		{"slug", "slug", "metrics"},
		{"slug", "slug", "Bad Slug"},
		{"email", "email", "nope@"},
		{"password", "password", "short"},
	}
	for i, tc := range cases {
		v := url.Values{}
		for k, vs := range good {
			v[k] = vs
		}
		v.Set("email", "bad"+string(rune('a'+i))+"@good.example")
		v.Set(tc.key, tc.value)
		res, body := signupForm(c, path, v)
		doc := parse(t, body)
		if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-`+tc.field+`"], #slug-status[data-status="error"]`).Length() == 0 {
			t.Errorf("%s=%q: status %d, no error at the field", tc.key, tc.value, res.StatusCode)
		}
		if tc.key != "org_name" && doc.Find("#f-org_name").AttrOr("value", "") != "Good Co" {
			t.Errorf("%s=%q: input not kept", tc.key, tc.value)
		}
		if strings.Contains(body, password) {
			t.Error("the password was sent back")
		}
	}
	var n int64
	b.db.App.Model(&signup.Signup{}).Where("brand_id = ?", br.ID).Count(&n)
	if n != 0 {
		t.Fatalf("%d signups stored from bad input", n)
	}

	// The live slug check.
	for slug, want := range map[string]string{"admin": "reserved", owner.Slug: "taken", owner.Slug + "-free": "available", "-x": "invalid"} {
		_, body := c.get("/signup/slug?slug=" + url.QueryEscape(slug))
		if got := parse(t, body).Find(`[data-testid="slug-status"]`).AttrOr("data-status", ""); got != want {
			t.Errorf("slug check %q = %q, want %q", slug, got, want)
		}
	}

	// The live check is limited per address (it would otherwise list every tenant's slug).
	limited := ""
	for i := 0; i < 70 && limited == ""; i++ {
		_, body := c.get("/signup/slug?slug=probe-" + strconv.Itoa(i))
		if st := parse(t, body).Find(`[data-testid="slug-status"]`).AttrOr("data-status", ""); st == "limited" {
			limited = strconv.Itoa(i)
		}
	}
	if limited == "" {
		t.Error("70 slug checks from one address in a minute were all answered")
	}

	// Honeypot: the same friendly answer, nothing stored.
	v := url.Values{"org_name": {"Bot"}, "slug": {owner.Slug + "-bot"}, "email": {"bot@good.example"}, "password": {password}, "website": {"http://spam"}}
	res, body = signupForm(c, path, v)
	if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="signup-sent"]`).Length() != 1 {
		t.Fatalf("honeypot answer %d", res.StatusCode)
	}
	b.db.App.Model(&signup.Signup{}).Where("email = ?", "bot@good.example").Count(&n)
	if n != 0 {
		t.Fatal("honeypot signup stored")
	}
}

func TestSignupRateLimitedPerEmail(t *testing.T) {
	b := setup(t)
	owner, br := b.resellerBrand(t, signup.ApprovalAutomatic, "#b45309")
	c := b.client(t)
	path := "/signup/" + br.Slug
	for i := 0; i < signup.MaxPerEmail; i++ {
		res, _ := signupForm(c, path, url.Values{"org_name": {"Rate"}, "slug": {owner.Slug + "-r" + string(rune('a'+i))}, "email": {"rate@limit.example"}, "password": {password}})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("submission %d: %d", i+1, res.StatusCode)
		}
	}
	res, body := signupForm(c, path, url.Values{"org_name": {"Rate"}, "slug": {owner.Slug + "-rz"}, "email": {"rate@limit.example"}, "password": {password}})
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(parse(t, body).Find(`[data-testid="signup-error"]`).Text(), "Too many signups") {
		t.Fatalf("over the limit: %d\n%s", res.StatusCode, body)
	}
}

// waitProgress polls the progress fragment until the signup is in state (or fails the test).
func waitProgress(t *testing.T, c *client, state string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, body := c.do(http.MethodGet, "/signup/progress", nil, http.Header{"Hx-Request": {"true"}})
		got := parse(t, body).Find(`[data-testid="signup-progress"]`).AttrOr("data-state", "")
		if res.StatusCode == http.StatusOK && got == state {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("signup progress stuck in %q (status %d), want %q\n%s", got, res.StatusCode, state, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSignupVerifiedProvisionedAndSignedIn(t *testing.T) {
	b := setup(t)
	provisioningWorkers(t, b.db)
	owner, br := b.resellerBrand(t, signup.ApprovalAutomatic, "#b45309")
	c := b.client(t)
	slug := owner.Slug + "-kid"
	email := "founder@kid.example"
	res, body := signupForm(c, "/signup/"+br.Slug, url.Values{"org_name": {"Kid Co"}, "slug": {slug}, "email": {email}, "password": {password}})
	if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="signup-sent"]`).Length() != 1 {
		t.Fatalf("submit: %d\n%s", res.StatusCode, body)
	}
	if countTenants(t, b.db, slug) != 0 {
		t.Fatal("a tenant exists before the e-mail is confirmed")
	}
	link := verifyLink(t, b.db, email)
	res, body = c.get(link)
	wantRedirect(t, res, body, "/signup/progress")
	// The link works once.
	other := b.client(t)
	if res, body := other.get(link); res.StatusCode != http.StatusConflict || parse(t, body).Find(`[data-testid="verify-used"]`).Length() != 1 {
		t.Fatalf("second use: %d", res.StatusCode)
	}
	if res, body := other.get("/signup/verify/not-a-real-token"); res.StatusCode != http.StatusNotFound || parse(t, body).Find(`[data-testid="verify-unknown"]`).Length() != 1 {
		t.Fatalf("unknown link: %d", res.StatusCode)
	}
	// Progress, in the brand's colours, until done; then htmx is sent on to the portal.
	_, body = c.get("/signup/progress")
	if !strings.Contains(body, "--brand:#b45309") {
		t.Fatal("progress page not branded")
	}
	waitProgress(t, c, "done")
	res, body = c.do(http.MethodGet, "/signup/progress", nil, http.Header{"Hx-Request": {"true"}})
	if res.Header.Get("HX-Redirect") != "/signup/continue" {
		t.Fatalf("done progress: HX-Redirect %q", res.Header.Get("HX-Redirect"))
	}
	res, body = c.get("/signup/continue")
	wantRedirect(t, res, body, "/t/"+slug)
	res, body = c.get("/t/" + slug)
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || !strings.Contains(doc.Find(`[data-testid="portal-me"]`).Text(), email) ||
		doc.Find(`[data-testid="portal-role"]`).Text() == "" || !strings.Contains(body, "--brand:#b45309") {
		t.Fatalf("portal after signup: %d\n%s", res.StatusCode, body)
	}
	// A reseller's signup is its child, and the password the visitor chose works.
	kid, err := b.tenants().Get(context.Background(), slug)
	if err != nil || kid.ParentID == nil || *kid.ParentID != owner.ID || kid.State != "active" {
		t.Fatalf("tenant %+v %v", kid, err)
	}
	fresh := b.client(t)
	if res, body := fresh.portalSignIn(slug, email, password); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in with the chosen password: %d\n%s", res.StatusCode, body)
	}
	// The sign-in at the end of the signup is on the record.
	viaSignup := 0
	for _, e := range tenantEvents(t, b, kid) {
		if e.Action == "user.signed_in" && strings.Contains(string(e.Detail), `"via": "signup"`) {
			viaSignup++
		}
	}
	if viaSignup != 1 {
		t.Errorf("%d sign-ins via the signup in the tenant's trail, want 1", viaSignup)
	}
	// Continue works once per confirmation.
	if res, _ := c.get("/signup/continue"); res.StatusCode != http.StatusNotFound {
		t.Errorf("continue again: %d", res.StatusCode)
	}
	var ready int64
	b.db.App.Raw("SELECT count(*) FROM tenantry.mail_outbox WHERE kind = 'signup.ready' AND to_addr = ?", email).Scan(&ready)
	if ready != 1 {
		t.Errorf("%d ready e-mails", ready)
	}
}

func TestSignupHeldForApproval(t *testing.T) {
	b := setup(t)
	provisioningWorkers(t, b.db)
	owner, br := b.resellerBrand(t, signup.ApprovalHeld, "#0f766e")
	visitor := b.client(t)
	slug, email := owner.Slug+"-held", "held@approval.example"
	signupForm(visitor, "/signup/"+br.Slug, url.Values{"org_name": {"Held Co"}, "slug": {slug}, "email": {email}, "password": {password}})
	res, body := visitor.get(verifyLink(t, b.db, email))
	wantRedirect(t, res, body, "/signup/progress")
	body = waitProgress(t, visitor, "held")
	if countTenants(t, b.db, slug) != 0 {
		t.Fatal("a held signup was provisioned")
	}

	admin := b.client(t)
	admin.signIn(b.user(t, identity.RoleAdmin).Email)
	_, body = admin.get("/admin/approvals")
	if parse(t, body).Find(`[data-testid="nav-pending-approvals"]`).Length() == 0 {
		t.Error("the menu does not show that a signup is waiting")
	}
	row := parse(t, body).Find(`[data-testid="approval-row"][data-slug="` + slug + `"]`)
	if row.Length() != 1 || row.Find(`[data-testid="approval-approve"]`).Length() != 1 {
		t.Fatalf("held signup not in the queue\n%s", body)
	}
	var id int64
	b.db.App.Raw("SELECT id FROM tenantry.signups WHERE slug = ?", slug).Scan(&id)
	path := "/admin/approvals/" + itoa64(id)
	tok := admin.token("/admin/approvals")
	res, body = admin.post(path+"/reject", url.Values{"_csrf": {tok}, "reason": {""}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-reason"]`).Length() != 1 {
		t.Fatalf("reject without reason: %d", res.StatusCode)
	}
	// Executives cannot decide.
	exec := b.client(t)
	exec.signIn(b.user(t, identity.RoleExecutive).Email)
	if res, _ := exec.post(path+"/approve", url.Values{"_csrf": {exec.token("/admin/approvals")}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive approve: %d", res.StatusCode)
	}
	res, body = admin.post(path+"/approve", url.Values{"_csrf": {tok}})
	wantRedirect(t, res, body, "/admin/approvals")
	waitProgress(t, visitor, "done")
	kid, err := b.tenants().Get(context.Background(), slug)
	if err != nil || kid.ParentID == nil || *kid.ParentID != owner.ID {
		t.Fatalf("approved tenant %+v %v", kid, err)
	}
	// Approving twice does nothing.
	res, _ = admin.post(path+"/approve", url.Values{"_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second approve: %d", res.StatusCode)
	}
	var runs int64
	b.db.App.Raw("SELECT count(*) FROM tenantry.provisioning_runs WHERE tenant_slug = ?", slug).Scan(&runs)
	if runs != 1 {
		t.Fatalf("%d runs for one signup", runs)
	}
}

func TestSignupRejectedWithReason(t *testing.T) {
	b := setup(t)
	owner, br := b.resellerBrand(t, signup.ApprovalHeld, "#0f766e")
	visitor := b.client(t)
	slug, email := owner.Slug+"-no", "no@approval.example"
	signupForm(visitor, "/signup/"+br.Slug, url.Values{"org_name": {"No Co"}, "slug": {slug}, "email": {email}, "password": {password}})
	visitor.get(verifyLink(t, b.db, email))
	admin := b.client(t)
	admin.signIn(b.user(t, identity.RoleAdmin).Email)
	var id int64
	b.db.App.Raw("SELECT id FROM tenantry.signups WHERE slug = ?", slug).Scan(&id)
	res, body := admin.post("/admin/approvals/"+itoa64(id)+"/reject", url.Values{"_csrf": {admin.token("/admin/approvals")}, "reason": {"Outside our service area."}})
	wantRedirect(t, res, body, "/admin/approvals")
	var text string
	b.db.App.Raw("SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'signup.rejected' AND to_addr = ?", email).Scan(&text)
	if !strings.Contains(text, "Outside our service area.") {
		t.Fatalf("rejection e-mail %q", text)
	}
	body = waitProgress(t, visitor, "rejected")
	if !strings.Contains(body, "Outside our service area.") {
		t.Error("the visitor's page does not say why")
	}
}

func TestBrandsAdmin(t *testing.T) {
	b := setup(t)
	owner := b.portalTenant(t, "owner", "Brand Owner")
	admin := b.client(t)
	admin.signIn(b.user(t, identity.RoleAdmin).Email)
	tok := admin.token("/admin/brands/new")
	form := url.Values{"_csrf": {tok}, "tenant": {owner.Slug}, "slug": {owner.Slug + "-brand"}, "display_name": {"Owner Cloud"},
		"primary_colour": {"not-a-colour"}, "accent_colour": {"#0f766e"}, "plan": {"starter"}, "approval": {"automatic"}, "headline": {"Hi"}}
	res, body := admin.post("/admin/brands", form)
	doc := parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-primary_colour"]`).Length() != 1 || doc.Find("#f-display_name").AttrOr("value", "") != "Owner Cloud" {
		t.Fatalf("bad colour: %d\n%s", res.StatusCode, body)
	}
	form.Set("primary_colour", "#B45309")
	res, body = admin.post("/admin/brands", form)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/admin/brands/") {
		t.Fatalf("create: %d\n%s", res.StatusCode, body)
	}
	edit := res.Header.Get("Location")
	_, body = admin.get("/admin/brands?q=" + url.QueryEscape("Owner Cloud"))
	row := parse(t, body).Find(`[data-testid="brand-row"]`)
	if row.Length() != 1 || row.AttrOr("data-slug", "") != owner.Slug+"-brand" || row.Find(`[data-testid="brand-preview"]`).AttrOr("href", "") != "/signup/"+owner.Slug+"-brand" {
		t.Fatalf("list\n%s", body)
	}
	_, body = admin.get(edit)
	if parse(t, body).Find("#f-primary_colour").AttrOr("value", "") != "#b45309" {
		t.Fatal("edit form does not show the stored colour")
	}
	form.Del("tenant")
	form.Set("display_name", "")
	res, body = admin.post(edit, form)
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-display_name"]`).Length() != 1 {
		t.Fatalf("edit without a name: %d", res.StatusCode)
	}
	form.Set("display_name", "Owner Cloud 2")
	form.Set("approval", "held")
	res, body = admin.post(edit, form)
	wantRedirect(t, res, body, edit)
	_, body = admin.get("/signup/" + owner.Slug + "-brand")
	if parse(t, body).Find(`[data-testid="portal-tenant"]`).Text() != "Owner Cloud 2" {
		t.Fatal("signup page does not show the edited name")
	}
	// The platform's own brand (no tenant) serves /signup; there is only one.
	platform := url.Values{"_csrf": {tok}, "slug": {"platform-" + owner.Slug}, "display_name": {"Tenantry Cloud"}, "primary_colour": {"#4f46e5"},
		"accent_colour": {"#0ea5e9"}, "plan": {"starter"}, "approval": {"automatic"}, "headline": {"Start here"}}
	res, body = admin.post("/admin/brands", platform)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("platform brand: %d\n%s", res.StatusCode, body)
	}
	res, body = admin.get("/signup")
	if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="signup-headline"]`).Text() != "Start here" {
		t.Fatalf("/signup: %d", res.StatusCode)
	}
	platform.Set("slug", "platform2-"+owner.Slug)
	res, body = admin.post("/admin/brands", platform)
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-tenant"]`).Length() != 1 {
		t.Fatalf("second platform brand: %d", res.StatusCode)
	}
	// Executives read, never write.
	exec := b.client(t)
	exec.signIn(b.user(t, identity.RoleExecutive).Email)
	if res, _ := exec.get("/admin/brands"); res.StatusCode != http.StatusOK {
		t.Fatalf("executive list: %d", res.StatusCode)
	}
	if res, _ := exec.post("/admin/brands", url.Values{"_csrf": {exec.token("/admin/brands")}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive create: %d", res.StatusCode)
	}
}

func (b *testBundle) tenants() *tenant.Service {
	return tenant.NewService(b.db, slog.New(slog.DiscardHandler))
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
