package settings_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		key, raw, want string
		ok             bool
	}{
		{"flags.sso", "on", "true", true},
		{"flags.sso", "maybe", "", false},
		{"security.password_min_length", " 12 ", "12", true},
		{"security.password_min_length", "9", "", false},
		{"security.password_min_length", "twelve", "", false},
		{"security.session_timeout", "90m", "1h30m", true},
		{"security.session_timeout", "8h", "8h", true},
		{"security.session_timeout", "1m", "", false},
		{"security.session_timeout", "soon", "", false},
		{"branding.primary_colour", "#AABBCC", "#aabbcc", true},
		{"branding.primary_colour", "red", "", false},
		{"notify.channel", "webhook", "webhook", true},
		{"notify.channel", "pigeon", "", false},
	} {
		k, _ := settings.Lookup(tc.key)
		got, err := k.Normalize(tc.raw)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s %q = %q, %v; want %q ok=%v", tc.key, tc.raw, got, err, tc.want, tc.ok)
		}
	}
}

// The cascade, through a platform, three levels of tenants, overrides, locks and resets.
func TestResolution(t *testing.T) {
	d := dbtest.Open(t)
	ts := tenant.NewService(d, dbtest.Logger(t))
	s := settings.NewService(d.App, ts)
	ctx := context.Background()
	get := func(slug string) *tenant.Tenant {
		tn, err := ts.Get(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		return &tn
	}
	for _, n := range [][2]string{{"res-root", ""}, {"res-mid", "res-root"}, {"res-leaf", "res-mid"}, {"res-other", ""}} {
		if _, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: n[0], Name: n[0], PlanKey: "free", ParentSlug: n[1]}); err != nil {
			t.Fatal(err)
		}
	}
	root, mid, leaf, other := get("res-root"), get("res-mid"), get("res-leaf"), get("res-other")
	const key = "backup.retention_days"
	type want struct {
		value, kind, source string
		overridable         bool
	}
	check := func(step string, tn *tenant.Tenant, w want) {
		t.Helper()
		e, err := s.EffectiveOf(ctx, tn, key)
		if err != nil {
			t.Fatal(err)
		}
		if e.Value != w.value || e.Kind != w.kind || e.Source != w.source || e.Overridable() != w.overridable {
			t.Errorf("%s: got %q %s %q overridable=%v; want %q %s %q %v", step, e.Value, e.Kind, e.Source, e.Overridable(), w.value, w.kind, w.source, w.overridable)
		}
	}
	check("default", leaf, want{"30", settings.FromDefault, "default", true})

	steps := []struct {
		name  string
		at    *tenant.Tenant
		value string
		lock  bool
		reset bool
		leaf  want
		other want
	}{
		{"platform sets 60", nil, "60", false, false, want{"60", settings.FromPlatform, "set for the platform", true}, want{"60", settings.FromPlatform, "set for the platform", true}},
		{"root overrides 90", root, "90", false, false, want{"90", settings.FromAncestor, "inherited from res-root", true}, want{"60", settings.FromPlatform, "set for the platform", true}},
		{"leaf overrides 7", leaf, "7", false, false, want{"7", settings.FromTenant, "set on this tenant", true}, want{"60", settings.FromPlatform, "set for the platform", true}},
		{"mid locks 120", mid, "120", true, false, want{"120", settings.FromAncestor, "locked by res-mid", false}, want{"60", settings.FromPlatform, "set for the platform", true}},
		{"platform locks 365 over everyone", nil, "365", true, false, want{"365", settings.FromPlatform, "locked by the platform", false}, want{"365", settings.FromPlatform, "locked by the platform", false}},
		{"platform lock reset", nil, "", false, true, want{"120", settings.FromAncestor, "locked by res-mid", false}, want{"30", settings.FromDefault, "default", true}},
		{"mid lock reset: the leaf's own value returns", mid, "", false, true, want{"7", settings.FromTenant, "set on this tenant", true}, want{"30", settings.FromDefault, "default", true}},
	}
	for _, st := range steps {
		var err error
		if st.reset {
			_, err = s.Reset(ctx, "ops", st.at, key)
		} else {
			_, err = s.Set(ctx, "ops", st.at, key, st.value, st.lock)
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		check(st.name+" (leaf)", leaf, st.leaf)
		check(st.name+" (other)", other, st.other)
	}

	// Overriding a locked key is refused at the field and changes nothing.
	if _, err := s.Set(ctx, "ops", root, key, "45", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, "ops", leaf, key, "1", false); !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)["value"] == "" {
		t.Fatalf("override under a lock: %v", err)
	}
	check("after the refused override", leaf, want{"45", settings.FromAncestor, "locked by res-root", false})
	if _, err := s.Set(ctx, "ops", leaf, key, "100000", false); validation.Fields(err)["value"] == "" {
		t.Fatalf("out-of-range value accepted: %v", err)
	}
	if _, err := s.Set(ctx, "ops", leaf, "no.such.key", "1", false); !errors.Is(err, settings.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}

	rows, err := s.Diff(ctx, *leaf, *other)
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for _, r := range rows {
		if r.Different {
			diff++
			if r.Key.Key != key || r.A.Value != "45" || r.B.Value != "30" {
				t.Errorf("unexpected difference %s: %q vs %q", r.Key.Key, r.A.Value, r.B.Value)
			}
		}
	}
	if diff != 1 {
		t.Fatalf("%d differences, want 1", diff)
	}
}
