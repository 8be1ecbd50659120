package templates_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type bundle struct {
	d  *db.DB
	s  *templates.Service
	ts *tenant.Service
}

func setup(t *testing.T) *bundle {
	d := dbtest.NewDatabase(t) // each test counts what it made
	return &bundle{d: d, s: templates.NewService(d), ts: tenant.NewService(d, dbtest.Logger(t))}
}

func base(name string) templates.Input {
	return templates.Input{Name: name, TenantType: "company", Industry: "general", Compliance: "none", PlanKey: "starter",
		SeedDataset: "empty", Quotas: map[string]templates.QuotaLimit{"seats": {Soft: 20, Hard: 25}},
		Settings: map[string]string{"flags.sso": "on", "branding.primary_colour": "#112233"}}
}

func (b *bundle) tenant(t *testing.T, slug, parent string) tenant.Tenant {
	t.Helper()
	tn, err := b.ts.Create(context.Background(), "test", tenant.NewTenant{Slug: slug, Name: slug, PlanKey: "free", ParentSlug: parent})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (b *bundle) apply(t *testing.T, tenantID int64, v templates.Version) {
	t.Helper()
	if err := b.d.App.Transaction(func(tx *gorm.DB) error { return b.s.Apply(tx, tenantID, v, "test") }); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) audits(t *testing.T, action string) int {
	t.Helper()
	var n int64
	if err := b.d.App.Table("tenantry.audit_events").Where("action = ?", action).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// Create makes version 1; every edit that changes something adds a version, the old ones stay
// as they were; an edit that changes nothing adds none.
func TestVersioning(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tp, err := b.s.Create(ctx, "ops", base("Standard SaaS"))
	if err != nil {
		t.Fatal(err)
	}
	if tp.Slug != "standard-saas" || tp.Latest.Number != 1 || tp.Latest.Settings["flags.sso"] != "true" || tp.Latest.Quotas["seats"].Hard != 25 {
		t.Fatalf("created %+v", tp)
	}
	in := base("Standard SaaS")
	in.PlanKey, in.Note = "professional", "bigger plan"
	in.Settings["flags.sso"] = "off"
	v2, err := b.s.Edit(ctx, "ops", tp.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Number != 2 || v2.PlanKey != "professional" || v2.Settings["flags.sso"] != "false" || v2.Note != "bigger plan" {
		t.Fatalf("v2 %+v", v2)
	}
	v1, err := b.s.Version(ctx, tp.Latest.ID)
	if err != nil || v1.PlanKey != "starter" || v1.Settings["flags.sso"] != "true" {
		t.Fatalf("v1 changed by the edit: %+v %v", v1, err)
	}
	same, err := b.s.Edit(ctx, "ops", tp.ID, in)
	if err != nil || same.ID != v2.ID {
		t.Fatalf("unchanged edit made a version: %+v %v", same, err)
	}
	vs, err := b.s.Versions(ctx, tp.ID)
	if err != nil || len(vs) != 2 || vs[0].Number != 2 || vs[1].Number != 1 {
		t.Fatalf("versions %+v %v", vs, err)
	}
	latest, err := b.s.Latest(ctx, tp.ID)
	if err != nil || latest.ID != v2.ID {
		t.Fatalf("latest %+v %v", latest, err)
	}
	if n := b.audits(t, "template.edited"); n != 1 {
		t.Fatalf("%d template.edited events, want 1", n)
	}
	// Versions are immutable for the app role.
	if err := b.d.App.Exec("UPDATE tenantry.template_versions SET plan_key = 'free' WHERE id = ?", v1.ID).Error; err == nil {
		t.Fatal("the app role may change a version")
	}
}

func TestValidation(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if _, err := b.s.Create(ctx, "ops", base("Taken")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*templates.Input)
		field string
	}{
		{"empty name", func(in *templates.Input) { in.Name = " " }, "name"},
		{"duplicate name", func(in *templates.Input) { in.Name = "TAKEN" }, "name"},
		{"bad slug", func(in *templates.Input) { in.Slug = "Not a slug!" }, "slug"},
		{"unknown plan", func(in *templates.Input) { in.PlanKey = "platinum" }, "plan"},
		{"bad compliance", func(in *templates.Input) { in.Compliance = "iso" }, "compliance"},
		{"bad type", func(in *templates.Input) { in.TenantType = "x" }, "tenant_type"},
		{"bad dataset", func(in *templates.Input) { in.SeedDataset = "everything" }, "seed_dataset"},
		{"soft above hard", func(in *templates.Input) { in.Quotas["seats"] = templates.QuotaLimit{Soft: 9, Hard: 3} }, "quota.seats"},
		{"unknown dimension", func(in *templates.Input) { in.Quotas["unicorns"] = templates.QuotaLimit{Soft: 1, Hard: 1} }, "quota.unicorns"},
		{"bad colour", func(in *templates.Input) { in.Settings["branding.primary_colour"] = "red" }, "setting.branding.primary_colour"},
		{"bad duration", func(in *templates.Input) { in.Settings["security.session_timeout"] = "forever" }, "setting.security.session_timeout"},
		{"unknown key", func(in *templates.Input) { in.Settings["no.such"] = "1" }, "setting.no.such"},
		{"secret in template", func(in *templates.Input) { in.Settings["integrations.webhook_secret"] = "s3cret" }, "setting.integrations.webhook_secret"},
		{"not an image", func(in *templates.Input) { in.Logo = []byte("<svg xmlns='http://www.w3.org/2000/svg'/>") }, "logo"},
	} {
		in := base("Fresh")
		tc.edit(&in)
		_, err := b.s.Create(ctx, "ops", in)
		if !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)[tc.field] == "" {
			t.Errorf("%s: %v, want an error at %s", tc.name, err, tc.field)
		}
	}
	res, err := b.s.List(ctx, templates.ListQuery{Status: "all"})
	if err != nil || res.Total != 1 {
		t.Fatalf("refused creates stored something: %d %v", res.Total, err)
	}
}

// A compliance profile adds its settings locked, and refuses weaker values at their field.
func TestComplianceRefusesWeakerValues(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		profile, key, value string
		ok                  bool
	}{
		{"hipaa", "security.mfa_required", "off", false},
		{"hipaa", "security.mfa_required", "on", true},
		{"hipaa", "security.audit_retention_days", "365", false},
		{"hipaa", "security.audit_retention_days", "3000", true},
		{"pci-dss", "security.password_min_length", "10", false},
		{"pci-dss", "security.password_min_length", "16", true},
		{"pci-dss", "security.session_timeout", "30m", false},
		{"pci-dss", "security.session_timeout", "10m", true},
		{"soc2", "security.mfa_required", "false", false},
		{"gdpr", "security.data_residency", "us", false},
		{"gdpr", "backup.retention_days", "365", false},
		{"gdpr", "backup.retention_days", "30", true},
		{"none", "security.mfa_required", "off", true},
	} {
		in := base(tc.profile + " " + tc.key + " " + tc.value)
		in.Compliance = tc.profile
		in.Settings[tc.key] = tc.value
		tp, err := b.s.Create(ctx, "ops", in)
		if tc.ok != (err == nil) {
			t.Errorf("%s %s=%s: %v", tc.profile, tc.key, tc.value, err)
			continue
		}
		if !tc.ok {
			msg := validation.Fields(err)[templates.SettingField(tc.key)]
			if !strings.Contains(msg, templates.ComplianceLabel(tc.profile)) {
				t.Errorf("%s %s: message %q does not explain the profile", tc.profile, tc.key, msg)
			}
			continue
		}
		for _, r := range templates.Requirements[tc.profile] {
			if tp.Latest.Locks[r.Key] == "" || !r.Satisfied(tp.Latest.Settings[r.Key]) {
				t.Errorf("%s: %s not locked to a compliant value: %q", tc.profile, r.Key, tp.Latest.Settings[r.Key])
			}
		}
	}
	tp, err := b.s.BySlugOrName(ctx, "hipaa security.mfa_required on")
	if err != nil || tp.Latest.Settings["security.audit_retention_days"] != "2190" {
		t.Fatalf("implied minimum not filled in: %+v %v", tp.Latest.Settings, err)
	}
}

