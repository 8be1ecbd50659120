package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/tenantry/tenantry/migrations"
)

// EnsureDatabase creates the database named in url when it does not exist yet, connecting to the
// server's maintenance database to do so. It reports whether it created one.
func EnsureDatabase(ctx context.Context, dbURL string) (bool, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return false, fmt.Errorf("parse database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return false, errors.New("database url names no database")
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return false, fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
			return false, nil
		}
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

// Migrate brings the control plane to the latest version: it creates the roles and the schema
// when missing, then applies the platform migrations and River's. It is idempotent and safe to
// run from several processes at once (goose holds an advisory lock).
func Migrate(ctx context.Context, dbURL string, log *slog.Logger) error {
	if err := bootstrap(ctx, dbURL); err != nil {
		return fmt.Errorf("bootstrap roles and schema: %w", err)
	}
	pool, err := newPool(ctx, dbURL, OwnerRole, 2)
	if err != nil {
		return err
	}
	defer pool.Close()

	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	platform, err := fs.Sub(migrations.Platform, "platform")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, platform,
		goose.WithTableName(Schema+".goose_db_version"), goose.WithSessionLocker(locker),
		// Migrations written on parallel branches may land with numbers below one already applied.
		goose.WithAllowOutofOrder(true),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("platform migrations: %w", err)
	}
	for _, r := range results {
		log.Info("applied migration", "plane", "platform", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: Schema, Logger: log})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil { // it logs each version
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// bootstrap creates what must exist before migrations can run as tenantry_owner. Roles are
// cluster-wide, so concurrent bootstraps of different databases may race: both errors that
// PostgreSQL raises for a duplicate role are ignored.
func bootstrap(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		createRole(OwnerRole, "NOLOGIN CREATEROLE"),
		createRole(AppRole, "NOLOGIN NOBYPASSRLS NOINHERIT"),
		// Membership in tenant roles must not confer their privileges: only SET ROLE does.
		`DO $$ BEGIN
		   IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + AppRole + `' AND (rolinherit OR rolbypassrls)) THEN
		     ALTER ROLE ` + AppRole + ` NOINHERIT NOBYPASSRLS;
		   END IF;
		 END $$`,
		// Whoever connects must be able to act as either role (a superuser can already).
		`DO $$ BEGIN
		   IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		     EXECUTE format('GRANT tenantry_owner, tenantry_app TO %I', current_user);
		   END IF;
		 END $$`,
		`DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO tenantry_owner', current_database()); END $$`,
		"SET ROLE " + OwnerRole,
		"CREATE SCHEMA IF NOT EXISTS " + Schema,
		"GRANT USAGE ON SCHEMA " + Schema + " TO " + AppRole,
	} {
		if err := execRetryingCatalogRace(ctx, conn, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

// execRetryingCatalogRace runs stmt, again after "tuple concurrently updated": roles and their
// grants are cluster-wide, so two databases of one server being set up at once (parallel test
// packages, two installations) can race on the same catalog row.
func execRetryingCatalogRace(ctx context.Context, conn *pgx.Conn, stmt string) error {
	for attempt := 1; ; attempt++ {
		_, err := conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
			return err
		}
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
	}
}

func createRole(name, options string) string {
	return fmt.Sprintf(`DO $$ BEGIN
	  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN
	    CREATE ROLE %[1]s %[2]s;
	  END IF;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
	END $$`, name, options)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// CheckMigrated returns ErrNotMigrated when the control plane has no schema yet.
func CheckMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('tenantry.tenants') IS NOT NULL").Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return ErrNotMigrated
	}
	return nil
}
