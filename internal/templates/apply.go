package templates

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
)

// Apply makes tenant tenantID follow template version v, inside the caller's transaction tx
// (the provisioning workflow's "apply configuration" step; it also suits moving an existing
// tenant to a newer version). In that transaction it:
//
//   - locks the tenant row, and sets the tenant's plan to v.PlanKey and
//     tenants.template_version_id to v.ID. Recording the version is what applies the
//     template's settings: settings resolution reads the version's values (feature flags,
//     branding, overrides, compliance locks) as the "template" level, between the platform and
//     the tenant's ancestors. No per-tenant copy of the settings is written, so nothing can
//     drift half-applied;
//   - sets the tenant's soft and hard limit on every dimension v.Quotas names (upserting the
//     rows of tenantry.quota_limits that internal/quota enforces, keeping what was used);
//     dimensions v.Quotas leaves out keep the plan's defaults;
//   - records "template.applied" in the audit trail with the version and the limits.
//
// Apply is idempotent: when the tenant already has v's plan, version and limits it changes
// nothing and records nothing, so a workflow step may run it again after a crash or retry.
// It does not commit: the caller's transaction does. It returns ErrTenantNotFound for an
// unknown tenant, and refuses a zero Version.
func (s *Service) Apply(tx *gorm.DB, tenantID int64, v Version, actor string) error {
	if v.ID == 0 {
		return errors.New("templates: Apply needs a stored version")
	}
	var t struct {
		Slug              string
		PlanKey           string
		TemplateVersionID *int64
	}
	if err := tx.Raw("SELECT slug, plan_key, template_version_id FROM tenantry.tenants WHERE id = ? FOR UPDATE", tenantID).Scan(&t).Error; err != nil {
		return err
	}
	if t.Slug == "" {
		return ErrTenantNotFound
	}
	var limits []struct {
		Dimension string
		SoftLimit int64
		HardLimit int64
	}
	if err := tx.Raw("SELECT dimension, soft_limit, hard_limit FROM tenantry.quota_limits WHERE tenant_id = ?", tenantID).Scan(&limits).Error; err != nil {
		return err
	}
	have := map[string]QuotaLimit{}
	for _, l := range limits {
		have[l.Dimension] = QuotaLimit{Soft: l.SoftLimit, Hard: l.HardLimit}
	}
	changed := t.PlanKey != v.PlanKey || t.TemplateVersionID == nil || *t.TemplateVersionID != v.ID
	for dim, l := range v.Quotas {
		if h, ok := have[dim]; !ok || h != l {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := tx.Exec("UPDATE tenantry.tenants SET plan_key = ?, template_version_id = ?, updated_at = now() WHERE id = ?",
		v.PlanKey, v.ID, tenantID).Error; err != nil {
		return fmt.Errorf("templates: apply to tenant %d: %w", tenantID, err)
	}
	dims := slices.Sorted(maps.Keys(v.Quotas))
	for _, dim := range dims {
		l := v.Quotas[dim]
		if err := tx.Exec(`INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, dimension) DO UPDATE SET soft_limit = EXCLUDED.soft_limit, hard_limit = EXCLUDED.hard_limit, updated_at = now()`,
			tenantID, dim, l.Soft, l.Hard).Error; err != nil {
			return fmt.Errorf("templates: quota %s of tenant %d: %w", dim, tenantID, err)
		}
	}
	before := map[string]any{"plan": t.PlanKey}
	if t.TemplateVersionID != nil {
		before["template_version_id"] = *t.TemplateVersionID
	}
	return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "template.applied", Target: t.Slug,
		Detail: audit.Detail(map[string]any{"template": v.Label(), "template_version_id": v.ID, "before": before,
			"after": map[string]any{"plan": v.PlanKey, "quotas": v.Quotas}})})
}

// Change is one difference a drift report lists.
type Change struct {
	Field string // "plan", "quota.seats", "setting.flags.sso", "compliance", ...
	Label string // for people: "Plan", "Seats (hard limit)", "Single sign-on"
	From  string // the value in the version the tenant was made from
	To    string // the latest version's value, or the tenant's current value
	// Source says where the tenant's current value comes from (settings only).
	Source string
}

// DriftReport compares a tenant with its template.
type DriftReport struct {
	TenantID int64
	// Template is nil when the tenant was not made from a template; the rest is then empty.
	Template *Template
	From     Version // the version the tenant was made from
	Latest   Version // the template's latest version
	// Behind is true when the template has newer versions than the tenant's.
	Behind bool
	// Upgrades lists what changed between From and Latest.
	Upgrades []Change
	// Overrides lists where the tenant's current plan, limits or effective settings differ from
	// the values of From.
	Overrides []Change
}

// InSync reports whether the tenant matches its template's latest version exactly.
func (r DriftReport) InSync() bool {
	return r.Template != nil && !r.Behind && len(r.Overrides) == 0
}

func settingLabel(key string) string {
	if k, ok := settings.Lookup(key); ok {
		return k.Label
	}
	return key
}

func dimLabel(dim, which string) string { return dim + " (" + which + " limit)" }