func TestCloneAndArchive(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	in := base("HIPAA Clinic")
	in.Compliance = "hipaa"
	src, err := b.s.Create(ctx, "ops", in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Clone(ctx, "ops", src.ID, "HIPAA Clinic", ""); validation.Fields(err)["name"] == "" {
		t.Fatalf("clone under the same name: %v", err)
	}
	cl, err := b.s.Clone(ctx, "ops", src.ID, "HIPAA Dental", "")
	if err != nil {
		t.Fatal(err)
	}
	if cl.ID == src.ID || cl.Latest.Number != 1 || cl.Latest.Compliance != "hipaa" || cl.Latest.PlanKey != src.Latest.PlanKey ||
		cl.Latest.Settings["security.mfa_required"] != "true" || cl.Latest.Quotas["seats"] != src.Latest.Quotas["seats"] ||
		!strings.Contains(cl.Latest.Note, "HIPAA Clinic v1") {
		t.Fatalf("clone %+v", cl.Latest)
	}
	if _, err := b.s.Archive(ctx, "ops", src.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.BySlugOrName(ctx, "hipaa-clinic"); !errors.Is(err, templates.ErrArchived) {
		t.Fatalf("archived template offered: %v", err)
	}
	if _, err := b.s.BySlugOrName(ctx, "hipaa dental"); err != nil {
		t.Fatalf("by name: %v", err)
	}
	if _, err := b.s.BySlugOrName(ctx, "nope"); !errors.Is(err, templates.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	for status, want := range map[string]string{"": "HIPAA Dental", "archived": "HIPAA Clinic"} {
		res, err := b.s.List(ctx, templates.ListQuery{Status: status})
		if err != nil || len(res.Items) != 1 || res.Items[0].Name != want || res.Items[0].Latest.Number != 1 {
			t.Errorf("list %q: %+v %v", status, res.Items, err)
		}
	}
	if res, _ := b.s.List(ctx, templates.ListQuery{Status: "all", Search: "dent"}); res.Total != 1 {
		t.Errorf("search found %d", res.Total)
	}
	if _, err := b.s.Archive(ctx, "ops", src.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.BySlugOrName(ctx, "hipaa-clinic"); err != nil {
		t.Fatalf("restored template: %v", err)
	}
	if b.audits(t, "template.archived") != 1 || b.audits(t, "template.restored") != 1 || b.audits(t, "template.cloned") != 1 {
		t.Fatal("archive, restore and clone are not each audited once")
	}
}

// Apply sets plan, limits and the version; run again it changes and records nothing.
func TestApplyIdempotent(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tp, err := b.s.Create(ctx, "ops", base("Apply Me"))
	if err != nil {
		t.Fatal(err)
	}
	tn := b.tenant(t, "apply-one", "")
	q := quota.NewService(b.d)
	if _, err := q.Consume(ctx, tn.ID, "seats", 2, "k1"); err != nil { // a row with usage before Apply
		t.Fatal(err)
	}
	for range 2 {
		b.apply(t, tn.ID, tp.Latest)
	}
	if n := b.audits(t, "template.applied"); n != 1 {
		t.Fatalf("%d template.applied events, want 1", n)
	}
	got, _ := b.ts.Get(ctx, "apply-one")
	if got.PlanKey != "starter" {
		t.Fatalf("plan %s", got.PlanKey)
	}
	l, err := q.Limit(ctx, tn.ID, "seats")
	if err != nil || l.Soft != 20 || l.Hard != 25 || l.Used != 2 {
		t.Fatalf("seats %+v %v", l, err)
	}
	l, _ = q.Limit(ctx, tn.ID, "projects")
	if l.Hard != 10 { // left out of the template: the starter plan's default
		t.Fatalf("projects %+v", l)
	}
	e, err := settings.NewService(b.d.App, b.ts).EffectiveOf(ctx, &got, "flags.sso")
	if err != nil || e.Value != "true" || e.Kind != settings.FromTemplate || e.Source != "template Apply Me v1" {
		t.Fatalf("flag %+v %v", e, err)
	}
	if err := b.d.App.Transaction(func(tx *gorm.DB) error { return b.s.Apply(tx, 987654, tp.Latest, "test") }); !errors.Is(err, templates.ErrTenantNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	// A rolled-back transaction leaves nothing behind.
	other := b.tenant(t, "apply-two", "")
	_ = b.d.App.Transaction(func(tx *gorm.DB) error {
		if err := b.s.Apply(tx, other.ID, tp.Latest, "test"); err != nil {
			return err
		}
		return errors.New("crash")
	})
	if d, _ := b.s.Drift(ctx, other.ID); d.Template != nil {
		t.Fatal("a rolled-back Apply recorded the version")
	}
}

func TestDrift(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tp, err := b.s.Create(ctx, "ops", base("Drifty"))
	if err != nil {
		t.Fatal(err)
	}
	tn := b.tenant(t, "drift-one", "")
	plain := b.tenant(t, "drift-none", "")
	if d, err := b.s.Drift(ctx, plain.ID); err != nil || d.Template != nil || d.InSync() {
		t.Fatalf("no template: %+v %v", d, err)
	}
	b.apply(t, tn.ID, tp.Latest)
	d, err := b.s.Drift(ctx, tn.ID)
	if err != nil || d.Template == nil || d.Behind || len(d.Overrides) != 0 || !d.InSync() {
		t.Fatalf("fresh tenant drifts: %+v %v", d, err)
	}
	in := base("Drifty")
	in.Settings["flags.sso"] = "off"
	in.Quotas["seats"] = templates.QuotaLimit{Soft: 30, Hard: 40}
	if _, err := b.s.Edit(ctx, "ops", tp.ID, in); err != nil {
		t.Fatal(err)
	}
	if _, err := quota.NewService(b.d).SetLimit(ctx, "ops", tn.ID, "seats", 5, 6); err != nil {
		t.Fatal(err)
	}
	got, _ := b.ts.Get(ctx, tn.Slug)
	if _, err := settings.NewService(b.d.App, b.ts).Set(ctx, "ops", &got, "branding.primary_colour", "#000000", false); err != nil {
		t.Fatal(err)
	}
	d, err = b.s.Drift(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Behind || d.From.Number != 1 || d.Latest.Number != 2 {
		t.Fatalf("versions %+v", d)
	}
	fields := func(cs []templates.Change) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Field+"="+c.From+"→"+c.To)
		}
		return strings.Join(out, " ")
	}
	if got := fields(d.Upgrades); got != "quota.seats=20→30 quota.seats=25→40 setting.flags.sso=true→false" {
		t.Errorf("upgrades: %s", got)
	}
	if got := fields(d.Overrides); got != "quota.seats=20→5 quota.seats=25→6 setting.branding.primary_colour=#112233→#000000" {
		t.Errorf("overrides: %s", got)
	}
	if d.Overrides[2].Source != "set on this tenant" {
		t.Errorf("source %q", d.Overrides[2].Source)
	}
}

func TestListPages(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, n := range []string{"Gamma", "alpha", "Beta"} {
		if _, err := b.s.Create(ctx, "ops", base(n)); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for page := 1; page <= 2; page++ {
		res, err := b.s.List(ctx, templates.ListQuery{Page: page, PerPage: 2})
		if err != nil || res.Total != 3 || res.Pages() != 2 {
			t.Fatalf("page %d: %d total, %d pages, %v", page, res.Total, res.Pages(), err)
		}
		for _, it := range res.Items {
			names = append(names, it.Name)
		}
	}
	if strings.Join(names, ",") != "alpha,Beta,Gamma" {
		t.Fatalf("order %v", names)
	}
}
