package keys_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type testBundle struct {
	d      *db.DB
	master keys.Master
}

// setup returns a Service on the package database with a fresh master key.
func setup(t *testing.T, opts ...keys.Option) (*keys.Service, *testBundle) {
	t.Helper()
	d := dbtest.Open(t)
	master := newMaster(t)
	return keys.NewService(d.App, master, opts...), &testBundle{d: d, master: master}
}

func newMaster(t testing.TB) keys.Master {
	t.Helper()
	m, err := keys.NewLocalMaster(randomBytes(t, keys.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newTenant inserts a tenant row and returns its id.
func newTenant(t testing.TB, d *db.DB) int64 {
	t.Helper()
	slug := "k" + hex.EncodeToString(randomBytes(t, 6))
	var id int64
	err := d.AppPool.QueryRow(context.Background(),
		"INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id", slug).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newKeyedTenant inserts a tenant and gives it a keyset.
func newKeyedTenant(t testing.TB, svc *keys.Service, d *db.DB) int64 {
	t.Helper()
	id := newTenant(t, d)
	if err := svc.Create(context.Background(), nil, id); err != nil {
		t.Fatalf("create keyset: %v", err)
	}
	return id
}

func encrypt(t testing.TB, svc *keys.Service, tenantID int64, plaintext, ad string) []byte {
	t.Helper()
	ct, err := svc.Encrypt(context.Background(), tenantID, []byte(plaintext), []byte(ad))
	if err != nil {
		t.Fatalf("encrypt for tenant %d: %v", tenantID, err)
	}
	return ct
}

func decrypt(t testing.TB, svc *keys.Service, tenantID int64, ct []byte, ad string) string {
	t.Helper()
	pt, err := svc.Decrypt(context.Background(), tenantID, ct, []byte(ad))
	if err != nil {
		t.Fatalf("decrypt for tenant %d: %v", tenantID, err)
	}
	return string(pt)
}

func status(t testing.TB, svc *keys.Service, tenantID int64) keys.Status {
	t.Helper()
	st, err := svc.Status(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// auditActions lists the tenant's audit actions, oldest first.
func auditActions(t testing.TB, d *db.DB, tenantID int64) []string {
	t.Helper()
	rows, err := d.AppPool.Query(context.Background(), "SELECT action FROM tenantry.audit_events WHERE tenant_id = $1 ORDER BY id", tenantID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}
