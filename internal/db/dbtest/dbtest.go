// Package dbtest gives each test package its own throwaway, fully migrated PostgreSQL database,
// dropped when the package's tests end. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
// and open connections in tests with dbtest.Open(t).
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/db"
)

// ServerEnv names the variable holding the URL of the PostgreSQL server used by tests; its
// database part is ignored. Default: postgres@127.0.0.1:5432, trust auth.
const ServerEnv = "TENANTRY_TEST_POSTGRES"

const urlEnv = "TENANTRY_TEST_DATABASE_URL"

// Main creates and migrates the package's database, runs the tests, then drops it.
func Main(m *testing.M) int {
	ctx := context.Background()
	dbURL, drop, err := create(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		return 1
	}
	defer drop()
	if err := db.Migrate(ctx, dbURL, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: migrate:", err)
		return 1
	}
	if err := spreadTenantIDs(ctx, dbURL); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		return 1
	}
	os.Setenv(urlEnv, dbURL)
	return m.Run()
}

// URL returns the package database's URL (connecting as the server's superuser).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		t.Fatal("dbtest: no test database; call dbtest.Main from TestMain")
	}
	return u
}

// Open connects both pools to the package database and closes them when the test ends.
func Open(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), URL(t), "", Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// Logger returns a logger that writes through t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func serverURL() string {
	if u := os.Getenv(ServerEnv); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// create makes an empty database named after the test binary and returns its URL and a func
// that drops it (disconnecting whoever is still connected).
func create(ctx context.Context) (string, func(), error) {
	admin, err := pgx.Connect(ctx, serverURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", ServerEnv, err)
	}
	defer admin.Close(ctx)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	pkg := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	name := strings.ToLower(fmt.Sprintf("tenantry_test_%s_%s", sanitize(pkg), hex.EncodeToString(suffix)))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(serverURL())
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverURL())
		if err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: drop:", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: drop:", err)
		}
	}
	return u.String(), drop, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}

// NewDatabase creates another fresh, migrated database for one test, apart from the package's
// (for journeys that need an empty installation, such as first-run setup), connects both pools
// to it, and closes them and drops the database when the test ends.
func NewDatabase(t testing.TB) *db.DB {
	t.Helper()
	ctx := context.Background()
	dbURL, drop, err := create(ctx)
	if err != nil {
		t.Fatal("dbtest:", err)
	}
	t.Cleanup(drop)
	if err := db.Migrate(ctx, dbURL, Logger(t)); err != nil {
		t.Fatal("dbtest: migrate:", err)
	}
	if err := spreadTenantIDs(ctx, dbURL); err != nil {
		t.Fatal("dbtest:", err)
	}
	d, err := db.Open(ctx, dbURL, "", Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close) // cleanups run last-in first-out: the pools close before the drop
	return d
}

// spreadTenantIDs starts the database's tenant ids at a random point. Tenant roles (t_<id>) are
// cluster-wide while test databases are not: without this, test packages running in parallel
// would create, grant and drop the same roles for their tenant 1, 2, 3...
func spreadTenantIDs(ctx context.Context, dbURL string) error {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var b [4]byte
	_, _ = rand.Read(b[:])
	start := 1_000_000 + int64(binary.BigEndian.Uint32(b[:]))*1_000
	_, err = c.Exec(ctx, fmt.Sprintf("ALTER TABLE tenantry.tenants ALTER COLUMN id RESTART WITH %d", start))
	return err
}
