// Package templates owns provisioning templates: a named description of a new tenant (tenant
// type, industry, compliance profile, default plan, quota limits, feature flags, settings
// overrides, seed dataset, branding). Templates are versioned: creating one makes version 1 and
// every edit adds a new immutable version; tenants record the version they were made from
// (tenants.template_version_id), which settings resolution reads as its "template" level.
// Archiving hides a template from new provisioning; its versions stay.
//
// A compliance profile implies settings the template cannot weaken (see Requirements): the
// service refuses weaker values with a field error, and stores the implied values locked, so the
// tenant and its descendants cannot override them either.
package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound means no template (or version) has the id, slug or name.
	ErrNotFound = errors.New("templates: not found")
	// ErrArchived means the template is archived and may not be used for new provisioning.
	ErrArchived = errors.New("templates: archived")
	// ErrTenantNotFound means Apply or Drift was given an unknown tenant.
	ErrTenantNotFound = errors.New("templates: tenant not found")
)

// QuotaLimit is a template's soft and hard limit for one quota dimension.
type QuotaLimit struct {
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Template is a template with its latest version.
type Template struct {
	ID         int64
	Slug       string
	Name       string
	ArchivedAt *time.Time
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Latest is the newest version (List fills it without its Settings and Locks).
	Latest Version `gorm:"-"`
	// Tenants counts the tenants made from any version of the template.
	Tenants int64 `gorm:"-"`
}

// TableName places templates in the control plane.
func (Template) TableName() string { return "tenantry.templates" }

// Archived reports whether the template is hidden from new provisioning.
func (t Template) Archived() bool { return t.ArchivedAt != nil }

// Version is one immutable version of a template.
type Version struct {
	ID          int64
	TemplateID  int64
	Number      int
	Name        string // the template's name when the version was made
	TenantType  string
	Industry    string
	Compliance  string // ComplianceNone, SOC2, HIPAA, PCIDSS or GDPR
	PlanKey     string
	Quotas      map[string]QuotaLimit // dimension → limits; dimensions left out keep the plan's
	SeedDataset string
	Note        string // what changed, as the editor wrote it
	CreatedBy   string
	CreatedAt   time.Time
	// Settings holds the version's values by catalogue key: feature flags (flags.*), branding
	// (branding.*; branding.logo is an image id, see settings.ImageURL) and other overrides,
	// including those implied by the compliance profile.
	Settings map[string]string
	// Locks holds, for keys the compliance profile locks, the reason ("HIPAA requires MFA…").
	Locks map[string]string
}

// Label names the version for people: "HIPAA Clinic v3".
func (v Version) Label() string { return fmt.Sprintf("%s v%d", v.Name, v.Number) }

// versionRow is a stored version.
type versionRow struct {
	ID          int64
	TemplateID  int64
	Number      int
	Name        string
	TenantType  string
	Industry    string
	Compliance  string
	PlanKey     string
	Quotas      string `gorm:"type:jsonb"`
	SeedDataset string
	Note        string
	CreatedBy   string
	CreatedAt   time.Time
}

func (versionRow) TableName() string { return "tenantry.template_versions" }

// settingRow is one stored setting of a version.
type settingRow struct {
	VersionID int64
	Key       string
	Value     string
	Locked    bool
	Reason    string
}

func (settingRow) TableName() string { return "tenantry.template_setting_values" }

// Service reads and changes templates.
type Service struct {
	db     *db.DB
	quotas *quota.Service
	tenant *tenant.Service
}

// NewService returns a Service on d.
func NewService(d *db.DB) *Service {
	return &Service{db: d, quotas: quota.NewService(d), tenant: tenant.NewService(d, slog.New(slog.DiscardHandler))}
}

func (r versionRow) version() (Version, error) {
	v := Version{ID: r.ID, TemplateID: r.TemplateID, Number: r.Number, Name: r.Name, TenantType: r.TenantType,
		Industry: r.Industry, Compliance: r.Compliance, PlanKey: r.PlanKey, SeedDataset: r.SeedDataset, Note: r.Note,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, Quotas: map[string]QuotaLimit{}, Settings: map[string]string{}, Locks: map[string]string{}}
	if r.Quotas != "" {
		if err := json.Unmarshal([]byte(r.Quotas), &v.Quotas); err != nil {
			return v, fmt.Errorf("templates: quotas of version %d: %w", r.ID, err)
		}
	}
	return v, nil
}

// loadSettings fills the Settings and Locks of vs.
func loadSettings(tx *gorm.DB, vs []Version) error {
	if len(vs) == 0 {
		return nil
	}
	ids := make([]int64, len(vs))
	at := map[int64]int{}
	for i, v := range vs {
		ids[i], at[v.ID] = v.ID, i
	}
	var rows []settingRow
	if err := tx.Where("version_id IN ?", ids).Find(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		v := &vs[at[r.VersionID]]
		v.Settings[r.Key] = r.Value
		if r.Locked {
			v.Locks[r.Key] = r.Reason
		}
	}
	return nil
}

func (s *Service) versions(tx *gorm.DB, withSettings bool, where string, args ...any) ([]Version, error) {
	var rows []versionRow
	if err := tx.Where(where, args...).Order("template_id, number DESC").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]Version, len(rows))
	for i, r := range rows {
		v, err := r.version()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	if withSettings {
		if err := loadSettings(tx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get returns the template with its latest version (settings included).
func (s *Service) Get(ctx context.Context, id int64) (Template, error) {
	return s.get(s.db.App.WithContext(ctx), "id = ?", id)
}

func (s *Service) get(tx *gorm.DB, where string, args ...any) (Template, error) {
	var t Template
	err := tx.Where(where, args...).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, err
	}
	vs, err := s.versions(tx, true, "id = (SELECT max(id) FROM tenantry.template_versions WHERE template_id = ?)", t.ID)
	if err != nil {
		return t, err
	}
	if len(vs) == 1 {
		t.Latest = vs[0]
	}
	err = tx.Raw(`SELECT count(*) FROM tenantry.tenants x JOIN tenantry.template_versions v ON v.id = x.template_version_id
		WHERE v.template_id = ?`, t.ID).Scan(&t.Tenants).Error
	return t, err
}

// BySlugOrName returns the template whose slug is s or whose name is s (case-insensitive), as
// bulk provisioning refers to templates. An archived template is returned together with
// ErrArchived, since it may not be used for new tenants.
func (s *Service) BySlugOrName(ctx context.Context, name string) (Template, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Template{}, ErrNotFound
	}
	tx := s.db.App.WithContext(ctx)
	t, err := s.get(tx, "slug = ?", strings.ToLower(name)) // a slug wins over another's name
	if errors.Is(err, ErrNotFound) {
		t, err = s.get(tx, "lower(name) = lower(?)", name)
	}
	if err == nil && t.Archived() {
		return t, ErrArchived
	}
	return t, err
}

// Latest returns the newest version of the template, settings included.
func (s *Service) Latest(ctx context.Context, templateID int64) (Version, error) {
	t, err := s.Get(ctx, templateID)
	if err != nil {
		return Version{}, err
	}
	return t.Latest, nil
}

// Version returns one version by id, settings included.
func (s *Service) Version(ctx context.Context, versionID int64) (Version, error) {
	vs, err := s.versions(s.db.App.WithContext(ctx), true, "id = ?", versionID)
	if err != nil {
		return Version{}, err
	}
	if len(vs) == 0 {
		return Version{}, ErrNotFound
	}
	return vs[0], nil
}

// Versions returns every version of the template, newest first, settings included.
func (s *Service) Versions(ctx context.Context, templateID int64) ([]Version, error) {
	return s.versions(s.db.App.WithContext(ctx), true, "template_id = ?", templateID)
}

// ListQuery filters and pages the list. Status is "active" (the default), "archived" or "all".
type ListQuery struct {
	Search  string
	Status  string
	Page    int
	PerPage int
}

// Normalize clamps the query to valid values.
func (q *ListQuery) Normalize() {
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 100 {
		q.Search = q.Search[:100]
	}
	if q.Status != "archived" && q.Status != "all" {
		q.Status = "active"
	}
	if q.PerPage <= 0 || q.PerPage > 100 {
		q.PerPage = 25
	}
	if q.Page < 1 {
		q.Page = 1
	}
}

// ListResult is one page of templates.
type ListResult struct {
	Items []Template
	Total int64
	Query ListQuery
}

// Pages is the number of pages the result spans.
func (r ListResult) Pages() int {
	if r.Total == 0 {
		return 1
	}
	return int((r.Total + int64(r.Query.PerPage) - 1) / int64(r.Query.PerPage))
}

// List returns one page of templates by name, each with its latest version (without settings)
// and the number of tenants made from it.
func (s *Service) List(ctx context.Context, q ListQuery) (ListResult, error) {
	q.Normalize()
	res := ListResult{Query: q}
	tx := s.db.App.WithContext(ctx)
	base := tx.Model(&Template{})
	if q.Search != "" {
		base = base.Where("search LIKE ?", strings.ToLower(db.Contains(q.Search)))
	}
	switch q.Status {
	case "active":
		base = base.Where("archived_at IS NULL")
	case "archived":
		base = base.Where("archived_at IS NOT NULL")
	}
	if err := base.Session(&gorm.Session{}).Count(&res.Total).Error; err != nil {
		return res, err
	}
	if err := base.Session(&gorm.Session{}).Order("lower(name)").Order("id").Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Find(&res.Items).Error; err != nil {
		return res, err
	}
	if len(res.Items) == 0 {
		return res, nil
	}
	ids := make([]int64, len(res.Items))
	for i, t := range res.Items {
		ids[i] = t.ID
	}
	vs, err := s.versions(tx, false, "id IN (SELECT max(id) FROM tenantry.template_versions WHERE template_id IN ? GROUP BY template_id)", ids)
	if err != nil {
		return res, err
	}
	var counts []struct {
		TemplateID int64
		N          int64
	}
	if err := tx.Raw(`SELECT v.template_id, count(*) AS n FROM tenantry.tenants x JOIN tenantry.template_versions v ON v.id = x.template_version_id
		WHERE v.template_id IN ? GROUP BY v.template_id`, ids).Scan(&counts).Error; err != nil {
		return res, err
	}
	for i := range res.Items {
		t := &res.Items[i]
		for _, v := range vs {
			if v.TemplateID == t.ID {
				t.Latest = v
			}
		}
		for _, c := range counts {
			if c.TemplateID == t.ID {
				t.Tenants = c.N
			}
		}
	}
	return res, nil
}

// Input is what the new and edit forms submit.
type Input struct {
	Name        string
	Slug        string // new templates only; empty derives it from the name
	TenantType  string
	Industry    string
	Compliance  string
	PlanKey     string
	SeedDataset string
	Note        string // edits: what changed
	// Quotas by dimension; dimensions left out keep the plan's defaults.
	Quotas map[string]QuotaLimit
	// Settings by catalogue key, raw as typed; "" (or a key left out) inherits. Covers feature
	// flags, branding defaults (branding.name, branding.primary_colour, branding.logo as an
	// image id) and any other catalogue key except secrets.
	Settings map[string]string
	// Logo, when not empty, is an uploaded image for branding.logo (PNG or JPEG, at most 256 KB,
	// checked by content); it replaces Settings["branding.logo"].
	Logo []byte
}

// Field names of validation errors, as the forms name their inputs.
const (
	FieldName        = "name"
	FieldSlug        = "slug"
	FieldTenantType  = "tenant_type"
	FieldIndustry    = "industry"
	FieldCompliance  = "compliance"
	FieldPlan        = "plan"
	FieldSeedDataset = "seed_dataset"
	FieldNote        = "note"
	FieldLogo        = "logo"
)

// SettingField is the form field (and error key) of a setting: "setting.security.mfa_required".
func SettingField(key string) string { return "setting." + key }

// QuotaField is the form field prefix (and error key) of a dimension: "quota.seats".
func QuotaField(dim string) string { return "quota." + dim }

var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// Slugify derives a slug from a name: "HIPAA Clinic" → "hipaa-clinic".
func Slugify(name string) string {
	s := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	return s
}

// prepared is a validated Input: the version's content.
type prepared struct {
	row      versionRow
	quotas   map[string]QuotaLimit
	settings []settingRow
	logo     []byte
}

// prepare validates in (for template id; 0 for a new one) and returns the version's content,
// with the settings the compliance profile implies added and locked.
func (s *Service) prepare(tx *gorm.DB, id int64, in Input, isNew bool) (prepared, error) {
	errs := validation.Errors{}
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		errs.Add(FieldName, "Enter the template's name.")
	case len([]rune(in.Name)) > 120:
		errs.Add(FieldName, "Use at most 120 characters.")
	default:
		var n int64
		if err := tx.Model(&Template{}).Where("lower(name) = lower(?) AND id <> ?", in.Name, id).Count(&n).Error; err != nil {
			return prepared{}, err
		}
		if n > 0 {
			errs.Add(FieldName, "Another template already has this name.")
		}
	}
	if isNew {
		in.Slug = strings.ToLower(strings.TrimSpace(in.Slug))
		if in.Slug == "" {
			in.Slug = Slugify(in.Name)
		}
		switch {
		case !slugRE.MatchString(in.Slug):
			errs.Add(FieldSlug, "Use 1–63 lowercase letters, digits and hyphens, starting and ending with a letter or digit.")
		default:
			var n int64
			if err := tx.Model(&Template{}).Where("slug = ?", in.Slug).Count(&n).Error; err != nil {
				return prepared{}, err
			}
			if n > 0 {
				errs.Add(FieldSlug, "Another template already has this slug.")
			}
		}
	}
	if !valid(TenantTypes, in.TenantType) {
		errs.Add(FieldTenantType, "Choose a tenant type.")
	}
	if !valid(Industries, in.Industry) {
		errs.Add(FieldIndustry, "Choose an industry.")
	}
	if in.Compliance == "" {
		in.Compliance = ComplianceNone
	}
	if !valid(ComplianceProfiles, in.Compliance) {
		errs.Add(FieldCompliance, "Choose a compliance profile.")
	}
	if !valid(SeedDatasets, in.SeedDataset) {
		errs.Add(FieldSeedDataset, "Choose a seed dataset.")
	}
	if len([]rune(in.Note)) > 500 {
		errs.Add(FieldNote, "Use at most 500 characters.")
	}
	if in.PlanKey == "" {
		errs.Add(FieldPlan, "Choose a default plan.")
	} else {
		var n int64
		if err := tx.Table("tenantry.plans").Where("key = ?", in.PlanKey).Count(&n).Error; err != nil {
			return prepared{}, err
		}
		if n == 0 {
			errs.Add(FieldPlan, "Choose one of the listed plans.")
		}
	}

	// Quotas: known dimensions, 0 ≤ soft ≤ hard ≤ quota.MaxLimit.
	var dims []string
	if err := tx.Table("tenantry.quota_dimensions").Order("position").Pluck("key", &dims).Error; err != nil {
		return prepared{}, err
	}
	quotas := map[string]QuotaLimit{}
	for dim, l := range in.Quotas {
		f := QuotaField(dim)
		switch {
		case !slices.Contains(dims, dim):
			errs.Add(f, "Unknown quota dimension.")
		case l.Soft < 0 || l.Hard < 0:
			errs.Add(f, "Enter whole numbers of zero or more.")
		case l.Soft > quota.MaxLimit || l.Hard > quota.MaxLimit:
			errs.Add(f, "Enter at most 1,000,000,000,000,000.")
		case l.Soft > l.Hard:
			errs.Add(f, "The soft limit cannot be above the hard limit.")
		default:
			quotas[dim] = l
		}
	}

	// Settings: catalogue keys, normalised by their type; compliance requirements enforced.
	values := map[string]string{}
	for key, raw := range in.Settings {
		f := SettingField(key)
		k, ok := settings.Lookup(key)
		switch {
		case !ok:
			errs.Add(f, "Unknown setting.")
			continue
		case k.Type == settings.Secret:
			errs.Add(f, "Secrets cannot be part of a template: set them on each tenant.")
			continue
		case strings.TrimSpace(raw) == "":
			continue // inherit
		}
		v, err := k.Normalize(raw)
		if err != nil {
			errs.Add(f, err.Error())
			continue
		}
		if k.Type == settings.Image {
			var n int64
			if err := tx.Table("tenantry.setting_images").Where("id = ?", v).Count(&n).Error; err != nil {
				return prepared{}, err
			}
			if n == 0 {
				errs.Add(f, "Upload a PNG or JPEG image.")
				continue
			}
		}
		values[key] = v
	}
	if len(in.Logo) > 0 {
		if _, err := settings.CheckImage(FieldLogo, in.Logo); err != nil {
			maps.Copy(errs, validation.Fields(err))
		}
	}
	locks := map[string]string{}
	for _, r := range Requirements[in.Compliance] {
		v, set := values[r.Key]
		if !set {
			values[r.Key] = r.Value
		} else if !r.Satisfied(v) {
			errs.Add(SettingField(r.Key), r.Reason+" Use "+r.Describe()+".")
		}
		locks[r.Key] = r.Reason
	}
	if err := errs.Err(); err != nil {
		return prepared{}, err
	}
	qj, err := json.Marshal(quotas)
	if err != nil {
		return prepared{}, err
	}
	p := prepared{quotas: quotas, logo: in.Logo,
		row: versionRow{TemplateID: id, Name: in.Name, TenantType: in.TenantType, Industry: in.Industry, Compliance: in.Compliance,
			PlanKey: in.PlanKey, Quotas: string(qj), SeedDataset: in.SeedDataset, Note: strings.TrimSpace(in.Note)}}
	if len(in.Logo) > 0 {
		img, _ := settings.CheckImage(FieldLogo, in.Logo)
		values["branding.logo"] = img.ID
	}
	for _, k := range settings.Catalogue { // catalogue order: stable, readable audit details
		if v, ok := values[k.Key]; ok {
			_, locked := locks[k.Key]
			p.settings = append(p.settings, settingRow{Key: k.Key, Value: v, Locked: locked, Reason: locks[k.Key]})
		}
	}
	return p, nil
}

