package db_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
)

func newTenant(t *testing.T, d *db.DB, slug string) int64 {
	t.Helper()
	var id int64
	err := d.OwnerPool.QueryRow(context.Background(),
		"INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id", slug).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// asTenant runs sql inside an app-role transaction switched to the tenant's role.
func asTenant(t *testing.T, d *db.DB, tenantID int64, sql string) error {
	t.Helper()
	ctx := context.Background()
	return pgx.BeginFunc(ctx, d.AppPool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+db.TenantSchema(tenantID)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql)
		return err
	})
}

func TestTenantPlane(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	a, b := newTenant(t, d, "plane-a"), newTenant(t, d, "plane-b")
	for _, id := range []int64{a, b, a} { // the second run on a is a no-op
		if err := d.EnsureTenantPlane(ctx, id, dbtest.Logger(t)); err != nil {
			t.Fatalf("ensure plane %d: %v", id, err)
		}
	}
	sa, sb := db.TenantSchema(a), db.TenantSchema(b)

	allowed := []string{
		"INSERT INTO " + sa + ".users (email, name, role) VALUES ('ann@a.example', 'Ann', 'admin')",
		"SELECT count(*) FROM " + sa + ".users WHERE email = 'ANN@a.example'", // citext from the tenantry schema
		"INSERT INTO " + sa + ".audit_events (actor, action, prev_hash, hash) VALUES ('x', 'y', '', 'h1')",
	}
	for _, sql := range allowed {
		if err := asTenant(t, d, a, sql); err != nil {
			t.Errorf("tenant a: %s: %v", sql, err)
		}
	}
	denied := []string{
		"SELECT * FROM " + sb + ".users", // another tenant's schema
		"INSERT INTO " + sb + ".users (email, name, role) VALUES ('x@b.example', 'X', 'admin')",
		"UPDATE " + sa + ".audit_events SET actor = 'mallory'", // its own trail is append-only
		"DELETE FROM " + sa + ".audit_events",
		"SELECT * FROM tenantry.platform_users", // the control plane
		"SELECT * FROM tenantry.tenants",
		// Not listed: "SET ROLE t_b". PostgreSQL checks SET ROLE against the session user, which
		// must be able to act as every tenant; code reaches a tenant only through db.InTenant.
	}
	for _, sql := range denied {
		err := asTenant(t, d, a, sql)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("tenant a: %s: err = %v, want permission denied", sql, err)
		}
	}
	// The app role itself inherits nothing from tenant roles.
	if _, err := d.AppPool.Exec(ctx, "SELECT * FROM "+sa+".users"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("app role read a tenant schema without switching role: %v", err)
	}

	var version int64
	if err := d.OwnerPool.QueryRow(ctx, "SELECT max(version_id) FROM "+sa+".goose_db_version").Scan(&version); err != nil || version < 1 {
		t.Fatalf("tenant schema version = %d, %v", version, err)
	}
	n, err := d.MigrateTenants(ctx, dbtest.Logger(t))
	if err != nil || n < 2 {
		t.Fatalf("MigrateTenants: %d, %v", n, err)
	}

	if err := d.DropTenantPlane(ctx, b); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := d.OwnerPool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", sb).Scan(&exists); err != nil || exists {
		t.Fatalf("schema %s still exists after drop (%v)", sb, err)
	}
	if err := d.DropTenantPlane(ctx, b); err != nil {
		t.Fatalf("second drop: %v", err)
	}
}

// Control-plane rows with tenant_id are visible to tenant-context code only when both the role
// and app.tenant_id name that tenant; the app role cannot switch row security off.
func TestRowLevelSecurity(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	a, b := newTenant(t, d, "rls-a"), newTenant(t, d, "rls-b")
	for _, id := range []int64{a, b} {
		if err := d.EnsureTenantPlane(ctx, id, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.AppPool.Exec(ctx, `INSERT INTO tenantry.audit_events (tenant_id, actor, action, prev_hash, hash)
			VALUES ($1, 'rls', 'rls.probe', '', decode(md5(random()::text), 'hex'))`, id); err != nil {
			t.Fatal(err)
		}
	}
	count := func(role string, setting string) (int, error) {
		var n int
		err := pgx.BeginFunc(ctx, d.AppPool, func(tx pgx.Tx) error {
			if setting != "" {
				if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", setting); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT count(*) FROM tenantry.audit_events WHERE action = 'rls.probe'").Scan(&n)
		})
		return n, err
	}
	sa, sb := db.TenantSchema(a), db.TenantSchema(b)
	ida, idb := strconv.FormatInt(a, 10), strconv.FormatInt(b, 10)
	if n, err := count(sa, ida); err != nil || n != 1 {
		t.Errorf("tenant a in its own context sees %d events (%v), want 1", n, err)
	}
	if n, err := count(sa, idb); err != nil || n != 0 {
		t.Errorf("tenant a's role with b's setting sees %d events (%v), want 0", n, err)
	}
	if n, err := count(sb, ida); err != nil || n != 0 {
		t.Errorf("tenant b's role with a's setting sees %d events (%v), want 0", n, err)
	}
	if _, err := count(sa, ""); err == nil {
		t.Error("a tenant role without app.tenant_id read the table; want an error (fail closed)")
	}
	if n, err := count(db.AppRole, ""); err != nil || n != 2 {
		t.Errorf("the platform (app role) sees %d events (%v), want both", n, err)
	}
	var bypass bool
	if err := d.AppPool.QueryRow(ctx, "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = $1", db.AppRole).Scan(&bypass); err != nil || bypass {
		t.Errorf("app role may bypass row security: %v %v", bypass, err)
	}
	err := pgx.BeginFunc(ctx, d.AppPool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL row_security = off"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT count(*) FROM tenantry.audit_events")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("row_security=off as the app role: %v, want a refusal", err)
	}
}
