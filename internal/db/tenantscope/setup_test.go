package tenantscope_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// item is a control-plane row that belongs to a tenant (shared table, tenant_id column).
type item struct {
	ID       int64
	TenantID int64
	Name     string
	Kids     []kid `gorm:"foreignKey:ItemID"`
}

func (item) TableName() string { return "scope_items" }
func (item) TenantShared()     {}

// kid hangs off an item; both carry tenant_id, so a kid can (wrongly) point at another tenant's item.
type kid struct {
	ID       int64
	TenantID int64
	ItemID   int64
	Name     string
}

func (kid) TableName() string { return "scope_kids" }
func (kid) TenantShared()     {}

// project lives in each tenant's schema.
type project struct {
	ID   int64
	Name string
}

func (project) TableName() string { return "projects" }
func (project) TenantSchema()     {}

// note belongs to no tenant as far as the plugin knows: no marker, not registered.
type note struct {
	ID       int64
	TenantID int64
	Body     string
}

func (note) TableName() string { return "scope_notes" }

// sharedDDL creates the package's shared test tables once. RLS on the tenant tables is the
// production backstop; the owner role owns the tables and so is exempt, which lets the tests see
// what the plugin alone does.
const sharedDDL = `
CREATE TABLE tenantry.scope_items (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL, name text NOT NULL);
CREATE TABLE tenantry.scope_kids (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL,
  item_id bigint NOT NULL REFERENCES tenantry.scope_items (id), name text NOT NULL);
CREATE TABLE tenantry.scope_notes (id bigserial PRIMARY KEY, tenant_id bigint, body text NOT NULL);
ALTER TABLE tenantry.scope_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenantry.scope_items
  USING (tenant_id = current_setting('app.tenant_id')::bigint)
  WITH CHECK (tenant_id = current_setting('app.tenant_id')::bigint);
ALTER TABLE tenantry.scope_kids ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenantry.scope_kids
  USING (tenant_id = current_setting('app.tenant_id')::bigint)
  WITH CHECK (tenant_id = current_setting('app.tenant_id')::bigint);
`

var (
	sharedOnce sync.Once
	sharedErr  error
	lastTenant atomic.Int64
)

// testBundle is what setup gives each test: two fresh tenants with data, and two GORM handles
// on the owner pool, one with the plugin and one without (the ground truth).
type testBundle struct {
	d      *db.DB
	plugin *tenantscope.Plugin
	scoped *gorm.DB // plugin registered
	plain  *gorm.DB // no plugin
	a, b   int64
	ctxA   context.Context
	ctxB   context.Context

	aOne, aTwo, bOne item    // shared rows: two of tenant a, one of tenant b
	paOne, pbOne     project // one project in each tenant's schema
}

func newPlugin() *tenantscope.Plugin {
	return &tenantscope.Plugin{Tables: map[string]tenantscope.Mode{
		"scope_items": tenantscope.Shared,
		"scope_kids":  tenantscope.Shared,
		"projects":    tenantscope.PerSchema,
	}}
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	ctx := context.Background()
	d := dbtest.Open(t)
	sharedOnce.Do(func() {
		_, sharedErr = d.OwnerPool.Exec(ctx, sharedDDL)
	})
	if sharedErr != nil {
		t.Fatalf("create shared test tables: %v", sharedErr)
	}
	tb := &testBundle{d: d, plugin: newPlugin(), a: lastTenant.Add(1), b: lastTenant.Add(1)}
	tb.scoped = openGorm(t, d.OwnerPool, tb.plugin)
	tb.plain = openGorm(t, d.OwnerPool, nil)
	tb.ctxA = tenantscope.WithTenant(ctx, tb.a)
	tb.ctxB = tenantscope.WithTenant(ctx, tb.b)

	for _, id := range []int64{tb.a, tb.b} {
		s := tenantscope.DefaultSchemaName(id)
		exec(t, d.OwnerPool, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.projects (id bigserial PRIMARY KEY, name text NOT NULL)`, s))
	}
	tb.aOne = tb.seedItem(t, tb.a, "one")
	tb.aTwo = tb.seedItem(t, tb.a, "two")
	tb.bOne = tb.seedItem(t, tb.b, "one")
	tb.paOne = tb.seedProject(t, tb.a, "one")
	tb.pbOne = tb.seedProject(t, tb.b, "one")
	return tb
}

// seedItem inserts through the plugin-free handle, so seeding does not depend on the code under test.
func (tb *testBundle) seedItem(t testing.TB, tenant int64, name string) item {
	t.Helper()
	it := item{TenantID: tenant, Name: fmt.Sprintf("t%d-%s", tenant, name)}
	if err := tb.plain.Create(&it).Error; err != nil {
		t.Fatal(err)
	}
	return it
}

func (tb *testBundle) seedProject(t testing.TB, tenant int64, name string) project {
	t.Helper()
	p := project{Name: fmt.Sprintf("t%d-%s", tenant, name)}
	if err := tb.plain.Table(tenantscope.DefaultSchemaName(tenant) + ".projects").Create(&p).Error; err != nil {
		t.Fatal(err)
	}
	return p
}

// item reads a shared row by id without the plugin.
func (tb *testBundle) item(t testing.TB, id int64) item {
	t.Helper()
	var it item
	if err := tb.plain.First(&it, id).Error; err != nil {
		t.Fatalf("read item %d: %v", id, err)
	}
	return it
}

// countItems counts a tenant's shared rows without the plugin.
func (tb *testBundle) countItems(t testing.TB, tenant int64) int64 {
	t.Helper()
	var n int64
	if err := tb.plain.Model(&item{}).Where("tenant_id = ?", tenant).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// projectNames lists a tenant schema's projects without the plugin.
func (tb *testBundle) projectNames(t testing.TB, tenant int64) []string {
	t.Helper()
	var names []string
	if err := tb.plain.Table(tenantscope.DefaultSchemaName(tenant)+".projects").Order("id").Pluck("name", &names).Error; err != nil {
		t.Fatal(err)
	}
	return names
}

// dry returns a session that builds SQL without running it.
func dry(g *gorm.DB, ctx context.Context) *gorm.DB {
	return g.WithContext(ctx).Session(&gorm.Session{DryRun: true})
}

func openGorm(t testing.TB, pool *pgxpool.Pool, plugin gorm.Plugin) *gorm.DB {
	t.Helper()
	sqlDB := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { sqlDB.Close() })
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if plugin != nil {
		if err := g.Use(plugin); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func exec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func names(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Name
	}
	return out
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
