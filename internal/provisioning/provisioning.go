// Package provisioning owns the making of a tenant as a durable workflow: a run of idempotent
// steps (validate, create schema and role, apply tenant migrations, create encryption key,
// allocate quotas, apply configuration, create admin account, seed initial data, activate,
// notify) worked by a River job. Every step records its state, attempts, duration and error; a
// failing step is retried with exponential backoff and, when it keeps failing, the run stops in
// "failed" until someone retries it; cancelling undoes the steps done, in reverse, and removes the
// tenant so its slug is free again. A run interrupted anywhere (a crash, a deploy) resumes at the
// first step not done, without duplicating the schema, the admin or the e-mail.
//
// It also owns bulk provisioning: a CSV of tenants is checked row by row into a stored batch,
// then one run starts per valid row.
package provisioning

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

// Sentinel errors.
var (
	// ErrNotFound means no run has the id.
	ErrNotFound = errors.New("provisioning: run not found")
	// ErrState means the run is not in a state that allows the action (retry a run that did not
	// fail, cancel a finished run).
	ErrState = errors.New("provisioning: not possible in the run's current state")
)

// Run states.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateFailed     = "failed"
	StateCancelling = "cancelling"
	StateCancelled  = "cancelled"
	StateDone       = "done"
)

// RunStates lists the run states, for filters.
var RunStates = []string{StatePending, StateRunning, StateFailed, StateCancelling, StateCancelled, StateDone}

// Step states.
const (
	StepPending     = "pending"
	StepRunning     = "running"
	StepDone        = "done"
	StepFailed      = "failed"
	StepCompensated = "compensated"
)

// The steps of a run, in order.
const (
	StepValidate   = "validate"
	StepSchema     = "create schema and role"
	StepMigrations = "apply tenant migrations"
	StepKey        = "create encryption key"
	StepQuotas     = "allocate quotas"
	StepConfig     = "apply configuration"
	StepAdmin      = "create admin account"
	StepSeed       = "seed initial data"
	StepActivate   = "activate"
	StepNotify     = "notify"
)

// Steps names every step of a run, in the order they run.
var Steps = []string{StepValidate, StepSchema, StepMigrations, StepKey, StepQuotas, StepConfig, StepAdmin, StepSeed, StepActivate, StepNotify}

// ReservedSlugs are slugs no tenant may take: they name parts of Tenantry's own addresses.
var ReservedSlugs = []string{"admin", "api", "static", "t", "signup", "login", "logout", "setup", "healthz", "readyz", "metrics", "www", "tenantry", "invitations"}

// Run is one provisioning of one tenant.
type Run struct {
	ID                int64
	TenantID          *int64 // nil once a cancelled run removed its tenant
	TenantSlug        string
	TenantName        string
	TemplateVersionID *int64
	PlanKey           string
	RequestedBy       string
	AdminEmail        string
	AdminPasswordHash *string `json:"-"`
	BatchID           *int64
	State             string
	Error             string
	CreatedAt         time.Time
	StartedAt         *time.Time
	FinishedAt        *time.Time
	UpdatedAt         time.Time

	Steps []Step `gorm:"-"`
}

// TableName places runs in the control plane.
func (Run) TableName() string { return "tenantry.provisioning_runs" }

// Step is one step of a run.
type Step struct {
	RunID      int64 `gorm:"primaryKey"`
	Position   int   `gorm:"primaryKey"`
	Name       string
	State      string
	Attempts   int
	RetryAt    *time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	DurationMS *int64
	Error      string
	Note       string
}

// TableName places steps in the control plane.
func (Step) TableName() string { return "tenantry.provisioning_steps" }

// Active reports whether the run still has work to do (it polls in the UI).
func (r Run) Active() bool {
	return r.State == StatePending || r.State == StateRunning || r.State == StateCancelling
}

// Finished reports whether the run reached an end state.
func (r Run) Finished() bool {
	return r.State == StateDone || r.State == StateCancelled
}

// CanRetry reports whether Retry is possible.
func (r Run) CanRetry() bool { return r.State == StateFailed }

