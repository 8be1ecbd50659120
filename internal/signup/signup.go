package signup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Signup states.
const (
	StateUnverified   = "unverified"
	StateHeld         = "held"
	StateProvisioning = "provisioning"
	StateDone         = "done"
	StateRejected     = "rejected"
	StateFailed       = "failed"
)

// Errors of the verification link and of the flow, each shown as its own clear message.
var (
	ErrLinkUnknown = errors.New("signup: no signup for this link")
	ErrLinkExpired = errors.New("signup: the verification link has expired")
	ErrLinkUsed    = errors.New("signup: the verification link was already used")
	// ErrHoneypot refuses a submission that filled the field people never see. The visitor is
	// told nothing different, and nothing is stored.
	ErrHoneypot = errors.New("signup: honeypot field filled")
	// ErrState means the signup is not in a state that allows the action.
	ErrState = errors.New("signup: not possible in the signup's current state")
)

// RateLimitedError refuses a submission after too many recent ones from the address or for the
// e-mail.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("signup: too many signups, retry in %s", e.RetryAfter.Round(time.Second))
}

// Limits.
const (
	// VerifyTTL is how long a verification link works.
	VerifyTTL = 24 * time.Hour
	// RateWindow, MaxPerEmail and MaxPerAddr bound submissions: per e-mail and per source
	// address within the window.
	RateWindow  = time.Hour
	MaxPerEmail = 5
	MaxPerAddr  = 20
	MaxOrgName  = 200
)

// ReservedSlugs are words no tenant may take: they name parts of Tenantry's own addresses.
var ReservedSlugs = []string{"admin", "api", "static", "t", "signup", "login", "logout", "setup", "verify",
	"metrics", "healthz", "readyz", "media", "www", "tenantry", "invitations", "approvals", "brands", "portal", "mail"}

