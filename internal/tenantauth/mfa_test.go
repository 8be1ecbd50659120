package tenantauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/riverqueue/river"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// mfaBundle is a tenant with a keyset, one user, and the MFA service on a clock the test moves.
type mfaBundle struct {
	*testBundle
	keys   *keys.Service
	mfa    *tenantauth.MFA
	tenant tenant.Tenant
	user   tenantauth.User
	mu     sync.Mutex
	clock  time.Time
}

func setupMFA(t *testing.T) *mfaBundle {
	t.Helper()
	b := setup(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	m := &mfaBundle{testBundle: b, keys: keys.NewService(b.db.App, master), clock: time.Unix(1_800_000_000, 0)}
	m.tenant = b.tenant(t, "mfa")
	if err := m.keys.Create(context.Background(), nil, m.tenant.ID); err != nil {
		t.Fatal(err)
	}
	m.user = b.user(t, m.tenant, "mfa-user@example.com", tenantauth.RoleMember)
	m.mfa = tenantauth.NewMFA(b.svc, m.keys).WithClock(m.now)
	return m
}

func (m *mfaBundle) now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock
}

func (m *mfaBundle) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clock = m.clock.Add(d)
}

func (m *mfaBundle) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, m.now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol generates and confirms a secret and returns it.
func (m *mfaBundle) enrol(t *testing.T) string {
	t.Helper()
	e, err := m.mfa.NewEnrolment(m.tenant, m.user)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.mfa.Enrol(context.Background(), m.tenant.ID, m.user, e, m.code(t, e.Secret), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	return e.Secret
}

func (m *mfaBundle) tenantEvents(t *testing.T, action string) int64 {
	t.Helper()
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s.audit_events WHERE action = ?", db.TenantSchema(m.tenant.ID))
	if err := m.db.Owner.Raw(q, action).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMFAEnrolStoresEncryptedSecret(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	if ok, err := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); err != nil || ok {
		t.Fatalf("enrolled before enrolment: %v %v", ok, err)
	}
	e, err := m.mfa.NewEnrolment(m.tenant, m.user)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.URL, "otpauth://totp/") || !strings.Contains(e.URL, "secret="+e.Secret) || len(e.Secret) < 32 {
		t.Fatalf("enrolment URL %q secret %q", e.URL, e.Secret)
	}
	// The QR code is a real PNG.
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.QR, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() != 240 {
		t.Fatalf("QR code: %v", err)
	}
	// Rebuilt from its URL (as between the two enrolment requests), it is the same secret.
	if again, err := tenantauth.EnrolmentFromURL(e.URL); err != nil || again.Secret != e.Secret {
		t.Fatalf("rebuilt enrolment: %v %v", again.Secret, err)
	}

	if err := m.mfa.Enrol(ctx, m.tenant.ID, m.user, e, "000000", "192.0.2.1"); !errors.Is(err, tenantauth.ErrBadCode) {
		t.Fatalf("enrol with a wrong code: %v", err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); ok {
		t.Fatal("a wrong code enrolled the user")
	}
	if err := m.mfa.Enrol(ctx, m.tenant.ID, m.user, e, m.code(t, e.Secret), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); !ok {
		t.Fatal("not enrolled after a correct code")
	}
	// Stored encrypted: neither the base32 secret nor its bytes appear in the column.
	var r struct{ MfaSecret []byte }
	m.db.Owner.Raw(fmt.Sprintf("SELECT mfa_secret FROM %s.users WHERE id = ?", db.TenantSchema(m.tenant.ID)), m.user.ID).Scan(&r)
	stored := r.MfaSecret
	if len(stored) == 0 || bytes.Contains(stored, []byte(e.Secret)) {
		t.Fatalf("mfa_secret is not an opaque ciphertext: %q", stored)
	}
	// Bound to the user: copied onto another user it does not decrypt.
	other := m.testBundle.user(t, m.tenant, "other@example.com", tenantauth.RoleMember)
	m.db.Owner.Exec(fmt.Sprintf("UPDATE %s.users SET mfa_secret = ? WHERE id = ?", db.TenantSchema(m.tenant.ID)), stored, other.ID)
	m.advance(time.Minute)
	if err := m.mfa.Verify(ctx, m.tenant.ID, other, m.code(t, e.Secret), "192.0.2.1"); !errors.Is(err, keys.ErrDecrypt) {
		t.Fatalf("a secret moved to another user: %v, want ErrDecrypt", err)
	}
	// Enrolling twice is refused.
	if err := m.mfa.Enrol(ctx, m.tenant.ID, m.user, e, m.code(t, e.Secret), "192.0.2.1"); !errors.Is(err, tenantauth.ErrEnrolled) {
		t.Fatalf("second enrolment: %v", err)
	}
	if n := m.tenantEvents(t, "user.mfa_enrolled"); n != 1 {
		t.Fatalf("%d enrolment events", n)
	}
	if n := m.tenantEvents(t, "user.mfa_failed"); n != 1 {
		t.Fatalf("%d failure events, want 1 (the wrong enrolment code)", n)
	}
}

func TestMFAVerifyRefusesReplay(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	secret := m.enrol(t)
	// The enrolment code's step is used: the same code cannot sign in.
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, m.code(t, secret), "192.0.2.1"); !errors.Is(err, tenantauth.ErrCodeReused) {
		t.Fatalf("enrolment code reused: %v", err)
	}
	m.advance(30 * time.Second)
	code := m.code(t, secret)
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, code, "192.0.2.1"); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
	// Same code again, still inside its window (and inside the ±1 step skew a bit later).
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, code, "192.0.2.1"); !errors.Is(err, tenantauth.ErrCodeReused) {
		t.Fatalf("replayed code: %v", err)
	}
	m.advance(20 * time.Second)
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, code, "192.0.2.1"); !errors.Is(err, tenantauth.ErrCodeReused) {
		t.Fatalf("replayed code in the next step: %v", err)
	}
	m.advance(10 * time.Second) // the next step: its code is new
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, m.code(t, secret), "192.0.2.1"); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
	// Far outside the window a code is simply wrong.
	stale := m.code(t, secret)
	m.advance(5 * time.Minute)
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, stale, "192.0.2.1"); !errors.Is(err, tenantauth.ErrBadCode) {
		t.Fatalf("stale code: %v", err)
	}
	if n := m.tenantEvents(t, "user.mfa_verified"); n != 2 {
		t.Fatalf("%d verified events, want 2", n)
	}
}

