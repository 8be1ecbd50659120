package tenantauth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// A tenant user's own account: changing one's password (the second factor is in mfa.go).

// PasswordPolicy checks password against the rules for a new password in tenant t: what every
// Tenantry password must be (MinPasswordLength to 256 characters) and the tenant's effective
// security.password_min_length and security.password_complexity. A refusal is added to errs
// under field. Every place a tenant user's password is set goes through it.
func (s *Service) PasswordPolicy(ctx context.Context, t tenant.Tenant, errs validation.Errors, field, password string) error {
	switch {
	case len(password) < MinPasswordLength:
		errs.Add(field, fmt.Sprintf("Use at least %d characters.", MinPasswordLength))
		return nil
	case len(password) > 256:
		errs.Add(field, "Use at most 256 characters.")
		return nil
	}
	raw, err := s.Policy(ctx, t, "security.password_min_length")
	if err != nil {
		return err
	}
	if min, _ := strconv.Atoi(raw); len(password) < min {
		errs.Add(field, fmt.Sprintf("This tenant's policy asks for at least %d characters.", min))
		return nil
	}
	complexity, err := s.Policy(ctx, t, "security.password_complexity")
	if err != nil {
		return err
	}
	if msg := complexityProblem(complexity, password); msg != "" {
		errs.Add(field, msg)
	}
	return nil
}

// complexityProblem says what password lacks for the complexity level, or "".
func complexityProblem(level, password string) string {
	var lower, upper, digit, symbol bool
	for _, r := range password {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		case !unicode.IsSpace(r):
			symbol = true
		}
	}
	switch level {
	case "mixed":
		if !(lower || upper) || !digit {
			return "This tenant's policy asks for letters and digits."
		}
	case "strong":
		if !lower || !upper || !digit || !symbol {
			return "This tenant's policy asks for upper- and lower-case letters, a digit and a symbol."
		}
	}
	return ""
}

// PasswordChange is the input of ChangePassword.
type PasswordChange struct {
	Current string
	New     string
	Confirm string
}

// ChangePassword sets tenant user userID's password after checking the current one. It refuses,
// with field errors and nothing changed: a wrong current password ("current_password", counted
// as a failed sign-in attempt so it cannot be guessed faster than at sign-in), a new password
// that breaks the tenant's policy or equals the current one ("new_password"), and a confirmation
// that differs ("confirm_password"); after too many failures it refuses with *ThrottledError.
// On success every other session of the user ends (the session epoch moves on; the returned
// user carries the new one) and user.password_changed is recorded in the tenant's audit chain.
func (s *Service) ChangePassword(ctx context.Context, tenantID, userID int64, in PasswordChange, remoteAddr string) (User, error) {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return User{}, err
	}
	u, err := s.Get(ctx, tenantID, userID)
	if err != nil {
		return User{}, err
	}
	if !u.Active() {
		return User{}, ErrNotFound
	}
	if err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error { return throttled(tx, u.Email, remoteAddr) }); err != nil {
		return User{}, err
	}
	errs := validation.Errors{}
	if in.Current == "" {
		errs.Add("current_password", "Enter your current password.")
	} else {
		ok, err := identity.CheckPassword(u.PasswordHash, in.Current)
		if err != nil {
			return User{}, err
		}
		if !ok {
			errs.Add("current_password", "That is not your current password.")
			if err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
				return tx.Create(&signInAttempt{Email: u.Email, RemoteAddr: remoteAddr, Succeeded: false}).Error
			}); err != nil {
				return User{}, err
			}
		}
	}
	if err := s.PasswordPolicy(ctx, t, errs, "new_password", in.New); err != nil {
		return User{}, err
	}
	if errs["new_password"] == "" && in.New == in.Current {
		errs.Add("new_password", "Choose a password different from your current one.")
	}
	if in.Confirm != in.New {
		errs.Add("confirm_password", "The two new passwords differ.")
	}
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	hash, err := identity.HashPassword(in.New)
	if err != nil {
		return User{}, err
	}
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		// Only if the password did not change meanwhile (another tab, an admin).
		res := tx.Model(&User{}).Where("id = ? AND password_hash = ?", u.ID, u.PasswordHash).
			Updates(map[string]any{"password_hash": hash, "session_epoch": gorm.Expr("session_epoch + 1"), "updated_at": time.Now().UTC()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errPasswordChanged
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.password_changed", Target: u.Email,
			Detail: audit.Detail(map[string]any{"remote_addr": remoteAddr, "other_sessions_ended": true})})
	})
	if errors.Is(err, errPasswordChanged) {
		return User{}, validation.Errors{"current_password": "Your password was changed meanwhile; enter the new one."}
	}
	if err != nil {
		return User{}, err
	}
	u.PasswordHash = hash
	u.SessionEpoch++
	return u, nil
}

var errPasswordChanged = errors.New("tenantauth: password changed meanwhile")