// Signup is one visitor's request for a tenant.
type Signup struct {
	ID           int64
	BrandID      int64
	OrgName      string
	Slug         string
	Email        string
	PasswordHash string `json:"-"`
	TemplateID   *int64
	State        string
	TokenHash    []byte `json:"-"`
	ExpiresAt    time.Time
	VerifiedAt   *time.Time
	RunID        *int64
	TenantID     *int64
	DecidedBy    string
	DecidedAt    *time.Time
	Reason       string
	Error        string
	SourceAddr   string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TableName places signups in the control plane.
func (Signup) TableName() string { return "tenantry.signups" }

type attempt struct {
	ID         int64
	Email      string
	RemoteAddr string
	CreatedAt  time.Time
}

func (attempt) TableName() string { return "tenantry.signup_attempts" }

// Provisioner starts and reports the provisioning run that makes a signup's tenant
// (internal/provisioning, adapted by the caller so this package does not depend on its schema).
type Provisioner interface {
	Start(ctx context.Context, r ProvisionRequest) (runID, tenantID int64, err error)
	Status(ctx context.Context, runID int64) (RunStatus, error)
}

// ProvisionRequest is what a signup asks provisioning for.
type ProvisionRequest struct {
	Name, Slug    string
	TemplateID    *int64
	PlanKey       string
	AdminEmail    string
	AdminPassword string
	ParentID      *int64
	Actor         string
}

// RunStatus is a provisioning run as the progress page shows it.
type RunStatus struct {
	State string // pending, running, failed, cancelling, cancelled, done
	Error string
	Steps []StepStatus
	// Elapsed is the run's time so far.
	Elapsed time.Duration
}

// StepStatus is one step of a run.
type StepStatus struct {
	Name  string
	State string
}

// Done reports whether the run finished.
func (r RunStatus) Done() bool { return r.State == "done" }

// Service is the signup capability.
type Service struct {
	db      *db.DB
	log     *slog.Logger
	prov    Provisioner
	baseURL string
	now     func() time.Time
}

// NewService returns a Service on d; prov may be nil until provisioning is wired (verified
// signups then wait, held, for it).
func NewService(d *db.DB, log *slog.Logger, prov Provisioner, baseURL string) *Service {
	return &Service{db: d, log: log, prov: prov, baseURL: strings.TrimRight(baseURL, "/"), now: func() time.Time { return time.Now().UTC() }}
}

// SetClock replaces the service's clock (tests of expiry).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Slug availability, as the live check answers it.
const (
	SlugAvailable = "available"
	SlugTaken     = "taken"
	SlugReserved  = "reserved"
	SlugInvalid   = "invalid"
)

// slugForm returns a message when slug cannot name a tenant for reasons of form, and whether it
// is reserved.
func slugForm(slug string) (string, bool) {
	switch {
	case slug == "":
		return "Choose the address of your workspace, like acme.", false
	case len(slug) > 63:
		return "Use at most 63 characters.", false
	case !brandSlug.MatchString(slug):
		return "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit.", false
	case slices.Contains(ReservedSlugs, slug):
		return "“" + slug + "” is reserved; choose another address.", true
	}
	return "", false
}

// SlugStatus says whether slug can name a new tenant: available, taken (a tenant or a verified
// signup has it), reserved, or invalid, with a message for the visitor.
func (s *Service) SlugStatus(ctx context.Context, slug string) (string, string, error) {
	slug = strings.ToLower(strings.TrimSpace(slug))
	if msg, reserved := slugForm(slug); msg != "" {
		if reserved {
			return SlugReserved, msg, nil
		}
		return SlugInvalid, msg, nil
	}
	taken, err := slugTaken(s.db.App.WithContext(ctx), slug)
	if err != nil {
		return "", "", err
	}
	if taken {
		return SlugTaken, "“" + slug + "” is taken; choose another address.", nil
	}
	return SlugAvailable, "“" + slug + "” is available.", nil
}

func slugTaken(tx *gorm.DB, slug string) (bool, error) {
	var n int64
	err := tx.Raw(`SELECT (SELECT count(*) FROM tenantry.tenants WHERE slug = ?) +
		(SELECT count(*) FROM tenantry.signups WHERE slug = ? AND state IN ('held', 'provisioning'))`, slug, slug).Scan(&n).Error
	return n > 0, err
}

// Input is the signup form.
type Input struct {
	OrgName    string
	Slug       string
	Email      string
	Password   string
	TemplateID string
	// Honeypot is the field hidden from people; anything in it refuses the submission.
	Honeypot   string
	RemoteAddr string
}

// Submit checks the visitor's input for brand b, counts it against the rate limits, stores the
// signup (unverified) and queues the verification e-mail, in one transaction. It refuses with
// ErrHoneypot (nothing stored, not even an attempt), *RateLimitedError, or validation.Errors keyed
// org_name, slug, email, password, template.
func (s *Service) Submit(ctx context.Context, b Brand, in Input) (Signup, error) {
	if strings.TrimSpace(in.Honeypot) != "" {
		return Signup{}, ErrHoneypot
	}
	in.OrgName = strings.TrimSpace(in.OrgName)
	in.Slug = strings.ToLower(strings.TrimSpace(in.Slug))
	in.Email = strings.ToLower(strings.TrimSpace(in.Email))
	templates, err := s.BrandTemplates(ctx, b)
	if err != nil {
		return Signup{}, err
	}
	look, err := s.LookOf(ctx, b)
	if err != nil {
		return Signup{}, err
	}
	// The attempt is committed on its own, so refused and invalid submissions count too.
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.rateLimit(tx, in.Email, in.RemoteAddr) })
	if err != nil {
		return Signup{}, err
	}
	var su Signup
	var token string
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		errs := validation.Errors{}
		switch {
		case in.OrgName == "":
			errs.Add("org_name", "Enter your organisation's name.")
		case len([]rune(in.OrgName)) > MaxOrgName:
			errs.Add("org_name", fmt.Sprintf("Use at most %d characters.", MaxOrgName))
		}
		if msg, _ := slugForm(in.Slug); msg != "" {
			errs.Add("slug", msg)
		} else if taken, err := slugTaken(tx, in.Slug); err != nil {
			return err
		} else if taken {
			errs.Add("slug", "“"+in.Slug+"” is taken; choose another address.")
		}
		if in.Email == "" {
			errs.Add("email", "Enter your e-mail address.")
		} else if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
			errs.Add("email", "Enter a valid e-mail address, like name@example.com.")
		}
		switch {
		case len(in.Password) < identity.MinPasswordLength:
			errs.Add("password", fmt.Sprintf("Use at least %d characters.", identity.MinPasswordLength))
		case len(in.Password) > 256:
			errs.Add("password", "Use at most 256 characters.")
		}
		var tmpl *int64
		switch {
		case len(templates) == 1:
			tmpl = &templates[0].ID
		case len(templates) > 1:
			id, err := strconv.ParseInt(in.TemplateID, 10, 64)
			if err != nil || !slices.ContainsFunc(templates, func(t Template) bool { return t.ID == id }) {
				errs.Add("template", "Choose how your workspace starts.")
			} else {
				tmpl = &id
			}
		}
		if err := errs.Err(); err != nil {
			return err
		}
		hash, err := identity.HashPassword(in.Password)
		if err != nil {
			return err
		}
		token, err = newToken()
		if err != nil {
			return err
		}
		su = Signup{BrandID: b.ID, OrgName: in.OrgName, Slug: in.Slug, Email: in.Email, PasswordHash: hash, TemplateID: tmpl,
			State: StateUnverified, TokenHash: hashToken(token), ExpiresAt: s.now().Add(VerifyTTL), SourceAddr: in.RemoteAddr}
		if err := tx.Omit("CreatedAt", "UpdatedAt").Create(&su).Error; err != nil {
			return err
		}
		if err := audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: "signup:" + su.Email, Action: "signup.submitted", Target: su.Slug,
			Detail: audit.Detail(map[string]any{"signup_id": su.ID, "brand": b.Slug, "name": su.OrgName, "source_addr": in.RemoteAddr})}); err != nil {
			return err
		}
		return s.mailVerify(tx, b, look, su, token)
	})
	return su, err
}

