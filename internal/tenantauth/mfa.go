package tenantauth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TOTP second factor for tenant users (RFC 6238: six digits, 30-second steps, SHA-1, as every
// authenticator app expects).
//
// After a correct password, a user who has enrolled is asked for a code; a user who has not,
// in a tenant whose effective security.mfa_required is on, must enrol first. The user's secret
// is stored in users.mfa_secret encrypted with the tenant's key (internal/keys), bound to the
// tenant and the user by the associated data, together with the last time step a code was
// accepted for: a code is refused unless its step is later than that, so a code seen over a
// shoulder or in a log cannot be used again, even within its 30-second window. Wrong codes count
// as failed sign-in attempts, so identity.Throttle pauses an account after a few, exactly like
// wrong passwords. Enrolment and every failure are recorded in the tenant's audit chain.

// Errors of the second factor.
var (
	ErrBadCode      = errors.New("tenantauth: wrong or expired code")
	ErrCodeReused   = errors.New("tenantauth: code already used")
	ErrNotEnrolled  = errors.New("tenantauth: no second factor enrolled")
	ErrEnrolled     = errors.New("tenantauth: a second factor is already enrolled")
	ErrNoKeys       = errors.New("tenantauth: tenant keys are not configured")
	errMalformedMFA = errors.New("tenantauth: malformed second-factor secret")
)

// MFAPolicyKey is the settings key that makes enrolment compulsory.
const MFAPolicyKey = "security.mfa_required"

// lockingUpdate locks the user's row for the rest of the transaction.
var lockingUpdate = clause.Locking{Strength: "UPDATE"}

// totpPeriod is the TOTP step; totpSkew is how many steps either side are accepted (clock drift).
const (
	totpPeriod = 30
	totpSkew   = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// MFA enrols and verifies tenant users' TOTP second factor.
type MFA struct {
	s    *Service
	keys *keys.Service
	// now is the clock (tests move it).
	now func() time.Time
}

// NewMFA returns the second factor service; k encrypts secrets with each tenant's key.
func NewMFA(s *Service, k *keys.Service) *MFA {
	return &MFA{s: s, keys: k, now: time.Now}
}

// WithClock returns a copy of m that reads the time from now (for tests).
func (m *MFA) WithClock(now func() time.Time) *MFA {
	cp := *m
	cp.now = now
	return &cp
}

// storedSecret is the plaintext of users.mfa_secret.
type storedSecret struct {
	Secret   string `json:"secret"`
	LastStep int64  `json:"last_step"`
}

func mfaAssociatedData(tenantID, userID int64) []byte {
	return fmt.Appendf(nil, "tenantry.mfa:%d:%d", tenantID, userID)
}

// Required reports whether tenant t's effective policy makes a second factor compulsory.
func (m *MFA) Required(ctx context.Context, t tenant.Tenant) (bool, error) {
	v, err := m.s.Policy(ctx, t, MFAPolicyKey)
	if err != nil {
		return false, err
	}
	return v == "true", nil
}

// Enrolled reports whether the user has a second factor.
func (m *MFA) Enrolled(ctx context.Context, tenantID, userID int64) (bool, error) {
	var n int64
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Model(&User{}).Where("id = ? AND mfa_secret IS NOT NULL", userID).Count(&n).Error
	})
	return n == 1, err
}

// Enrolment is a freshly generated secret the user has not confirmed yet.
type Enrolment struct {
	// URL is the otpauth:// address (what the QR code holds); it contains the secret.
	URL string
	// Secret is the base32 secret, for typing into an app by hand.
	Secret string
	// QR is the QR code as a data: URI of a PNG image.
	QR string
}

// NewEnrolment generates a secret for u of tenant t. Nothing is stored until Enrol.
func (m *MFA) NewEnrolment(t tenant.Tenant, u User) (Enrolment, error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: t.Name, AccountName: u.Email, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrolment{}, fmt.Errorf("tenantauth: generate TOTP secret: %w", err)
	}
	return EnrolmentFromURL(k.URL())
}

