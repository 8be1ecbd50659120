package tenantscope

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// read scopes queries: Find, First, Count, Pluck, Scan, Row(s), Preload.
func (p *Plugin) read(op string) func(*gorm.DB) {
	return func(db *gorm.DB) {
		if db.Error != nil {
			return
		}
		if db.Statement.SQL.Len() > 0 { // Raw(...): the SQL is already written
			p.guardRaw(db, op)
			return
		}
		t, id, ok := p.begin(db, op)
		if !ok {
			return
		}
		p.apply(db, op, t, id)
	}
}

func (p *Plugin) create(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	t, id, ok := p.begin(db, "create")
	if !ok {
		return
	}
	if t.mode == Shared {
		p.stamp(db, t, id)
		return
	}
	p.qualify(db, "create", t, id)
}

// createCheck runs after the BeforeCreate hooks, which may have changed the rows.
func (p *Plugin) createCheck(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	t, id, ok := p.begin(db, "create")
	if !ok || t.mode != Shared {
		return
	}
	p.stamp(db, t, id)
	if c, ok := db.Statement.Clauses["ON CONFLICT"]; ok && db.Error == nil {
		if oc, ok := c.Expression.(clause.OnConflict); ok {
			for _, a := range oc.DoUpdates {
				if a.Column.Name != TenantColumn || a.Value == (clause.Column{Table: "excluded", Name: TenantColumn}) {
					continue // excluded.tenant_id is the stamped value
				}
				if err := sameTenant(a.Value, id); err != nil {
					db.AddError(fmt.Errorf("upsert into %s: %w", t, err))
					return
				}
			}
		}
	}
}

func (p *Plugin) update(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	if db.Statement.SQL.Len() > 0 {
		p.guardRaw(db, "update")
		return
	}
	t, id, ok := p.begin(db, "update")
	if !ok {
		return
	}
	if !hasConditions(db, false) {
		db.AddError(fmt.Errorf("update %s with neither WHERE nor primary key: %w", t, gorm.ErrMissingWhereClause))
		return
	}
	if t.mode == Shared {
		if err := p.checkAssignments(db, id); err != nil {
			db.AddError(fmt.Errorf("update %s: %w", t, err))
			return
		}
	}
	p.apply(db, "update", t, id)
}

func (p *Plugin) delete(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	if db.Statement.SQL.Len() > 0 {
		p.guardRaw(db, "delete")
		return
	}
	t, id, ok := p.begin(db, "delete")
	if !ok {
		return
	}
	if !hasConditions(db, true) {
		db.AddError(fmt.Errorf("delete %s with neither WHERE nor primary key: %w", t, gorm.ErrMissingWhereClause))
		return
	}
	p.apply(db, "delete", t, id)
}

func (p *Plugin) raw(db *gorm.DB) {
	if db.Error == nil {
		p.guardRaw(db, "exec")
	}
}

// begin resolves the statement's target and tenant. It reports false when the statement is to
// pass untouched or has failed.
func (p *Plugin) begin(db *gorm.DB, op string) (target, int64, bool) {
	st := db.Statement
	t, err := p.target(st)
	if err != nil {
		db.AddError(fmt.Errorf("%s: %w", op, err))
		return t, 0, false
	}
	if t.mode == None {
		return t, 0, false
	}
	if t.opaque {
		if RawAllowed(st.Context) {
			return t, 0, false
		}
		db.AddError(fmt.Errorf("%s on table expression %q: %w", op, st.TableExpr.SQL, ErrRawRefused))
		return t, 0, false
	}
	id, ok := TenantFrom(st.Context)
	if !ok {
		db.AddError(fmt.Errorf("%s %s: %w", op, t, ErrNoTenant))
		return t, 0, false
	}
	return t, id, true
}

func (p *Plugin) apply(db *gorm.DB, op string, t target, id int64) {
	switch t.mode {
	case Shared:
		if err := filter(db.Statement, id); err != nil {
			db.AddError(fmt.Errorf("%s %s: %w", op, t, err))
		}
	case PerSchema:
		p.qualify(db, op, t, id)
	}
}

// tenantFilter is the condition the plugin adds. It is a type of its own so that the plugin
// recognises a statement it already scoped (GORM chains may run one statement twice) and so that
// nothing else mistakes it for a caller's condition.
type tenantFilter struct{ id int64 }

func (f tenantFilter) Build(b clause.Builder) {
	clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: TenantColumn}, Value: f.id}.Build(b)
}

// parens puts the caller's only condition in parentheses unconditionally. GORM brackets a lone
// raw condition only when it contains " AND " or " OR " with spaces, so "a = ?\nOR true" or
// "a = ? OR(true)" would otherwise bind to the tenant filter and leak every tenant's rows.
type parens struct{ expr clause.Expression }