// rateLimit refuses a submission when the address or the e-mail already made too many within
// RateWindow, and otherwise records it.
func (s *Service) rateLimit(tx *gorm.DB, email, addr string) error {
	now := s.now()
	since := now.Add(-RateWindow)
	var wait time.Duration
	for _, c := range []struct {
		column, value string
		max           int64
	}{{"email", email, MaxPerEmail}, {"remote_addr", addr, MaxPerAddr}} {
		if c.value == "" {
			continue
		}
		var r struct {
			N      int64
			Oldest *time.Time
		}
		err := tx.Model(&attempt{}).Select("count(*) AS n, min(created_at) AS oldest").
			Where(c.column+" = ? AND created_at > ?", c.value, since).Scan(&r).Error
		if err != nil {
			return err
		}
		if r.N >= c.max && r.Oldest != nil {
			wait = max(wait, r.Oldest.Add(RateWindow).Sub(now), time.Second)
		}
	}
	if wait > 0 {
		return &RateLimitedError{RetryAfter: wait}
	}
	// Only the window matters; older attempts go as new ones come.
	if err := tx.Where("created_at < ?", now.Add(-24*time.Hour)).Delete(&attempt{}).Error; err != nil {
		return err
	}
	return tx.Create(&attempt{Email: email, RemoteAddr: addr, CreatedAt: now}).Error
}

func newToken() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// VerifyPath is the address of a verification link.
func VerifyPath(token string) string { return "/signup/verify/" + token }

// Get returns signup id.
func (s *Service) Get(ctx context.Context, id int64) (Signup, error) {
	var su Signup
	err := s.db.App.WithContext(ctx).Take(&su, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return su, ErrNotFound
	}
	return su, err
}