// same reports whether p has the content of version v (so an edit would change nothing).
func (p prepared) same(v Version) bool {
	r := p.row
	if r.Name != v.Name || r.TenantType != v.TenantType || r.Industry != v.Industry || r.Compliance != v.Compliance ||
		r.PlanKey != v.PlanKey || r.SeedDataset != v.SeedDataset || !maps.Equal(p.quotas, v.Quotas) || len(p.settings) != len(v.Settings) {
		return false
	}
	for _, st := range p.settings {
		if v.Settings[st.Key] != st.Value {
			return false
		}
	}
	return true
}

// insertVersion stores p as version number of template id.
func insertVersion(tx *gorm.DB, actor string, id int64, number int, p prepared) (int64, error) {
	if len(p.logo) > 0 {
		if _, err := settings.StoreImage(tx, actor, FieldLogo, p.logo); err != nil {
			return 0, err
		}
	}
	row := p.row
	row.TemplateID, row.Number, row.CreatedBy, row.CreatedAt = id, number, actor, time.Now().UTC()
	if err := tx.Create(&row).Error; err != nil {
		return 0, err
	}
	for i := range p.settings {
		p.settings[i].VersionID = row.ID
	}
	if len(p.settings) > 0 {
		if err := tx.Create(&p.settings).Error; err != nil {
			return 0, err
		}
	}
	return row.ID, nil
}

