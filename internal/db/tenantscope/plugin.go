package tenantscope

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Mode is the plane a table belongs to, which decides how the plugin scopes statements on it.
type Mode uint8

const (
	// None marks a table that belongs to no tenant: statements on it pass untouched.
	None Mode = iota
	// Shared marks a control-plane table whose rows carry tenant_id.
	Shared
	// PerSchema marks a table that exists in every tenant's schema.
	PerSchema
)

// String returns the mode's name, for messages.
func (m Mode) String() string {
	switch m {
	case None:
		return "none"
	case Shared:
		return "shared"
	case PerSchema:
		return "per-schema"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Plugin is the GORM plugin; register it once per *gorm.DB with db.Use(&tenantscope.Plugin{}).
// GORM's callbacks belong to the *gorm.DB and all its sessions, so Use on a Session scopes its
// parent too: a handle that must stay unscoped (migrations, tests' ground truth) needs its own
// gorm.Open. A Plugin must not be copied after use.
type Plugin struct {
	// SchemaName names the schema that holds tenant id's tables. Nil means DefaultSchemaName. It
	// is a field because the schema naming may change (cells, renames) and must then change in
	// one place.
	SchemaName func(id int64) string
	// Tables declares the plane of tables reached without a marked model: db.Table("x") with a
	// map, a count or an unmarked struct, and the names the raw-SQL guard looks for. Keys are bare
	// table names as PostgreSQL sees them (unquoted names in lower case). Initialize reads it once;
	// use Register afterwards.
	Tables map[string]Mode

	mu      sync.Mutex                      // serialises Register
	tables  atomic.Pointer[map[string]Mode] // copy-on-write, read by every statement
	markers sync.Map                        // reflect.Type -> marker
}

type marker struct {
	mode Mode
	err  error
}

// Name identifies the plugin to GORM.
func (p *Plugin) Name() string { return "tenantscope" }

// Register declares (or, with None, forgets) the plane of a table reached without a marked
// model. It is safe to call while statements run.
func (p *Plugin) Register(table string, mode Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[string]Mode{}
	if cur := p.tables.Load(); cur != nil {
		next = maps.Clone(*cur)
	}
	if mode == None {
		delete(next, table)
	} else {
		next[table] = mode
	}
	p.tables.Store(&next)
}

// Initialize registers the callbacks; GORM calls it from db.Use.
func (p *Plugin) Initialize(db *gorm.DB) error {
	for table, mode := range p.Tables {
		p.Register(table, mode)
	}
	cb := db.Callback()
	err := errors.Join(
		cb.Query().Before("gorm:query").Register("tenantscope:query", p.read("query")),
		// Row serves Row, Rows, Scan and Raw(...).Scan.
		cb.Row().Before("gorm:row").Register("tenantscope:row", p.read("row")),
		// Stamp before the BeforeCreate hooks so they see the tenant, check again after them.
		cb.Create().Before("gorm:before_create").Register("tenantscope:create", p.create),
		cb.Create().After("gorm:before_create").Before("gorm:create").Register("tenantscope:create_check", p.createCheck),
		cb.Create().After("gorm:create").Register("tenantscope:upsert_check", p.upsertCheck),
		// After setup_reflect_value: the missing-WHERE check reads the model's primary key.
		cb.Update().After("gorm:setup_reflect_value").Before("gorm:before_update").Register("tenantscope:update", p.update),
		cb.Delete().Before("gorm:before_delete").Register("tenantscope:delete", p.delete),
		// Raw serves Exec, including the SAVEPOINTs of nested transactions.
		cb.Raw().Before("gorm:raw").Register("tenantscope:raw", p.raw),
	)
	if err != nil {
		return fmt.Errorf("tenantscope: register callbacks: %w", err)
	}
	// The ON CONFLICT guard is added when the clause is built: only then is it known whether
	// GORM turned an UpdateAll into DO UPDATE SET ... or into DO NOTHING (no WHERE allowed).
	if db.ClauseBuilders == nil {
		db.ClauseBuilders = map[string]clause.ClauseBuilder{}
	}
	db.ClauseBuilders["ON CONFLICT"] = p.onConflict(db.ClauseBuilders["ON CONFLICT"])
	return nil
}

func (p *Plugin) schemaName(id int64) string {
	if p.SchemaName != nil {
		return p.SchemaName(id)
	}
	return DefaultSchemaName(id)
}

func (p *Plugin) lookup(table string) Mode {
	if t := p.tables.Load(); t != nil {
		return (*t)[table]
	}
	return None
}

var (
	sharedType = reflect.TypeFor[SharedModel]()
	schemaType = reflect.TypeFor[SchemaModel]()
)

// markerMode reads a model's marker methods, once per type.
func (p *Plugin) markerMode(s *schema.Schema) (Mode, error) {
	if v, ok := p.markers.Load(s.ModelType); ok {
		m := v.(marker)
		return m.mode, m.err
	}
	var m marker
	pt := reflect.PointerTo(s.ModelType)
	shared, perSchema := pt.Implements(sharedType), pt.Implements(schemaType)
	switch {
	case shared && perSchema:
		m.err = fmt.Errorf("tenantscope: model %s declares both TenantShared and TenantSchema", s.ModelType)
	case shared:
		m.mode = Shared
		if s.LookUpField(TenantColumn) == nil {
			m.err = fmt.Errorf("tenantscope: model %s declares TenantShared but has no %s field", s.ModelType, TenantColumn)
		}
	case perSchema:
		m.mode = PerSchema
	}
	p.markers.Store(s.ModelType, m)
	return m.mode, m.err
}

// target is what a statement runs on, as far as scoping is concerned.
type target struct {
	mode   Mode
	schema string // explicit schema in Table() or TableName(), "" if none
	table  string // bare table name
	alias  string
	// opaque: the table expression is not a plain [schema.]table [AS alias], so the plugin
	// cannot rewrite it (a subquery, a join list, arguments).
	opaque bool
}

func (p *Plugin) target(st *gorm.Statement) (target, error) {
	t := target{table: st.Table}
	if e := st.TableExpr; e != nil {
		if s, n, a, ok := parseTable(e.SQL); ok && len(e.Vars) == 0 {
			t.schema, t.table, t.alias = s, n, a
		} else {
			t.opaque = true
		}
	}
	if st.Schema != nil {
		m, err := p.markerMode(st.Schema)
		if err != nil {
			return t, err
		}
		t.mode = m
	}
	if t.mode == None {
		if t.opaque {
			if name, m := p.mentions(st.TableExpr.SQL); m != None {
				t.mode, t.table = m, name
			}
		} else {
			t.mode = p.lookup(t.table)
		}
	}
	return t, nil
}

func (t target) String() string {
	if t.schema != "" {
		return t.schema + "." + t.table
	}
	return t.table
}

const ident = `"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*`

// tableExpr matches what db.Table() and dotted TableName()s leave in Statement.TableExpr for a
// plain table: [schema.]table [[AS] alias], each part quoted or not.
var tableExpr = regexp.MustCompile(`^\s*(` + ident + `)(?:\s*\.\s*(` + ident + `))?(?:\s+(?i:AS\s+)?(` + ident + `))?\s*$`)

// parseTable splits a table expression into schema, table and alias, as PostgreSQL reads them.
func parseTable(sql string) (schemaName, table, alias string, ok bool) {
	m := tableExpr.FindStringSubmatch(sql)
	if m == nil {
		return "", "", "", false
	}
	if m[2] == "" {
		return "", unquote(m[1]), unquote(m[3]), true
	}
	return unquote(m[1]), unquote(m[2]), unquote(m[3]), true
}

// unquote returns an identifier as PostgreSQL stores it: quoted names verbatim, others folded to
// lower case.
func unquote(id string) string {
	if len(id) >= 2 && id[0] == '"' {
		return strings.ReplaceAll(id[1:len(id)-1], `""`, `"`)
	}
	return strings.ToLower(id)
}

// mentions returns the first registered tenant table named in sql, skipping string literals. It is
// a guard for SQL the plugin cannot parse, not a parser: a false positive refuses a statement
// (fail closed), and tables only reached through subquery arguments are not seen.
func (p *Plugin) mentions(sql string) (string, Mode) {
	tp := p.tables.Load()
	if tp == nil || len(*tp) == 0 {
		return "", None
	}
	tables := *tp
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			i = skipQuoted(sql, i, '\'')
		case c == '"':
			end := skipQuoted(sql, i, '"')
			if name := unquote(sql[i:end]); tables[name] != None {
				return name, tables[name]
			}
			i = end
		case isIdentStart(c):
			end := i + 1
			for end < len(sql) && (isIdentStart(sql[end]) || sql[end] >= '0' && sql[end] <= '9' || sql[end] == '$') {
				end++
			}
			if name := strings.ToLower(sql[i:end]); tables[name] != None {
				return name, tables[name]
			}
			i = end
		default:
			i++
		}
	}
	return "", None
}

// skipQuoted returns the index just past the quoted token starting at i (” or "" escape a quote).
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