// Brand returns the brand of signup su.
func (s *Service) Brand(ctx context.Context, su Signup) (Brand, error) {
	return s.brandByID(s.db.App.WithContext(ctx), su.BrandID)
}

// Verify uses the verification link's token: once, before it expires. The signup then waits for
// approval (a held brand) or its provisioning starts. It returns the signup as it now is; when
// the slug was taken meanwhile (another signup verified first) the signup ends failed with the
// reason in Error.
func (s *Service) Verify(ctx context.Context, token string) (Signup, error) {
	var su Signup
	var b Brand
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("token_hash = ?", hashToken(token)).Take(&su).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrLinkUnknown
		}
		if err != nil {
			return err
		}
		if su.VerifiedAt != nil || su.State != StateUnverified {
			return ErrLinkUsed
		}
		if !s.now().Before(su.ExpiresAt) {
			return ErrLinkExpired
		}
		if b, err = s.brandByID(tx, su.BrandID); err != nil {
			return err
		}
		now := s.now()
		su.VerifiedAt = &now
		su.State = StateHeld
		taken, err := slugTaken(tx, su.Slug)
		if err != nil {
			return err
		}
		if taken {
			su.State, su.Error = StateFailed, "The address “"+su.Slug+"” was taken by someone else before you confirmed. Sign up again with another address."
		}
		if err := tx.Model(&Signup{}).Where("id = ?", su.ID).Updates(map[string]any{
			"verified_at": now, "state": su.State, "error": su.Error, "updated_at": now}).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) { // lost the race for the slug
				return errSlugRace
			}
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: "signup:" + su.Email, Action: "signup.verified", Target: su.Slug,
			Detail: audit.Detail(map[string]any{"signup_id": su.ID, "brand": b.Slug, "state": su.State})})
	})
	if errors.Is(err, errSlugRace) {
		err = s.db.App.WithContext(ctx).Model(&Signup{}).Where("id = ?", su.ID).Updates(map[string]any{
			"verified_at": s.now(), "state": StateFailed, "updated_at": s.now(),
			"error": "The address “" + su.Slug + "” was taken by someone else before you confirmed. Sign up again with another address."}).Error
		if err != nil {
			return Signup{}, err
		}
		return s.Get(ctx, su.ID)
	}
	if err != nil {
		return Signup{}, err
	}
	if su.State == StateHeld && !b.Held() && s.prov != nil {
		return s.start(ctx, su, b, "signup:"+su.Email)
	}
	return su, nil
}

var errSlugRace = errors.New("signup: slug taken concurrently")