// CanCancel reports whether Cancel is possible.
func (r Run) CanCancel() bool {
	return r.State == StatePending || r.State == StateRunning || r.State == StateFailed
}

// Progress returns how many steps are done out of all.
func (r Run) Progress() (done, total int) {
	for _, s := range r.Steps {
		if s.State == StepDone {
			done++
		}
	}
	return done, len(r.Steps)
}

// Elapsed is the time the run has taken so far (or took, once finished).
func (r Run) Elapsed(now time.Time) time.Duration {
	start := r.CreatedAt
	if r.StartedAt != nil {
		start = *r.StartedAt
	}
	end := now
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	} else if !r.Active() {
		end = r.UpdatedAt
	}
	if end.Before(start) {
		return 0
	}
	return end.Sub(start)
}

// Request asks for a tenant to be provisioned.
type Request struct {
	Name string
	Slug string
	// TemplateVersionID, or else TemplateID (its latest version), chooses the template; the
	// template gives the plan. Without a template, PlanKey is the plan.
	TemplateVersionID *int64
	TemplateID        *int64
	PlanKey           string
	// AdminEmail receives the admin invitation; empty provisions a tenant without an admin.
	AdminEmail string
	// AdminPassword, when set (self-service signup), creates the admin user with this password
	// instead of inviting.
	AdminPassword string
	// ParentID or ParentSlug places the tenant under a parent.
	ParentID   *int64
	ParentSlug string
	// Actor is who asked, recorded in the audit trail.
	Actor string
	// BatchID links the run to the bulk batch that started it.
	BatchID *int64
}

// Faults lets tests make a step fail: it is called after a step's effect and before the step is
// recorded done, with the step and its attempt number (from 1); a non-nil error fails the
// attempt. Production code never sets it.
type Faults func(ctx context.Context, step string, attempt int) error

// Service starts, works, retries and cancels provisioning runs.
type Service struct {
	db        *db.DB
	log       *slog.Logger
	tenants   *tenant.Service
	auth      *tenantauth.Service
	keys      *keys.Service
	templates *templates.Service
	jobs      *river.Client[*sql.Tx] // insert-only: jobs are inserted in the caller's transaction
	queue     string
	baseURL   string

	maxAttempts int
	backoff     time.Duration
	faults      Faults
	now         func() time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithKeys gives each new tenant its own encryption keyset (the "create encryption key" step).
// Without it, the step records that no master key is configured.
func WithKeys(k *keys.Service) Option { return func(s *Service) { s.keys = k } }

// WithBaseURL prefixes the links in e-mails, like "https://tenantry.example.com".
func WithBaseURL(u string) Option { return func(s *Service) { s.baseURL = strings.TrimRight(u, "/") } }

// WithRetry sets how often a failing step is attempted (at least 1) and the first backoff,
// doubled after each failure (capped at 30 s).
func WithRetry(maxAttempts int, firstBackoff time.Duration) Option {
	return func(s *Service) { s.maxAttempts, s.backoff = max(1, maxAttempts), firstBackoff }
}

// WithFaults installs a fault injector (tests only), see Faults.
func WithFaults(f Faults) Option { return func(s *Service) { s.faults = f } }

// WithQueue works runs on another River queue than Queue (tests that share a database).
func WithQueue(q string) Option { return func(s *Service) { s.queue = q } }

// Queue is the River queue provisioning jobs go to by default.
const Queue = "provisioning"

// Default retry policy: 5 attempts, backing off 1 s, 2 s, 4 s, 8 s.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
)

// NewService returns a Service on d.
func NewService(d *db.DB, log *slog.Logger, opts ...Option) *Service {
	s := &Service{db: d, log: log, tenants: tenant.NewService(d, log), auth: tenantauth.NewService(d), templates: templates.NewService(d),
		queue: Queue, maxAttempts: DefaultMaxAttempts, backoff: DefaultBackoff, now: func() time.Time { return time.Now().UTC() }}
	for _, o := range opts {
		o(s)
	}
	jobs, err := river.NewClient(riverdatabasesql.New(nil), &river.Config{Schema: db.Schema})
	if err != nil {
		panic(fmt.Sprintf("provisioning: river insert client: %v", err)) // the configuration is constant
	}
	s.jobs = jobs
	return s
}

