// Package tenantauth owns tenant users, the people who sign in to one tenant's portal, and the
// platform admins' "act as tenant admin". Tenant users exist only in their tenant's own schema
// (t_<id>.users), reached only through db.InTenant: a user of tenant A is not even visible from
// tenant B's transaction, so it cannot sign in there. Sign-in is refused from addresses outside
// the tenant's IP allowlist (before any password is checked), while the tenant is not open
// (suspended, exported, ...), and after too many failures; sessions carry the user's epoch so
// they can be revoked. Changes are recorded in the tenant's own hash-chained audit trail.
package tenantauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Role is what a tenant user may do in the tenant's portal.
type Role string

// The tenant roles.
const (
	RoleAdmin  Role = "admin"  // manages the tenant's users
	RoleMember Role = "member" // uses the portal, manages nothing
)

// Sentinel errors; the typed errors below wrap the last three.
var (
	ErrBadCredentials = errors.New("tenantauth: wrong e-mail or password")
	ErrNotFound       = errors.New("tenantauth: user not found")
	ErrAddressRefused = errors.New("tenantauth: address outside the tenant's IP allowlist")
	ErrTenantClosed   = errors.New("tenantauth: the tenant's portal is closed")
	ErrThrottled      = errors.New("tenantauth: too many failed sign-ins")
)

// AddressRefusedError refuses a sign-in from an address outside the tenant's IP allowlist.
type AddressRefusedError struct{ Addr string }

func (e *AddressRefusedError) Error() string {
	return fmt.Sprintf("tenantauth: address %q is outside the tenant's IP allowlist", e.Addr)
}

// Is makes errors.Is(err, ErrAddressRefused) true.
func (e *AddressRefusedError) Is(target error) bool { return target == ErrAddressRefused }

// ClosedError refuses access to a tenant whose lifecycle state closes its portal.
type ClosedError struct{ State string }

func (e *ClosedError) Error() string {
	return fmt.Sprintf("tenantauth: the tenant is %s, its portal is closed", e.State)
}

// Is makes errors.Is(err, ErrTenantClosed) true.
func (e *ClosedError) Is(target error) bool { return target == ErrTenantClosed }

// ThrottledError refuses a sign-in after too many recent failures for the account or address.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("tenantauth: too many failed sign-ins, retry in %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Throttling limits, as for platform users: failures counted over identity.ThrottleWindow.
const (
	MaxFailuresPerEmail = identity.MaxFailuresPerEmail
	MaxFailuresPerAddr  = identity.MaxFailuresPerAddr
	MinPasswordLength   = identity.MinPasswordLength
)

// openStates are the lifecycle states in which the tenant's people may use its portal.
var openStates = []string{"active", "notice", "degraded"}

// CheckOpen returns a *ClosedError unless t's portal is open in its current state.
func CheckOpen(t tenant.Tenant) error {
	if slices.Contains(openStates, t.State) {
		return nil
	}
	return &ClosedError{State: t.State}
}