// start hands a held signup to provisioning. A refusal from provisioning (the slug went, the
// template was archived) ends the signup failed with the reason; nothing of the tenant remains.
func (s *Service) start(ctx context.Context, su Signup, b Brand, actor string) (Signup, error) {
	if s.prov == nil {
		return su, errors.New("signup: provisioning is not available")
	}
	// Claim the signup first, so two approvals (or a retry) never start two runs.
	res := s.db.App.WithContext(ctx).Model(&Signup{}).Where("id = ? AND state IN ?", su.ID, []string{StateHeld, StateFailed}).
		Where("run_id IS NULL").Updates(map[string]any{"state": StateProvisioning, "error": "", "updated_at": s.now()})
	if res.Error != nil {
		return su, res.Error
	}
	if res.RowsAffected == 0 {
		return su, ErrState
	}
	// The admin's password is the one the visitor chose; provisioning gets a throwaway one, and
	// Finish sets the stored hash once the account exists (the plain password is never kept).
	throwaway, err := newToken()
	if err != nil {
		return su, err
	}
	runID, tenantID, err := s.prov.Start(ctx, ProvisionRequest{Name: su.OrgName, Slug: su.Slug, TemplateID: su.TemplateID,
		PlanKey: b.PlanKey, AdminEmail: su.Email, AdminPassword: throwaway, ParentID: b.TenantID, Actor: actor})
	if err != nil {
		msg := "Tenantry could not start setting up your workspace; a platform admin has been told."
		if f := validation.Fields(err); f != nil {
			parts := []string{}
			for _, k := range slices.Sorted(mapsKeys(f)) {
				parts = append(parts, f[k])
			}
			msg = "Your workspace could not be set up: " + strings.Join(parts, " ")
		} else {
			s.log.Error("signup: start provisioning", "signup", su.ID, "err", err)
		}
		if uerr := s.db.App.WithContext(ctx).Model(&Signup{}).Where("id = ?", su.ID).
			Updates(map[string]any{"state": StateFailed, "error": msg, "updated_at": s.now()}).Error; uerr != nil {
			return su, uerr
		}
		return s.Get(ctx, su.ID)
	}
	upd := map[string]any{"run_id": runID, "updated_at": s.now()}
	if tenantID != 0 {
		upd["tenant_id"] = tenantID
	}
	err = s.db.App.WithContext(ctx).Model(&Signup{}).Where("id = ?", su.ID).Updates(upd).Error
	if err != nil {
		return su, err
	}
	return s.Get(ctx, su.ID)
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Queue selects signups for the Approvals page.
type Queue struct {
	// State is held (the default), failed, rejected, provisioning, done or unverified.
	State   string
	Search  string
	Page    int
	PerPage int
}

// QueueItem is a signup with its brand's name.
type QueueItem struct {
	Signup
	BrandSlug string
	BrandName string
}

// QueueStates are the filters of the Approvals page.
var QueueStates = []string{StateHeld, StateFailed, StateProvisioning, StateDone, StateRejected, StateUnverified}

// List returns one page of signups in q.State, oldest first for held ones, and the total.
func (s *Service) List(ctx context.Context, q Queue) ([]QueueItem, int64, error) {
	if !slices.Contains(QueueStates, q.State) {
		q.State = StateHeld
	}
	q.Page = max(q.Page, 1)
	if q.PerPage <= 0 || q.PerPage > 100 {
		q.PerPage = 25
	}
	tx := s.db.App.WithContext(ctx).Table("tenantry.signups s").Select("s.*, b.slug AS brand_slug, b.display_name AS brand_name").
		Joins("JOIN tenantry.brands b ON b.id = s.brand_id").Where("s.state = ?", q.State)
	if q.Search = strings.TrimSpace(q.Search); q.Search != "" {
		like := db.Contains(q.Search)
		tx = tx.Where("(s.org_name ILIKE ? OR s.slug ILIKE ? OR s.email ILIKE ?)", like, like, like)
	}
	var total int64
	if err := tx.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, err
	}
	order := "s.created_at DESC, s.id DESC"
	if q.State == StateHeld {
		order = "s.verified_at, s.id"
	}
	var items []QueueItem
	err := tx.Order(order).Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Scan(&items).Error
	return items, total, err
}

// Pending counts signups waiting for a decision.
func (s *Service) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.App.WithContext(ctx).Model(&Signup{}).Where("state = ?", StateHeld).Count(&n).Error
	return n, err
}

// Approve starts provisioning a held signup (or retries a failed one), on the record.
func (s *Service) Approve(ctx context.Context, actor string, id int64) (Signup, error) {
	su, err := s.Get(ctx, id)
	if err != nil {
		return su, err
	}
	if (su.State != StateHeld && su.State != StateFailed) || su.VerifiedAt == nil {
		return su, ErrState
	}
	b, err := s.Brand(ctx, su)
	if err != nil {
		return su, err
	}
	if su.State == StateFailed {
		if taken, err := slugTaken(s.db.App.WithContext(ctx), su.Slug); err != nil {
			return su, err
		} else if taken {
			return su, validation.Errors{"slug": "“" + su.Slug + "” is taken now; this signup cannot be provisioned. Reject it with that reason."}
		}
	}
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		if err := tx.Model(&Signup{}).Where("id = ?", id).Updates(map[string]any{"decided_by": actor, "decided_at": now}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: actor, Action: "signup.approved", Target: su.Slug,
			Detail: audit.Detail(map[string]any{"signup_id": su.ID, "email": su.Email, "brand": b.Slug})})
	})
	if err != nil {
		return su, err
	}
	return s.start(ctx, su, b, actor)
}

