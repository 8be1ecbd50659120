package tenantauth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const password = "correct-horse-battery"

type testBundle struct {
	db      *db.DB
	svc     *tenantauth.Service
	tenants *tenant.Service
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	d := dbtest.Open(t)
	return &testBundle{db: d, svc: tenantauth.NewService(d), tenants: tenant.NewService(d, dbtest.Logger(t))}
}

// tenant creates an active tenant with its own schema, named after the test.
func (b *testBundle) tenant(t *testing.T, suffix string) tenant.Tenant {
	t.Helper()
	slug := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + suffix
	tn, err := b.tenants.Create(context.Background(), "test", tenant.NewTenant{Slug: slug, Name: "Tenant " + suffix, PlanKey: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (b *testBundle) user(t *testing.T, tn tenant.Tenant, email string, role tenantauth.Role) tenantauth.User {
	t.Helper()
	u, err := b.svc.CreateUser(context.Background(), tn.ID, "test", tenantauth.NewUser{Email: email, Name: "User " + email, Role: role, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (b *testBundle) setState(t *testing.T, tn tenant.Tenant, state string) {
	t.Helper()
	if err := b.db.Owner.Exec("UPDATE tenantry.tenants SET state = ? WHERE id = ?", state, tn.ID).Error; err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) attempts(t *testing.T, tn tenant.Tenant) int64 {
	t.Helper()
	var n int64
	if err := b.db.Owner.Raw(fmt.Sprintf("SELECT count(*) FROM %s.sign_in_attempts", db.TenantSchema(tn.ID))).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignIn(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a, other := b.tenant(t, "a"), b.tenant(t, "b")
	u := b.user(t, a, " Alice@Example.com ", tenantauth.RoleAdmin)
	if u.Email != "alice@example.com" || !u.IsAdmin() || u.SessionEpoch != 1 {
		t.Fatalf("created user = %+v", u)
	}

	got, err := b.svc.SignIn(ctx, a.ID, "ALICE@example.com", password, "127.0.0.1")
	if err != nil {
		t.Fatalf("good password: %v", err)
	}
	if got.ID != u.ID || got.LastSignInAt == nil {
		t.Fatalf("signed in as %+v, want user %d with a last sign-in", got, u.ID)
	}
	for _, tc := range []struct{ name, email, password string }{
		{"wrong password", "alice@example.com", "wrong-password-here"},
		{"unknown e-mail", "nobody@example.com", password},
		{"empty password", "alice@example.com", ""},
	} {
		if _, err := b.svc.SignIn(ctx, a.ID, tc.email, tc.password, "127.0.0.1"); !errors.Is(err, tenantauth.ErrBadCredentials) {
			t.Errorf("%s: err = %v, want ErrBadCredentials", tc.name, err)
		}
	}

	// Tenant A's user does not exist in tenant B: same e-mail and password are refused there, and
	// B's list does not show them.
	if _, err := b.svc.SignIn(ctx, other.ID, "alice@example.com", password, "127.0.0.1"); !errors.Is(err, tenantauth.ErrBadCredentials) {
		t.Errorf("A's user signing in to B: err = %v, want ErrBadCredentials", err)
	}
	if us, err := b.svc.List(ctx, other.ID); err != nil || len(us) != 0 {
		t.Errorf("B's users = %v, %v; want none", us, err)
	}
	if _, err := b.svc.Get(ctx, other.ID, u.ID); !errors.Is(err, tenantauth.ErrNotFound) {
		t.Errorf("A's user id looked up in B: err = %v, want ErrNotFound", err)
	}
	// The same e-mail may exist separately in B, with its own password.
	b2, err := b.svc.CreateUser(ctx, other.ID, "test", tenantauth.NewUser{Email: "alice@example.com", Name: "Other Alice", Role: tenantauth.RoleMember, Password: "another-password-b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.SignIn(ctx, other.ID, "alice@example.com", password, "127.0.0.1"); !errors.Is(err, tenantauth.ErrBadCredentials) {
		t.Errorf("A's password in B: err = %v, want ErrBadCredentials", err)
	}
	if got, err := b.svc.SignIn(ctx, other.ID, "alice@example.com", "another-password-b", "127.0.0.1"); err != nil || got.ID != b2.ID || got.Name != "Other Alice" {
		t.Errorf("B's own alice: %+v, %v", got, err)
	}

	// A disabled user is refused with the right password.
	if err := b.db.Owner.Exec(fmt.Sprintf("UPDATE %s.users SET disabled_at = now() WHERE id = ?", db.TenantSchema(a.ID)), u.ID).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.SignIn(ctx, a.ID, "alice@example.com", password, "127.0.0.1"); !errors.Is(err, tenantauth.ErrBadCredentials) {
		t.Errorf("disabled user: err = %v, want ErrBadCredentials", err)
	}
	if _, err := b.svc.SignIn(ctx, 987654321, "alice@example.com", password, "127.0.0.1"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("unknown tenant: err = %v, want tenant.ErrNotFound", err)
	}
}

func TestSignInIPAllowlist(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "a")
	b.user(t, a, "ops@example.com", tenantauth.RoleAdmin)
	if _, err := b.tenants.SetNetwork(ctx, "test", a.Slug, tenant.Network{Allowlist: "10.0.0.0/8, 2001:db8::/32"}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1", "192.0.2.10", "2001:db9::1", "not-an-address", ""} {
		_, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", password, addr)
		var refused *tenantauth.AddressRefusedError
		if !errors.As(err, &refused) || !errors.Is(err, tenantauth.ErrAddressRefused) {
			t.Errorf("from %q: err = %v, want *AddressRefusedError", addr, err)
		}
	}
	// Refused before the password was looked at: not even an attempt was recorded.
	if n := b.attempts(t, a); n != 0 {
		t.Errorf("%d sign-in attempts recorded for refused addresses, want 0", n)
	}
	for _, addr := range []string{"10.1.2.3", "::ffff:10.9.9.9", "2001:db8::42"} {
		if _, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", password, addr); err != nil {
			t.Errorf("from allowed %q: %v", addr, err)
		}
	}
	if _, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", "wrong-password-here", "10.1.2.3"); !errors.Is(err, tenantauth.ErrBadCredentials) {
		t.Errorf("allowed address, wrong password: %v", err)
	}
}

func TestSignInClosedTenant(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "a")
	b.user(t, a, "ops@example.com", tenantauth.RoleAdmin)
	for _, tc := range []struct {
		state string
		open  bool
	}{
		{"notice", true}, {"degraded", true}, {"suspended", false}, {"exported", false}, {"provisioning", false}, {"purged", false}, {"active", true},
	} {
		b.setState(t, a, tc.state)
		_, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", password, "127.0.0.1")
		var closed *tenantauth.ClosedError
		switch {
		case tc.open && err != nil:
			t.Errorf("%s: %v, want signed in", tc.state, err)
		case !tc.open && (!errors.As(err, &closed) || closed.State != tc.state):
			t.Errorf("%s: err = %v, want *ClosedError{%s}", tc.state, err, tc.state)
		}
	}
}

func TestSignInThrottled(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a, other := b.tenant(t, "a"), b.tenant(t, "b")
	b.user(t, a, "ops@example.com", tenantauth.RoleAdmin)
	b.user(t, other, "ops@example.com", tenantauth.RoleAdmin)
	for i := 0; i < tenantauth.MaxFailuresPerEmail; i++ {
		if _, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", "wrong-password-here", "127.0.0.1"); !errors.Is(err, tenantauth.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	_, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", password, "127.0.0.1")
	var th *tenantauth.ThrottledError
	if !errors.As(err, &th) || th.RetryAfter <= 0 {
		t.Fatalf("after %d failures, right password: err = %v, want *ThrottledError", tenantauth.MaxFailuresPerEmail, err)
	}
	// Another tenant's account with the same e-mail is not affected.
	if _, err := b.svc.SignIn(ctx, other.ID, "ops@example.com", password, "127.0.0.1"); err != nil {
		t.Errorf("same e-mail in another tenant: %v", err)
	}
}

func TestCreateUserValidates(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "a")
	b.user(t, a, "taken@example.com", tenantauth.RoleMember)
	ok := tenantauth.NewUser{Email: "new@example.com", Name: "New", Role: tenantauth.RoleMember, Password: password}
	for _, tc := range []struct {
		name  string
		edit  func(*tenantauth.NewUser)
		field string
	}{
		{"no e-mail", func(n *tenantauth.NewUser) { n.Email = " " }, "email"},
		{"bad e-mail", func(n *tenantauth.NewUser) { n.Email = "not an address" }, "email"},
		{"display-name e-mail", func(n *tenantauth.NewUser) { n.Email = "Bob <bob@example.com>" }, "email"},
		{"taken e-mail", func(n *tenantauth.NewUser) { n.Email = "TAKEN@example.com" }, "email"},
		{"no name", func(n *tenantauth.NewUser) { n.Name = "  " }, "name"},
		{"bad role", func(n *tenantauth.NewUser) { n.Role = "owner" }, "role"},
		{"short password", func(n *tenantauth.NewUser) { n.Password = "short" }, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			tc.edit(&in)
			_, err := b.svc.CreateUser(ctx, a.ID, "test", in)
			if !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)[tc.field] == "" {
				t.Fatalf("err = %v, want a message for %q", err, tc.field)
			}
		})
	}
	us, err := b.svc.List(ctx, a.ID)
	if err != nil || len(us) != 1 {
		t.Fatalf("after refused creates: %d users, %v; want only the first", len(us), err)
	}
	if _, err := b.svc.CreateUser(ctx, 0, "test", ok); err == nil {
		t.Error("CreateUser without a tenant succeeded")
	}
}

func TestRevokeSessions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "a")
	u := b.user(t, a, "ops@example.com", tenantauth.RoleAdmin)
	if err := b.svc.RevokeSessions(ctx, a.ID, u.ID, u.Email); err != nil {
		t.Fatal(err)
	}
	got, err := b.svc.Get(ctx, a.ID, u.ID)
	if err != nil || got.SessionEpoch != u.SessionEpoch+1 {
		t.Fatalf("epoch after revoke = %d (%v), want %d", got.SessionEpoch, err, u.SessionEpoch+1)
	}
}