// User is a tenant user, a row of the tenant schema's users table.
type User struct {
	ID           int64
	Email        string
	Name         string
	Role         Role
	PasswordHash string
	SessionEpoch int
	DisabledAt   *time.Time
	LastSignInAt *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TableName is the tenant schema's users table (the tenantscope plugin qualifies it).
func (User) TableName() string { return "users" }

// TenantSchema marks the table as living in each tenant's own schema.
func (User) TenantSchema() {}

// IsAdmin reports whether u manages the tenant's users.
func (u User) IsAdmin() bool { return u.Role == RoleAdmin }

// Active reports whether u may sign in and keep a session.
func (u User) Active() bool { return u.DisabledAt == nil }

type signInAttempt struct {
	ID         int64
	Email      string
	RemoteAddr string
	Succeeded  bool
	CreatedAt  time.Time
}

func (signInAttempt) TableName() string { return "sign_in_attempts" }
func (signInAttempt) TenantSchema()     {}

// Service manages tenant users through each tenant's own transaction.
type Service struct {
	db *db.DB
}

// NewService returns a Service on d.
func NewService(d *db.DB) *Service { return &Service{db: d} }

// Tenant returns the tenant with id from the registry.
func (s *Service) Tenant(ctx context.Context, id int64) (tenant.Tenant, error) {
	var t tenant.Tenant
	err := s.db.App.WithContext(ctx).First(&t, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, tenant.ErrNotFound
	}
	return t, err
}

// Policy is the effective value of a settings key for tenant t (its security policies).
func (s *Service) Policy(ctx context.Context, t tenant.Tenant, key string) (string, error) {
	e, err := settings.NewService(s.db.App, tenant.NewService(s.db, slog.New(slog.DiscardHandler))).EffectiveOf(ctx, &t, key)
	return e.Value, err
}

// NewUser is the input for creating a tenant user.
type NewUser struct {
	Email    string
	Name     string
	Role     Role
	Password string
}

func validate(n *NewUser) error {
	errs := validation.Errors{}
	identity.ValidatePerson(errs, &n.Email, &n.Name, n.Password)
	if n.Role != RoleAdmin && n.Role != RoleMember {
		errs.Add("role", "Choose admin or member.")
	}
	return errs.Err()
}

// CreateUser adds a user to tenant tenantID; actor is recorded in the tenant's audit trail.
func (s *Service) CreateUser(ctx context.Context, tenantID int64, actor string, n NewUser) (User, error) {
	if err := validate(&n); err != nil {
		return User{}, err
	}
	// The tenant's password policy, cascading from the platform.
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return User{}, err
	}
	errs := validation.Errors{}
	if err := s.PasswordPolicy(ctx, t, errs, "password", n.Password); err != nil {
		return User{}, err
	}
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	hash, err := identity.HashPassword(n.Password)
	if err != nil {
		return User{}, err
	}
	u := User{Email: n.Email, Name: n.Name, Role: n.Role, PasswordHash: hash, SessionEpoch: 1}
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Create(&u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return validation.Errors{"email": "A user with this e-mail already exists in this tenant."}
			}
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "user.created", Target: u.Email,
			Detail: audit.Detail(map[string]any{"name": u.Name, "role": u.Role})})
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// Get returns tenant tenantID's user with id.
func (s *Service) Get(ctx context.Context, tenantID, id int64) (User, error) {
	var u User
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.First(&u, id).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, ErrNotFound
	}
	return u, err
}

// List returns tenant tenantID's users by e-mail.
func (s *Service) List(ctx context.Context, tenantID int64) ([]User, error) {
	var us []User
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Order("email").Find(&us).Error
	})
	return us, err
}

// dummyHash keeps the time of a sign-in for an unknown e-mail equal to a wrong password's.
var dummyHash = sync.OnceValue(func() string {
	h, _ := identity.HashPassword("tenantry-timing-equaliser")
	return h
})

