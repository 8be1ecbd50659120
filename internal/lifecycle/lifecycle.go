// Package lifecycle is graceful decommissioning: a tenant goes active → notice → degraded
// (read-only) → suspended → exported → purged on dated steps, with a notification campaign, an
// export archive of all its data, reclamation of what it held, retention and legal holds before
// the purge, and a signed certificate of data destruction after it. tenants.state is the truth for
// the current state; every change goes through Transition, which refuses anything the state
// machine does not allow, dates it (on the Service's clock, which tests move) and audits it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// The lifecycle states (tenant.States holds them in order, with provisioning first).
const (
	Active    = "active"
	Notice    = "notice"
	Degraded  = "degraded"
	Suspended = "suspended"
	Exported  = "exported"
	Purged    = "purged"
)

// forward is the one allowed step out of each state towards the purge.
var forward = map[string]string{Active: Notice, Notice: Degraded, Degraded: Suspended, Suspended: Exported, Exported: Purged}

// Cancellable states may go back to active (cancel / reactivate): any step before the purge.
var Cancellable = []string{Notice, Degraded, Suspended, Exported}

// ErrTransition is wrapped by every refused transition.
var ErrTransition = errors.New("lifecycle: transition not allowed")

// TransitionError says why a state change was refused.
type TransitionError struct {
	From, To string
	Reason   string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("lifecycle: %s → %s is not allowed: %s", e.From, e.To, e.Reason)
}

// Is makes errors.Is(err, ErrTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

// CheckTransition reports whether the state machine allows from → to, and why not.
func CheckTransition(from, to string) error {
	if !slices.Contains(tenant.States, from) || !slices.Contains(tenant.States, to) {
		return &TransitionError{From: from, To: to, Reason: "unknown state"}
	}
	if forward[from] == to {
		return nil
	}
	if to == Active && slices.Contains(Cancellable, from) {
		return nil
	}
	switch {
	case from == Purged:
		return &TransitionError{From: from, To: to, Reason: "the tenant has been purged; its data no longer exists, so nothing can follow"}
	case from == to:
		return &TransitionError{From: from, To: to, Reason: "the tenant is already " + to}
	case from == "provisioning":
		return &TransitionError{From: from, To: to, Reason: "a tenant still being provisioned is not in the lifecycle yet"}
	case to == "provisioning":
		return &TransitionError{From: from, To: to, Reason: "no tenant goes back to provisioning"}
	}
	next := forward[from]
	if next == "" {
		return &TransitionError{From: from, To: to, Reason: "no step leads out of " + from}
	}
	return &TransitionError{From: from, To: to, Reason: "steps are taken in order; from " + from + " the next one is " + next}
}

// Errors for refused operations; each wraps into a message for people.
var (
	ErrLegalHold     = errors.New("lifecycle: a legal hold blocks the purge")
	ErrRetention     = errors.New("lifecycle: the retention period has not ended")
	ErrNoExport      = errors.New("lifecycle: no finished export")
	ErrNotStarted    = errors.New("lifecycle: the tenant is not being decommissioned")
	ErrNoSigningKey  = errors.New("lifecycle: no master key, so no certificate signing key")
	ErrExportExpired = errors.New("lifecycle: the export archive is no longer kept")
)

// Plan is a tenant's decommissioning, a row of tenant_lifecycles.
type Plan struct {
	TenantID       int64 `gorm:"primaryKey"`
	Run            int
	Reason         string
	RequestedBy    string
	NoticeDays     int
	Policy         PolicyJSON `gorm:"type:jsonb"`
	ChildrenAction string
	ChildrenTarget string
	ParentRun      *int64
	StartedAt      time.Time
	DegradeAt      time.Time
	SuspendAt      time.Time
	ExportedAt     *time.Time
	PurgeAfter     *time.Time
	PurgedAt       *time.Time
	CancelledAt    *time.Time
	CancelledBy    *string
	PurgeFacts     []byte `gorm:"type:jsonb"`
	PurgeOperator  *string
	UpdatedAt      time.Time
}

// TableName places plans in the control plane.
func (Plan) TableName() string { return "tenantry.tenant_lifecycles" }

// Open reports whether the plan is running (neither cancelled nor finished).
func (p Plan) Open() bool { return p.CancelledAt == nil && p.PurgedAt == nil }

// Event is one dated state change.
type Event struct {
	ID        int64
	TenantID  int64
	FromState string
	ToState   string
	Actor     string
	Note      string
	At        time.Time
	CreatedAt time.Time `gorm:"->"`
}

// TableName places events in the control plane.
func (Event) TableName() string { return "tenantry.lifecycle_events" }