func summary(p prepared) map[string]any {
	st := map[string]string{}
	for _, r := range p.settings {
		st[r.Key] = r.Value
	}
	return map[string]any{"name": p.row.Name, "tenant_type": p.row.TenantType, "industry": p.row.Industry,
		"compliance": p.row.Compliance, "plan": p.row.PlanKey, "seed_dataset": p.row.SeedDataset, "quotas": p.quotas, "settings": st}
}

// Create validates in and stores a new template with its version 1. On any error nothing is stored.
func (s *Service) Create(ctx context.Context, actor string, in Input) (Template, error) {
	var id int64
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.prepare(tx, 0, in, true)
		if err != nil {
			return err
		}
		slug := strings.ToLower(strings.TrimSpace(in.Slug))
		if slug == "" {
			slug = Slugify(in.Name)
		}
		t := Template{Slug: slug, Name: p.row.Name, CreatedBy: actor}
		if err := tx.Omit("archived_at").Create(&t).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return validation.Errors{FieldSlug: "Another template already has this slug or name."}
			}
			return err
		}
		id = t.ID
		if _, err := insertVersion(tx, actor, id, 1, p); err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "template.created", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"version": 1, "after": summary(p)})})
	})
	if err != nil {
		return Template{}, err
	}
	return s.Get(ctx, id)
}

