// Package tenant owns the tenant registry in the control plane: each tenant's identity (slug,
// name), lifecycle state, plan and place in the tenant tree. Other capabilities hang their data
// off a tenant's id.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/validation"
)

// ErrNotFound means no tenant has the requested slug or id.
var ErrNotFound = errors.New("tenant: not found")

// ErrPlanePending means the tenant was registered but its schema and role could not be prepared
// yet; it stays in state provisioning and FinishProvisioning completes it.
var ErrPlanePending = errors.New("tenant: registered, its database schema is not ready yet")

// States of the lifecycle, in order.
var States = []string{"provisioning", "active", "notice", "degraded", "suspended", "exported", "purged"}

// Tenant is one customer tenant.
type Tenant struct {
	ID       int64
	Slug     string
	Name     string
	State    string
	PlanKey  string
	ParentID *int64
	Path     string `gorm:"->"` // maintained by the database from parent_id
	// IPAllowlist limits tenant sign-ins and API keys to these networks; empty allows all.
	IPAllowlist CIDRList `gorm:"type:cidr[]"`
	// Hostname, when set, serves the tenant's portal on its own host name.
	Hostname  *string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TableName places tenants in the control plane.
func (Tenant) TableName() string { return "tenantry.tenants" }

// Plan is a commercial plan a tenant is on.
type Plan struct {
	Key               string `gorm:"primaryKey"`
	Name              string
	Position          int
	MonthlyPriceCents int64
}

// TableName places plans in the control plane.
func (Plan) TableName() string { return "tenantry.plans" }

// Service reads and changes the registry, and prepares each tenant's own database plane.
type Service struct {
	db    *gorm.DB // the app pool
	plane *db.DB   // owner pool, for the tenant's schema and role
	keys  *keys.Service
	log   *slog.Logger

	plansMu sync.Mutex
	plans   []Plan
	plansAt time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithKeys makes activation give each tenant its own encryption keyset. The server always
// configures it; tests that do not exercise encryption may leave it out.
func WithKeys(k *keys.Service) Option { return func(s *Service) { s.keys = k } }

// NewService returns a Service on d.
func NewService(d *db.DB, log *slog.Logger, opts ...Option) *Service {
	s := &Service{db: d.App, plane: d, log: log}
	for _, o := range opts {
		o(s)
	}
	return s
}

// plansTTL bounds how long a process keeps the plan list: plans change only with migrations,
// and every list page and tenant page needs them.
const plansTTL = time.Minute

// Plans returns every plan, cheapest first.
func (s *Service) Plans(ctx context.Context) ([]Plan, error) {
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	if s.plans != nil && time.Since(s.plansAt) < plansTTL {
		return s.plans, nil
	}
	var ps []Plan
	if err := s.db.WithContext(ctx).Order("position").Find(&ps).Error; err != nil {
		return nil, err
	}
	s.plans, s.plansAt = ps, time.Now()
	return ps, nil
}

// Sort orders of the list.
var sortColumns = map[string]string{
	"name":    "lower(t.name)",
	"slug":    "t.slug",
	"state":   "t.state",
	"plan":    "t.plan_key",
	"created": "t.created_at",
}

// ListQuery filters, sorts and pages the list. Zero values mean: everything, by name, page 1.
type ListQuery struct {
	Search  string
	State   string
	Plan    string
	Sort    string // name, slug, state, plan, created
	Desc    bool
	Page    int
	PerPage int
}

// Normalize clamps the query to valid values, so any URL gives a sensible page.
func (q *ListQuery) Normalize() {
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 100 {
		q.Search = q.Search[:100]
	}
	if _, ok := sortColumns[q.Sort]; !ok {
		q.Sort = "name"
	}
	if q.PerPage <= 0 || q.PerPage > 200 {
		q.PerPage = 50
	}
	if q.Page < 1 {
		q.Page = 1
	}
}

// ListItem is a tenant as the list shows it.
type ListItem struct {
	Tenant
	PlanName   string
	ParentSlug *string
	Children   int
}

// ListResult is one page of the list.
type ListResult struct {
	Items []ListItem
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

// List returns one page of tenants matching q.
func (s *Service) List(ctx context.Context, q ListQuery) (ListResult, error) {
	q.Normalize()
	base := s.db.WithContext(ctx).Table("tenantry.tenants AS t")
	if q.Search != "" {
		base = base.Where("t.search LIKE ?", strings.ToLower(db.Contains(q.Search)))
	}
	if q.State != "" {
		base = base.Where("t.state = ?", q.State)
	}
	if q.Plan != "" {
		base = base.Where("t.plan_key = ?", q.Plan)
	}
	res := ListResult{Query: q}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	err := base.Session(&gorm.Session{}).Select(`t.*, p.name AS plan_name, parent.slug AS parent_slug,
		(SELECT count(*) FROM tenantry.tenants c WHERE c.parent_id = t.id) AS children`).
		Joins("JOIN tenantry.plans p ON p.key = t.plan_key").
		Joins("LEFT JOIN tenantry.tenants parent ON parent.id = t.parent_id").
		Order(sortColumns[q.Sort] + dir).Order("t.id").
		Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).
		Scan(&res.Items).Error
	if err != nil {
		return res, err
	}
	// A page that is not full tells the total by itself; count only when there may be more.
	if n := len(res.Items); n > 0 && n < q.PerPage {
		res.Total = int64((q.Page-1)*q.PerPage + n)
		return res, nil
	}
	err = base.Count(&res.Total).Error
	return res, err
}

// Get returns the tenant with slug.
func (s *Service) Get(ctx context.Context, slug string) (Tenant, error) {
	var t Tenant
	err := s.db.WithContext(ctx).Where("slug = ?", slug).First(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, ErrNotFound
	}
	return t, err
}

// Ancestors returns the tenant's ancestors from the root down (not the tenant itself).
func (s *Service) Ancestors(ctx context.Context, t Tenant) ([]Tenant, error) {
	var as []Tenant
	err := s.db.WithContext(ctx).Where("path @> ? AND id <> ?", t.Path, t.ID).Order("nlevel(path)").Find(&as).Error
	return as, err
}

// Children returns the tenant's direct children by name.
func (s *Service) Children(ctx context.Context, t Tenant) ([]Tenant, error) {
	var cs []Tenant
	err := s.db.WithContext(ctx).Where("parent_id = ?", t.ID).Order("lower(name)").Find(&cs).Error
	return cs, err
}

// CountByState returns how many tenants are in each state.
func (s *Service) CountByState(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		State string
		N     int64
	}
	err := s.db.WithContext(ctx).Model(&Tenant{}).Select("state, count(*) AS n").Group("state").Scan(&rows).Error
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, err
}

// NewTenant is the input for registering a tenant.
type NewTenant struct {
	Slug       string
	Name       string
	PlanKey    string
	ParentSlug string
}

var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Create registers a tenant after validating every field and prepares its plane at once; on a
// validation error nothing is stored. The admin UI provisions through internal/provisioning
// instead (Register, then a durable workflow); Create stays for the demo seed, the CLI and tests.
func (s *Service) Create(ctx context.Context, actor string, n NewTenant) (Tenant, error) {
	var t Tenant
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		t, err = s.Register(tx, actor, n)
		return err
	})
	if err != nil {
		return Tenant{}, err
	}
	if err := s.activate(ctx, t.ID); err != nil {
		s.log.Error("prepare tenant plane", "tenant", t.ID, "err", err)
		t, _ = s.Get(ctx, t.Slug)
		return t, fmt.Errorf("%w: %v", ErrPlanePending, err)
	}
	return s.Get(ctx, t.Slug)
}

