package settings

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// ErrUnknownKey means the key is not in the catalogue.
var ErrUnknownKey = errors.New("settings: unknown key")

// value is a stored value: for the platform (TenantID nil) or for one tenant.
type value struct {
	ID       int64
	TenantID *int64
	Key      string
	Value    string
	Locked   bool
	SetBy    string
	SetAt    time.Time
}

func (value) TableName() string { return "tenantry.setting_values" }

// Source kinds of an effective value.
const (
	FromDefault  = "default"
	FromPlatform = "platform"
	FromTemplate = "template"
	FromAncestor = "ancestor"
	FromTenant   = "tenant"
)

// ComplianceLabels names the compliance profiles of templates for people.
var ComplianceLabels = map[string]string{"none": "None", "soc2": "SOC 2", "hipaa": "HIPAA", "pci-dss": "PCI-DSS", "gdpr": "GDPR"}

// Effective is a key's value for one tenant (or the platform) and where it comes from.
type Effective struct {
	Key Key
	// Value is the effective value; for a Secret it is SecretSet or "", never the secret.
	Value string
	// Kind is one of the From… constants; Source names the level for people.
	Kind   string
	Source string
	// LockedBy names the level above that locked the key; the tenant cannot change it then.
	LockedBy string
	// Reason explains a lock set by a template's compliance profile ("HIPAA requires MFA").
	Reason string
	// Own is the value set at this very level, if any, and whether it locks those below
	// (SecretSet for a secret).
	Own   *string
	Locks bool
	SetBy string
	SetAt time.Time

	owner  *int64 // the tenant whose value applies (nil: platform, template or default)
	cipher string // a secret's stored ciphertext, for Reveal only
}

// Overridable reports whether the level being shown may set its own value.
func (e Effective) Overridable() bool { return e.LockedBy == "" }

// Service reads and changes settings.
type Service struct {
	db      *gorm.DB
	tenants *tenant.Service
	keys    *keys.Service
}

// NewService returns a Service on the app pool.
func NewService(db *gorm.DB, tenants *tenant.Service) *Service {
	return &Service{db: db, tenants: tenants}
}

// WithKeys lets the Service store and reveal Secret values, encrypted with each tenant's key.
// Without it, setting a secret is refused (reading shows only whether one is set).
func (s *Service) WithKeys(k *keys.Service) *Service {
	s.keys = k
	return s
}

// level is one step of the cascade.
type level struct {
	id   *int64 // nil: the platform
	name string
	// tmpl marks the template level of tenant id: the values of the template version it was made
	// from. all: every value applies (the tenant's own template); otherwise only the locked ones
	// (an ancestor's template compliance locks bind its descendants too).
	tmpl, all bool
}

func (l level) mapKey() string {
	if l.tmpl {
		return "t" + levelKey(l.id)
	}
	return levelKey(l.id)
}

// chain returns the cascade for t (nil: the platform alone), from the top down: the platform,
// the template t was made from, then each ancestor from the root (preceded by the compliance
// locks of its own template), then t.
func (s *Service) chain(ctx context.Context, t *tenant.Tenant) ([]level, error) {
	levels := []level{{id: nil, name: "platform"}}
	if t == nil {
		return levels, nil
	}
	ancestors, err := s.tenants.Ancestors(ctx, *t)
	if err != nil {
		return nil, err
	}
	id := t.ID
	levels = append(levels, level{id: &id, name: t.Name, tmpl: true, all: true})
	for _, a := range ancestors {
		aid := a.ID
		levels = append(levels, level{id: &aid, name: a.Name, tmpl: true}, level{id: &aid, name: a.Name})
	}
	return append(levels, level{id: &id, name: t.Name}), nil
}

// resolvedRow is a stored value of a level: a setting_values row, or a template version's value
// (Tmpl true; SetBy then names the template and version, Reason explains a compliance lock).
type resolvedRow struct {
	Tmpl       bool
	TenantID   *int64
	Key        string
	Value      string
	Locked     bool
	SetBy      string
	SetAt      time.Time
	Reason     string
	Compliance string
}

