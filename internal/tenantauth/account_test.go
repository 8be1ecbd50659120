package tenantauth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

func (m *mfaBundle) requireMFA(t *testing.T, on bool) {
	t.Helper()
	if _, err := settings.NewService(m.db.App, m.tenants).Set(context.Background(), "ops", &m.tenant, tenantauth.MFAPolicyKey, fmt.Sprint(on), false); err != nil {
		t.Fatal(err)
	}
}

func (m *mfaBundle) actions(t *testing.T) []string {
	t.Helper()
	es, err := audit.ListTenant(context.Background(), m.db, m.tenant.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(es))
	for i := len(es) - 1; i >= 0; i-- { // oldest first
		out = append(out, es[i].Action)
	}
	return out
}

func TestMFAResetRules(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	admin := m.testBundle.user(t, m.tenant, "admin@example.com", tenantauth.RoleAdmin)

	// Nothing to reset yet.
	if _, err := m.mfa.Reset(ctx, m.tenant.ID, admin.ID, admin.Email, m.user.ID); !errors.Is(err, tenantauth.ErrNotEnrolled) {
		t.Fatalf("reset without a factor: %v, want ErrNotEnrolled", err)
	}
	if _, err := m.mfa.Reset(ctx, m.tenant.ID, admin.ID, admin.Email, 987654); !errors.Is(err, tenantauth.ErrNotFound) {
		t.Fatalf("reset of an unknown user: %v", err)
	}
	m.enrol(t)
	// Nobody resets their own factor from the Users page (the account page asks for a code).
	if _, err := m.mfa.Reset(ctx, m.tenant.ID, m.user.ID, m.user.Email, m.user.ID); !errors.Is(err, tenantauth.ErrSelf) {
		t.Fatalf("self reset: %v, want ErrSelf", err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); !ok {
		t.Fatal("a refused reset removed the factor")
	}
	before, _ := m.svc.Get(ctx, m.tenant.ID, m.user.ID)
	got, err := m.mfa.Reset(ctx, m.tenant.ID, admin.ID, admin.Email, m.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := m.svc.Get(ctx, m.tenant.ID, m.user.ID)
	if after.SessionEpoch != before.SessionEpoch+1 || got.SessionEpoch != after.SessionEpoch {
		t.Fatalf("session epoch %d -> %d (returned %d): the user's sessions were not revoked", before.SessionEpoch, after.SessionEpoch, got.SessionEpoch)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); ok {
		t.Fatal("still enrolled after the reset")
	}
	es, _ := audit.ListTenant(ctx, m.db, m.tenant.ID, 1)
	if len(es) != 1 || es[0].Action != "user.mfa_reset" || es[0].Actor != admin.Email || es[0].Target != m.user.Email {
		t.Fatalf("last tenant event %+v", es)
	}

	// By a platform admin: both chains, in one go.
	m.advance(time.Minute)
	m.enrol(t)
	if _, err := m.mfa.ResetByPlatform(ctx, m.tenant, "ops@platform.example", m.user.ID); err != nil {
		t.Fatal(err)
	}
	es, _ = audit.ListTenant(ctx, m.db, m.tenant.ID, 1)
	if es[0].Action != "user.mfa_reset" || es[0].Actor != "platform:ops@platform.example" {
		t.Fatalf("tenant event of a platform reset %+v", es[0])
	}
	pe, _, err := audit.List(ctx, m.db.App, audit.Query{TenantID: &m.tenant.ID, Page: 1, PerPage: 10})
	if err != nil || len(pe) == 0 || pe[0].Action != "tenant.user_mfa_reset" || pe[0].Actor != "ops@platform.example" {
		t.Fatalf("platform events %+v %v", pe, err)
	}
	if _, err := audit.VerifyTenant(ctx, m.db, m.tenant.ID); err != nil {
		t.Fatal(err)
	}
}

func TestMFADisableRules(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()
	if err := m.mfa.Disable(ctx, m.tenant, m.user, "123456", "192.0.2.1"); !errors.Is(err, tenantauth.ErrNotEnrolled) {
		t.Fatalf("disable without a factor: %v", err)
	}
	secret := m.enrol(t)
	m.advance(30 * time.Second)

	// While the tenant requires it: refused even with the right code, and nothing changes.
	m.requireMFA(t, true)
	if err := m.mfa.Disable(ctx, m.tenant, m.user, m.code(t, secret), "192.0.2.1"); !errors.Is(err, tenantauth.ErrMFARequired) {
		t.Fatalf("disable while required: %v, want ErrMFARequired", err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); !ok {
		t.Fatal("disabled while the policy requires it")
	}
	m.requireMFA(t, false)

	// A wrong code is refused and counted as a failure.
	wrong := "000000"
	if m.code(t, secret) == wrong {
		wrong = "111111"
	}
	if err := m.mfa.Disable(ctx, m.tenant, m.user, wrong, "192.0.2.1"); !errors.Is(err, tenantauth.ErrBadCode) {
		t.Fatalf("disable with a wrong code: %v", err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); !ok {
		t.Fatal("a wrong code disabled the factor")
	}
	if n := m.tenantEvents(t, "user.mfa_failed"); n != 1 {
		t.Fatalf("%d failure events", n)
	}
	if err := m.mfa.Disable(ctx, m.tenant, m.user, m.code(t, secret), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.mfa.Enrolled(ctx, m.tenant.ID, m.user.ID); ok {
		t.Fatal("still enrolled after disabling")
	}
	if n := m.tenantEvents(t, "user.mfa_disabled"); n != 1 {
		t.Fatalf("%d disabled events", n)
	}
}

// TestSignInAuditSecondFactor: user.signed_in is recorded when the session starts — at once
// without a second factor; after the code (SessionStarted) with one. Before that the password is
// recorded as accepted, and the last sign-in time does not move.
func TestSignInAuditSecondFactor(t *testing.T) {
	m := setupMFA(t)
	ctx := context.Background()

	// No factor, no policy: signed in straight away.
	u, err := m.svc.SignIn(ctx, m.tenant.ID, m.user.Email, password, "192.0.2.1")
	if err != nil || u.LastSignInAt == nil {
		t.Fatalf("sign in: %v, last sign-in %v", err, u.LastSignInAt)
	}
	if got := m.actions(t); !slices.Equal(got, []string{"user.created", "user.signed_in"}) {
		t.Fatalf("events without a second factor: %v", got)
	}
	first := u.LastSignInAt.Truncate(time.Microsecond) // as PostgreSQL keeps it

	// Enrolled: the password is accepted, the sign-in is not done.
	secret := m.enrol(t)
	m.advance(30 * time.Second)
	u, err = m.svc.SignIn(ctx, m.tenant.ID, m.user.Email, password, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := m.svc.Get(ctx, m.tenant.ID, m.user.ID)
	if stored.LastSignInAt == nil || !stored.LastSignInAt.Equal(first) {
		t.Fatalf("last sign-in moved on a password alone: %v, was %v", stored.LastSignInAt, first)
	}
	want := []string{"user.created", "user.signed_in", "user.mfa_enrolled", "user.password_accepted"}
	if got := m.actions(t); !slices.Equal(got, want) {
		t.Fatalf("events after the password: %v, want %v", got, want)
	}
	es, _ := audit.ListTenant(ctx, m.db, m.tenant.ID, 1)
	if string(es[0].Detail) == "" || !jsonHas(es[0].Detail, `"second_factor": "code"`, `"second_factor":"code"`) {
		t.Fatalf("password_accepted detail %s", es[0].Detail)
	}
	if err := m.mfa.Verify(ctx, m.tenant.ID, u, m.code(t, secret), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := m.svc.SessionStarted(ctx, m.tenant.ID, u, "192.0.2.1", "totp"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "user.mfa_verified", "user.signed_in")
	if got := m.actions(t); !slices.Equal(got, want) {
		t.Fatalf("events after the code: %v, want %v", got, want)
	}
	stored, _ = m.svc.Get(ctx, m.tenant.ID, m.user.ID)
	if !stored.LastSignInAt.After(first) {
		t.Fatal("last sign-in not moved when the session started")
	}

	// Required but not enrolled: accepted, enrolment next.
	other := m.testBundle.user(t, m.tenant, "new@example.com", tenantauth.RoleMember)
	m.requireMFA(t, true)
	if _, err := m.svc.SignIn(ctx, m.tenant.ID, other.Email, password, "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	es, _ = audit.ListTenant(ctx, m.db, m.tenant.ID, 1)
	if es[0].Action != "user.password_accepted" || es[0].Target != other.Email || !jsonHas(es[0].Detail, `"second_factor": "enrolment"`, `"second_factor":"enrolment"`) {
		t.Fatalf("required, not enrolled: %+v %s", es[0], es[0].Detail)
	}
}

func jsonHas(raw []byte, alternatives ...string) bool {
	for _, a := range alternatives {
		if strings.Contains(string(raw), a) {
			return true
		}
	}
	return false
}

func TestAccountChangePassword(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "pw")
	u := b.user(t, tn, "pat@example.com", tenantauth.RoleMember)
	if _, err := settings.NewService(b.db.App, b.tenants).Set(ctx, "ops", &tn, "security.password_min_length", "14", false); err != nil {
		t.Fatal(err)
	}
	hashOf := func() string {
		var h string
		b.db.Owner.Raw(fmt.Sprintf("SELECT password_hash FROM %s.users WHERE id = ?", db.TenantSchema(tn.ID)), u.ID).Scan(&h)
		return h
	}
	before := hashOf()
	cases := []struct {
		name  string
		in    tenantauth.PasswordChange
		field string
	}{
		{"wrong current", tenantauth.PasswordChange{Current: "not-my-password", New: "a-long-new-password", Confirm: "a-long-new-password"}, "current_password"},
		{"no current", tenantauth.PasswordChange{New: "a-long-new-password", Confirm: "a-long-new-password"}, "current_password"},
		{"too short for everyone", tenantauth.PasswordChange{Current: password, New: "short", Confirm: "short"}, "new_password"},
		{"too short for the tenant", tenantauth.PasswordChange{Current: password, New: "twelve-chars", Confirm: "twelve-chars"}, "new_password"},
		{"confirmation differs", tenantauth.PasswordChange{Current: password, New: "a-long-new-password", Confirm: "a-long-new-passwort"}, "confirm_password"},
	}
	for _, tc := range cases {
		_, err := b.svc.ChangePassword(ctx, tn.ID, u.ID, tc.in, "192.0.2.9")
		if fields := validation.Fields(err); fields[tc.field] == "" {
			t.Errorf("%s: %v, want an error on %s", tc.name, err, tc.field)
		}
		if hashOf() != before {
			t.Fatalf("%s: the password changed", tc.name)
		}
	}
	// The tenant's policy wording names its length.
	_, err := b.svc.ChangePassword(ctx, tn.ID, u.ID, tenantauth.PasswordChange{Current: password, New: "twelve-chars", Confirm: "twelve-chars"}, "192.0.2.9")
	if msg := validation.Fields(err)["new_password"]; !strings.Contains(msg, "14") {
		t.Fatalf("policy message %q does not name 14", msg)
	}
	_, err = b.svc.ChangePassword(ctx, tn.ID, u.ID, tenantauth.PasswordChange{Current: password, New: password, Confirm: password}, "192.0.2.9")
	if validation.Fields(err)["new_password"] == "" {
		t.Fatalf("new password equal to the current one: %v", err)
	}

	got, err := b.svc.ChangePassword(ctx, tn.ID, u.ID, tenantauth.PasswordChange{Current: password, New: "a-long-new-password", Confirm: "a-long-new-password"}, "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionEpoch != u.SessionEpoch+1 {
		t.Fatalf("epoch %d, want %d: other sessions not ended", got.SessionEpoch, u.SessionEpoch+1)
	}
	if _, err := b.svc.SignIn(ctx, tn.ID, u.Email, password, "192.0.2.9"); !errors.Is(err, tenantauth.ErrBadCredentials) {
		t.Fatalf("old password after the change: %v", err)
	}
	if _, err := b.svc.SignIn(ctx, tn.ID, u.Email, "a-long-new-password", "192.0.2.9"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	es, _ := audit.ListTenant(ctx, b.db, tn.ID, 100)
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "user.password_changed") {
		t.Fatalf("no user.password_changed: %v", actions)
	}
}

// TestAccountChangePasswordThrottled: wrong current passwords count like wrong sign-ins.
func TestAccountChangePasswordThrottled(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "pwt")
	u := b.user(t, tn, "pat@example.com", tenantauth.RoleMember)
	for i := 0; i < tenantauth.MaxFailuresPerEmail; i++ {
		if _, err := b.svc.ChangePassword(ctx, tn.ID, u.ID, tenantauth.PasswordChange{Current: "guess-number-" + fmt.Sprint(i), New: "a-long-new-password", Confirm: "a-long-new-password"}, "192.0.2.9"); validation.Fields(err)["current_password"] == "" {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var th *tenantauth.ThrottledError
	if _, err := b.svc.ChangePassword(ctx, tn.ID, u.ID, tenantauth.PasswordChange{Current: password, New: "a-long-new-password", Confirm: "a-long-new-password"}, "192.0.2.9"); !errors.As(err, &th) {
		t.Fatalf("after %d wrong passwords: %v, want throttled", tenantauth.MaxFailuresPerEmail, err)
	}
}

// The tenant's complexity policy applies wherever a password is set: here for a new user.
func TestPasswordComplexityPolicy(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "complex")
	set := settings.NewService(b.db.App, b.tenants)
	for i, tc := range []struct {
		level, password string
		ok              bool
	}{
		{"length", "all-lower-case-words", true},
		{"mixed", "all-lower-case-words", false},
		{"mixed", "words-and-digits-42", true},
		{"strong", "words-and-digits-42", false},
		{"strong", "Words-and-digits-42", true},
		{"strong", "WordsAndDigits42xyz", false},
	} {
		if _, err := set.Set(ctx, "ops", &tn, "security.password_complexity", tc.level, false); err != nil {
			t.Fatal(err)
		}
		_, err := b.svc.CreateUser(ctx, tn.ID, "test", tenantauth.NewUser{Email: fmt.Sprintf("c%d@example.com", i), Name: "C", Role: tenantauth.RoleMember, Password: tc.password})
		if got := err == nil; got != tc.ok {
			t.Errorf("%s / %q: err = %v, want ok=%v", tc.level, tc.password, err, tc.ok)
		}
		if !tc.ok && validation.Fields(err)["password"] == "" {
			t.Errorf("%s / %q: no message at the password field: %v", tc.level, tc.password, err)
		}
	}
	if _, err := set.Set(ctx, "ops", &tn, "security.password_complexity", "extreme", false); err == nil {
		t.Error("an unknown complexity level was accepted")
	}
}