// EnrolmentFromURL rebuilds an enrolment from its otpauth:// URL (kept between the pages of
// the enrolment in the signed, encrypted session cookie).
func EnrolmentFromURL(u string) (Enrolment, error) {
	k, err := otp.NewKeyFromURL(u)
	if err != nil || k.Type() != "totp" || k.Secret() == "" {
		return Enrolment{}, errMalformedMFA
	}
	img, err := k.Image(240, 240)
	if err != nil {
		return Enrolment{}, fmt.Errorf("tenantauth: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("tenantauth: QR code: %w", err)
	}
	return Enrolment{URL: u, Secret: k.Secret(), QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// matchStep returns the time step code is valid for (within the skew), or false.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	step := now.Unix() / totpPeriod
	found, ok := int64(0), false
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((step+d)*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		// Compare every candidate, in constant time, so timing says nothing about which matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, ok = step+d, true
		}
	}
	return found, ok
}

// Enrol confirms an enrolment with a code from the user's app: it stores the secret, encrypted
// with the tenant's key, and records the enrolment in the tenant's audit chain. A wrong code is
// recorded as a failed attempt (and counts toward the sign-in throttle).
func (m *MFA) Enrol(ctx context.Context, tenantID int64, u User, e Enrolment, code, remoteAddr string) error {
	if m.keys == nil {
		return ErrNoKeys
	}
	if err := m.checkThrottle(ctx, tenantID, u, remoteAddr); err != nil {
		return err
	}
	step, ok := matchStep(e.Secret, code, m.now())
	if !ok {
		return m.fail(ctx, tenantID, u, remoteAddr, "enrol", ErrBadCode)
	}
	plain, _ := json.Marshal(storedSecret{Secret: e.Secret, LastStep: step})
	ct, err := m.keys.Encrypt(ctx, tenantID, plain, mfaAssociatedData(tenantID, u.ID))
	if err != nil {
		return err
	}
	return m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ? AND mfa_secret IS NULL", u.ID).Update("mfa_secret", ct)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrEnrolled
		}
		if err := tx.Create(&signInAttempt{Email: u.Email, RemoteAddr: remoteAddr, Succeeded: true}).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.mfa_enrolled", Target: u.Email,
			Detail: audit.Detail(map[string]any{"method": "totp", "remote_addr": remoteAddr})})
	})
}

// Verify checks a code of an enrolled user. It refuses a wrong code (ErrBadCode), a code whose
// time step was already used (ErrCodeReused) and, after too many failures, any code
// (*ThrottledError). A success records the step so the code cannot be used again.
func (m *MFA) Verify(ctx context.Context, tenantID int64, u User, code, remoteAddr string) error {
	if m.keys == nil {
		return ErrNoKeys
	}
	if err := m.checkThrottle(ctx, tenantID, u, remoteAddr); err != nil {
		return err
	}
	var verr error
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		var row struct{ MfaSecret []byte }
		// FOR UPDATE: two requests with the same code are serialised; the second sees the step.
		if err := tx.Model(&User{}).Select("mfa_secret").Where("id = ?", u.ID).Clauses(lockingUpdate).Take(&row).Error; err != nil {
			return err
		}
		if row.MfaSecret == nil {
			return ErrNotEnrolled
		}
		plain, err := m.keys.Decrypt(ctx, tenantID, row.MfaSecret, mfaAssociatedData(tenantID, u.ID))
		if err != nil {
			return err
		}
		var st storedSecret
		if err := json.Unmarshal(plain, &st); err != nil || st.Secret == "" {
			return errMalformedMFA
		}
		step, ok := matchStep(st.Secret, code, m.now())
		switch {
		case !ok:
			verr = ErrBadCode
			return nil
		case step <= st.LastStep:
			verr = ErrCodeReused
			return nil
		}
		st.LastStep = step
		plain, _ = json.Marshal(st)
		ct, err := m.keys.Encrypt(ctx, tenantID, plain, mfaAssociatedData(tenantID, u.ID))
		if err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Update("mfa_secret", ct).Error; err != nil {
			return err
		}
		if err := tx.Create(&signInAttempt{Email: u.Email, RemoteAddr: remoteAddr, Succeeded: true}).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.mfa_verified", Target: u.Email,
			Detail: audit.Detail(map[string]any{"remote_addr": remoteAddr})})
	})
	if err != nil {
		return err
	}
	if verr != nil {
		return m.fail(ctx, tenantID, u, remoteAddr, "verify", verr)
	}
	return nil
}

