package signup_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const password = "correct-horse-battery"

type bundle struct {
	db      *db.DB
	svc     *signup.Service
	tenants *tenant.Service
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := dbtest.Open(t)
	return &bundle{db: d, svc: signup.NewService(d, dbtest.Logger(t), nil, "https://tenantry.test"), tenants: tenant.NewService(d, dbtest.Logger(t))}
}

func slugOf(t *testing.T, suffix string) string {
	s := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	return strings.Trim(s, "-") + "-" + suffix
}

func (b *bundle) tenant(t *testing.T, suffix string, parent string) tenant.Tenant {
	t.Helper()
	tn, err := b.tenants.Create(context.Background(), "test", tenant.NewTenant{Slug: slugOf(t, suffix), Name: "Tenant " + suffix, PlanKey: "starter", ParentSlug: parent})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// brand creates a brand owned by a new tenant.
func (b *bundle) brand(t *testing.T, approval string) signup.Brand {
	t.Helper()
	owner := b.tenant(t, "reseller", "")
	br, err := b.svc.CreateBrand(context.Background(), "test", signup.BrandInput{Slug: slugOf(t, "brand"), DisplayName: "Reseller Cloud",
		PrimaryColour: "#b45309", AccentColour: "#0f766e", PlanKey: "starter", Approval: approval, TenantSlug: owner.Slug})
	if err != nil {
		t.Fatal(err)
	}
	return br
}

func fields(t *testing.T, err error) validation.Errors {
	t.Helper()
	if !errors.Is(err, validation.ErrInvalid) {
		t.Fatalf("want a validation error, got %v", err)
	}
	return validation.Fields(err)
}

func TestBrandValidation(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	owner := b.tenant(t, "owner", "")
	good := signup.BrandInput{Slug: slugOf(t, "b"), DisplayName: "Owner Cloud", PrimaryColour: "#112233", AccentColour: "#445566",
		PlanKey: "starter", Approval: signup.ApprovalHeld, TenantSlug: owner.Slug}
	cases := []struct {
		name  string
		edit  func(*signup.BrandInput)
		field string
	}{
		{"empty slug", func(in *signup.BrandInput) { in.Slug = "" }, "slug"},
		{"bad slug", func(in *signup.BrandInput) { in.Slug = "Not OK!" }, "slug"},
		{"reserved slug", func(in *signup.BrandInput) { in.Slug = "verify" }, "slug"},
		{"no name", func(in *signup.BrandInput) { in.DisplayName = "  " }, "display_name"},
		{"long name", func(in *signup.BrandInput) { in.DisplayName = strings.Repeat("x", 81) }, "display_name"},
		{"bad colour", func(in *signup.BrandInput) { in.PrimaryColour = "red" }, "primary_colour"},
		{"bad accent", func(in *signup.BrandInput) { in.AccentColour = "#12345" }, "accent_colour"},
		{"external logo", func(in *signup.BrandInput) { in.LogoURL = "https://evil.example/logo.png" }, "logo_url"},
		{"long blurb", func(in *signup.BrandInput) { in.Blurb = strings.Repeat("x", 601) }, "blurb"},
		{"no approval", func(in *signup.BrandInput) { in.Approval = "sometimes" }, "approval"},
		{"unknown plan", func(in *signup.BrandInput) { in.PlanKey = "platinum" }, "plan"},
		{"unknown template", func(in *signup.BrandInput) { in.TemplateIDs = []int64{987654} }, "templates"},
		{"unknown tenant", func(in *signup.BrandInput) { in.TenantSlug = "no-such-tenant" }, "tenant"},
	}
	for _, c := range cases {
		in := good
		c.edit(&in)
		_, err := b.svc.CreateBrand(ctx, "test", in)
		if f := fields(t, err); f[c.field] == "" {
			t.Errorf("%s: errors %v, want one for %s", c.name, f, c.field)
		}
	}
	if _, total, err := b.svc.Brands(ctx, signup.BrandQuery{Search: owner.Name}); err != nil || total != 0 {
		t.Fatalf("refused brands stored: %d, %v", total, err)
	}
	br, err := b.svc.CreateBrand(ctx, "test", good)
	if err != nil {
		t.Fatal(err)
	}
	if br.TenantID == nil || *br.TenantID != owner.ID || br.TenantSlug != owner.Slug || br.SignupPath() != "/signup/"+good.Slug {
		t.Fatalf("brand %+v", br)
	}
	// One brand per tenant, slugs unique.
	again := good
	again.Slug = slugOf(t, "b2")
	if f := fields(t, func() error { _, err := b.svc.CreateBrand(ctx, "test", again); return err }()); f["tenant"] == "" {
		t.Errorf("second brand for the tenant: %v", f)
	}
	other := b.tenant(t, "other", "")
	dup := good
	dup.TenantSlug = other.Slug
	if f := fields(t, func() error { _, err := b.svc.CreateBrand(ctx, "test", dup); return err }()); f["slug"] == "" {
		t.Errorf("duplicate slug: %v", f)
	}
	// Edit: a refused edit changes nothing; a good one does.
	bad := good
	bad.PrimaryColour = "#zzzzzz"
	if _, err := b.svc.UpdateBrand(ctx, "test", br.ID, bad); fields(t, err)["primary_colour"] == "" {
		t.Error("bad colour accepted on edit")
	}
	ok := good
	ok.Headline, ok.PrimaryColour = "Welcome", "#ABCDEF"
	nb, err := b.svc.UpdateBrand(ctx, "test", br.ID, ok)
	if err != nil || nb.Headline != "Welcome" || nb.PrimaryColour != "#abcdef" || *nb.TenantID != owner.ID {
		t.Fatalf("edit: %+v, %v", nb, err)
	}
}

// outbox returns the newest message of kind to addr.
func outbox(t *testing.T, d *db.DB, kind, to string) mail.Queued {
	t.Helper()
	var q mail.Queued
	if err := d.App.Where("kind = ? AND to_addr = ?", kind, to).Order("id DESC").Take(&q).Error; err != nil {
		t.Fatalf("no %s message to %s: %v", kind, to, err)
	}
	return q
}

var linkRE = regexp.MustCompile(`/signup/verify/([A-Za-z0-9_-]+)`)

func tokenFrom(t *testing.T, q mail.Queued) string {
	t.Helper()
	m := linkRE.FindStringSubmatch(q.TextBody)
	if m == nil {
		t.Fatalf("no verification link in %q", q.TextBody)
	}
	return m[1]
}

func countSignups(t *testing.T, d *db.DB, email string) int64 {
	t.Helper()
	var n int64
	if err := d.App.Model(&signup.Signup{}).Where("email = ?", email).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSubmitRefusesBadInput(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	br := b.brand(t, signup.ApprovalAutomatic)
	existing := b.tenant(t, "existing", "")
	good := signup.Input{OrgName: "Bad Input Co", Slug: slugOf(t, "new"), Email: "owner@badinput.example", Password: password, RemoteAddr: "198.51.100.1"}
	cases := []struct {
		name  string
		edit  func(*signup.Input)
		field string
	}{
		{"no organisation", func(in *signup.Input) { in.OrgName = "" }, "org_name"},
		{"no slug", func(in *signup.Input) { in.Slug = "" }, "slug"},
		{"bad slug", func(in *signup.Input) { in.Slug = "-nope-" }, "slug"},
		{"duplicate slug", func(in *signup.Input) { in.Slug = existing.Slug }, "slug"},
		{"reserved admin", func(in *signup.Input) { in.Slug = "admin" }, "slug"},
		{"reserved api", func(in *signup.Input) { in.Slug = "api" }, "slug"},
		{"reserved static", func(in *signup.Input) { in.Slug = "static" }, "slug"},
		{"reserved signup", func(in *signup.Input) { in.Slug = "signup" }, "slug"},
		{"malformed e-mail", func(in *signup.Input) { in.Email = "not-an-email" }, "email"},
		{"e-mail with name", func(in *signup.Input) { in.Email = "Bob <bob@example.com>" }, "email"},
		{"short password", func(in *signup.Input) { in.Password = "short" }, "password"},
	}
	for i, c := range cases {
		in := good
		in.Email = "owner" + string(rune('a'+i)) + "@badinput.example" // stay under the per-e-mail limit
		c.edit(&in)
		_, err := b.svc.Submit(ctx, br, in)
		if f := fields(t, err); f[c.field] == "" {
			t.Errorf("%s: errors %v, want one for %s", c.name, f, c.field)
		}
	}
	var n int64
	b.db.App.Model(&signup.Signup{}).Where("brand_id = ?", br.ID).Count(&n)
	var mails int64
	b.db.App.Model(&mail.Queued{}).Where("kind = 'signup.verify' AND to_addr LIKE ?", "%@badinput.example").Count(&mails)
	if n != 0 || mails != 0 {
		t.Fatalf("refused signups left %d rows and %d e-mails", n, mails)
	}
	// Live check agrees.
	for slug, want := range map[string]string{"admin": signup.SlugReserved, existing.Slug: signup.SlugTaken, good.Slug: signup.SlugAvailable, "Bad Slug": signup.SlugInvalid} {
		if got, msg, err := b.svc.SlugStatus(ctx, slug); err != nil || got != want || msg == "" {
			t.Errorf("SlugStatus(%q) = %q %q %v, want %q", slug, got, msg, err, want)
		}
	}
}

func TestHoneypotStoresNothing(t *testing.T) {
	b := setup(t)
	br := b.brand(t, signup.ApprovalAutomatic)
	in := signup.Input{OrgName: "Bot Co", Slug: slugOf(t, "bot"), Email: "bot@honeypot.example", Password: password, Honeypot: "http://spam.example", RemoteAddr: "203.0.113.9"}
	if _, err := b.svc.Submit(context.Background(), br, in); !errors.Is(err, signup.ErrHoneypot) {
		t.Fatalf("honeypot: %v", err)
	}
	var attempts int64
	b.db.App.Table("tenantry.signup_attempts").Where("remote_addr = ?", in.RemoteAddr).Count(&attempts)
	if countSignups(t, b.db, in.Email) != 0 || attempts != 0 {
		t.Fatal("a honeypot submission was stored")
	}
	in.Honeypot = ""
	if _, err := b.svc.Submit(context.Background(), br, in); err != nil {
		t.Fatalf("the same input without the honeypot: %v", err)
	}
}

func TestRateLimits(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	br := b.brand(t, signup.ApprovalAutomatic)
	// Per e-mail: MaxPerEmail submissions (valid or not) within the window, then refused.
	for i := 0; i < signup.MaxPerEmail; i++ {
		in := signup.Input{OrgName: "Rate Co", Slug: slugOf(t, "e"+string(rune('a'+i))), Email: "same@rate.example", Password: password, RemoteAddr: "192.0.2." + string(rune('1'+i))}
		if _, err := b.svc.Submit(ctx, br, in); err != nil {
			t.Fatalf("submission %d: %v", i+1, err)
		}
	}
	in := signup.Input{OrgName: "Rate Co", Slug: slugOf(t, "ez"), Email: "same@rate.example", Password: password, RemoteAddr: "192.0.2.99"}
	var limited *signup.RateLimitedError
	if _, err := b.svc.Submit(ctx, br, in); !errors.As(err, &limited) || limited.RetryAfter <= 0 || limited.RetryAfter > signup.RateWindow {
		t.Fatalf("per e-mail: %v", err)
	}
	// Per address: MaxPerAddr from one address, whatever the e-mail, even invalid ones.
	for i := 0; i < signup.MaxPerAddr; i++ {
		in := signup.Input{OrgName: "", Slug: "x", Email: "a" + string(rune('a'+i)) + "@addr.example", Password: password, RemoteAddr: "192.0.2.200"}
		if _, err := b.svc.Submit(ctx, br, in); !errors.Is(err, validation.ErrInvalid) {
			t.Fatalf("submission %d from the address: %v", i+1, err)
		}
	}
	in = signup.Input{OrgName: "Fresh Co", Slug: slugOf(t, "fresh"), Email: "fresh@addr.example", Password: password, RemoteAddr: "192.0.2.200"}
	if _, err := b.svc.Submit(ctx, br, in); !errors.As(err, &limited) {
		t.Fatalf("per address: %v", err)
	}
	if countSignups(t, b.db, in.Email) != 0 {
		t.Fatal("a rate-limited signup was stored")
	}
	// After the window, allowed again.
	b.svc.SetClock(func() time.Time { return time.Now().UTC().Add(signup.RateWindow + time.Minute) })
	if _, err := b.svc.Submit(ctx, br, in); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestVerificationLinkIsSingleUseAndExpires(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	br := b.brand(t, signup.ApprovalHeld)
	in := signup.Input{OrgName: "Verify & Co", Slug: slugOf(t, "v"), Email: "owner@verify.example", Password: password, RemoteAddr: "198.51.100.50"}
	su, err := b.svc.Submit(ctx, br, in)
	if err != nil {
		t.Fatal(err)
	}
	if su.State != signup.StateUnverified || su.PasswordHash == "" || strings.Contains(su.PasswordHash, password) {
		t.Fatalf("signup %+v", su)
	}
	q := outbox(t, b.db, "signup.verify", in.Email)
	if q.TenantID == nil || *q.TenantID != *br.TenantID || !strings.Contains(q.HTMLBody, "#b45309") || !strings.Contains(q.HTMLBody, "Reseller Cloud") ||
		!strings.Contains(q.Subject, "Reseller Cloud") || !strings.Contains(q.TextBody, "https://tenantry.test/signup/verify/") {
		t.Fatalf("verification e-mail not branded: %+v", q)
	}
	if strings.Contains(q.HTMLBody, "Verify & Co") {
		t.Error("organisation name not escaped in the HTML e-mail")
	}
	token := tokenFrom(t, q)
	if _, err := b.svc.Verify(ctx, token+"x"); !errors.Is(err, signup.ErrLinkUnknown) {
		t.Fatalf("wrong token: %v", err)
	}
	got, err := b.svc.Verify(ctx, token)
	if err != nil || got.State != signup.StateHeld || got.VerifiedAt == nil {
		t.Fatalf("verify: %+v, %v", got, err)
	}
	if _, err := b.svc.Verify(ctx, token); !errors.Is(err, signup.ErrLinkUsed) {
		t.Fatalf("second use: %v", err)
	}
	// A held signup keeps its slug from others.
	if st, _, _ := b.svc.SlugStatus(ctx, in.Slug); st != signup.SlugTaken {
		t.Errorf("slug of a held signup is %s", st)
	}

	// Expiry: a second signup whose link is used after VerifyTTL.
	in2 := signup.Input{OrgName: "Late Co", Slug: slugOf(t, "late"), Email: "late@verify.example", Password: password, RemoteAddr: "198.51.100.51"}
	if _, err := b.svc.Submit(ctx, br, in2); err != nil {
		t.Fatal(err)
	}
	token2 := tokenFrom(t, outbox(t, b.db, "signup.verify", in2.Email))
	b.svc.SetClock(func() time.Time { return time.Now().UTC().Add(signup.VerifyTTL + time.Second) })
	if _, err := b.svc.Verify(ctx, token2); !errors.Is(err, signup.ErrLinkExpired) {
		t.Fatalf("expired link: %v", err)
	}
	var late signup.Signup
	b.db.App.Where("email = ?", in2.Email).Take(&late)
	if late.State != signup.StateUnverified || late.VerifiedAt != nil {
		t.Fatalf("an expired link changed the signup: %+v", late)
	}
	// A week after the link expired, the periodic job forgets the signup; the verified one stays.
	b.svc.SetClock(func() time.Time { return time.Now().UTC().Add(signup.VerifyTTL + 8*24*time.Hour) })
	if _, err := b.svc.FinishAll(ctx); err != nil {
		t.Fatal(err)
	}
	if countSignups(t, b.db, in2.Email) != 0 || countSignups(t, b.db, in.Email) != 1 {
		t.Fatal("expired unverified signup not pruned, or a verified one pruned")
	}
}

func TestApprovalQueue(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	br := b.brand(t, signup.ApprovalHeld)
	in := signup.Input{OrgName: "Queue Co", Slug: slugOf(t, "q"), Email: "owner@queue.example", Password: password, RemoteAddr: "198.51.100.60"}
	if _, err := b.svc.Submit(ctx, br, in); err != nil {
		t.Fatal(err)
	}
	// Unverified signups are not in the queue.
	items, total, err := b.svc.List(ctx, signup.Queue{State: signup.StateHeld, Search: "Queue Co"})
	if err != nil || total != 0 {
		t.Fatalf("unverified signup queued: %d %v", total, err)
	}
	su, err := b.svc.Verify(ctx, tokenFrom(t, outbox(t, b.db, "signup.verify", in.Email)))
	if err != nil {
		t.Fatal(err)
	}
	items, total, err = b.svc.List(ctx, signup.Queue{State: signup.StateHeld, Search: "queue.example"})
	if err != nil || total != 1 || items[0].ID != su.ID || items[0].BrandName != "Reseller Cloud" {
		t.Fatalf("queue: %+v %d %v", items, total, err)
	}
	if _, err := b.svc.Reject(ctx, "admin@platform.example", su.ID, "   "); fields(t, err)["reason"] == "" {
		t.Fatal("reject without a reason accepted")
	}
	rej, err := b.svc.Reject(ctx, "admin@platform.example", su.ID, "We only serve dental practices.")
	if err != nil || rej.State != signup.StateRejected {
		t.Fatalf("reject: %+v %v", rej, err)
	}
	q := outbox(t, b.db, "signup.rejected", in.Email)
	if !strings.Contains(q.TextBody, "We only serve dental practices.") || !strings.Contains(q.HTMLBody, "#b45309") {
		t.Fatalf("rejection e-mail: %+v", q)
	}
	if _, err := b.svc.Reject(ctx, "admin@platform.example", su.ID, "again"); !errors.Is(err, signup.ErrState) {
		t.Fatalf("second reject: %v", err)
	}
	if _, err := b.svc.Approve(ctx, "admin@platform.example", su.ID); !errors.Is(err, signup.ErrState) {
		t.Fatalf("approve a rejected signup: %v", err)
	}
	// The slug is free again.
	if st, _, _ := b.svc.SlugStatus(ctx, in.Slug); st != signup.SlugAvailable {
		t.Errorf("slug of a rejected signup is %s", st)
	}
}

func TestTenantLookInheritsFromParentAndBrand(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	parent := b.tenant(t, "parent", "")
	child := b.tenant(t, "child", parent.Slug)
	grandchild := b.tenant(t, "grand", child.Slug)
	set := settings.NewService(b.db.App, b.tenants)

	// Nothing set, no brand: the defaults and the tenant's own name.
	l, err := b.svc.TenantLook(ctx, child)
	if err != nil || l.Name != child.Name || l.Primary != "#4f46e5" {
		t.Fatalf("default look %+v %v", l, err)
	}
	// The parent's reseller brand colours its children.
	if _, err := b.svc.CreateBrand(ctx, "test", signup.BrandInput{Slug: slugOf(t, "pb"), DisplayName: "Parent Cloud", PrimaryColour: "#b45309",
		AccentColour: "#0f766e", PlanKey: "starter", Approval: signup.ApprovalAutomatic, TenantSlug: parent.Slug}); err != nil {
		t.Fatal(err)
	}
	if l, err = b.svc.TenantLook(ctx, grandchild); err != nil || l.Primary != "#b45309" || l.Accent != "#0f766e" || l.Name != grandchild.Name {
		t.Fatalf("look from the parent's brand %+v %v", l, err)
	}
	// The parent's branding setting wins over its brand, and is inherited.
	if _, err := set.Set(ctx, "test", &parent, "branding.primary_colour", "#123456", false); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Set(ctx, "test", &parent, "branding.name", "Parent Portal", false); err != nil {
		t.Fatal(err)
	}
	if l, err = b.svc.TenantLook(ctx, child); err != nil || l.Primary != "#123456" || l.Name != "Parent Portal" {
		t.Fatalf("look inherited from the parent's settings %+v %v", l, err)
	}
	// A brand without its own logo shows its owner's branding logo, on its pages and e-mails.
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 4, 2))); err != nil {
		t.Fatal(err)
	}
	logoID, err := settings.StoreImage(b.db.App, "test", "branding.logo", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Set(ctx, "test", &parent, "branding.logo", logoID, false); err != nil {
		t.Fatal(err)
	}
	pb, err := b.svc.BrandBySlug(ctx, slugOf(t, "pb"))
	if err != nil {
		t.Fatal(err)
	}
	if bl, err := b.svc.LookOf(ctx, pb); err != nil || bl.LogoURL != settings.ImageURL(logoID) || bl.Name != "Parent Cloud" {
		t.Fatalf("brand look with the owner's logo %+v %v", bl, err)
	}
	if l, err = b.svc.TenantLook(ctx, grandchild); err != nil || l.LogoURL != settings.ImageURL(logoID) {
		t.Fatalf("logo not inherited %+v %v", l, err)
	}
	// The child's own override wins.
	if _, err := set.Set(ctx, "test", &child, "branding.primary_colour", "#abcdef", false); err != nil {
		t.Fatal(err)
	}
	if l, err = b.svc.TenantLook(ctx, grandchild); err != nil || l.Primary != "#abcdef" {
		t.Fatalf("look with the child's override %+v %v", l, err)
	}
}