func TestMFAConcurrentSameCodeAcceptedOnce(t *testing.T) {
	m := setupMFA(t)
	secret := m.enrol(t)
	m.advance(30 * time.Second)
	code := m.code(t, secret)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.mfa.Verify(context.Background(), m.tenant.ID, m.user, code, fmt.Sprintf("192.0.2.%d", 10+i))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, tenantauth.ErrCodeReused):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one code accepted, want 1", ok, len(errs))
	}
}

func TestMFAWrongCodesThrottled(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	secret := m.enrol(t)
	m.advance(30 * time.Second)
	// A code that is certainly wrong now: none of the codes of the accepted steps (the current
	// one and one either side), found by changing the current code's first digit.
	accepted := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := totp.GenerateCode(secret, m.now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		accepted[c] = true
	}
	wrong := m.code(t, secret)
	for accepted[wrong] {
		wrong = string('0'+(wrong[0]-'0'+1)%10) + wrong[1:]
	}
	for i := 0; i < tenantauth.MaxFailuresPerEmail; i++ {
		if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, wrong, "192.0.2.1"); !errors.Is(err, tenantauth.ErrBadCode) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	// Now even the right code is refused until the window passes.
	err := m.mfa.Verify(ctx, m.tenant.ID, m.user, m.code(t, secret), "192.0.2.1")
	var th *tenantauth.ThrottledError
	if !errors.As(err, &th) || th.RetryAfter <= 0 {
		t.Fatalf("after %d wrong codes: %v, want throttled", tenantauth.MaxFailuresPerEmail, err)
	}
	// The wrong codes count as failed sign-ins: the password sign-in is paused too.
	if _, err := m.svc.SignIn(ctx, m.tenant.ID, m.user.Email, password, "192.0.2.1"); !errors.As(err, &th) {
		t.Fatalf("password sign-in after wrong codes: %v, want throttled", err)
	}
	if n := m.tenantEvents(t, "user.mfa_failed"); n != int64(tenantauth.MaxFailuresPerEmail) {
		t.Fatalf("%d failure events", n)
	}
}

func TestMFARequiredFollowsPolicy(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	if req, err := m.mfa.Required(ctx, m.tenant); err != nil || req {
		t.Fatalf("required by default: %v %v", req, err)
	}
	if _, err := settings.NewService(m.db.App, m.tenants).Set(ctx, "ops", &m.tenant, tenantauth.MFAPolicyKey, "true", false); err != nil {
		t.Fatal(err)
	}
	if req, err := m.mfa.Required(ctx, m.tenant); err != nil || !req {
		t.Fatalf("required after the policy is set: %v %v", req, err)
	}
}

func TestMFAResetAndReencrypt(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	secret := m.enrol(t)
	if n, err := m.mfa.Count(ctx, m.tenant.ID); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	// A rotation moves the secret to the new key; codes still verify.
	stored := func() []byte {
		var r struct{ MfaSecret []byte }
		m.db.Owner.Raw(fmt.Sprintf("SELECT mfa_secret FROM %s.users WHERE id = ?", db.TenantSchema(m.tenant.ID)), m.user.ID).Scan(&r)
		return r.MfaSecret
	}
	before, _ := keys.CiphertextKeyID(stored())
	m.keys.RegisterReencrypter("mfa", m.mfa)
	rotation, err := m.keys.Rotate(ctx, "ops", m.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.NewRotateWorker(m.keys).Work(ctx, &river.Job[keys.RotateArgs]{Args: keys.RotateArgs{TenantID: m.tenant.ID, RotationID: rotation}}); err != nil {
		t.Fatal(err)
	}
	if after, _ := keys.CiphertextKeyID(stored()); after == before {
		t.Fatalf("the secret is still under key %d after the rotation", before)
	}
	m.advance(30 * time.Second)
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, m.code(t, secret), "192.0.2.1"); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}
	if _, err := m.mfa.Reset(ctx, m.tenant.ID, 0, "admin@example.com", m.user.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); ok {
		t.Fatal("still enrolled after reset")
	}
	if err := m.mfa.Verify(ctx, m.tenant.ID, m.user, m.code(t, secret), "192.0.2.1"); !errors.Is(err, tenantauth.ErrNotEnrolled) {
		t.Fatalf("verify after reset: %v", err)
	}
	if n := m.tenantEvents(t, "user.mfa_reset"); n != 1 {
		t.Fatalf("%d reset events", n)
	}
}