// SlugProblem returns a user-facing message when slug cannot name a new tenant for reasons of
// form (not availability), or "".
func SlugProblem(slug string) string {
	switch {
	case slug == "":
		return "Enter a slug."
	case len(slug) > 63:
		return "Use at most 63 characters."
	case !slugRE(slug):
		return "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit."
	case slices.Contains(ReservedSlugs, slug):
		return "This word is reserved by Tenantry; choose another slug."
	}
	return ""
}

func slugRE(s string) bool {
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '-' && i > 0 && i < len(s)-1)
		if !ok {
			return false
		}
	}
	return s != ""
}

// EmailProblem returns a user-facing message when e is not a plain e-mail address, or "".
func EmailProblem(e string) string {
	if e == "" {
		return "Enter an e-mail address."
	}
	if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > 254 || strings.ContainsAny(e, "\r\n") {
		return "Enter a valid e-mail address, like name@example.com."
	}
	return ""
}

// Start validates req, registers the tenant in state provisioning and records the run with its
// steps and the River job that works it, in one transaction: the run exists exactly when its job
// does. Validation problems come back as validation.Errors keyed name, slug, plan, template,
// admin_email, admin_password, parent; nothing is stored then.
func (s *Service) Start(ctx context.Context, req Request) (Run, error) {
	req.Slug = strings.ToLower(strings.TrimSpace(req.Slug))
	req.Name = strings.TrimSpace(req.Name)
	req.AdminEmail = strings.ToLower(strings.TrimSpace(req.AdminEmail))
	req.ParentSlug = strings.ToLower(strings.TrimSpace(req.ParentSlug))
	errs := validation.Errors{}
	if slices.Contains(ReservedSlugs, req.Slug) {
		errs.Add("slug", "This word is reserved by Tenantry; choose another slug.")
	}
	if req.AdminEmail != "" || req.AdminPassword != "" {
		if p := EmailProblem(req.AdminEmail); p != "" {
			errs.Add("admin_email", p)
		}
	}
	var hash *string
	if req.AdminPassword != "" {
		if len(req.AdminPassword) < identity.MinPasswordLength {
			errs.Add("admin_password", fmt.Sprintf("Use at least %d characters.", identity.MinPasswordLength))
		} else if len(req.AdminPassword) > 256 {
			errs.Add("admin_password", "Use at most 256 characters.")
		} else {
			h, err := identity.HashPassword(req.AdminPassword)
			if err != nil {
				return Run{}, err
			}
			hash = &h
		}
	}
	if req.Actor == "" {
		req.Actor = "system:provisioning"
	}
	var tv *templates.Version
	if req.TemplateVersionID != nil || req.TemplateID != nil {
		var v templates.Version
		var err error
		if req.TemplateVersionID != nil {
			v, err = s.templates.Version(ctx, *req.TemplateVersionID)
		} else {
			var t templates.Template
			if t, err = s.templates.Get(ctx, *req.TemplateID); err == nil && t.Archived() {
				err = templates.ErrArchived
			}
			v = t.Latest
		}
		switch {
		case errors.Is(err, templates.ErrNotFound):
			errs.Add("template", "Choose one of the listed templates.")
		case errors.Is(err, templates.ErrArchived):
			errs.Add("template", "This template is archived; choose another one.")
		case err != nil:
			return Run{}, err
		default:
			tv = &v
			req.PlanKey = v.PlanKey
		}
	}
	var run Run
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if req.ParentID != nil && req.ParentSlug == "" {
			var p tenant.Tenant
			if err := tx.Select("slug").Take(&p, *req.ParentID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
				errs.Add("parent", "No tenant has this id.")
			} else if err != nil {
				return err
			}
			req.ParentSlug = p.Slug
		}
		t, err := s.tenants.Register(tx, req.Actor, tenant.NewTenant{Slug: req.Slug, Name: req.Name, PlanKey: req.PlanKey, ParentSlug: req.ParentSlug})
		if fields := validation.Fields(err); fields != nil {
			for k, v := range fields {
				if errs[k] == "" {
					errs.Add(k, v)
				}
			}
		} else if err != nil {
			return err
		}
		if err := errs.Err(); err != nil {
			return err
		}
		run = Run{TenantID: &t.ID, TenantSlug: t.Slug, TenantName: t.Name, PlanKey: t.PlanKey, RequestedBy: req.Actor,
			AdminEmail: req.AdminEmail, AdminPasswordHash: hash, BatchID: req.BatchID, State: StatePending}
		if tv != nil {
			run.TemplateVersionID = &tv.ID
		}
		if err := tx.Omit("CreatedAt", "UpdatedAt", "StartedAt", "FinishedAt").Create(&run).Error; err != nil {
			return err
		}
		run.Steps = make([]Step, len(Steps))
		for i, name := range Steps {
			run.Steps[i] = Step{RunID: run.ID, Position: i + 1, Name: name, State: StepPending}
		}
		if err := tx.Create(&run.Steps).Error; err != nil {
			return err
		}
		detail := map[string]any{"run_id": run.ID, "plan": run.PlanKey}
		if tv != nil {
			detail["template_version_id"] = tv.ID
			detail["template"] = tv.Label()
		}
		if run.AdminEmail != "" {
			detail["admin_email"] = run.AdminEmail
		}
		if err := audit.Record(tx, audit.Event{TenantID: run.TenantID, Actor: req.Actor, Action: "provisioning.started",
			Target: run.TenantSlug, Detail: audit.Detail(detail)}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, run.ID)
	})
	if err != nil {
		return Run{}, err
	}
	return s.Run(ctx, run.ID)
}