// diffVersions lists what differs between a and b.
func diffVersions(a, b Version, dimName map[string]string) []Change {
	var out []Change
	add := func(field, label, x, y string) {
		if x != y {
			out = append(out, Change{Field: field, Label: label, From: x, To: y})
		}
	}
	add("name", "Name", a.Name, b.Name)
	add("tenant_type", "Tenant type", label(TenantTypes, a.TenantType), label(TenantTypes, b.TenantType))
	add("industry", "Industry", label(Industries, a.Industry), label(Industries, b.Industry))
	add("compliance", "Compliance profile", ComplianceLabel(a.Compliance), ComplianceLabel(b.Compliance))
	add("plan", "Default plan", a.PlanKey, b.PlanKey)
	add("seed_dataset", "Seed dataset", label(SeedDatasets, a.SeedDataset), label(SeedDatasets, b.SeedDataset))
	for _, dim := range slices.Sorted(maps.Keys(union(a.Quotas, b.Quotas))) {
		qa, qb := a.Quotas[dim], b.Quotas[dim]
		add(QuotaField(dim), dimLabel(dimName[dim], "soft"), quotaText(a.Quotas, dim, qa.Soft), quotaText(b.Quotas, dim, qb.Soft))
		add(QuotaField(dim), dimLabel(dimName[dim], "hard"), quotaText(a.Quotas, dim, qa.Hard), quotaText(b.Quotas, dim, qb.Hard))
	}
	for _, k := range settings.Catalogue {
		va, oka := a.Settings[k.Key]
		vb, okb := b.Settings[k.Key]
		if !oka {
			va = "(inherited)"
		}
		if !okb {
			vb = "(inherited)"
		}
		add(SettingField(k.Key), k.Label, va, vb)
	}
	return out
}

func union[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func quotaText(m map[string]QuotaLimit, dim string, n int64) string {
	if _, ok := m[dim]; !ok {
		return "(plan default)"
	}
	return strconv.FormatInt(n, 10)
}

// Drift compares tenant tenantID with its template: what changed between the version it was
// made from and the template's latest version, and where the tenant's current plan, quota
// limits and effective settings differ from the values of the version it was made from (an
// admin override on the tenant, a value inherited from an ancestor, a platform lock).
func (s *Service) Drift(ctx context.Context, tenantID int64) (DriftReport, error) {
	r := DriftReport{TenantID: tenantID}
	var tn tenant.Tenant
	if err := s.db.App.WithContext(ctx).Where("id = ?", tenantID).Take(&tn).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		return r, ErrTenantNotFound
	} else if err != nil {
		return r, err
	}
	var vid *int64
	if err := s.db.App.WithContext(ctx).Raw("SELECT template_version_id FROM tenantry.tenants WHERE id = ?", tenantID).Scan(&vid).Error; err != nil {
		return r, err
	}
	if vid == nil {
		return r, nil
	}
	from, err := s.Version(ctx, *vid)
	if err != nil {
		return r, err
	}
	t, err := s.Get(ctx, from.TemplateID)
	if err != nil {
		return r, err
	}
	r.Template, r.From, r.Latest = &t, from, t.Latest
	r.Behind = t.Latest.Number > from.Number
	dims, err := s.quotas.Dimensions(ctx)
	if err != nil {
		return r, err
	}
	dimName := map[string]string{}
	for _, d := range dims {
		dimName[d.Key] = d.Name
	}
	if r.Behind {
		r.Upgrades = diffVersions(from, t.Latest, dimName)
	}

	if tn.PlanKey != from.PlanKey {
		r.Overrides = append(r.Overrides, Change{Field: "plan", Label: "Plan", From: from.PlanKey, To: tn.PlanKey})
	}
	limits, err := s.quotas.Limits(ctx, tenantID)
	if err != nil {
		return r, err
	}
	for _, l := range limits {
		want, ok := from.Quotas[l.Dimension.Key]
		if !ok {
			continue
		}
		if l.Soft != want.Soft {
			r.Overrides = append(r.Overrides, Change{Field: QuotaField(l.Dimension.Key), Label: dimLabel(l.Dimension.Name, "soft"),
				From: strconv.FormatInt(want.Soft, 10), To: strconv.FormatInt(l.Soft, 10)})
		}
		if l.Hard != want.Hard {
			r.Overrides = append(r.Overrides, Change{Field: QuotaField(l.Dimension.Key), Label: dimLabel(l.Dimension.Name, "hard"),
				From: strconv.FormatInt(want.Hard, 10), To: strconv.FormatInt(l.Hard, 10)})
		}
	}
	eff, err := settings.NewService(s.db.App, s.tenant).Effective(ctx, &tn)
	if err != nil {
		return r, err
	}
	for _, e := range eff {
		want, ok := from.Settings[e.Key.Key]
		if !ok || e.Key.Type == settings.Secret || e.Value == want {
			continue
		}
		r.Overrides = append(r.Overrides, Change{Field: SettingField(e.Key.Key), Label: e.Key.Label, From: want, To: e.Value, Source: e.Source})
	}
	return r, nil
}