func TestTenantAuditChain(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a, other := b.tenant(t, "a"), b.tenant(t, "b")
	b.user(t, a, "ops@example.com", tenantauth.RoleAdmin)
	if _, err := b.svc.SignIn(ctx, a.ID, "ops@example.com", password, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	b.user(t, other, "ops@example.com", tenantauth.RoleAdmin)

	n, err := audit.VerifyTenant(ctx, b.db, a.ID)
	if err != nil || n != 2 {
		t.Fatalf("A's chain: %d events, %v; want 2 (user.created, user.signed_in)", n, err)
	}
	events, err := audit.ListTenant(ctx, b.db, a.ID, 10)
	if err != nil || len(events) != 2 || events[0].Action != "user.signed_in" || events[1].Action != "user.created" || events[1].Actor != "test" {
		t.Fatalf("A's events = %+v, %v", events, err)
	}
	if string(events[0].PrevHash) != string(events[1].Hash) {
		t.Error("the second event does not link to the first")
	}

	// The tenant's own role may only append.
	err = b.db.InTenant(ctx, a.ID, func(tx *gorm.DB) error {
		return tx.Model(&audit.TenantEvent{}).Where("id = ?", events[1].ID).Update("actor", "mallory").Error
	})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("tenant role updating its audit trail: %v, want permission denied", err)
	}
	// Recording needs a tenant transaction.
	if err := b.db.App.Transaction(func(tx *gorm.DB) error {
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: "x", Action: "y"})
	}); err == nil {
		t.Error("RecordTenant outside a tenant transaction succeeded")
	}

	// Someone with owner rights edits A's history: VerifyTenant names the event; B is intact.
	if err := b.db.Owner.Exec(fmt.Sprintf("UPDATE %s.audit_events SET actor = 'mallory' WHERE action = 'user.created'", db.TenantSchema(a.ID))).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTenant(ctx, b.db, a.ID); !errors.Is(err, audit.ErrChainBroken) || !strings.Contains(err.Error(), fmt.Sprint(events[1].ID)) {
		t.Errorf("edited chain: %v, want ErrChainBroken at event %d", err, events[1].ID)
	}
	if n, err := audit.VerifyTenant(ctx, b.db, other.ID); err != nil || n != 1 {
		t.Errorf("B's chain: %d, %v; want 1 intact event", n, err)
	}
	// An event copied from B's trail into A's does not verify there (the hash covers the tenant).
	c := b.tenant(t, "c")
	b.user(t, c, "ops@example.com", tenantauth.RoleAdmin)
	if err := b.db.Owner.Exec(fmt.Sprintf("INSERT INTO %s.audit_events (actor, action, target, detail, created_at, prev_hash, hash) SELECT actor, action, target, detail, created_at, prev_hash, hash FROM %s.audit_events", db.TenantSchema(other.ID), db.TenantSchema(c.ID))).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTenant(ctx, b.db, other.ID); !errors.Is(err, audit.ErrChainBroken) {
		t.Errorf("chain with a copied event: %v, want ErrChainBroken", err)
	}
}