// LegalHold blocks a purge while it is not released.
type LegalHold struct {
	ID         int64
	TenantID   int64
	Reason     string
	SetBy      string
	SetAt      time.Time
	ReleasedBy *string
	ReleasedAt *time.Time
}

// TableName places holds in the control plane.
func (LegalHold) TableName() string { return "tenantry.legal_holds" }

// Service runs tenants' lifecycles.
type Service struct {
	d       *db.DB
	tenants *tenant.Service
	keys    *keys.Service // nil: no keyset to destroy (tests and CLI without a master key)
	master  keys.Master   // nil: certificates cannot be signed
	log     *slog.Logger
	dir     string // where export archives are kept

	clockMu sync.RWMutex
	clock   func() time.Time

	signMu  sync.Mutex
	signer  *signer
	jobs    jobInserter
	running sync.Mutex // one export at a time per process
}

// Config configures a Service.
type Config struct {
	DB      *db.DB
	Tenants *tenant.Service
	Keys    *keys.Service
	Master  keys.Master
	Log     *slog.Logger
	// ExportDir keeps the export archives (created when missing).
	ExportDir string
}

// New returns a Service.
func New(cfg Config) *Service {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ts := cfg.Tenants
	if ts == nil {
		ts = tenant.NewService(cfg.DB, log, tenant.WithKeys(cfg.Keys))
	}
	dir := cfg.ExportDir
	if dir == "" {
		dir = DefaultExportDir
	}
	return &Service{d: cfg.DB, tenants: ts, keys: cfg.Keys, master: cfg.Master, log: log, dir: dir,
		clock: func() time.Time { return time.Now().UTC() }}
}

// DefaultExportDir is where archives go when TENANTRY_EXPORT_DIR is not set.
const DefaultExportDir = ".data/exports"

// SetClock replaces the clock (tests move time with it).
func (s *Service) SetClock(now func() time.Time) {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	s.clock = now
}

// Now is the lifecycle clock's current time, in UTC.
func (s *Service) Now() time.Time {
	s.clockMu.RLock()
	defer s.clockMu.RUnlock()
	return s.clock().UTC()
}

// ExportDir is where archives are kept.
func (s *Service) ExportDir() string { return s.dir }

// Transition moves tenantID from its current state to `to` inside tx, refusing what the state
// machine does not allow, and records the dated event and the platform audit event.
func (s *Service) Transition(tx *gorm.DB, tenantID int64, to, actor, note string) (tenant.Tenant, error) {
	var t tenant.Tenant
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&t, tenantID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return t, tenant.ErrNotFound
		}
		return t, err
	}
	if err := CheckTransition(t.State, to); err != nil {
		return t, err
	}
	now := s.Now()
	from := t.State
	if err := tx.Model(&tenant.Tenant{}).Where("id = ?", tenantID).Updates(map[string]any{"state": to, "updated_at": time.Now().UTC()}).Error; err != nil {
		return t, err
	}
	if err := tx.Create(&Event{TenantID: tenantID, FromState: from, ToState: to, Actor: actor, Note: note, At: now}).Error; err != nil {
		return t, err
	}
	t.State = to
	return t, audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.lifecycle." + to, Target: t.Slug,
		Detail: audit.Detail(map[string]any{"from": from, "to": to, "note": note, "at": now})})
}

// Events returns the tenant's state changes, oldest first.
func (s *Service) Events(ctx context.Context, tenantID int64) ([]Event, error) {
	var es []Event
	err := s.d.App.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("id").Find(&es).Error
	return es, err
}

// PlanOf returns the tenant's decommissioning plan; ok is false when there never was one.
func (s *Service) PlanOf(ctx context.Context, tenantID int64) (Plan, bool, error) {
	var p Plan
	err := s.d.App.WithContext(ctx).Where("tenant_id = ?", tenantID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return p, false, nil
	}
	return p, err == nil, err
}

// StartInput is what the admin gives to start decommissioning.
type StartInput struct {
	Reason     string
	NoticeDays int // 0 means the policy's default
	// ChildrenAction is "move" or "decommission"; required when the tenant has children.
	ChildrenAction string
	// ChildrenTarget is the slug of the new parent when moving ("" moves them to the top level).
	ChildrenTarget string
}