// Effective resolves every key of the catalogue for tenant t, or for the platform when t is nil.
// One query reads the values of every level, the template versions' included.
func (s *Service) Effective(ctx context.Context, t *tenant.Tenant) ([]Effective, error) {
	levels, err := s.chain(ctx, t)
	if err != nil {
		return nil, err
	}
	var rows []resolvedRow
	if t == nil {
		err = s.db.WithContext(ctx).Raw(`SELECT false AS tmpl, tenant_id, key, value, locked, set_by, set_at, '' AS reason, '' AS compliance
			FROM tenantry.setting_values WHERE tenant_id IS NULL`).Scan(&rows).Error
	} else {
		ids := []int64{t.ID}
		for _, l := range levels[1:] {
			if !l.tmpl && *l.id != t.ID {
				ids = append(ids, *l.id)
			}
		}
		err = s.db.WithContext(ctx).Raw(`
			SELECT false AS tmpl, tenant_id, key, value, locked, set_by, set_at, '' AS reason, '' AS compliance
			  FROM tenantry.setting_values WHERE tenant_id IS NULL OR tenant_id IN ?
			UNION ALL
			SELECT true, t.id, s.key, s.value, s.locked, 'template ' || tp.name || ' v' || v.number, v.created_at, s.reason, v.compliance
			  FROM tenantry.tenants t
			  JOIN tenantry.template_versions v ON v.id = t.template_version_id
			  JOIN tenantry.templates tp ON tp.id = v.template_id
			  JOIN tenantry.template_setting_values s ON s.version_id = v.id
			 WHERE t.id IN ?`, ids, ids).Scan(&rows).Error
	}
	if err != nil {
		return nil, err
	}
	byLevel := make(map[string]*resolvedRow, len(rows))
	for i := range rows {
		r := &rows[i]
		lk := levelKey(r.TenantID)
		if r.Tmpl {
			lk = "t" + lk
		}
		byLevel[lk+"/"+r.Key] = r
	}
	out := make([]Effective, 0, len(Catalogue))
	for _, k := range Catalogue {
		e := Effective{Key: k, Value: k.Default, Kind: FromDefault, Source: "default"}
		for i, l := range levels {
			r, ok := byLevel[l.mapKey()+"/"+k.Key]
			if !ok || (l.tmpl && !l.all && !r.Locked) {
				continue
			}
			last := i == len(levels)-1
			if last {
				v := r.Value
				e.Own, e.Locks = &v, r.Locked
			}
			if e.LockedBy != "" {
				continue // a level above locked it: this value does not apply
			}
			e.Value, e.SetBy, e.SetAt, e.owner = r.Value, r.SetBy, r.SetAt, nil
			switch {
			case l.tmpl:
				e.Kind, e.Source = FromTemplate, r.SetBy
			case l.id == nil:
				e.Kind, e.Source = FromPlatform, "set for the platform"
			case last:
				e.Kind, e.Source, e.owner = FromTenant, "set on this tenant", l.id
			default:
				e.Kind, e.Source, e.owner = FromAncestor, "inherited from "+l.name, l.id
			}
			if r.Locked && !last {
				switch {
				case l.tmpl:
					e.LockedBy = r.SetBy
					if lbl := ComplianceLabels[r.Compliance]; r.Compliance != "" && r.Compliance != "none" {
						e.LockedBy += " (" + lbl + ")"
					}
					e.Reason = r.Reason
				case l.id == nil:
					e.LockedBy = "the platform"
				default:
					e.LockedBy = l.name
				}
				e.Source = "locked by " + e.LockedBy
			}
		}
		if k.Type == Secret {
			e.cipher = e.Value
			e.Value = maskSecret(e.Value)
			if e.Own != nil {
				m := maskSecret(*e.Own)
				e.Own = &m
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func maskSecret(stored string) string {
	if stored == "" {
		return ""
	}
	return SecretSet
}

// EffectiveOf resolves one key.
func (s *Service) EffectiveOf(ctx context.Context, t *tenant.Tenant, key string) (Effective, error) {
	all, err := s.Effective(ctx, t)
	if err != nil {
		return Effective{}, err
	}
	for _, e := range all {
		if e.Key.Key == key {
			return e, nil
		}
	}
	return Effective{}, ErrUnknownKey
}

// Set stores a value for key at t's level (the platform's when t is nil), optionally locking it
// for the tenants below. It refuses a key locked above, and records before and after.
func (s *Service) Set(ctx context.Context, actor string, t *tenant.Tenant, key, raw string, lock bool) (Effective, error) {
	k, ok := Lookup(key)
	if !ok {
		return Effective{}, ErrUnknownKey
	}
	v, err := k.Normalize(raw)
	if err != nil {
		return Effective{}, validation.Errors{"value": err.Error()}
	}
	if k.Type == Secret {
		if t == nil {
			return Effective{}, validation.Errors{"value": "Secrets are set per tenant: each is encrypted with its tenant's key."}
		}
		if s.keys == nil {
			return Effective{}, errors.New("settings: no key service configured to encrypt secrets")
		}
	}
	if k.Type == Image && v != "" {
		ok, err := imageExists(s.db.WithContext(ctx), v)
		if err != nil {
			return Effective{}, err
		}
		if !ok {
			return Effective{}, validation.Errors{"value": "Upload a PNG or JPEG image."}
		}
	}
	before, err := s.EffectiveOf(ctx, t, key)
	if err != nil {
		return Effective{}, err
	}
	if !before.Overridable() {
		return Effective{}, validation.Errors{"value": "Locked by " + before.LockedBy + ": it cannot be overridden here."}
	}
	shown := v
	if k.Type == Secret {
		ct, err := s.keys.Encrypt(ctx, t.ID, []byte(v), secretAD(t.ID, key))
		if err != nil {
			return Effective{}, err
		}
		v, shown = secretPrefix+base64.StdEncoding.EncodeToString(ct), SecretSet
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row := value{Key: key, Value: v, Locked: lock, SetBy: actor, SetAt: time.Now().UTC()}
		target := clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, TargetWhere: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "tenant_id IS NULL"}}}}
		if t != nil {
			row.TenantID = &t.ID
			target = clause.OnConflict{Columns: []clause.Column{{Name: "tenant_id"}, {Name: "key"}}, TargetWhere: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "tenant_id IS NOT NULL"}}}}
		}
		target.DoUpdates = clause.AssignmentColumns([]string{"value", "locked", "set_by", "set_at"})
		if err := tx.Clauses(target).Create(&row).Error; err != nil {
			return err
		}
		return s.record(tx, actor, t, "setting.changed", key, map[string]any{
			"before": map[string]any{"value": before.Value, "source": before.Source},
			"after":  map[string]any{"value": shown, "locked": lock}})
	})
	if err != nil {
		return Effective{}, err
	}
	return s.EffectiveOf(ctx, t, key)
}