func TestActAs(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "a")
	for _, reason := range []string{"", "   ", "too short", strings.Repeat("x", tenantauth.MaxReasonLength+1)} {
		if _, _, err := b.svc.StartActing(ctx, a.ID, "ada@example.com", reason); validation.Fields(err)["reason"] == "" {
			t.Errorf("reason %q: err = %v, want a reason error", reason, err)
		}
	}
	if n, err := audit.VerifyTenant(ctx, b.db, a.ID); err != nil || n != 0 {
		t.Fatalf("refused act-as left %d tenant events (%v)", n, err)
	}
	reason, started, err := b.svc.StartActing(ctx, a.ID, "ada@example.com", "  Ticket 4711:\n reset the admin's password ")
	if err != nil || reason != "Ticket 4711: reset the admin's password" {
		t.Fatalf("start: %q, %v", reason, err)
	}
	if err := b.svc.StopActing(ctx, a.ID, "ada@example.com", reason, tenantauth.EndStopped, started); err != nil {
		t.Fatal(err)
	}
	events, err := audit.ListTenant(ctx, b.db, a.ID, 10)
	if err != nil || len(events) != 2 || events[1].Action != "act_as.started" || events[0].Action != "act_as.stopped" ||
		events[1].Actor != "platform:ada@example.com" || !strings.Contains(string(events[1].Detail), "Ticket 4711") {
		t.Fatalf("tenant events = %+v, %v", events, err)
	}
	platform, _, err := audit.List(ctx, b.db.App, audit.Query{TenantID: &a.ID, Page: 1, PerPage: 10})
	if err != nil || len(platform) < 2 || platform[1].Action != "tenant.act_as_started" || platform[0].Action != "tenant.act_as_stopped" ||
		platform[1].Actor != "ada@example.com" || !strings.Contains(string(platform[1].Detail), "Ticket 4711") {
		t.Fatalf("platform events = %+v, %v", platform, err)
	}
	if _, err := audit.Verify(ctx, b.db.App); err != nil {
		t.Errorf("platform chain: %v", err)
	}

	b.setState(t, a, "suspended")
	if _, _, err := b.svc.StartActing(ctx, a.ID, "ada@example.com", "Ticket 4712: look around"); !errors.Is(err, tenantauth.ErrTenantClosed) {
		t.Errorf("act as in a suspended tenant: %v, want ErrTenantClosed", err)
	}
}