func (g parens) Build(b clause.Builder) {
	b.WriteByte('(')
	g.expr.Build(b)
	b.WriteByte(')')
}

// group makes the caller's conditions one operand of AND.
func group(exprs []clause.Expression) clause.Expression {
	if len(exprs) > 1 {
		// AndConditions always brackets several conditions, and GORM's FirstOrCreate still finds
		// the equalities inside it to initialise a new record.
		return clause.AndConditions{Exprs: exprs}
	}
	switch exprs[0].(type) {
	case clause.Eq, clause.Neq, clause.IN, clause.Gt, clause.Gte, clause.Lt, clause.Lte, clause.Like:
		return exprs[0] // one comparison: nothing can escape
	}
	return parens{exprs[0]}
}

// filter rewrites the WHERE to (<caller's conditions>) AND tenant_id = id.
func filter(st *gorm.Statement, id int64) error {
	c, ok := st.Clauses["WHERE"]
	var exprs []clause.Expression
	if ok {
		if w, isWhere := c.Expression.(clause.Where); isWhere {
			exprs = w.Exprs
		} else if c.Expression != nil {
			exprs = []clause.Expression{c.Expression}
		}
	} else {
		c = clause.Clause{Name: "WHERE"}
	}
	for _, e := range exprs {
		if f, ok := e.(tenantFilter); ok {
			if f.id == id {
				return nil // scoped already: a reused chain
			}
			return fmt.Errorf("statement scoped to tenant %d reused for tenant %d: %w", f.id, id, ErrCrossTenant)
		}
	}
	if len(exprs) == 0 {
		c.Expression = clause.Where{Exprs: []clause.Expression{tenantFilter{id}}}
	} else {
		c.Expression = clause.Where{Exprs: []clause.Expression{group(exprs), tenantFilter{id}}}
	}
	st.Clauses["WHERE"] = c
	return nil
}

// qualify points the statement at the tenant's schema. Columns keep the bare table name
// ("projects"."id"), which PostgreSQL resolves against FROM "t_1"."projects".
func (p *Plugin) qualify(db *gorm.DB, op string, t target, id int64) {
	st := db.Statement
	want := p.schemaName(id)
	if t.schema != "" && t.schema != want {
		db.AddError(fmt.Errorf("%s %s from tenant %d: %w", op, t, id, ErrCrossTenant))
		return
	}
	sql := st.Quote(want) + "." + st.Quote(t.table)
	st.Table = t.table
	if t.alias != "" {
		sql += " AS " + st.Quote(t.alias)
		st.Table = t.alias
	}
	st.TableExpr = &clause.Expr{SQL: sql}
}

// hasConditions reports whether an UPDATE or DELETE names its rows: by WHERE (other than the
// tenant filter), by the primary key of the model GORM will turn into a WHERE, or by the caller's
// explicit AllowGlobalUpdate. GORM checks this itself only after the plugin's tenant filter is
// already in place, when every statement seems to have a WHERE.
func hasConditions(db *gorm.DB, isDelete bool) bool {
	st := db.Statement
	if db.AllowGlobalUpdate {
		return true
	}
	if c, ok := st.Clauses["WHERE"]; ok {
		w, isWhere := c.Expression.(clause.Where)
		if !isWhere {
			return c.Expression != nil
		}
		for _, e := range w.Exprs {
			if _, ours := e.(tenantFilter); !ours {
				return true
			}
		}
	}
	if st.Schema == nil || len(st.Schema.PrimaryFields) == 0 {
		return false
	}
	if hasPrimaryKey(st, st.ReflectValue) {
		return true
	}
	// Delete also reads the key of db.Model(&row) when the destination is another value.
	return isDelete && st.Model != nil && st.Dest != st.Model && hasPrimaryKey(st, reflect.ValueOf(st.Model))
}

func hasPrimaryKey(st *gorm.Statement, rv reflect.Value) bool {
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return false
		}
		rv = rv.Elem()
	}
	if k := rv.Kind(); k != reflect.Struct && k != reflect.Slice && k != reflect.Array {
		return false
	}
	_, values := schema.GetIdentityFieldValuesMap(st.Context, rv, st.Schema.PrimaryFields)
	return len(values) > 0
}

