package settings

import (
	"context"
	"errors"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
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
	FromAncestor = "ancestor"
	FromTenant   = "tenant"
)

// Effective is a key's value for one tenant (or the platform) and where it comes from.
type Effective struct {
	Key   Key
	Value string
	// Kind is one of the From… constants; Source names the level for people.
	Kind   string
	Source string
	// LockedBy names the level above that locked the key; the tenant cannot change it then.
	LockedBy string
	// Own is the value set at this very level, if any, and whether it locks those below.
	Own   *string
	Locks bool
	SetBy string
	SetAt time.Time
}

// Overridable reports whether the level being shown may set its own value.
func (e Effective) Overridable() bool { return e.LockedBy == "" }

// Service reads and changes settings.
type Service struct {
	db      *gorm.DB
	tenants *tenant.Service
}

// NewService returns a Service on the app pool.
func NewService(db *gorm.DB, tenants *tenant.Service) *Service {
	return &Service{db: db, tenants: tenants}
}

// level is one step of the cascade.
type level struct {
	id   *int64 // nil: the platform
	name string
}

// chain returns the cascade for t (nil: the platform alone), from the top down.
func (s *Service) chain(ctx context.Context, t *tenant.Tenant) ([]level, error) {
	levels := []level{{nil, "platform"}}
	if t == nil {
		return levels, nil
	}
	ancestors, err := s.tenants.Ancestors(ctx, *t)
	if err != nil {
		return nil, err
	}
	for _, a := range ancestors {
		id := a.ID
		levels = append(levels, level{&id, a.Name})
	}
	id := t.ID
	return append(levels, level{&id, t.Name}), nil
}

// Effective resolves every key of the catalogue for tenant t, or for the platform when t is nil.
func (s *Service) Effective(ctx context.Context, t *tenant.Tenant) ([]Effective, error) {
	levels, err := s.chain(ctx, t)
	if err != nil {
		return nil, err
	}
	ids := []int64{}
	for _, l := range levels[1:] {
		ids = append(ids, *l.id)
	}
	var rows []value
	q := s.db.WithContext(ctx).Where("tenant_id IS NULL")
	if len(ids) > 0 {
		q = q.Or("tenant_id IN ?", ids)
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, err
	}
	byLevel := map[string]value{}
	for _, r := range rows {
		byLevel[levelKey(r.TenantID)+"/"+r.Key] = r
	}
	out := make([]Effective, 0, len(Catalogue))
	for _, k := range Catalogue {
		e := Effective{Key: k, Value: k.Default, Kind: FromDefault, Source: "default"}
		for i, l := range levels {
			r, ok := byLevel[levelKey(l.id)+"/"+k.Key]
			if !ok {
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
			e.Value, e.SetBy, e.SetAt = r.Value, r.SetBy, r.SetAt
			switch {
			case l.id == nil:
				e.Kind, e.Source = FromPlatform, "set for the platform"
			case last:
				e.Kind, e.Source = FromTenant, "set on this tenant"
			default:
				e.Kind, e.Source = FromAncestor, "inherited from "+l.name
			}
			if r.Locked && !last {
				if l.id == nil {
					e.LockedBy = "the platform"
				} else {
					e.LockedBy = l.name
				}
				e.Source = "locked by " + e.LockedBy
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func levelKey(id *int64) string {
	if id == nil {
		return "p"
	}
	return strconv.FormatInt(*id, 10)
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
	before, err := s.EffectiveOf(ctx, t, key)
	if err != nil {
		return Effective{}, err
	}
	if !before.Overridable() {
		return Effective{}, validation.Errors{"value": "Locked by " + before.LockedBy + ": it cannot be overridden here."}
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
			"after":  map[string]any{"value": v, "locked": lock}})
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