// An act-as session whose admin never comes back is recorded as ended once by the sweep, and not
// again when the admin does come back later.
func TestSweepAbandonedActAs(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "sweep")
	reason, started, err := b.svc.StartActing(ctx, a.ID, "ada@example.com", "Ticket 4713: check the import")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.svc.SweepAbandonedActAs(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweep of a live session ended %d (%v)", n, err)
	}
	later := time.Now().Add(tenantauth.ActAsMaxDuration + time.Minute)
	if n, err := b.svc.SweepAbandonedActAs(ctx, later); err != nil || n != 1 {
		t.Fatalf("sweep after expiry ended %d, want 1 (%v)", n, err)
	}
	if n, err := b.svc.SweepAbandonedActAs(ctx, later); err != nil || n != 0 {
		t.Fatalf("second sweep ended %d, want 0 (%v)", n, err)
	}
	// The admin's browser comes back with the old session: nothing more is recorded.
	if err := b.svc.StopActing(ctx, a.ID, "ada@example.com", reason, tenantauth.EndExpired, started); err != nil {
		t.Fatal(err)
	}
	events, err := audit.ListTenant(ctx, b.db, a.ID, 10)
	if err != nil || len(events) != 2 || events[0].Action != "act_as.stopped" || !strings.Contains(string(events[0].Detail), `"duration_seconds": 3600`) {
		t.Fatalf("tenant events = %+v, %v", events, err)
	}
	if _, err := audit.Verify(ctx, b.db.App); err != nil {
		t.Errorf("platform chain: %v", err)
	}
}