// checkAssignments refuses an update that would move rows to another tenant (or to none), and
// stamps the tenant on an addressable struct whose tenant_id is unset: Save writes every column,
// zero ones included, and would otherwise orphan the row.
func (p *Plugin) checkAssignments(db *gorm.DB, id int64) error {
	st := db.Statement
	if c, ok := st.Clauses["SET"]; ok {
		if set, ok := c.Expression.(clause.Set); ok {
			for _, a := range set {
				if a.Column.Name == TenantColumn {
					if err := sameTenant(a.Value, id); err != nil {
						return err
					}
				}
			}
		}
	}
	rv := reflect.ValueOf(st.Dest)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Map:
		for _, k := range rv.MapKeys() {
			if k.Kind() == reflect.String && isTenantKey(st, k.String()) {
				if err := sameTenant(rv.MapIndex(k).Interface(), id); err != nil {
					return err
				}
			}
		}
	case reflect.Struct:
		if st.Schema == nil {
			return nil
		}
		s := st.Schema
		if rv.Type() != s.ModelType { // Updates(otherStruct): GORM matches its fields by column
			ds := &gorm.Statement{DB: st.DB}
			if err := ds.Parse(st.Dest); err != nil {
				return nil
			}
			s = ds.Schema
		}
		field := s.LookUpField(TenantColumn)
		if field == nil {
			return nil
		}
		v, zero := field.ValueOf(st.Context, rv)
		if !zero {
			return sameTenant(v, id)
		}
		if rv.CanAddr() {
			return field.Set(st.Context, rv, id)
		}
		if sel, _ := st.SelectAndOmitColumns(false, true); sel[TenantColumn] {
			return fmt.Errorf("update would clear %s: %w", TenantColumn, ErrCrossTenant)
		}
	}
	return nil
}

func isTenantKey(st *gorm.Statement, key string) bool {
	if key == TenantColumn {
		return true
	}
	if st.Schema != nil {
		if f := st.Schema.LookUpField(key); f != nil {
			return f.DBName == TenantColumn
		}
	}
	return false
}

// stamp sets tenant_id on every row to be created and refuses rows of another tenant.
func (p *Plugin) stamp(db *gorm.DB, t target, id int64) {
	st := db.Statement
	var field *schema.Field
	if st.Schema != nil {
		field = st.Schema.LookUpField(TenantColumn)
	}
	if err := stampValue(st, field, st.ReflectValue, id); err != nil {
		db.AddError(fmt.Errorf("create %s: %w", t, err))
	}
}

func stampValue(st *gorm.Statement, field *schema.Field, rv reflect.Value, id int64) error {
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return stampValue(st, field, rv.Elem(), id)
	case reflect.Slice, reflect.Array:
		for i := range rv.Len() {
			if err := stampValue(st, field, rv.Index(i), id); err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
		}
		return nil
	case reflect.Struct:
		if field == nil {
			return fmt.Errorf("%s has no %s field to stamp", rv.Type(), TenantColumn)
		}
		if rv.Type() != st.Schema.ModelType {
			return fmt.Errorf("cannot stamp %s on a %s created as a %s", TenantColumn, rv.Type(), st.Schema.ModelType)
		}
		v, zero := field.ValueOf(st.Context, rv)
		if !zero {
			return sameTenant(v, id)
		}
		if !rv.CanAddr() {
			return fmt.Errorf("cannot stamp %s on a %s passed by value; pass a pointer", TenantColumn, rv.Type())
		}
		return field.Set(st.Context, rv, id)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return errors.New("nil map")
		}
		found := false
		for _, k := range rv.MapKeys() {
			if !isTenantKey(st, k.String()) {
				continue
			}
			found = true
			v := rv.MapIndex(k).Interface()
			if n, ok := asInt64(v); ok && n == 0 {
				if err := setMap(rv, k, id); err != nil {
					return err
				}
			} else if err := sameTenant(v, id); err != nil {
				return err
			}
		}
		if !found {
			return setMap(rv, reflect.ValueOf(TenantColumn).Convert(rv.Type().Key()), id)
		}
		return nil
	}
	return fmt.Errorf("cannot stamp %s on %s", TenantColumn, rv.Type())
}

func setMap(m, key reflect.Value, id int64) error {
	v := reflect.ValueOf(id)
	if !v.Type().AssignableTo(m.Type().Elem()) {
		return fmt.Errorf("cannot stamp %s into a %s", TenantColumn, m.Type())
	}
	m.SetMapIndex(key, v)
	return nil
}

// sameTenant accepts a tenant_id value that names tenant id and nothing else: not another
// tenant, not zero, not an SQL expression.
func sameTenant(v any, id int64) error {
	n, ok := asInt64(v)
	if !ok {
		return fmt.Errorf("%s set to %T, not the current tenant: %w", TenantColumn, v, ErrCrossTenant)
	}
	if n != id {
		return fmt.Errorf("%s %d is not the current tenant %d: %w", TenantColumn, n, id, ErrCrossTenant)
	}
	return nil
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case nil:
		return 0, true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return 0, false
		}
		if _, again := dv.(driver.Valuer); again {
			return 0, false
		}
		return asInt64(dv)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return 0, true
		}
		return asInt64(rv.Elem().Interface())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return int64(u), true
		}
	}
	return 0, false
}

