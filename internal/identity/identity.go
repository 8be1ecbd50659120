// Package identity owns platform users (admins and read-only executives): their passwords
// (argon2id), sign-in with throttling per account and per address, and session revocation.
// Tenant users live in their tenants' schemas and are not handled here.
package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Role is what a platform user may do.
type Role string

// The platform roles.
const (
	RoleAdmin     Role = "admin"     // may change anything
	RoleExecutive Role = "executive" // reads dashboards and reports; every write is refused
)

// Sentinel errors.
var (
	ErrBadCredentials = errors.New("identity: wrong e-mail or password")
	ErrNotFound       = errors.New("identity: user not found")
	ErrSetupDone      = errors.New("identity: a platform admin already exists")
)

// ThrottledError refuses a sign-in after too many failures.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("identity: too many failed sign-ins, retry in %s", e.RetryAfter.Round(time.Second))
}

// Throttling limits: failures counted over Window, per account and per remote address.
const (
	ThrottleWindow      = 15 * time.Minute
	MaxFailuresPerEmail = 5
	MaxFailuresPerAddr  = 20
	MinPasswordLength   = 10
)

// User is a platform user.
type User struct {
	ID           int64
	Email        string
	Name         string
	Role         Role
	PasswordHash string
	SessionEpoch int
	LastSignInAt *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TableName places users in the control plane.
func (User) TableName() string { return "tenantry.platform_users" }

// CanWrite reports whether the user may change anything.
func (u User) CanWrite() bool { return u.Role == RoleAdmin }

type signInAttempt struct {
	ID         int64
	Email      string
	RemoteAddr string
	Succeeded  bool
	CreatedAt  time.Time
}

func (signInAttempt) TableName() string { return "tenantry.sign_in_attempts" }

// NewUser is the input for creating a platform user.
type NewUser struct {
	Email    string
	Name     string
	Role     Role
	Password string
}

// Service manages platform users.
type Service struct {
	db *gorm.DB
}

// NewService returns a Service on the app pool.
func NewService(db *gorm.DB) *Service { return &Service{db: db} }

// HasAdmin reports whether any platform admin exists.
func (s *Service) HasAdmin(ctx context.Context) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&User{}).Where("role = ?", RoleAdmin).Limit(1).Count(&n).Error
	return n > 0, err
}

// Get returns the user with id.
func (s *Service) Get(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.db.WithContext(ctx).First(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, ErrNotFound
	}
	return u, err
}

// List returns every platform user, by e-mail.
func (s *Service) List(ctx context.Context) ([]User, error) {
	var us []User
	err := s.db.WithContext(ctx).Order("email").Find(&us).Error
	return us, err
}

// ValidatePerson checks the fields every user account has, platform or tenant: it normalises
// email and name in place and records problems at the fields "email", "name" and "password".
func ValidatePerson(errs validation.Errors, email, name *string, password string) {
	*email = strings.ToLower(strings.TrimSpace(*email))
	*name = strings.TrimSpace(*name)
	if *email == "" {
		errs.Add("email", "Enter an e-mail address.")
	} else if a, err := mail.ParseAddress(*email); err != nil || a.Address != *email || len(*email) > 254 {
		errs.Add("email", "Enter a valid e-mail address, like name@example.com.")
	}
	if *name == "" {
		errs.Add("name", "Enter a name.")
	} else if len([]rune(*name)) > 200 {
		errs.Add("name", "Use at most 200 characters.")
	}
	if len(password) < MinPasswordLength {
		errs.Add("password", fmt.Sprintf("Use at least %d characters.", MinPasswordLength))
	} else if len(password) > 256 {
		errs.Add("password", "Use at most 256 characters.")
	}
}

func validate(n *NewUser) error {
	errs := validation.Errors{}
	ValidatePerson(errs, &n.Email, &n.Name, n.Password)
	if n.Role != RoleAdmin && n.Role != RoleExecutive {
		errs.Add("role", "Choose admin or executive.")
	}
	return errs.Err()
}

// Create adds a platform user; actor is recorded in the audit trail.
func (s *Service) Create(ctx context.Context, actor string, n NewUser) (User, error) {
	var u User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		u, err = create(tx, actor, n)
		return err
	})
	return u, err
}

func create(tx *gorm.DB, actor string, n NewUser) (User, error) {
	if err := validate(&n); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(n.Password)
	if err != nil {
		return User{}, err
	}
	u := User{Email: n.Email, Name: n.Name, Role: n.Role, PasswordHash: hash, SessionEpoch: 1}
	if err := tx.Create(&u).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return User{}, validation.Errors{"email": "A user with this e-mail already exists."}
		}
		return User{}, err
	}
	if err := audit.Record(tx, audit.Event{Actor: actor, Action: "platform_user.created", Target: u.Email,
		Detail: audit.Detail(map[string]any{"role": u.Role, "name": u.Name})}); err != nil {
		return User{}, err
	}
	return u, nil
}

// setupLock serialises first-admin creation so two first-run submissions cannot both win.
const setupLock = 0x7e4a_0002