// Reset removes the value set at t's level, so the key is inherited again.
func (s *Service) Reset(ctx context.Context, actor string, t *tenant.Tenant, key string) (Effective, error) {
	if _, ok := Lookup(key); !ok {
		return Effective{}, ErrUnknownKey
	}
	before, err := s.EffectiveOf(ctx, t, key)
	if err != nil {
		return Effective{}, err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("key = ?", key)
		if t == nil {
			q = q.Where("tenant_id IS NULL")
		} else {
			q = q.Where("tenant_id = ?", t.ID)
		}
		res := q.Delete(&value{})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return s.record(tx, actor, t, "setting.reset", key, map[string]any{"before": map[string]any{"value": before.Value, "source": before.Source}})
	})
	if err != nil {
		return Effective{}, err
	}
	return s.EffectiveOf(ctx, t, key)
}

func (s *Service) record(tx *gorm.DB, actor string, t *tenant.Tenant, action, key string, detail map[string]any) error {
	e := audit.Event{Actor: actor, Action: action, Target: key, Detail: audit.Detail(detail)}
	if t != nil {
		e.TenantID = &t.ID
		e.Target = t.Slug + ": " + key
	}
	return audit.Record(tx, e)
}

// DiffRow compares one key's effective values of two tenants.
type DiffRow struct {
	Key       Key
	A, B      Effective
	Different bool
}