// enqueue inserts the job that works run id, inside tx.
func (s *Service) enqueue(ctx context.Context, tx *gorm.DB, id int64) error {
	sqlTx, err := db.SQLTx(tx)
	if err != nil {
		return err
	}
	if _, err := s.jobs.InsertTx(ctx, sqlTx, RunArgs{RunID: id}, &river.InsertOpts{Queue: s.queue}); err != nil {
		return fmt.Errorf("provisioning: enqueue run %d: %w", id, err)
	}
	return nil
}

// Run returns the run with id and its steps.
func (s *Service) Run(ctx context.Context, id int64) (Run, error) {
	var r Run
	err := s.db.App.WithContext(ctx).Take(&r, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	err = s.db.App.WithContext(ctx).Where("run_id = ?", id).Order("position").Find(&r.Steps).Error
	return r, err
}

// LatestForTenant returns the tenant's most recent run, or ErrNotFound when it has none.
func (s *Service) LatestForTenant(ctx context.Context, tenantID int64) (Run, error) {
	var id int64
	err := s.db.App.WithContext(ctx).Model(&Run{}).Where("tenant_id = ?", tenantID).Order("id DESC").Limit(1).Pluck("id", &id).Error
	if err != nil {
		return Run{}, err
	}
	if id == 0 {
		return Run{}, ErrNotFound
	}
	return s.Run(ctx, id)
}

// ListQuery filters and pages the list of runs.
type ListQuery struct {
	State   string // one of RunStates, or "" for all
	Search  string // tenant name, slug or admin e-mail
	BatchID int64
	Page    int
	PerPage int
}

// ListResult is one page of runs (without their steps), with counts per state.
type ListResult struct {
	Runs    []ListItem
	Total   int64
	Query   ListQuery
	ByState map[string]int64
}

// ListItem is a run as the list shows it.
type ListItem struct {
	Run
	StepsDone  int
	StepsTotal int
	FailedStep string
}

// Pages is the number of pages the result spans.
func (r ListResult) Pages() int {
	if r.Total == 0 {
		return 1
	}
	return int((r.Total + int64(r.Query.PerPage) - 1) / int64(r.Query.PerPage))
}

// List returns one page of runs, newest first.
func (s *Service) List(ctx context.Context, q ListQuery) (ListResult, error) {
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 100 {
		q.Search = q.Search[:100]
	}
	if !slices.Contains(RunStates, q.State) {
		q.State = ""
	}
	if q.PerPage <= 0 || q.PerPage > 200 {
		q.PerPage = 25
	}
	if q.Page < 1 {
		q.Page = 1
	}
	res := ListResult{Query: q, ByState: map[string]int64{}}
	gdb := s.db.App.WithContext(ctx)
	base := gdb.Model(&Run{})
	if q.BatchID != 0 {
		base = base.Where("batch_id = ?", q.BatchID)
	}
	if q.Search != "" {
		base = base.Where("search LIKE ?", strings.ToLower(db.Contains(q.Search)))
	}
	var counts []struct {
		State string
		N     int64
	}
	if err := base.Session(&gorm.Session{}).Select("state, count(*) AS n").Group("state").Scan(&counts).Error; err != nil {
		return res, err
	}
	for _, c := range counts {
		res.ByState[c.State] = c.N
		if q.State == "" || q.State == c.State {
			res.Total += c.N
		}
	}
	page := base.Session(&gorm.Session{})
	if q.State != "" {
		page = page.Where("state = ?", q.State)
	}
	var runs []Run
	if err := page.Order("id DESC").Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Find(&runs).Error; err != nil {
		return res, err
	}
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	var steps []Step
	if len(ids) > 0 {
		if err := gdb.Where("run_id IN ?", ids).Order("run_id, position").Find(&steps).Error; err != nil {
			return res, err
		}
	}
	byRun := map[int64][]Step{}
	for _, st := range steps {
		byRun[st.RunID] = append(byRun[st.RunID], st)
	}
	for _, r := range runs {
		r.Steps = byRun[r.ID]
		it := ListItem{Run: r}
		it.StepsDone, it.StepsTotal = r.Progress()
		for _, st := range r.Steps {
			if st.State == StepFailed {
				it.FailedStep = st.Name
			}
		}
		res.Runs = append(res.Runs, it)
	}
	return res, nil
}

// Retry resumes a failed run at the step that failed, with its attempts counted afresh.
func (s *Service) Retry(ctx context.Context, id int64, actor string) error {
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := lockRun(tx, id)
		if err != nil {
			return err
		}
		if !r.CanRetry() {
			return fmt.Errorf("%w: run %d is %s", ErrState, id, r.State)
		}
		now := s.now()
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{"state": StateRunning, "error": "", "updated_at": now}).Error; err != nil {
			return err
		}
		if err := tx.Model(&Step{}).Where("run_id = ? AND state = ?", id, StepFailed).
			Updates(map[string]any{"state": StepPending, "attempts": 0, "retry_at": nil}).Error; err != nil {
			return err
		}
		if err := audit.Record(tx, audit.Event{TenantID: r.TenantID, Actor: actor, Action: "provisioning.retried", Target: r.TenantSlug,
			Detail: audit.Detail(map[string]any{"run_id": id, "error": r.Error})}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, id)
	})
}

