package templates_test

import (
	"context"
	"testing"

	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/validation"
)

// The template level of settings resolution: default → platform → template → ancestors (each
// preceded by its own template's compliance locks) → tenant, with locks at several depths.
func TestTemplateLevelResolution(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	std := base("Standard")
	std.Settings["backup.retention_days"] = "45"
	std.Settings["notify.channel"] = "webhook"
	standard, err := b.s.Create(ctx, "ops", std)
	if err != nil {
		t.Fatal(err)
	}
	hip := base("HIPAA Clinic")
	hip.Compliance = "hipaa"
	hip.Settings["security.audit_retention_days"] = "2500"
	hipaa, err := b.s.Create(ctx, "ops", hip)
	if err != nil {
		t.Fatal(err)
	}
	root := b.tenant(t, "r-root", "")      // Standard
	mid := b.tenant(t, "r-mid", "r-root")  // HIPAA Clinic
	leaf := b.tenant(t, "r-leaf", "r-mid") // Standard, under a HIPAA tenant
	b.tenant(t, "r-none", "r-root")        // no template
	b.apply(t, root.ID, standard.Latest)
	b.apply(t, mid.ID, hipaa.Latest)
	b.apply(t, leaf.ID, standard.Latest)

	ss := settings.NewService(b.d.App, b.ts)
	set := func(slug, key, v string, lock bool) {
		t.Helper()
		if slug == "" {
			if _, err := ss.Set(ctx, "ops", nil, key, v, lock); err != nil {
				t.Fatal(err)
			}
			return
		}
		x, _ := b.ts.Get(ctx, slug)
		if _, err := ss.Set(ctx, "ops", &x, key, v, lock); err != nil {
			t.Fatal(err)
		}
	}
	set("", "backup.retention_days", "60", false) // platform, unlocked: templates win over it
	set("", "flags.beta_reports", "false", true)  // platform lock beats every template
	set("r-root", "notify.channel", "in_app", false)
	set("r-mid", "branding.primary_colour", "#abcdef", false)

	const (
		hipaaLock = "locked by template HIPAA Clinic v1 (HIPAA)"
	)
	for _, tc := range []struct {
		slug, key   string
		value, kind string
		source      string
		overridable bool
		reason      bool
	}{
		{"r-root", "flags.sso", "true", settings.FromTemplate, "template Standard v1", true, false},
		{"r-root", "backup.retention_days", "45", settings.FromTemplate, "template Standard v1", true, false},
		{"r-none", "backup.retention_days", "60", settings.FromPlatform, "set for the platform", true, false},
		{"r-root", "flags.beta_reports", "false", settings.FromPlatform, "locked by the platform", false, false},
		{"r-root", "notify.channel", "in_app", settings.FromTenant, "set on this tenant", true, false},
		{"r-leaf", "notify.channel", "in_app", settings.FromAncestor, "inherited from r-root", true, false}, // ancestors beat the template
		{"r-none", "notify.channel", "in_app", settings.FromAncestor, "inherited from r-root", true, false},
		{"r-mid", "security.mfa_required", "true", settings.FromTemplate, hipaaLock, false, true},
		{"r-mid", "security.audit_retention_days", "2500", settings.FromTemplate, hipaaLock, false, true},
		{"r-leaf", "security.mfa_required", "true", settings.FromTemplate, hipaaLock, false, true}, // the parent's compliance lock binds
		{"r-leaf", "branding.primary_colour", "#abcdef", settings.FromAncestor, "inherited from r-mid", true, false},
		{"r-root", "security.mfa_required", "false", settings.FromDefault, "default", true, false},
		{"r-none", "flags.sso", "false", settings.FromDefault, "default", true, false},
	} {
		x, _ := b.ts.Get(ctx, tc.slug)
		e, err := ss.EffectiveOf(ctx, &x, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if e.Value != tc.value || e.Kind != tc.kind || e.Source != tc.source || e.Overridable() != tc.overridable || (e.Reason != "") != tc.reason {
			t.Errorf("%s %s: got %q %s %q overridable=%v reason=%q; want %q %s %q %v", tc.slug, tc.key, e.Value, e.Kind, e.Source, e.Overridable(), e.Reason, tc.value, tc.kind, tc.source, tc.overridable)
		}
	}
	// Overriding a compliance lock is refused at the field, on the tenant and below it.
	for _, slug := range []string{"r-mid", "r-leaf"} {
		x, _ := b.ts.Get(ctx, slug)
		_, err := ss.Set(ctx, "ops", &x, "security.mfa_required", "off", false)
		if msg := validation.Fields(err)["value"]; msg == "" {
			t.Errorf("%s: override of a compliance lock: %v", slug, err)
		}
	}
	// A newer version changes nothing until it is applied.
	hip.Settings["security.audit_retention_days"] = "3000"
	v2, err := b.s.Edit(ctx, "ops", hipaa.ID, hip)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := b.ts.Get(ctx, "r-mid")
	if e, _ := ss.EffectiveOf(ctx, &x, "security.audit_retention_days"); e.Value != "2500" {
		t.Fatalf("unapplied version in effect: %q", e.Value)
	}
	b.apply(t, mid.ID, v2)
	if e, _ := ss.EffectiveOf(ctx, &x, "security.audit_retention_days"); e.Value != "3000" || e.Source != "locked by template HIPAA Clinic v2 (HIPAA)" {
		t.Fatalf("after applying v2: %q %q", e.Value, e.Source)
	}
}