// Diff resolves every key for two tenants side by side.
func (s *Service) Diff(ctx context.Context, a, b tenant.Tenant) ([]DiffRow, error) {
	ea, err := s.Effective(ctx, &a)
	if err != nil {
		return nil, err
	}
	eb, err := s.Effective(ctx, &b)
	if err != nil {
		return nil, err
	}
	rows := make([]DiffRow, len(ea))
	for i := range ea {
		rows[i] = DiffRow{Key: ea[i].Key, A: ea[i], B: eb[i], Different: ea[i].Value != eb[i].Value}
	}
	return rows, nil
}

// Groups lists the catalogue's groups in order.
func Groups() []string {
	var gs []string
	for _, k := range Catalogue {
		if len(gs) == 0 || gs[len(gs)-1] != k.Group {
			gs = append(gs, k.Group)
		}
	}
	return gs
}

// secretPrefix marks a stored secret: base64 of the ciphertext made with the tenant's key.
const secretPrefix = "enc1:"

// secretAD binds a secret's ciphertext to its tenant and key, so it cannot be moved to another.
func secretAD(tenantID int64, key string) []byte {
	return []byte("tenantry.setting:" + strconv.FormatInt(tenantID, 10) + ":" + key)
}

// ErrNoSecret means no value is set for the secret key at or above the tenant.
var ErrNoSecret = errors.New("settings: secret not set")

// Reveal decrypts the effective value of a Secret key for tenant t, for use on the tenant's
// behalf (never for display). A secret inherited from an ancestor is decrypted with the
// ancestor's key.
func (s *Service) Reveal(ctx context.Context, t tenant.Tenant, key string) ([]byte, error) {
	k, ok := Lookup(key)
	if !ok || k.Type != Secret {
		return nil, ErrUnknownKey
	}
	if s.keys == nil {
		return nil, errors.New("settings: no key service configured to decrypt secrets")
	}
	e, err := s.EffectiveOf(ctx, &t, key)
	if err != nil {
		return nil, err
	}
	if e.owner == nil || !strings.HasPrefix(e.cipher, secretPrefix) {
		return nil, ErrNoSecret
	}
	ct, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.cipher, secretPrefix))
	if err != nil {
		return nil, err
	}
	return s.keys.Decrypt(ctx, *e.owner, ct, secretAD(*e.owner, key))
}

func secretKeys() []string {
	var out []string
	for _, k := range Catalogue {
		if k.Type == Secret {
			out = append(out, k.Key)
		}
	}
	return out
}

// Count tells a key rotation how many secrets the tenant has (keys.Reencrypter).
func (s *Service) Count(ctx context.Context, tenantID int64) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&value{}).Where("tenant_id = ? AND key IN ?", tenantID, secretKeys()).Count(&n).Error
	return int(n), err
}

// Reencrypt moves every secret of the tenant to its current primary key (keys.Reencrypter). It
// may run again from the start: values already under the primary key are left alone.
func (s *Service) Reencrypt(ctx context.Context, tenantID int64, rewrap keys.Rewrap, progress func(done int) error) error {
	var rows []value
	if err := s.db.WithContext(ctx).Where("tenant_id = ? AND key IN ?", tenantID, secretKeys()).Order("id").Find(&rows).Error; err != nil {
		return err
	}
	for i, r := range rows {
		ct, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Value, secretPrefix))
		if err != nil {
			return err
		}
		nct, err := rewrap(ct, secretAD(tenantID, r.Key))
		if err != nil {
			return err
		}
		if string(nct) != string(ct) {
			if err := s.db.WithContext(ctx).Model(&value{}).Where("id = ?", r.ID).
				Update("value", secretPrefix+base64.StdEncoding.EncodeToString(nct)).Error; err != nil {
				return err
			}
		}
		if err := progress(i + 1); err != nil {
			return err
		}
	}
	return nil
}

func levelKey(id *int64) string {
	if id == nil {
		return "p"
	}
	return strconv.FormatInt(*id, 10)
}