// onConflict wraps the ON CONFLICT clause builder to add WHERE tenant_id = <tenant> to DO UPDATE
// on shared tables. Without it INSERT ... ON CONFLICT (id) DO UPDATE SET tenant_id =
// excluded.tenant_id, which GORM's Save sends when its UPDATE matched nothing, moves another
// tenant's row with that id to the current tenant.
func (p *Plugin) onConflict(prev clause.ClauseBuilder) clause.ClauseBuilder {
	return func(c clause.Clause, b clause.Builder) {
		if st, ok := b.(*gorm.Statement); ok {
			if oc, ok := c.Expression.(clause.OnConflict); ok && updates(oc) {
				if t, err := p.target(st); err == nil && t.mode == Shared && !t.opaque {
					if id, ok := TenantFrom(st.Context); ok {
						exprs := []clause.Expression{tenantFilter{id}}
						if len(oc.Where.Exprs) > 0 {
							exprs = []clause.Expression{group(oc.Where.Exprs), tenantFilter{id}}
						}
						oc.Where = clause.Where{Exprs: exprs}
						c.Expression = oc
					}
				}
			}
		}
		if prev != nil {
			prev(c, b)
			return
		}
		c.Build(b)
	}
}

func updates(oc clause.OnConflict) bool {
	return !oc.DoNothing && (len(oc.DoUpdates) > 0 || oc.UpdateAll)
}

// upsertCheck turns a guarded upsert that skipped rows into an error. PostgreSQL counts a row that
// the DO UPDATE ... WHERE tenant_id refused as neither inserted nor updated, so fewer rows than
// sent means some conflicted with another tenant's row; without this, Save would report success
// having written nothing.
func (p *Plugin) upsertCheck(db *gorm.DB) {
	st := db.Statement
	if db.Error != nil || db.DryRun {
		return
	}
	c, ok := st.Clauses["ON CONFLICT"]
	if !ok {
		return
	}
	oc, ok := c.Expression.(clause.OnConflict)
	if !ok || !updates(oc) || len(oc.Where.Exprs) > 0 {
		return // no guard, or the caller's own WHERE may skip rows on purpose
	}
	t, err := p.target(st)
	if err != nil || t.mode != Shared || t.opaque {
		return
	}
	if want := rowCount(st.ReflectValue); db.RowsAffected < want {
		db.AddError(fmt.Errorf("upsert into %s: %d of %d rows conflicted with another tenant's: %w",
			t, want-db.RowsAffected, want, ErrCrossTenant))
	}
}

func rowCount(rv reflect.Value) int64 {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return 0
		}
		rv = rv.Elem()
	}
	if k := rv.Kind(); k == reflect.Slice || k == reflect.Array {
		return int64(rv.Len())
	}
	return 1
}

// savepoint matches the statements GORM's nested Transaction sends through Exec, and only them.
var savepoint = regexp.MustCompile(`(?i)^\s*(?:SAVEPOINT|RELEASE(?:\s+SAVEPOINT)?|ROLLBACK\s+TO(?:\s+SAVEPOINT)?)\s+(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$`)

// guardRaw refuses SQL the plugin cannot rewrite when it may touch tenant data: any raw SQL in a
// tenant's context, raw SQL scanned into a tenant model, and raw SQL naming a registered tenant
// table. Raw SQL elsewhere (migrations, control-plane maintenance) passes.
func (p *Plugin) guardRaw(db *gorm.DB, op string) {
	st := db.Statement
	if RawAllowed(st.Context) {
		return
	}
	sql := st.SQL.String()
	if savepoint.MatchString(sql) {
		return
	}
	var why string
	if id, ok := TenantFrom(st.Context); ok {
		why = fmt.Sprintf("in tenant %d's context", id)
	} else if st.Schema != nil {
		if m, _ := p.markerMode(st.Schema); m != None {
			why = fmt.Sprintf("into %s model %s", m, st.Schema.ModelType)
		}
	}
	if why == "" {
		if table, m := p.mentions(sql); m != None {
			why = fmt.Sprintf("naming %s table %s", m, table)
		}
	}
	if why != "" {
		db.AddError(fmt.Errorf("%s %s (%s): %w", op, why, snippet(sql), ErrRawRefused))
	}
}

func snippet(sql string) string {
	const n = 60
	r := []rune(sql)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return sql
}