// ErrMFARequired refuses turning a second factor off while the tenant's policy requires one.
var ErrMFARequired = errors.New("tenantauth: the tenant requires a second factor")

// Reset removes user userID's second factor, a tenant admin's action: it ends every session of
// the user (their session epoch moves on) and records user.mfa_reset in the tenant's audit
// chain. The user enrols again at the next sign-in if the tenant requires it (or may, from their
// account page, if not). It refuses resetting one's own factor (ErrSelf: that is done from one's
// account page, with a current code), an unknown user (ErrNotFound) and a user without a second
// factor (ErrNotEnrolled). actorID is the signed-in admin (0 for an acting platform admin).
func (m *MFA) Reset(ctx context.Context, tenantID, actorID int64, actor string, userID int64) (User, error) {
	if actorID != 0 && actorID == userID {
		return User{}, ErrSelf
	}
	return m.reset(ctx, tenantID, actor, userID, nil)
}

// ResetByPlatform is Reset by platform admin platformEmail from the admin portal: the event goes
// to the tenant's chain (as "platform:<email>") and, in the same transaction, to the platform's
// (tenant.user_mfa_reset).
func (m *MFA) ResetByPlatform(ctx context.Context, t tenant.Tenant, platformEmail string, userID int64) (User, error) {
	return m.reset(ctx, t.ID, ActingActor(platformEmail), userID, func(tx *gorm.DB, u User) error {
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return audit.Record(ptx, audit.Event{TenantID: &t.ID, Actor: platformEmail, Action: "tenant.user_mfa_reset", Target: t.Slug,
				Detail: audit.Detail(map[string]any{"user": u.Email, "sessions_revoked": true})})
		})
	})
}

func (m *MFA) reset(ctx context.Context, tenantID int64, actor string, userID int64, also func(*gorm.DB, User) error) (User, error) {
	var u User
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		var row struct {
			User
			MfaSecret []byte
		}
		if err := tx.Model(&User{}).Clauses(lockingUpdate).Where("id = ?", userID).Take(&row).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		u = row.User
		if row.MfaSecret == nil {
			return ErrNotEnrolled
		}
		upd := map[string]any{"mfa_secret": nil, "session_epoch": gorm.Expr("session_epoch + 1"), "updated_at": m.now().UTC()}
		if err := tx.Model(&User{}).Where("id = ?", userID).Updates(upd).Error; err != nil {
			return err
		}
		u.SessionEpoch++
		if err := audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "user.mfa_reset", Target: u.Email,
			Detail: audit.Detail(map[string]any{"sessions_revoked": true})}); err != nil {
			return err
		}
		if also != nil {
			return also(tx, u)
		}
		return nil
	})
	return u, err
}