// Edit validates in and, when it differs from the latest version, stores it as the next
// version (the template's name follows). It returns the latest version afterwards: the same one
// when nothing changed. Versions already made, and the tenants made from them, are unchanged.
func (s *Service) Edit(ctx context.Context, actor string, id int64, in Input) (Version, error) {
	var vid int64
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t Template
		if err := tx.Raw("SELECT * FROM tenantry.templates WHERE id = ? FOR UPDATE", id).Scan(&t).Error; err != nil {
			return err
		}
		if t.ID == 0 {
			return ErrNotFound
		}
		cur, err := s.get(tx, "id = ?", id)
		if err != nil {
			return err
		}
		p, err := s.prepare(tx, id, in, false)
		if err != nil {
			return err
		}
		if p.same(cur.Latest) {
			vid = cur.Latest.ID
			return nil
		}
		if vid, err = insertVersion(tx, actor, id, cur.Latest.Number+1, p); err != nil {
			return err
		}
		if err := tx.Model(&Template{}).Where("id = ?", id).Updates(map[string]any{"name": p.row.Name, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "template.edited", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"version": cur.Latest.Number + 1, "note": p.row.Note,
				"before": versionSummary(cur.Latest), "after": summary(p)})})
	})
	if err != nil {
		return Version{}, err
	}
	return s.Version(ctx, vid)
}