// SetupFirstAdmin creates the first platform admin, only while none exists.
func (s *Service) SetupFirstAdmin(ctx context.Context, n NewUser, actor string) (User, error) {
	n.Role = RoleAdmin
	var u User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", setupLock).Error; err != nil {
			return err
		}
		var n2 int64
		if err := tx.Model(&User{}).Where("role = ?", RoleAdmin).Count(&n2).Error; err != nil {
			return err
		}
		if n2 > 0 {
			return ErrSetupDone
		}
		var err error
		u, err = create(tx, actor, n)
		return err
	})
	return u, err
}

// EnsureAdmin creates the configured admin at start-up when no admin exists yet.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (bool, error) {
	_, err := s.SetupFirstAdmin(ctx, NewUser{Email: email, Name: "Platform admin", Password: password}, "system:environment")
	if errors.Is(err, ErrSetupDone) {
		return false, nil
	}
	return err == nil, err
}

// dummyHash keeps the time of a sign-in for an unknown e-mail equal to a wrong password's.
var dummyHash, _ = HashPassword("tenantry-timing-equaliser")

// SignIn checks a password, refusing with *ThrottledError after too many recent failures for the
// account or the address. Every attempt is recorded.
func (s *Service) SignIn(ctx context.Context, email, password, remoteAddr string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	db := s.db.WithContext(ctx)
	if err := s.throttled(db, email, remoteAddr); err != nil {
		return User{}, err
	}
	var u User
	err := db.Where("email = ?", email).First(&u).Error
	found := err == nil
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return User{}, err
	}
	hash := dummyHash
	if found {
		hash = u.PasswordHash
	}
	ok, err := CheckPassword(hash, password)
	if err != nil {
		return User{}, err
	}
	ok = ok && found
	if err := db.Create(&signInAttempt{Email: email, RemoteAddr: remoteAddr, Succeeded: ok}).Error; err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	now := time.Now().UTC()
	if err := db.Model(&u).Update("last_sign_in_at", now).Error; err != nil {
		return User{}, err
	}
	u.LastSignInAt = &now
	return u, nil
}

func (s *Service) throttled(db *gorm.DB, email, remoteAddr string) error {
	wait, err := Throttle(db.Model(&signInAttempt{}), email, remoteAddr)
	if err != nil || wait == 0 {
		return err
	}
	return &ThrottledError{RetryAfter: wait}
}

// Throttle reads a table of sign-in attempts (columns email, remote_addr, succeeded,
// created_at; attempts is a query on it) and returns how long sign-in must pause: zero while
// the account has fewer than MaxFailuresPerEmail and the address fewer than MaxFailuresPerAddr
// failures in ThrottleWindow. Platform and tenant sign-ins share it.
func Throttle(attempts *gorm.DB, email, remoteAddr string) (time.Duration, error) {
	since := time.Now().UTC().Add(-ThrottleWindow)
	for _, c := range []struct {
		column, value string
		max           int64
	}{{"email", email, MaxFailuresPerEmail}, {"remote_addr", remoteAddr, MaxFailuresPerAddr}} {
		var r struct {
			N      int64
			Oldest *time.Time
		}
		err := attempts.Session(&gorm.Session{}).Select("count(*) AS n, min(created_at) AS oldest").
			Where(c.column+" = ? AND NOT succeeded AND created_at > ?", c.value, since).Scan(&r).Error
		if err != nil {
			return 0, err
		}
		if r.N >= c.max && r.Oldest != nil {
			return max(time.Until(r.Oldest.Add(ThrottleWindow)), time.Second), nil
		}
	}
	return 0, nil
}

// RevokeSessions ends every session of the user ("sign out everywhere").
func (s *Service) RevokeSessions(ctx context.Context, u User) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", u.ID).
			Update("session_epoch", gorm.Expr("session_epoch + 1")).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: u.Email, Action: "platform_user.sessions_revoked", Target: u.Email})
	})
}

// PruneAttempts deletes sign-in attempts older than the throttling window needs.
func (s *Service) PruneAttempts(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("created_at < ?", time.Now().UTC().Add(-24*time.Hour)).Delete(&signInAttempt{})
	return res.RowsAffected, res.Error
}

type platformSecret struct {
	Name  string `gorm:"primaryKey"`
	Value []byte
}

func (platformSecret) TableName() string { return "tenantry.platform_secrets" }

// SessionKey returns the key that signs and encrypts session cookies: generated on first use and
// kept in the database, so every node and every restart shares it.
func (s *Service) SessionKey(ctx context.Context) ([]byte, error) {
	db := s.db.WithContext(ctx)
	fresh := make([]byte, 64)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if err := db.Exec("INSERT INTO tenantry.platform_secrets (name, value) VALUES ('session_key', ?) ON CONFLICT (name) DO NOTHING", fresh).Error; err != nil {
		return nil, err
	}
	var sec platformSecret
	err := db.Where("name = 'session_key'").First(&sec).Error
	return sec.Value, err
}