// Start begins decommissioning: the tenant goes to notice, its dated schedule and campaign are
// stored, and the first message is queued. Children must be moved or decommissioned too; without
// that choice nothing starts.
func (s *Service) Start(ctx context.Context, actor string, tenantID int64, in StartInput) (Plan, error) {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return Plan{}, err
	}
	in.Reason = strings.TrimSpace(in.Reason)
	in.ChildrenTarget = strings.ToLower(strings.TrimSpace(in.ChildrenTarget))
	pol, err := s.PolicyFor(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	errs := validation.Errors{}
	switch {
	case in.Reason == "":
		errs.Add("reason", "Say why the tenant is being decommissioned; the reason goes to its users and the audit trail.")
	case len([]rune(in.Reason)) > 500:
		errs.Add("reason", "Use at most 500 characters.")
	}
	if in.NoticeDays == 0 {
		in.NoticeDays = pol.NoticeDays
	}
	if in.NoticeDays < 1 || in.NoticeDays > 365 {
		errs.Add("notice_days", "Give a notice period between 1 and 365 days.")
	}
	children, err := s.tenants.Children(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	if len(children) > 0 {
		switch in.ChildrenAction {
		case "move":
			if in.ChildrenTarget != "" {
				target, err := s.tenants.Get(ctx, in.ChildrenTarget)
				switch {
				case errors.Is(err, tenant.ErrNotFound):
					errs.Add("children_target", "No tenant has this slug.")
				case err != nil:
					return Plan{}, err
				case target.ID == t.ID || strings.HasPrefix(target.Path+".", t.Path+"."):
					errs.Add("children_target", "Choose a parent outside the tenant being decommissioned.")
				case target.State != Active:
					errs.Add("children_target", "Choose an active tenant as the new parent; "+target.Slug+" is "+target.State+".")
				}
			}
		case "decommission":
		default:
			errs.Add("children_action", fmt.Sprintf("This tenant has %d child tenant(s): choose to move them to another parent or to decommission them too.", len(children)))
		}
	} else {
		in.ChildrenAction = "none"
	}
	if t.State != Active {
		if err := CheckTransition(t.State, Notice); err != nil {
			return Plan{}, err
		}
	}
	if err := errs.Err(); err != nil {
		return Plan{}, err
	}
	// Children first: moved out (the existing Move, audited there), or decommissioned with the
	// same notice. A failure here leaves the parent untouched, so the admin can retry.
	if in.ChildrenAction == "move" {
		for _, c := range children {
			if _, err := s.tenants.Move(ctx, actor, c.Slug, in.ChildrenTarget); err != nil {
				return Plan{}, fmt.Errorf("move child %s: %w", c.Slug, err)
			}
		}
	}
	var plan Plan
	err = s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		plan, err = s.start(tx, t, actor, in, pol, nil)
		if err != nil {
			return err
		}
		if in.ChildrenAction == "decommission" {
			return s.startDescendants(tx, t, actor, in, plan)
		}
		return nil
	})
	if err != nil {
		return Plan{}, err
	}
	if _, err := s.SendDue(ctx); err != nil {
		s.log.Warn("lifecycle: queue due messages", "tenant", tenantID, "err", err)
	}
	return plan, nil
}

func (s *Service) startDescendants(tx *gorm.DB, parent tenant.Tenant, actor string, in StartInput, parentPlan Plan) error {
	var ds []tenant.Tenant
	if err := tx.Where("path <@ ? AND id <> ?", parent.Path, parent.ID).Order("nlevel(path)").Find(&ds).Error; err != nil {
		return err
	}
	run := int64(parentPlan.Run)
	for _, d := range ds {
		if d.State != Active { // already on its way out (or provisioning): keeps its own schedule
			continue
		}
		pol, err := s.policyFor(tx, d)
		if err != nil {
			return err
		}
		cin := in
		cin.Reason = in.Reason + " (parent " + parent.Slug + " is being decommissioned)"
		if _, err := s.start(tx, d, actor, cin, pol, &run); err != nil {
			return fmt.Errorf("decommission child %s: %w", d.Slug, err)
		}
	}
	return nil
}