// Register validates n and stores the tenant in state provisioning inside tx, the caller's
// transaction, with its audit event; it prepares nothing else. A validation error
// (validation.Errors) names the fields.
func (s *Service) Register(tx *gorm.DB, actor string, n NewTenant) (Tenant, error) {
	n.Slug = strings.ToLower(strings.TrimSpace(n.Slug))
	n.Name = strings.TrimSpace(n.Name)
	n.ParentSlug = strings.ToLower(strings.TrimSpace(n.ParentSlug))
	errs := validation.Errors{}
	switch {
	case n.Slug == "":
		errs.Add("slug", "Enter a slug.")
	case len(n.Slug) > 63:
		errs.Add("slug", "Use at most 63 characters.")
	case !slugRE.MatchString(n.Slug):
		errs.Add("slug", "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit.")
	}
	switch {
	case n.Name == "":
		errs.Add("name", "Enter the tenant's name.")
	case len([]rune(n.Name)) > 200:
		errs.Add("name", "Use at most 200 characters.")
	}
	var t Tenant
	var plan Plan
	if n.PlanKey == "" {
		errs.Add("plan", "Choose a plan.")
	} else if err := tx.Where("key = ?", n.PlanKey).First(&plan).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		errs.Add("plan", "Choose one of the listed plans.")
	} else if err != nil {
		return t, err
	}
	var parent Tenant
	if n.ParentSlug != "" {
		if err := tx.Where("slug = ?", n.ParentSlug).First(&parent).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			errs.Add("parent", "No tenant has this slug.")
		} else if err != nil {
			return t, err
		}
	}
	if errs["slug"] == "" {
		var taken int64
		if err := tx.Model(&Tenant{}).Where("slug = ?", n.Slug).Count(&taken).Error; err != nil {
			return t, err
		}
		if taken > 0 {
			errs.Add("slug", "This slug is already taken.")
		}
	}
	if err := errs.Err(); err != nil {
		return t, err
	}
	t = Tenant{Slug: n.Slug, Name: n.Name, State: "provisioning", PlanKey: n.PlanKey}
	if parent.ID != 0 {
		t.ParentID = &parent.ID
	}
	// A savepoint: losing the race for the slug must leave the caller's transaction usable.
	err := tx.Transaction(func(tx *gorm.DB) error { return tx.Create(&t).Error })
	if err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) { // lost a race for the slug
			return Tenant{}, validation.Errors{"slug": "This slug is already taken."}
		}
		return Tenant{}, err
	}
	detail := map[string]any{"name": t.Name, "plan": t.PlanKey}
	if n.ParentSlug != "" {
		detail["parent"] = n.ParentSlug
	}
	return t, audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: actor, Action: "tenant.created", Target: t.Slug, Detail: audit.Detail(detail)})
}

