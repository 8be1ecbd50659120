// Package tenantscope is the GORM plugin that keeps every statement inside the tenant named by its
// context. It owns the application side of tenant isolation (see DESIGN.md, "Two planes" and
// "GORM tenant plugin"); PostgreSQL's row-level security and the per-tenant roles are the backstop
// for what a clause-rewriting plugin cannot see.
//
// Models declare their plane with a marker method:
//
//	func (Invoice) TenantShared() {} // control-plane row with a tenant_id column, shared table
//	func (Project) TenantSchema() {} // table that lives in each tenant's own schema t_<id>
//
// and tables reached without a marked model (db.Table("x").Count(&n), maps) are declared in
// Plugin.Tables or with Plugin.Register. The tenant travels in the context:
//
//	db.WithContext(tenantscope.WithTenant(ctx, tenantID)).Find(&invoices)
//
// On a tenant table the plugin then
//   - refuses the statement when the context carries no tenant (ErrNoTenant);
//   - on shared tables ANDs tenant_id = <tenant> onto the WHERE, parenthesising the caller's
//     conditions so that an .Or() cannot escape it, stamps tenant_id on created rows, refuses rows
//     and updates that name another tenant (ErrCrossTenant), and guards the DO UPDATE of an
//     upsert (GORM's Save falls back to one) so that it cannot take over another tenant's row;
//   - on per-schema tables qualifies the table with the tenant's schema and refuses an explicit
//     other schema (ErrCrossTenant);
//   - keeps GORM's refusal of an UPDATE or DELETE with neither WHERE nor primary key, which the
//     added tenant condition would otherwise defeat (gorm.ErrMissingWhereClause);
//   - refuses raw SQL (Raw, Exec), which it cannot rewrite, unless the context says AllowRaw
//     (ErrRawRefused): any raw SQL in a tenant's context, and elsewhere raw SQL scanned into a
//     tenant model or naming a registered tenant table. The SAVEPOINT statements of nested
//     transactions pass.
//
// Statements on other tables pass untouched.
//
// What the plugin does not see, so row-level security on shared tables and the tenant role on
// tenant schemas must cover it:
//   - tables brought in by Joins (raw or association joins) are not filtered or qualified;
//   - a db.Raw(...) passed as a subquery argument is inlined by GORM without callbacks;
//   - many-to-many join tables are scoped only when registered in Tables;
//   - SQL run with AllowRaw is not scoped at all;
//   - an upsert of a slice that meets another tenant's row fails with ErrCrossTenant after the
//     other rows were written: wrap it in a transaction to make it all or nothing.
package tenantscope

import (
	"context"
	"errors"
	"fmt"
)

// TenantColumn is the column that carries the owning tenant on shared (control-plane) tables.
const TenantColumn = "tenant_id"

// Sentinel errors. The plugin wraps them with the operation and table, so test with errors.Is.
var (
	// ErrNoTenant means a statement touched a tenant table from a context without a tenant. It
	// guards against code paths that forgot db.WithContext(WithTenant(...)): without it they would
	// read or write every tenant's rows.
	ErrNoTenant = errors.New("tenantscope: no tenant in context")
	// ErrCrossTenant means a statement named another tenant's data explicitly: a row or an update
	// carrying another tenant_id, another tenant's schema, an upsert that met another tenant's row,
	// or a statement reused from another tenant's context.
	ErrCrossTenant = errors.New("tenantscope: statement reaches another tenant's data")
	// ErrRawRefused means raw SQL (or a table expression) that the plugin cannot scope was run on
	// tenant data without AllowRaw. Pre-built SQL cannot be rewritten, so it must be opted into.
	ErrRawRefused = errors.New("tenantscope: raw SQL on tenant data needs tenantscope.AllowRaw")
)

// SharedModel is implemented by models of control-plane tables whose rows belong to a tenant
// through their tenant_id column. The method is a marker: it is never called.
type SharedModel interface{ TenantShared() }

// SchemaModel is implemented by models of tables that live in every tenant's own schema. The
// method is a marker: it is never called.
type SchemaModel interface{ TenantSchema() }

type tenantKey struct{}

type rawKey struct{}

// WithTenant returns a context that scopes statements to tenant id. Tenant ids start at 1: a zero
// or negative id (an unset variable) counts as no tenant, so it fails with ErrNoTenant rather than
// matching nothing or everything.
func WithTenant(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, tenantKey{}, id)
}

// TenantFrom returns the tenant set by WithTenant and whether there is a valid one.
func TenantFrom(ctx context.Context) (int64, bool) {
	if ctx == nil {
		return 0, false
	}
	id, ok := ctx.Value(tenantKey{}).(int64)
	return id, ok && id > 0
}

// AllowRaw returns a context in which raw SQL (Raw, Exec) and table expressions the plugin cannot
// parse run unscoped even on tenant data. It is the explicit opt-in for statements the plugin
// cannot rewrite, such as the SET LOCAL ROLE / set_config that open a tenant transaction, or
// platform code that reads across tenants. Keep its scope to the one statement that needs it:
//
//	tx.WithContext(tenantscope.AllowRaw(ctx)).Exec("SELECT set_config('app.tenant_id', ?, true)", id)
func AllowRaw(ctx context.Context) context.Context {
	return context.WithValue(ctx, rawKey{}, true)
}

// RawAllowed reports whether ctx came from AllowRaw.
func RawAllowed(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	ok, _ := ctx.Value(rawKey{}).(bool)
	return ok
}

// DefaultSchemaName names tenant id's schema: t_<id>, as DESIGN.md's tenant plane has it.
func DefaultSchemaName(id int64) string {
	return fmt.Sprintf("t_%d", id)
}