// Disable turns off user u's own second factor, from their account page, with a current code
// from their app. It refuses while tenant t's policy requires a second factor
// (ErrMFARequired), for a user without one (ErrNotEnrolled), and a wrong or used code
// (ErrBadCode, ErrCodeReused: counted as failed sign-in attempts, like at sign-in).
func (m *MFA) Disable(ctx context.Context, t tenant.Tenant, u User, code, remoteAddr string) error {
	if m.keys == nil {
		return ErrNoKeys
	}
	required, err := m.Required(ctx, t)
	if err != nil {
		return err
	}
	if required {
		return ErrMFARequired
	}
	if err := m.checkThrottle(ctx, t.ID, u, remoteAddr); err != nil {
		return err
	}
	var verr error
	err = m.s.db.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		var row struct{ MfaSecret []byte }
		if err := tx.Model(&User{}).Select("mfa_secret").Where("id = ?", u.ID).Clauses(lockingUpdate).Take(&row).Error; err != nil {
			return err
		}
		if row.MfaSecret == nil {
			return ErrNotEnrolled
		}
		plain, err := m.keys.Decrypt(ctx, t.ID, row.MfaSecret, mfaAssociatedData(t.ID, u.ID))
		if err != nil {
			return err
		}
		var st storedSecret
		if err := json.Unmarshal(plain, &st); err != nil || st.Secret == "" {
			return errMalformedMFA
		}
		step, ok := matchStep(st.Secret, code, m.now())
		switch {
		case !ok:
			verr = ErrBadCode
			return nil
		case step <= st.LastStep:
			verr = ErrCodeReused
			return nil
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"mfa_secret": nil, "updated_at": m.now().UTC()}).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.mfa_disabled", Target: u.Email,
			Detail: audit.Detail(map[string]any{"remote_addr": remoteAddr})})
	})
	if err != nil {
		return err
	}
	if verr != nil {
		return m.fail(ctx, t.ID, u, remoteAddr, "disable", verr)
	}
	return nil
}

// EnrolledAmong returns which of ids (users of tenant tenantID) have a second factor.
func (m *MFA) EnrolledAmong(ctx context.Context, tenantID int64, ids []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var on []int64
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Model(&User{}).Where("id IN ? AND mfa_secret IS NOT NULL", ids).Pluck("id", &on).Error
	})
	for _, id := range on {
		out[id] = true
	}
	return out, err
}

func (m *MFA) checkThrottle(ctx context.Context, tenantID int64, u User, remoteAddr string) error {
	return m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return throttled(tx, u.Email, remoteAddr)
	})
}

// fail records a refused code as a failed sign-in attempt and in the audit chain, and returns why.
func (m *MFA) fail(ctx context.Context, tenantID int64, u User, remoteAddr, stage string, why error) error {
	reason := "wrong code"
	if errors.Is(why, ErrCodeReused) {
		reason = "code reused"
	}
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Create(&signInAttempt{Email: u.Email, RemoteAddr: remoteAddr, Succeeded: false}).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: u.Email, Action: "user.mfa_failed", Target: u.Email,
			Detail: audit.Detail(map[string]any{"stage": stage, "reason": reason, "remote_addr": remoteAddr})})
	})
	if err != nil {
		return err
	}
	return why
}

// Count tells a key rotation how many second-factor secrets the tenant holds.
func (m *MFA) Count(ctx context.Context, tenantID int64) (int, error) {
	var n int64
	err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Model(&User{}).Where("mfa_secret IS NOT NULL").Count(&n).Error
	})
	return int(n), err
}

// Reencrypt moves every second-factor secret of the tenant to its current primary key.
func (m *MFA) Reencrypt(ctx context.Context, tenantID int64, rewrap keys.Rewrap, progress func(done int) error) error {
	var ids []int64
	if err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Model(&User{}).Where("mfa_secret IS NOT NULL").Order("id").Pluck("id", &ids).Error
	}); err != nil {
		return err
	}
	const batch = 100
	for start := 0; start < len(ids); start += batch {
		end := min(start+batch, len(ids))
		err := m.s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
			for _, id := range ids[start:end] {
				var row struct{ MfaSecret []byte }
				if err := tx.Model(&User{}).Select("mfa_secret").Where("id = ?", id).Clauses(lockingUpdate).Take(&row).Error; err != nil {
					return err
				}
				if row.MfaSecret == nil { // reset meanwhile
					continue
				}
				ct, err := rewrap(row.MfaSecret, mfaAssociatedData(tenantID, id))
				if err != nil {
					return err
				}
				if err := tx.Model(&User{}).Where("id = ?", id).Update("mfa_secret", ct).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := progress(end); err != nil {
			return err
		}
	}
	return nil
}