// Cancel stops a run and undoes the steps it did, in reverse order, in its job: the schema and
// role are dropped, the keyset destroyed, quota limits and settings removed, the invitation
// revoked, and the tenant removed so its slug is free again. A step in progress finishes first.
func (s *Service) Cancel(ctx context.Context, id int64, actor string) error {
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := lockRun(tx, id)
		if err != nil {
			return err
		}
		if !r.CanCancel() {
			return fmt.Errorf("%w: run %d is %s", ErrState, id, r.State)
		}
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{"state": StateCancelling, "updated_at": s.now()}).Error; err != nil {
			return err
		}
		if err := audit.Record(tx, audit.Event{TenantID: r.TenantID, Actor: actor, Action: "provisioning.cancel_requested", Target: r.TenantSlug,
			Detail: audit.Detail(map[string]any{"run_id": id})}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, id)
	})
}

// lockRun reads run id FOR UPDATE: working a step, retrying and cancelling take turns on it.
func lockRun(tx *gorm.DB, id int64) (Run, error) {
	var r Run
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&r, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return r, ErrNotFound
	}
	return r, err
}

// runLabel names a run in errors and logs.
func runLabel(r Run) string { return "run " + strconv.FormatInt(r.ID, 10) + " (" + r.TenantSlug + ")" }