// Reject refuses a held (or failed) signup with a reason, which the visitor receives by e-mail.
func (s *Service) Reject(ctx context.Context, actor string, id int64, reason string) (Signup, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Signup{}, validation.Errors{"reason": "Give the reason; the visitor receives it by e-mail."}
	}
	if len([]rune(reason)) > 1000 {
		return Signup{}, validation.Errors{"reason": "Use at most 1000 characters."}
	}
	var su Signup
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&su, id).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if su.State != StateHeld && su.State != StateFailed {
			return ErrState
		}
		b, err := s.brandByID(tx, su.BrandID)
		if err != nil {
			return err
		}
		now := s.now()
		su.State, su.Reason, su.DecidedBy, su.DecidedAt = StateRejected, reason, actor, &now
		if err := tx.Model(&Signup{}).Where("id = ?", id).Updates(map[string]any{"state": su.State, "reason": reason,
			"decided_by": actor, "decided_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: actor, Action: "signup.rejected", Target: su.Slug,
			Detail: audit.Detail(map[string]any{"signup_id": su.ID, "email": su.Email, "brand": b.Slug, "reason": reason})}); err != nil {
			return err
		}
		look, err := s.LookOf(ctx, b)
		if err != nil {
			return err
		}
		return s.mailRejected(tx, b, look, su)
	})
	return su, err
}

// Progress is a signup with its run, for the visitor's progress page.
type Progress struct {
	Signup Signup
	Brand  Brand
	Run    *RunStatus
	// Tenant is the tenant made, once the signup is done.
	Tenant *tenant.Tenant
}

// Progress returns signup id with its run's status, finishing the signup first when its run is
// done.
func (s *Service) Progress(ctx context.Context, id int64) (Progress, error) {
	su, err := s.Get(ctx, id)
	if err != nil {
		return Progress{}, err
	}
	if su.State == StateProvisioning {
		if su, err = s.Finish(ctx, id); err != nil {
			return Progress{}, err
		}
	}
	p := Progress{Signup: su}
	if p.Brand, err = s.Brand(ctx, su); err != nil {
		return p, err
	}
	if su.RunID != nil && s.prov != nil {
		r, err := s.prov.Status(ctx, *su.RunID)
		if err != nil {
			return p, err
		}
		p.Run = &r
	}
	if su.State == StateDone && su.TenantID != nil {
		var t tenant.Tenant
		if err := s.db.App.WithContext(ctx).Take(&t, *su.TenantID).Error; err != nil {
			return p, err
		}
		p.Tenant = &t
	}
	return p, nil
}

// adminUser is the tenant schema's users row, as far as Finish needs it.
type adminUser struct {
	ID           int64
	Email        string
	PasswordHash string
}

func (adminUser) TableName() string { return "users" }
func (adminUser) TenantSchema()     {}