// SignIn checks a tenant user's password for tenant tenantID. It refuses, in this order: a tenant
// that is not open (*ClosedError), an address outside the tenant's IP allowlist
// (*AddressRefusedError, before any password is looked at), too many recent failures
// (*ThrottledError), and wrong credentials (ErrBadCredentials). Every checked attempt is recorded;
// a successful one also in the tenant's audit trail: as user.signed_in when no second factor
// applies (the session starts now), otherwise as user.password_accepted (user.signed_in follows
// from SessionStarted once the code is given).
func (s *Service) SignIn(ctx context.Context, tenantID int64, email, password, remoteAddr string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return User{}, err
	}
	if err := CheckOpen(t); err != nil {
		return User{}, err
	}
	// An address that does not parse is the zero Addr, which no non-empty allowlist allows.
	addr, _ := netip.ParseAddr(remoteAddr)
	if !t.IPAllowlist.Allows(addr) {
		return User{}, &AddressRefusedError{Addr: remoteAddr}
	}

	var u User
	found := false
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := throttled(tx, email, remoteAddr); err != nil {
			return err
		}
		err := tx.Where("email = ?", email).First(&u).Error
		found = err == nil
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	// The password is checked outside any transaction: argon2id takes tens of milliseconds.
	hash := dummyHash()
	if found && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok, err := identity.CheckPassword(hash, password)
	if err != nil {
		return User{}, err
	}
	ok = ok && found && u.PasswordHash != "" && u.Active()

	// A user with a second factor, or in a tenant that requires one, is not signed in yet: the
	// password is recorded as accepted, and user.signed_in only once the session starts
	// (SessionStarted, after the code). The same rule decides in the portal (portal_mfa.go).
	required := false
	if ok {
		v, err := s.Policy(ctx, t, MFAPolicyKey)
		if err != nil {
			return User{}, err
		}
		required = v == "true"
	}
	now := time.Now().UTC()
	started := false
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		started = false
		if err := tx.Create(&signInAttempt{Email: email, RemoteAddr: remoteAddr, Succeeded: ok}).Error; err != nil {
			return err
		}
		if !ok {
			return nil
		}
		// Attempts only matter for the throttling window; a day's worth is plenty.
		if err := tx.Where("created_at < ?", now.Add(-24*time.Hour)).Delete(&signInAttempt{}).Error; err != nil {
			return err
		}
		var enrolled int64
		if err := tx.Model(&User{}).Where("id = ? AND mfa_secret IS NOT NULL", u.ID).Count(&enrolled).Error; err != nil {
			return err
		}
		if enrolled == 0 && !required {
			started = true
			return sessionStarted(tx, u, now, remoteAddr, "")
		}
		next := "code"
		if enrolled == 0 {
			next = "enrolment"
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.password_accepted", Target: u.Email,
			Detail: audit.Detail(map[string]any{"remote_addr": remoteAddr, "second_factor": next})})
	})
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	if started {
		u.LastSignInAt = &now
	}
	return u, nil
}

// SessionStarted records that tenant tenantID's user u is signed in after a second factor
// (secondFactor names it, e.g. "totp"): the portal session starts now. It sets the user's last
// sign-in time and records user.signed_in in the tenant's audit chain.
func (s *Service) SessionStarted(ctx context.Context, tenantID int64, u User, remoteAddr, secondFactor string) error {
	return s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return sessionStarted(tx, u, time.Now().UTC(), remoteAddr, secondFactor)
	})
}

func sessionStarted(tx *gorm.DB, u User, now time.Time, remoteAddr, secondFactor string) error {
	if err := tx.Model(&User{}).Where("id = ?", u.ID).Update("last_sign_in_at", now).Error; err != nil {
		return err
	}
	detail := map[string]any{"remote_addr": remoteAddr}
	if secondFactor != "" {
		detail["second_factor"] = secondFactor
	}
	return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.signed_in", Target: u.Email, Detail: audit.Detail(detail)})
}

func throttled(tx *gorm.DB, email, remoteAddr string) error {
	wait, err := identity.Throttle(tx.Model(&signInAttempt{}), email, remoteAddr)
	if err != nil || wait == 0 {
		return err
	}
	return &ThrottledError{RetryAfter: wait}
}

// RevokeSessions ends every session of tenant tenantID's user id ("sign out everywhere").
func (s *Service) RevokeSessions(ctx context.Context, tenantID, id int64, actor string) error {
	return s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if err := tx.Model(&u).Update("session_epoch", gorm.Expr("session_epoch + 1")).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "user.sessions_revoked", Target: u.Email})
	})
}

// Hostnames maps every tenant's own portal host name to the tenant's slug.
func (s *Service) Hostnames(ctx context.Context) (map[string]string, error) {
	var rows []struct {
		Hostname string
		Slug     string
	}
	err := s.db.App.WithContext(ctx).Model(&tenant.Tenant{}).Select("hostname, slug").Where("hostname IS NOT NULL").Scan(&rows).Error
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Hostname] = r.Slug
	}
	return out, err
}
