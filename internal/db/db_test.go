package db_test

import (
	"context"
	"os"
	"testing"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	if err := db.Migrate(ctx, dbtest.URL(t), dbtest.Logger(t)); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	d := dbtest.Open(t)
	if err := db.CheckMigrated(ctx, d.AppPool); err != nil {
		t.Fatal(err)
	}
	var plans int
	if err := d.AppPool.QueryRow(ctx, "SELECT count(*) FROM plans").Scan(&plans); err != nil {
		t.Fatal(err)
	}
	if plans != 4 {
		t.Fatalf("plans after two migrations = %d, want 4", plans)
	}
}

func TestPoolsActAsTheirRoles(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	for pool, want := range map[string]string{"app": db.AppRole, "owner": db.OwnerRole} {
		p := d.AppPool
		if pool == "owner" {
			p = d.OwnerPool
		}
		var got string
		if err := p.QueryRow(ctx, "SELECT current_user").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s pool runs as %q, want %q", pool, got, want)
		}
	}
}

func TestAppRoleCannotRewriteAudit(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	_, err := d.AppPool.Exec(ctx, "UPDATE audit_events SET actor = 'x'")
	if err == nil {
		t.Fatal("app role could UPDATE audit_events; want permission denied")
	}
	_, err = d.AppPool.Exec(ctx, "DELETE FROM audit_events")
	if err == nil {
		t.Fatal("app role could DELETE audit_events; want permission denied")
	}
}

func TestTreePathFollowsParent(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	q := func(sql string, args ...any) {
		t.Helper()
		if _, err := d.AppPool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`INSERT INTO tenants (id, slug, name, plan_key) VALUES (901, 'tree-root', 'Root', 'free'), (902, 'tree-other', 'Other', 'free')`)
	q(`INSERT INTO tenants (id, slug, name, plan_key, parent_id) VALUES (903, 'tree-child', 'Child', 'free', 901)`)
	q(`INSERT INTO tenants (id, slug, name, plan_key, parent_id) VALUES (904, 'tree-grandchild', 'Grandchild', 'free', 903)`)
	path := func(id int) string {
		var p string
		if err := d.AppPool.QueryRow(ctx, "SELECT path::text FROM tenants WHERE id = $1", id).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := path(904); got != "901.903.904" {
		t.Fatalf("grandchild path = %q", got)
	}
	q(`UPDATE tenants SET parent_id = 902 WHERE id = 903`)
	if got := path(904); got != "902.903.904" {
		t.Fatalf("after move, grandchild path = %q, want 902.903.904", got)
	}
	if _, err := d.AppPool.Exec(ctx, `UPDATE tenants SET parent_id = 904 WHERE id = 903`); err == nil {
		t.Fatal("moving a tenant under its own descendant succeeded")
	}
}

// Triggers must work whatever the caller's search_path (psql, pg_dump restores, other tools).
func TestTreeTriggerIgnoresSearchPath(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	conn, err := d.OwnerPool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET search_path = public"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "SET search_path = tenantry, public")
	if _, err := conn.Exec(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ('sp-test', 'Search path', 'free')"); err != nil {
		t.Fatalf("insert with another search_path: %v", err)
	}
}