func versionSummary(v Version) map[string]any {
	return map[string]any{"name": v.Name, "tenant_type": v.TenantType, "industry": v.Industry, "compliance": v.Compliance,
		"plan": v.PlanKey, "seed_dataset": v.SeedDataset, "quotas": v.Quotas, "settings": v.Settings}
}

// InputOf returns the input that reproduces version v, to fill an edit or clone form.
func InputOf(t Template, v Version) Input {
	in := Input{Name: v.Name, Slug: t.Slug, TenantType: v.TenantType, Industry: v.Industry, Compliance: v.Compliance,
		PlanKey: v.PlanKey, SeedDataset: v.SeedDataset, Quotas: maps.Clone(v.Quotas), Settings: maps.Clone(v.Settings)}
	return in
}

// Clone makes a new template (version 1) with the content of template id's latest version
// under a new name and slug (empty: derived from the name).
func (s *Service) Clone(ctx context.Context, actor string, id int64, name, slug string) (Template, error) {
	src, err := s.Get(ctx, id)
	if err != nil {
		return Template{}, err
	}
	in := InputOf(src, src.Latest)
	in.Name, in.Slug, in.Note = name, slug, "Cloned from "+src.Latest.Label()
	t, err := s.Create(ctx, actor, in)
	if err != nil {
		return t, err
	}
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return audit.Record(tx, audit.Event{Actor: actor, Action: "template.cloned", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"from": src.Slug, "from_version": src.Latest.Number})})
	})
	return t, err
}

// Archive hides the template from new provisioning (archived true) or offers it again.
func (s *Service) Archive(ctx context.Context, actor string, id int64, archived bool) (Template, error) {
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t Template
		if err := tx.Where("id = ?", id).Take(&t).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if t.Archived() == archived {
			return nil
		}
		var at any
		action := "template.restored"
		if archived {
			at, action = time.Now().UTC(), "template.archived"
		}
		if err := tx.Model(&Template{}).Where("id = ?", id).Updates(map[string]any{"archived_at": at, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: action, Target: t.Slug})
	})
	if err != nil {
		return Template{}, err
	}
	return s.Get(ctx, id)
}

// Check validates in as Create (templateID 0) or Edit would, storing nothing, so a form can
// report every field error at once.
func (s *Service) Check(ctx context.Context, templateID int64, in Input) error {
	_, err := s.prepare(s.db.App.WithContext(ctx), templateID, in, templateID == 0)
	return err
}