// activate prepares the tenant's schema and role and its encryption keyset, then moves it from
// provisioning to active. Every step is idempotent, so calling it again after a crash finishes
// the job without duplicating anything.
func (s *Service) activate(ctx context.Context, id int64) error {
	if err := s.plane.EnsureTenantPlane(ctx, id, s.log); err != nil {
		return err
	}
	if s.keys != nil {
		if err := s.keys.Create(ctx, nil, id); err != nil {
			return err
		}
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Tenant{}).Where("id = ? AND state = 'provisioning'", id).
			Updates(map[string]any{"state": "active", "updated_at": time.Now().UTC()})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		var t Tenant
		if err := tx.First(&t, id).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &id, Actor: "system:provisioning", Action: "tenant.activated",
			Target: t.Slug, Detail: audit.Detail(map[string]any{"schema": db.TenantSchema(id)})})
	})
}

// FinishProvisioning activates tenants left in provisioning for longer than grace (a crash or a
// database error interrupted them). It returns how many it completed. Tenants made by a
// provisioning run are left to their run, which resumes by itself and may have failed on purpose.
func (s *Service) FinishProvisioning(ctx context.Context, grace time.Duration) (int, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&Tenant{}).Where("state = 'provisioning' AND updated_at < ?", time.Now().UTC().Add(-grace)).
		Where("NOT EXISTS (SELECT 1 FROM tenantry.provisioning_runs r WHERE r.tenant_id = tenants.id)").
		Order("id").Limit(500).Pluck("id", &ids).Error
	if err != nil {
		return 0, err
	}
	done := 0
	for _, id := range ids {
		if err := s.activate(ctx, id); err != nil {
			return done, fmt.Errorf("tenant %d: %w", id, err)
		}
		done++
	}
	return done, nil
}