// start stores the plan and campaign for t and moves it to notice, inside tx.
func (s *Service) start(tx *gorm.DB, t tenant.Tenant, actor string, in StartInput, pol Policy, parentRun *int64) (Plan, error) {
	now := s.Now()
	suspend := now.Add(time.Duration(in.NoticeDays) * 24 * time.Hour)
	degrade := suspend.Add(-time.Duration(pol.ReadOnlyDays) * 24 * time.Hour)
	if degrade.Before(now) {
		degrade = now
	}
	var prev Plan
	run := 1
	if err := tx.Where("tenant_id = ?", t.ID).Take(&prev).Error; err == nil {
		run = prev.Run + 1
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return Plan{}, err
	}
	pol.NoticeDays = in.NoticeDays
	p := Plan{TenantID: t.ID, Run: run, Reason: in.Reason, RequestedBy: actor, NoticeDays: in.NoticeDays,
		Policy: PolicyJSON(pol), ChildrenAction: in.ChildrenAction, ChildrenTarget: in.ChildrenTarget, ParentRun: parentRun,
		StartedAt: now, DegradeAt: degrade, SuspendAt: suspend, UpdatedAt: time.Now().UTC()}
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "tenant_id"}}, UpdateAll: true}).Create(&p).Error
	if err != nil {
		return Plan{}, err
	}
	if _, err := s.Transition(tx, t.ID, Notice, actor, in.Reason); err != nil {
		return Plan{}, err
	}
	if err := s.planCampaign(tx, t, p); err != nil {
		return Plan{}, err
	}
	return p, audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: actor, Action: "tenant.decommission_started", Target: t.Slug,
		Detail: audit.Detail(map[string]any{"reason": in.Reason, "notice_days": in.NoticeDays, "degrade_at": degrade,
			"suspend_at": suspend, "children": in.ChildrenAction, "children_target": in.ChildrenTarget, "policy": pol})})
}

// Cancel reactivates a tenant being decommissioned (any state before purged): back to active,
// unsent messages dropped, API keys and sign-in work again (keys revoked at the export stay
// revoked). After the purge it is refused.
func (s *Service) Cancel(ctx context.Context, actor string, tenantID int64, note string) error {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := CheckTransition(t.State, Active); err != nil {
		return err
	}
	if strings.TrimSpace(note) == "" {
		return validation.Errors{"note": "Say why the decommissioning is cancelled."}
	}
	// The tenant role may have lost the app's membership; give it back (idempotent).
	if err := s.d.EnsureTenantPlane(ctx, tenantID, s.log); err != nil {
		return err
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.Transition(tx, tenantID, Active, actor, "cancelled: "+strings.TrimSpace(note)); err != nil {
			return err
		}
		now := s.Now()
		if err := tx.Model(&Plan{}).Where("tenant_id = ?", tenantID).
			Updates(map[string]any{"cancelled_at": now, "cancelled_by": actor, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		if err := tx.Model(&Message{}).Where("tenant_id = ? AND sent_at IS NULL", tenantID).Update("skipped", true).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.decommission_cancelled", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"note": note, "from": t.State})})
	})
}

// SetLegalHold places a legal hold on the tenant: no purge while it holds.
func (s *Service) SetLegalHold(ctx context.Context, actor string, tenantID int64, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return validation.Errors{"hold_reason": "Say why the data must be kept (case, request, authority)."}
	}
	if len([]rune(reason)) > 500 {
		return validation.Errors{"hold_reason": "Use at most 500 characters."}
	}
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return err
	}
	if t.State == Purged {
		return &TransitionError{From: Purged, To: Purged, Reason: "the tenant is already purged; there is nothing left to hold"}
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if h, ok, err := activeHold(tx, tenantID); err != nil {
			return err
		} else if ok {
			return validation.Errors{"hold_reason": "A legal hold is already set (by " + h.SetBy + "). Release it first to replace it."}
		}
		if err := tx.Create(&LegalHold{TenantID: tenantID, Reason: reason, SetBy: actor, SetAt: s.Now()}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.legal_hold_set", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"reason": reason})})
	})
}

// ReleaseLegalHold lifts the tenant's legal hold.
func (s *Service) ReleaseLegalHold(ctx context.Context, actor string, tenantID int64) error {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return err
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		h, ok, err := activeHold(tx, tenantID)
		if err != nil || !ok {
			return err
		}
		now := s.Now()
		if err := tx.Model(&LegalHold{}).Where("id = ?", h.ID).Updates(map[string]any{"released_by": actor, "released_at": now}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.legal_hold_released", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"reason": h.Reason, "set_by": h.SetBy, "set_at": h.SetAt})})
	})
}

// LegalHoldOf returns the tenant's active legal hold, if any.
func (s *Service) LegalHoldOf(ctx context.Context, tenantID int64) (LegalHold, bool, error) {
	return activeHold(s.d.App.WithContext(ctx), tenantID)
}

func activeHold(tx *gorm.DB, tenantID int64) (LegalHold, bool, error) {
	var h LegalHold
	err := tx.Where("tenant_id = ? AND released_at IS NULL", tenantID).Take(&h).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return h, false, nil
	}
	return h, err == nil, err
}

func (s *Service) tenantByID(ctx context.Context, id int64) (tenant.Tenant, error) {
	var t tenant.Tenant
	err := s.d.App.WithContext(ctx).First(&t, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, tenant.ErrNotFound
	}
	return t, err
}
