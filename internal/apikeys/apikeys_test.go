package apikeys_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var localhost = netip.MustParseAddr("127.0.0.1")

type testBundle struct {
	d       *db.DB
	tenants *tenant.Service
}

func setup(t *testing.T) (*apikeys.Service, *testBundle) {
	t.Helper()
	d := dbtest.Open(t)
	return apikeys.NewService(d), &testBundle{d: d, tenants: tenant.NewService(d, dbtest.Logger(t))}
}

// tenant registers an active tenant with its own schema.
func (b *testBundle) tenant(t *testing.T) tenant.Tenant {
	t.Helper()
	r := make([]byte, 5)
	_, _ = rand.Read(r)
	slug := "ak-" + hex.EncodeToString(r)
	tn, err := b.tenants.Create(context.Background(), "test", tenant.NewTenant{Slug: slug, Name: slug, PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// exec runs sql as the owner (outside any tenant scope), for arranging and inspecting rows.
func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.d.OwnerPool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) setState(t *testing.T, id int64, state string) {
	t.Helper()
	b.exec(t, "UPDATE tenantry.tenants SET state = $1 WHERE id = $2", state, id)
}

func issue(t *testing.T, s *apikeys.Service, tenantID int64, name string, expires *time.Time) apikeys.Issued {
	t.Helper()
	k, err := s.Create(context.Background(), "admin@example.com", tenantID, name, expires)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCreateShowsKeyOnceAndStoresOnlyAHash(t *testing.T) {
	ctx := context.Background()
	s, b := setup(t)
	tn := b.tenant(t)
	k := issue(t, s, tn.ID, "billing service", nil)

	format := regexp.MustCompile(`^tnt_` + strconv.FormatInt(tn.ID, 10) + `_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$`)
	m := format.FindStringSubmatch(k.FullKey)
	if m == nil {
		t.Fatalf("full key %q does not have the format tnt_<tenant>_<prefix>_<secret>", k.FullKey)
	}
	secret := m[2]
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret is not 32 bytes of base64url: %v", err)
	}
	if k.Prefix != "tnt_"+strconv.FormatInt(tn.ID, 10)+"_"+m[1] || strings.Contains(k.Prefix, secret) {
		t.Fatalf("prefix = %q", k.Prefix)
	}

	// The database holds neither the secret (as text or bytes) nor the full key: not in the key
	// row, not in the audit trail.
	var rowText string
	var hash []byte
	err = b.d.OwnerPool.QueryRow(ctx, "SELECT row_to_json(k)::text, secret_hash FROM "+db.TenantSchema(tn.ID)+".api_keys k WHERE id = $1", k.ID).Scan(&rowText, &hash)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rowText, secret) || strings.Contains(rowText, k.FullKey) {
		t.Fatalf("the key row contains the secret: %s", rowText)
	}
	if len(hash) != 32 || string(hash) == string(raw) || strings.Contains(string(hash), string(raw)) {
		t.Fatalf("secret_hash is not a digest of the secret: %x", hash)
	}
	if !strings.Contains(rowText, `"prefix":"`+m[1]+`"`) {
		t.Fatalf("the row does not carry the prefix: %s", rowText)
	}
	var auditText string
	err = b.d.OwnerPool.QueryRow(ctx, "SELECT coalesce(string_agg(row_to_json(e)::text, ' '), '') FROM tenantry.audit_events e WHERE tenant_id = $1 AND action = 'api_key.created'", tn.ID).Scan(&auditText)
	if err != nil {
		t.Fatal(err)
	}
	if auditText == "" {
		t.Fatal("creating a key was not audited")
	}
	if strings.Contains(auditText, secret) || !strings.Contains(auditText, k.Prefix) || !strings.Contains(auditText, "admin@example.com") {
		t.Fatalf("audit event: %s", auditText)
	}

	// Listing shows the key without any way to the secret.
	keys, err := s.List(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != k.ID || keys[0].Name != "billing service" || keys[0].Prefix != k.Prefix ||
		keys[0].CreatedBy != "admin@example.com" || keys[0].Status(time.Now()) != "active" {
		t.Fatalf("List = %+v", keys)
	}
	// And the key works.
	p, err := s.Authenticate(ctx, k.FullKey, localhost)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tenant.ID != tn.ID || p.KeyID != k.ID || p.KeyName != "billing service" {
		t.Fatalf("principal = %+v", p)
	}
}

func TestCreateValidates(t *testing.T) {
	s, b := setup(t)
	tn := b.tenant(t)
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name    string
		keyName string
		expires *time.Time
		field   string
	}{
		{"empty name", "  ", nil, "name"},
		{"long name", strings.Repeat("x", 101), nil, "name"},
		{"expiry in the past", "ok", &past, "expires_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(context.Background(), "test", tn.ID, tc.keyName, tc.expires)
			if !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)[tc.field] == "" {
				t.Fatalf("err = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
	keys, err := s.List(context.Background(), tn.ID)
	if err != nil || len(keys) != 0 {
		t.Fatalf("invalid input stored keys: %v %v", keys, err)
	}
	b.setState(t, tn.ID, "suspended")
	if _, err := s.Create(context.Background(), "test", tn.ID, "ok", nil); !errors.Is(err, apikeys.ErrTenantNotServing) {
		t.Fatalf("create for a suspended tenant: err = %v, want ErrTenantNotServing", err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, b := setup(t)
	a, other := b.tenant(t), b.tenant(t)
	good := issue(t, s, a.ID, "good", nil)
	otherKey := issue(t, s, other.ID, "other", nil)
	future := time.Now().Add(24 * time.Hour)
	expiring := issue(t, s, a.ID, "expiring", &future)
	b.exec(t, "UPDATE "+db.TenantSchema(a.ID)+".api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", expiring.ID)
	revoked := issue(t, s, a.ID, "revoked", nil)
	if _, err := s.Revoke(ctx, "admin@example.com", a.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}

	aID, otherID := strconv.FormatInt(a.ID, 10), strconv.FormatInt(other.ID, 10)
	_, prefixA, secretA := split(t, good.FullKey)
	_, prefixO, secretO := split(t, otherKey.FullKey)
	flip := func(s string) string { // same length and alphabet, different secret
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}

	t.Run("a good key acts for its tenant", func(t *testing.T) {
		p, err := s.Authenticate(ctx, good.FullKey, localhost)
		if err != nil {
			t.Fatal(err)
		}
		if p.Tenant.ID != a.ID || p.Tenant.Slug != a.Slug || p.KeyID != good.ID {
			t.Fatalf("principal = %+v", p)
		}
	})
	for _, tc := range []struct {
		name string
		key  string
		want error
	}{
		{"empty", "", apikeys.ErrUnauthorized},
		{"garbage", "hello", apikeys.ErrUnauthorized},
		{"other scheme", "xyz_" + aID + "_" + prefixA + "_" + secretA, apikeys.ErrUnauthorized},
		{"tenant id not a number", "tnt_abc_" + prefixA + "_" + secretA, apikeys.ErrUnauthorized},
		{"tenant id with a leading zero", "tnt_0" + aID + "_" + prefixA + "_" + secretA, apikeys.ErrUnauthorized},
		{"short secret", "tnt_" + aID + "_" + prefixA + "_" + secretA[:20], apikeys.ErrUnauthorized},
		{"unknown tenant", "tnt_999999_" + prefixA + "_" + secretA, apikeys.ErrUnauthorized},
		{"unknown prefix", "tnt_" + aID + "_000000000000_" + secretA, apikeys.ErrUnauthorized},
		{"wrong secret", "tnt_" + aID + "_" + prefixA + "_" + flip(secretA), apikeys.ErrUnauthorized},
		{"another tenant's key under this tenant's id", "tnt_" + aID + "_" + prefixO + "_" + secretO, apikeys.ErrUnauthorized},
		{"this tenant's key under another tenant's id", "tnt_" + otherID + "_" + prefixA + "_" + secretA, apikeys.ErrUnauthorized},
		{"revoked", revoked.FullKey, apikeys.ErrRevoked},
		{"expired", expiring.FullKey, apikeys.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Authenticate(ctx, tc.key, localhost)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (principal %+v)", err, tc.want, p)
			}
			if !errors.Is(err, apikeys.ErrUnauthorized) {
				t.Fatalf("err = %v does not wrap ErrUnauthorized", err)
			}
			if tc.want == apikeys.ErrUnauthorized && (errors.Is(err, apikeys.ErrRevoked) || errors.Is(err, apikeys.ErrExpired)) {
				t.Fatalf("err = %v tells more than that the key is invalid", err)
			}
		})
	}
	t.Run("the same key with the other tenant's row prefix does not cross", func(t *testing.T) {
		// Even a row with the same prefix in the other tenant would not match: the stored digest
		// is bound to its tenant. Copy a's row into the other tenant and try a's key there.
		b.exec(t, "INSERT INTO "+db.TenantSchema(other.ID)+".api_keys (name, prefix, secret_hash, created_by) SELECT name, prefix, secret_hash, created_by FROM "+db.TenantSchema(a.ID)+".api_keys WHERE id = $1", good.ID)
		_, err := s.Authenticate(ctx, "tnt_"+otherID+"_"+prefixA+"_"+secretA, localhost)
		if !errors.Is(err, apikeys.ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
	})
}

func TestAuthenticateAllowlistAndState(t *testing.T) {
	ctx := context.Background()
	s, b := setup(t)
	tn := b.tenant(t)
	k := issue(t, s, tn.ID, "svc", nil)
	if _, err := b.tenants.SetNetwork(ctx, "test", tn.Slug, tenant.Network{Allowlist: "10.0.0.0/8, 2001:db8::/32"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want error
	}{
		{"10.1.2.3", nil},
		{"::ffff:10.1.2.3", nil},
		{"2001:db8::1", nil},
		{"127.0.0.1", apikeys.ErrForbiddenAddr},
		{"192.0.2.1", apikeys.ErrForbiddenAddr},
		{"2001:db9::1", apikeys.ErrForbiddenAddr},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := s.Authenticate(ctx, k.FullKey, netip.MustParseAddr(tc.addr))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("a wrong secret from outside the allowlist is just unauthorized", func(t *testing.T) {
		_, prefix, secret := split(t, k.FullKey)
		_, err := s.Authenticate(ctx, "tnt_"+strconv.FormatInt(tn.ID, 10)+"_"+prefix+"_"+strings.Repeat("A", len(secret)), localhost)
		if !errors.Is(err, apikeys.ErrUnauthorized) || errors.Is(err, apikeys.ErrForbiddenAddr) {
			t.Fatalf("err = %v, want ErrUnauthorized only", err)
		}
	})

	if _, err := b.tenants.SetNetwork(ctx, "test", tn.Slug, tenant.Network{}); err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"suspended", "exported"} {
		t.Run(state+" tenant refused", func(t *testing.T) {
			b.setState(t, tn.ID, state)
			_, err := s.Authenticate(ctx, k.FullKey, localhost)
			var ns *apikeys.NotServingError
			if !errors.Is(err, apikeys.ErrTenantNotServing) || !errors.As(err, &ns) || ns.State != state || ns.Slug != tn.Slug {
				t.Fatalf("err = %v, want ErrTenantNotServing in state %s", err, state)
			}
		})
	}
	for _, state := range []string{"notice", "degraded", "active"} {
		t.Run(state+" tenant serves", func(t *testing.T) {
			b.setState(t, tn.ID, state)
			if _, err := s.Authenticate(ctx, k.FullKey, localhost); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLastUsedWrittenAtMostOnceAMinute(t *testing.T) {
	ctx := context.Background()
	s, b := setup(t)
	tn := b.tenant(t)
	k := issue(t, s, tn.ID, "svc", nil)
	lastUsed := func() *time.Time {
		t.Helper()
		keys, err := s.List(ctx, tn.ID)
		if err != nil || len(keys) != 1 {
			t.Fatal(keys, err)
		}
		return keys[0].LastUsedAt
	}
	if lastUsed() != nil {
		t.Fatal("a new key has a last use")
	}
	if _, err := s.Authenticate(ctx, k.FullKey, localhost); err != nil {
		t.Fatal(err)
	}
	first := lastUsed()
	if first == nil {
		t.Fatal("last use not recorded")
	}
	if _, err := s.Authenticate(ctx, k.FullKey, localhost); err != nil {
		t.Fatal(err)
	}
	if again := lastUsed(); again == nil || !again.Equal(*first) {
		t.Fatalf("last use rewritten within a minute: %v then %v", first, again)
	}
	later := time.Now().UTC().Add(2 * time.Minute)
	apikeys.SetClock(s, func() time.Time { return later })
	if _, err := s.Authenticate(ctx, k.FullKey, localhost); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); got == nil || got.Sub(later).Abs() > time.Millisecond {
		t.Fatalf("stale last use not refreshed: %v, want %v", got, later)
	}
}

// A node that has checked a key before must refuse it as soon as any node revokes it.
func TestRevokeOnAnotherNodeTakesEffectAtOnce(t *testing.T) {
	ctx := context.Background()
	nodeA, b := setup(t)
	nodeB := apikeys.NewService(b.d)
	tn := b.tenant(t)
	k := issue(t, nodeA, tn.ID, "svc", nil)
	other := issue(t, nodeA, tn.ID, "other", nil)
	for range 3 { // the later calls are answered from node A's memory
		if _, err := nodeA.Authenticate(ctx, k.FullKey, localhost); err != nil {
			t.Fatal(err)
		}
		if _, err := nodeA.Authenticate(ctx, other.FullKey, localhost); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodeB.Revoke(ctx, "test", tn.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.Authenticate(ctx, k.FullKey, localhost); !errors.Is(err, apikeys.ErrRevoked) {
		t.Fatalf("node A after revocation on node B: err = %v, want ErrRevoked", err)
	}
	if p, err := nodeA.Authenticate(ctx, other.FullKey, localhost); err != nil || p.KeyID != other.ID {
		t.Fatalf("the tenant's other key: %+v, %v", p, err)
	}
	// A wrong secret with a remembered prefix is still refused.
	if _, err := nodeA.Authenticate(ctx, other.FullKey[:len(other.FullKey)-2]+"AA", localhost); !errors.Is(err, apikeys.ErrUnauthorized) {
		t.Fatalf("wrong secret: err = %v", err)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	s, b := setup(t)
	tn := b.tenant(t)
	k := issue(t, s, tn.ID, "svc", nil)
	keep := issue(t, s, tn.ID, "keep", nil)

	got, err := s.Revoke(ctx, "admin@example.com", tn.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || got.Status(time.Now()) != "revoked" {
		t.Fatalf("revoked key = %+v", got)
	}
	if _, err := s.Authenticate(ctx, k.FullKey, localhost); !errors.Is(err, apikeys.ErrRevoked) {
		t.Fatalf("revoked key: err = %v", err)
	}
	if _, err := s.Authenticate(ctx, keep.FullKey, localhost); err != nil {
		t.Fatalf("the other key stopped working: %v", err)
	}
	// Again: nothing changes, nothing more is recorded.
	if _, err := s.Revoke(ctx, "admin@example.com", tn.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = $1 AND action = 'api_key.revoked' AND actor = 'admin@example.com' AND detail->>'prefix' = $2", tn.ID, k.Prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d revoke events, want 1", n)
	}
	other := b.tenant(t)
	if _, err := s.Revoke(ctx, "admin@example.com", other.ID, keep.ID); !errors.Is(err, apikeys.ErrNotFound) {
		t.Fatalf("revoking through another tenant: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Authenticate(ctx, keep.FullKey, localhost); err != nil {
		t.Fatalf("revoking through another tenant touched the key: %v", err)
	}
}

func split(t *testing.T, full string) (tenantID, prefix, secret string) {
	t.Helper()
	parts := strings.SplitN(full, "_", 4)
	if len(parts) != 4 {
		t.Fatalf("key %q", full)
	}
	return parts[1], parts[2], parts[3]
}