// Finish completes signup id once its run is done: the tenant admin's password becomes the one
// the visitor chose, the signup is done and the "ready" e-mail is queued. A run that was cancelled
// ends the signup failed. Anything else leaves it as it is. It is idempotent.
func (s *Service) Finish(ctx context.Context, id int64) (Signup, error) {
	su, err := s.Get(ctx, id)
	if err != nil || su.State != StateProvisioning || su.RunID == nil || s.prov == nil {
		return su, err
	}
	r, err := s.prov.Status(ctx, *su.RunID)
	if err != nil {
		return su, err
	}
	switch r.State {
	case "cancelled":
		err := s.db.App.WithContext(ctx).Model(&Signup{}).Where("id = ? AND state = ?", id, StateProvisioning).
			Updates(map[string]any{"state": StateFailed, "error": "A platform admin cancelled setting up your workspace.", "run_id": nil, "tenant_id": nil, "updated_at": s.now()}).Error
		if err != nil {
			return su, err
		}
		return s.Get(ctx, id)
	case "done":
	default:
		return su, nil
	}
	if su.TenantID == nil {
		return su, errors.New("signup: done run without a tenant")
	}
	var t tenant.Tenant
	if err := s.db.App.WithContext(ctx).Take(&t, *su.TenantID).Error; err != nil {
		return su, err
	}
	look, err := s.TenantLook(ctx, t)
	if err != nil {
		return su, err
	}
	err = s.db.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		var u adminUser
		if err := tx.Where("email = ?", su.Email).Take(&u).Error; err != nil {
			return fmt.Errorf("signup: the admin account of %s: %w", t.Slug, err)
		}
		if err := tx.Model(&adminUser{}).Where("id = ?", u.ID).Update("password_hash", su.PasswordHash).Error; err != nil {
			return err
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			res := ptx.Model(&Signup{}).Where("id = ? AND state = ?", id, StateProvisioning).
				Updates(map[string]any{"state": StateDone, "updated_at": s.now()})
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			su.State = StateDone
			return s.mailReady(ptx, look, t, su)
		})
	})
	if err != nil {
		return su, err
	}
	return s.Get(ctx, id)
}

// FinishAll finishes every signup whose run is done; the periodic job calls it, so held signups
// approved while the visitor is away are completed too. It also deletes signups never confirmed
// whose link expired over a week ago. It returns how many it finished.
func (s *Service) FinishAll(ctx context.Context) (int, error) {
	// Signups whose link expired a week ago are of no use to anyone (they never held a slug).
	if err := s.db.App.WithContext(ctx).Where("state = ? AND expires_at < ?", StateUnverified, s.now().Add(-7*24*time.Hour)).
		Delete(&Signup{}).Error; err != nil {
		return 0, err
	}
	var ids []int64
	if err := s.db.App.WithContext(ctx).Model(&Signup{}).Where("state = ? AND run_id IS NOT NULL", StateProvisioning).
		Order("id").Limit(500).Pluck("id", &ids).Error; err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		su, err := s.Finish(ctx, id)
		if err != nil {
			return n, err
		}
		if su.State == StateDone {
			n++
		}
	}
	return n, nil
}

// AdminUserID returns the id of the signup's admin account in its tenant (for signing the
// visitor in at the end).
func (s *Service) AdminUserID(ctx context.Context, su Signup) (int64, error) {
	if su.TenantID == nil || su.State != StateDone {
		return 0, ErrState
	}
	var u adminUser
	err := s.db.InTenant(ctx, *su.TenantID, func(tx *gorm.DB) error {
		return tx.Where("email = ?", su.Email).Take(&u).Error
	})
	return u.ID, err
}

// WithBaseURL returns a copy of s whose e-mail links start with u.
func (s *Service) WithBaseURL(u string) *Service {
	c := *s
	c.baseURL = strings.TrimRight(u, "/")
	return &c
}

// Counts returns how many signups are in each state.
func (s *Service) Counts(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		State string
		N     int64
	}
	err := s.db.App.WithContext(ctx).Model(&Signup{}).Select("state, count(*) AS n").Group("state").Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, err
}

// RecordSignIn records that the visitor who confirmed signup su was signed in to its tenant at
// the end of the signup, as a sign-in: the admin's last sign-in time and the tenant's audit trail.
func (s *Service) RecordSignIn(ctx context.Context, su Signup, remoteAddr string) error {
	if su.TenantID == nil {
		return ErrState
	}
	return s.db.InTenant(ctx, *su.TenantID, func(tx *gorm.DB) error {
		if err := tx.Model(&adminUser{}).Where("email = ?", su.Email).Update("last_sign_in_at", s.now()).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: su.Email, Action: "user.signed_in", Target: su.Email,
			Detail: audit.Detail(map[string]any{"remote_addr": remoteAddr, "via": "signup"})})
	})
}
