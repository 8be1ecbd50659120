package db

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/tenantry/tenantry/migrations"
)

// TenantSchema is the name of a tenant's own schema, and of the database role that alone may use
// it. Roles are cluster-wide, so two Tenantry databases on one server share the role t_<id>; that
// is safe because privileges are granted per database object and a session cannot cross databases.
func TenantSchema(tenantID int64) string { return fmt.Sprintf("t_%d", tenantID) }

// EnsureTenantPlane creates (or completes) a tenant's schema and role and brings the schema to the
// latest tenant migration. Every step is idempotent, so a provisioning run that crashed half-way
// is finished by running it again.
func (d *DB) EnsureTenantPlane(ctx context.Context, tenantID int64, log *slog.Logger) error {
	d.planeMu.Lock()
	defer d.planeMu.Unlock()
	if d.plane == nil {
		m, err := d.newTenantMigrator(ctx, log, tenantMigrations)
		if err != nil {
			return err
		}
		d.plane = m
	}
	return d.plane.migrate(ctx, tenantID, true)
}

// MigrateTenants brings every existing tenant schema to the latest tenant migration, reporting
// progress. Each schema keeps its own version table, so an interrupted run resumes where it
// stopped.
func (d *DB) MigrateTenants(ctx context.Context, log *slog.Logger) (int, error) {
	return d.MigrateTenantsWith(ctx, log, tenantMigrations)
}

// MigrateTenantsWith is MigrateTenants with another set of tenant migrations (benchmarks and
// tests of migration mechanics use it with the embedded set plus one of their own).
func (d *DB) MigrateTenantsWith(ctx context.Context, log *slog.Logger, fsys fs.FS) (int, error) {
	rows, err := d.OwnerPool.Query(ctx, `SELECT t.id FROM tenantry.tenants t
		WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 't_' || t.id) ORDER BY t.id`)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	m, err := d.newTenantMigrator(ctx, log, fsys)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	for i, id := range ids {
		if err := m.migrate(ctx, id, false); err != nil {
			return i, fmt.Errorf("tenant %d: %w", id, err)
		}
		if (i+1)%100 == 0 || i+1 == len(ids) {
			log.Info("tenant schemas migrated", "done", i+1, "total", len(ids))
		}
	}
	return len(ids), nil
}

// DropTenantPlane removes a tenant's schema with everything in it, and its role when no other
// database still uses it. Used to undo provisioning and to purge.
func (d *DB) DropTenantPlane(ctx context.Context, tenantID int64) error {
	name := pgx.Identifier{TenantSchema(tenantID)}.Sanitize()
	tx, err := d.OwnerPool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", tenantLockKey(tenantID)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %[1]s) THEN
			EXECUTE 'REVOKE USAGE ON SCHEMA tenantry FROM ' || quote_ident(%[1]s);
			BEGIN
				EXECUTE 'DROP ROLE ' || quote_ident(%[1]s);
			EXCEPTION WHEN dependent_objects_still_exist THEN NULL; -- still used by another database
			END;
		END IF;
	END $$`, quoteLiteral(TenantSchema(tenantID)))); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// tenantMigrator applies tenant migrations over one dedicated owner connection, switching its
// search_path from schema to schema (never done on pooled request connections).
type tenantMigrator struct {
	db  *sql.DB
	fs  fs.FS
	log *slog.Logger
}

// tenantMigrations are the embedded tenant-plane migrations.
var tenantMigrations = func() fs.FS {
	sub, err := fs.Sub(migrations.Tenant, "tenant")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}()

func (d *DB) newTenantMigrator(ctx context.Context, log *slog.Logger, fsys fs.FS) (*tenantMigrator, error) {
	cfg := d.OwnerPool.Config().ConnConfig.Copy()
	sqlDB := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+OwnerRole)
		return err
	}))
	sqlDB.SetMaxOpenConns(1)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return &tenantMigrator{db: sqlDB, fs: fsys, log: log}, nil
}

func (m *tenantMigrator) Close() error { return m.db.Close() }

// migrate brings one tenant's schema to the latest tenant migration; with create it first
// creates (or repairs) the role, the schema and their privileges. Everything runs on the one
// connection of the migrator (MaxOpenConns 1), so the session lock and search_path set here apply
// to every statement goose runs.
func (m *tenantMigrator) migrate(ctx context.Context, tenantID int64, create bool) (err error) {
	schema := TenantSchema(tenantID)
	ident := pgx.Identifier{schema}.Sanitize()
	prepare := []string{fmt.Sprintf("SELECT pg_advisory_lock(%d)", tenantLockKey(tenantID))}
	if create {
		prepare = append(prepare,
			// INHERIT: the tenant role holds tenant_base's narrow, row-level-secured view of the
			// control plane. The app role is NOINHERIT, so being a member of t_<id> gives it nothing.
			createRole(schema, "NOLOGIN INHERIT"),
			"ALTER ROLE "+ident+" INHERIT",
			"GRANT tenant_base TO "+ident,
			"GRANT "+ident+" TO "+AppRole,
			"CREATE SCHEMA IF NOT EXISTS "+ident+" AUTHORIZATION "+OwnerRole,
			"REVOKE ALL ON SCHEMA "+ident+" FROM PUBLIC",
			"GRANT USAGE ON SCHEMA "+ident+" TO "+ident,
			// Types and operators of the extensions (citext, ltree) live in the tenantry schema.
			"GRANT USAGE ON SCHEMA tenantry TO "+ident,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA "+ident+" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "+ident,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA "+ident+" GRANT USAGE, SELECT ON SEQUENCES TO "+ident)
	}
	prepare = append(prepare, "SET search_path TO "+ident+", tenantry, public")
	// One round trip: without arguments the statements go as one simple-protocol batch.
	if _, err := m.db.ExecContext(ctx, strings.Join(prepare, ";\n")); err != nil {
		// The batch is one implicit transaction, so SET search_path rolled back with it; a session
		// advisory lock does not, so release it.
		_, _ = m.db.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("SELECT pg_advisory_unlock(%d)", tenantLockKey(tenantID)))
		return fmt.Errorf("%s: prepare schema and role: %w", schema, err)
	}
	finish := []string{"SET search_path TO tenantry, public", fmt.Sprintf("SELECT pg_advisory_unlock(%d)", tenantLockKey(tenantID))}
	defer func() {
		if _, ferr := m.db.ExecContext(context.WithoutCancel(ctx), strings.Join(finish, ";\n")); err == nil {
			err = ferr
		}
	}()
	p, err := goose.NewProvider(goose.DialectPostgres, m.db, m.fs,
		goose.WithTableName(schema+".goose_db_version"), goose.WithDisableGlobalRegistry(true),
		goose.WithAllowOutofOrder(true))
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", schema, err)
	}
	for _, r := range results {
		m.log.Debug("applied migration", "plane", "tenant", "schema", schema, "version", r.Source.Version, "took", r.Duration)
	}
	if create || len(results) > 0 {
		// The tenant's audit trail is append-only for the tenant role too.
		finish = append([]string{"REVOKE UPDATE, DELETE, TRUNCATE ON " + ident + ".audit_events FROM " + ident}, finish...)
	}
	return nil
}

// tenantLockKey is the advisory lock serialising DDL on one tenant's plane.
func tenantLockKey(tenantID int64) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "tenantry.tenant_plane.%d", tenantID)
	return int64(h.Sum64())
}

func quoteLiteral(s string) string { return "'" + s + "'" }
