package tenantscope_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

func TestContext(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		wantID int64
		wantOK bool
	}{
		{"no tenant", bg, 0, false},
		{"tenant 7", tenantscope.WithTenant(bg, 7), 7, true},
		{"zero id is no tenant", tenantscope.WithTenant(bg, 0), 0, false},
		{"negative id is no tenant", tenantscope.WithTenant(bg, -3), -3, false},
		{"inner tenant wins", tenantscope.WithTenant(tenantscope.WithTenant(bg, 1), 2), 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := tenantscope.TenantFrom(tc.ctx)
			if ok != tc.wantOK || (ok && id != tc.wantID) {
				t.Errorf("TenantFrom = %d, %v; want %d, %v", id, ok, tc.wantID, tc.wantOK)
			}
		})
	}
	if tenantscope.RawAllowed(bg) {
		t.Error("RawAllowed(background) = true")
	}
	if !tenantscope.RawAllowed(tenantscope.AllowRaw(tenantscope.WithTenant(bg, 1))) {
		t.Error("RawAllowed(AllowRaw(ctx)) = false")
	}
	if got := tenantscope.DefaultSchemaName(42); got != "t_42" {
		t.Errorf("DefaultSchemaName(42) = %q", got)
	}
}

func TestUnscopedQueriesError(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	bg := context.Background()
	var n int64
	for _, tc := range []struct {
		name string
		ctx  context.Context
		run  func(g *gorm.DB) *gorm.DB
		want error
	}{
		{"find shared", bg, func(g *gorm.DB) *gorm.DB { return g.Find(&[]item{}) }, tenantscope.ErrNoTenant},
		{"first shared", bg, func(g *gorm.DB) *gorm.DB { return g.First(&item{}, tb.aOne.ID) }, tenantscope.ErrNoTenant},
		{"count via Table", bg, func(g *gorm.DB) *gorm.DB { return g.Table("scope_items").Count(&n) }, tenantscope.ErrNoTenant},
		{"pluck", bg, func(g *gorm.DB) *gorm.DB { return g.Model(&item{}).Pluck("name", &[]string{}) }, tenantscope.ErrNoTenant},
		{"rows", bg, func(g *gorm.DB) *gorm.DB {
			rows, err := g.Model(&item{}).Rows()
			if rows != nil {
				rows.Close()
			}
			g.Error = err
			return g
		}, tenantscope.ErrNoTenant},
		{"create shared", bg, func(g *gorm.DB) *gorm.DB { return g.Create(&item{Name: "orphan"}) }, tenantscope.ErrNoTenant},
		{"create map via Table", bg, func(g *gorm.DB) *gorm.DB {
			return g.Table("scope_items").Create(map[string]any{"name": "orphan"})
		}, tenantscope.ErrNoTenant},
		{"update shared", bg, func(g *gorm.DB) *gorm.DB {
			return g.Model(&item{ID: tb.aOne.ID}).Update("name", "orphan")
		}, tenantscope.ErrNoTenant},
		{"delete shared", bg, func(g *gorm.DB) *gorm.DB { return g.Delete(&item{}, tb.aOne.ID) }, tenantscope.ErrNoTenant},
		{"find per-schema", bg, func(g *gorm.DB) *gorm.DB { return g.Find(&[]project{}) }, tenantscope.ErrNoTenant},
		{"count per-schema via Table", bg, func(g *gorm.DB) *gorm.DB { return g.Table("projects").Count(&n) }, tenantscope.ErrNoTenant},
		{"create per-schema", bg, func(g *gorm.DB) *gorm.DB { return g.Create(&project{Name: "orphan"}) }, tenantscope.ErrNoTenant},
		{"zero tenant id", tenantscope.WithTenant(bg, 0), func(g *gorm.DB) *gorm.DB { return g.Find(&[]item{}) }, tenantscope.ErrNoTenant},
		{"other tenant's schema", tb.ctxA, func(g *gorm.DB) *gorm.DB {
			return g.Table(tenantscope.DefaultSchemaName(tb.b) + ".projects").Find(&[]project{})
		}, tenantscope.ErrCrossTenant},
		{"control-plane schema", tb.ctxA, func(g *gorm.DB) *gorm.DB {
			return g.Table("tenantry.projects").Find(&[]project{})
		}, tenantscope.ErrCrossTenant},
		{"other tenant's schema, quoted with alias", tb.ctxA, func(g *gorm.DB) *gorm.DB {
			return g.Table(fmt.Sprintf(`"t_%d"."projects" AS p`, tb.b)).Find(&[]project{})
		}, tenantscope.ErrCrossTenant},
		{"update in other tenant's schema", tb.ctxA, func(g *gorm.DB) *gorm.DB {
			return g.Table(tenantscope.DefaultSchemaName(tb.b)+".projects").Where("id = ?", tb.pbOne.ID).Update("name", "x")
		}, tenantscope.ErrCrossTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(tb.scoped.WithContext(tc.ctx)).Error
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("nothing was written", func(t *testing.T) {
		if got := tb.item(t, tb.aOne.ID); got.Name != tb.aOne.Name {
			t.Errorf("item renamed to %q", got.Name)
		}
		var orphans int64
		tb.plain.Model(&item{}).Where("name = ?", "orphan").Count(&orphans)
		if orphans != 0 {
			t.Errorf("%d orphan items created", orphans)
		}
		for _, tenant := range []int64{tb.a, tb.b} {
			if got := tb.projectNames(t, tenant); len(got) != 1 {
				t.Errorf("tenant %d projects = %v", tenant, got)
			}
		}
	})
}

func TestScopedSeesOnlyOwnTenant(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a := tb.scoped.WithContext(tb.ctxA)

	t.Run("find", func(t *testing.T) {
		var got []item
		if err := a.Order("id").Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if want := []string{tb.aOne.Name, tb.aTwo.Name}; !sameStrings(names(got), want) {
			t.Errorf("tenant a sees %v, want %v", names(got), want)
		}
	})
	t.Run("first by another tenant's id", func(t *testing.T) {
		err := a.First(&item{}, tb.bOne.ID).Error
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Errorf("err = %v, want ErrRecordNotFound", err)
		}
	})
	t.Run("where on another tenant's name", func(t *testing.T) {
		var got []item
		if err := a.Where("name = ?", tb.bOne.Name).Find(&got).Error; err != nil || len(got) != 0 {
			t.Errorf("got %v, %v; want nothing", names(got), err)
		}
	})
	t.Run("counts", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ctx  context.Context
			run  func(g *gorm.DB, n *int64) *gorm.DB
			want int64
		}{
			{"model, tenant a", tb.ctxA, func(g *gorm.DB, n *int64) *gorm.DB { return g.Model(&item{}).Count(n) }, 2},
			{"model, tenant b", tb.ctxB, func(g *gorm.DB, n *int64) *gorm.DB { return g.Model(&item{}).Count(n) }, 1},
			{"registered table, tenant a", tb.ctxA, func(g *gorm.DB, n *int64) *gorm.DB { return g.Table("scope_items").Count(n) }, 2},
			{"registered table, tenant b", tb.ctxB, func(g *gorm.DB, n *int64) *gorm.DB { return g.Table("scope_items").Count(n) }, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var n int64
				if err := tc.run(tb.scoped.WithContext(tc.ctx), &n).Error; err != nil {
					t.Fatal(err)
				}
				if n != tc.want {
					t.Errorf("count = %d, want %d", n, tc.want)
				}
			})
		}
	})
	t.Run("maps through a registered table", func(t *testing.T) {
		var rows []map[string]any
		if err := a.Table("scope_items").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("got %d rows, want 2", len(rows))
		}
		for _, r := range rows {
			if r["tenant_id"] != tb.a {
				t.Errorf("row of tenant %v", r["tenant_id"])
			}
		}
	})
	t.Run("pluck and scan", func(t *testing.T) {
		var plucked, scanned []string
		if err := a.Model(&item{}).Order("id").Pluck("name", &plucked).Error; err != nil {
			t.Fatal(err)
		}
		if err := a.Model(&item{}).Select("name").Order("id").Scan(&scanned).Error; err != nil {
			t.Fatal(err)
		}
		want := []string{tb.aOne.Name, tb.aTwo.Name}
		if !sameStrings(plucked, want) || !sameStrings(scanned, want) {
			t.Errorf("pluck %v, scan %v; want %v", plucked, scanned, want)
		}
	})
	t.Run("subquery is scoped too", func(t *testing.T) {
		var got []item
		sub := a.Model(&item{}).Select("id")
		if err := a.Where("id IN (?)", sub).Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("got %v", names(got))
		}
		st := dry(tb.scoped, tb.ctxA).Where("id IN (?)", tb.scoped.WithContext(tb.ctxA).Model(&item{}).Select("id")).Find(&[]item{}).Statement
		if c := strings.Count(st.SQL.String(), `"scope_items"."tenant_id" = `); c != 2 {
			t.Errorf("tenant filter appears %d times in %s", c, st.SQL.String())
		}
	})
	t.Run("generated SQL", func(t *testing.T) {
		st := dry(tb.scoped, tb.ctxA).Find(&[]item{}).Statement
		if got, want := st.SQL.String(), `SELECT * FROM "scope_items" WHERE "scope_items"."tenant_id" = $1`; got != want {
			t.Errorf("SQL\n got %s\nwant %s", got, want)
		}
		if len(st.Vars) != 1 || st.Vars[0] != tb.a {
			t.Errorf("vars = %v, want [%d]", st.Vars, tb.a)
		}
	})
	t.Run("reused chain is scoped once", func(t *testing.T) {
		q := tb.scoped.WithContext(tb.ctxA).Model(&item{}).Where("name <> ?", "nobody")
		var n int64
		var got []item
		if err := q.Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if err := q.Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if n != 2 || len(got) != 2 {
			t.Errorf("count %d, find %d; want 2, 2", n, len(got))
		}
		// The same statement moved to another tenant's context is refused, not double-filtered.
		if err := q.WithContext(tb.ctxB).Find(&got).Error; !errors.Is(err, tenantscope.ErrCrossTenant) {
			t.Errorf("reuse in tenant b: err = %v, want ErrCrossTenant", err)
		}
	})
}

func TestOrCannotEscapeTenantFilter(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	aOne, bOne := tb.aOne.Name, tb.bOne.Name
	for _, tc := range []struct {
		name string
		cond func(g *gorm.DB) *gorm.DB
	}{
		{"Where then Or", func(g *gorm.DB) *gorm.DB { return g.Where("name = ?", bOne).Or("name = ?", aOne) }},
		{"struct conditions with Or", func(g *gorm.DB) *gorm.DB { return g.Where(&item{Name: bOne}).Or(&item{Name: aOne}) }},
		// GORM brackets a lone raw condition only when it holds " OR " with spaces around it.
		{"OR after a newline", func(g *gorm.DB) *gorm.DB { return g.Where("name = ?\nOR name = ?", bOne, aOne) }},
		{"OR before a parenthesis", func(g *gorm.DB) *gorm.DB { return g.Where("name = ? OR(name = ?)", bOne, aOne) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Naive scoping (the tenant condition appended with AND) binds to the last operand of
			// the OR and leaks tenant b's row: proof that the case is a real escape.
			var naive []item
			if err := tc.cond(tb.plain).Where("tenant_id = ?", tb.a).Find(&naive).Error; err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(names(naive), bOne) {
				t.Fatalf("naive scoping did not leak (%v): the case proves nothing", names(naive))
			}
			var got []item
			if err := tc.cond(tb.scoped.WithContext(tb.ctxA)).Find(&got).Error; err != nil {
				t.Fatal(err)
			}
			if !sameStrings(names(got), []string{aOne}) {
				t.Errorf("tenant a sees %v, want only %s", names(got), aOne)
			}
		})
	}
	t.Run("generated SQL", func(t *testing.T) {
		st := dry(tb.scoped, tb.ctxA).Where("name = ?", aOne).Or("name = ?", bOne).Find(&[]item{}).Statement
		want := `SELECT * FROM "scope_items" WHERE (name = $1 OR name = $2) AND "scope_items"."tenant_id" = $3`
		if got := st.SQL.String(); got != want {
			t.Errorf("SQL\n got %s\nwant %s", got, want)
		}
	})
}

func TestSaveUpsertCannotHijack(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a := tb.scoped.WithContext(tb.ctxA)
	unchanged := func(t *testing.T, want item) {
		t.Helper()
		if got := tb.item(t, want.ID); got.TenantID != want.TenantID || got.Name != want.Name {
			t.Errorf("row %d is now tenant %d %q, want tenant %d %q", want.ID, got.TenantID, got.Name, want.TenantID, want.Name)
		}
	}

	t.Run("unguarded upsert moves the row", func(t *testing.T) {
		// What Save's fallback does without the guard: proof the attack is real.
		victim := tb.seedItem(t, tb.b, "victim")
		err := tb.plain.Clauses(clause.OnConflict{UpdateAll: true}).Create(&item{ID: victim.ID, TenantID: tb.a, Name: "hijacked"}).Error
		if err != nil {
			t.Fatal(err)
		}
		if got := tb.item(t, victim.ID); got.TenantID != tb.a {
			t.Fatalf("unguarded upsert left the row with tenant %d: the attack proves nothing", got.TenantID)
		}
	})
	for _, tc := range []struct {
		name string
		run  func(g *gorm.DB) *gorm.DB
	}{
		{"Save another tenant's id", func(g *gorm.DB) *gorm.DB { return g.Save(&item{ID: tb.bOne.ID, Name: "hijacked"}) }},
		{"Save another tenant's row as is", func(g *gorm.DB) *gorm.DB {
			return g.Save(&item{ID: tb.bOne.ID, TenantID: tb.b, Name: "hijacked"})
		}},
		{"Save a slice holding another tenant's id", func(g *gorm.DB) *gorm.DB {
			return g.Save(&[]item{{ID: tb.bOne.ID, Name: "hijacked"}})
		}},
		{"explicit upsert", func(g *gorm.DB) *gorm.DB {
			return g.Clauses(clause.OnConflict{UpdateAll: true}).Create(&item{ID: tb.bOne.ID, Name: "hijacked"})
		}},
		{"upsert assigning another tenant", func(g *gorm.DB) *gorm.DB {
			return g.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "id"}},
				DoUpdates: clause.Assignments(map[string]any{"tenant_id": tb.b}),
			}).Create(&item{ID: tb.aOne.ID, Name: tb.aOne.Name})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(a).Error
			if !errors.Is(err, tenantscope.ErrCrossTenant) {
				t.Errorf("err = %v, want ErrCrossTenant", err)
			}
			unchanged(t, tb.bOne)
			unchanged(t, tb.aOne)
		})
	}
	t.Run("guarded SQL", func(t *testing.T) {
		st := dry(tb.scoped, tb.ctxA).Clauses(clause.OnConflict{UpdateAll: true}).Create(&item{ID: tb.bOne.ID, Name: "x"}).Statement
		sql := st.SQL.String()
		if !strings.Contains(sql, `ON CONFLICT ("id") DO UPDATE SET`) ||
			!strings.Contains(sql, `WHERE "scope_items"."tenant_id" = $4`) {
			t.Errorf("upsert not guarded: %s", sql)
		}
		if st.Vars[3] != tb.a {
			t.Errorf("guard compares with %v, want %d", st.Vars[3], tb.a)
		}
	})
	t.Run("DO NOTHING is left alone", func(t *testing.T) {
		st := dry(tb.scoped, tb.ctxA).Clauses(clause.OnConflict{DoNothing: true}).Create(&item{ID: tb.bOne.ID, Name: "x"}).Statement
		if sql := st.SQL.String(); !strings.Contains(sql, "DO NOTHING") || strings.Contains(sql, "DO NOTHING WHERE") {
			t.Errorf("SQL %s", sql)
		}
	})
	t.Run("Save of an own row updates it", func(t *testing.T) {
		if err := a.Save(&item{ID: tb.aTwo.ID, Name: "renamed"}).Error; err != nil {
			t.Fatal(err)
		}
		unchanged(t, item{ID: tb.aTwo.ID, TenantID: tb.a, Name: "renamed"})
	})
	t.Run("Save of a new id inserts it", func(t *testing.T) {
		id := 900_000_000 + tb.a
		res := a.Save(&item{ID: id, Name: "fresh"})
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("err %v, rows %d", res.Error, res.RowsAffected)
		}
		unchanged(t, item{ID: id, TenantID: tb.a, Name: "fresh"})
	})
}

func TestCreateStampsAndVerifiesTenant(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a := tb.scoped.WithContext(tb.ctxA)
	uniq := func(s string) string { return fmt.Sprintf("t%d-%s", tb.a, s) }
	// byName reads rows by name without the plugin.
	byName := func(t *testing.T, names ...string) []item {
		t.Helper()
		var got []item
		if err := tb.plain.Where("name IN ?", names).Order("id").Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		return got
	}

	for _, tc := range []struct {
		name  string
		rows  []string
		run   func(g *gorm.DB, rows []string) *gorm.DB
		check func(t *testing.T) // extra checks on the caller's values
	}{
		{"struct", []string{uniq("struct")}, func(g *gorm.DB, r []string) *gorm.DB { return g.Create(&item{Name: r[0]}) }, nil},
		{"struct with own tenant", []string{uniq("own")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Create(&item{TenantID: tb.a, Name: r[0]})
		}, nil},
		{"slice", []string{uniq("slice1"), uniq("slice2")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Create(&[]item{{Name: r[0]}, {Name: r[1]}})
		}, nil},
		{"slice of pointers", []string{uniq("ptr1"), uniq("ptr2")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Create([]*item{{Name: r[0]}, {Name: r[1]}})
		}, nil},
		{"map through the model", []string{uniq("map")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Model(&item{}).Create(map[string]any{"name": r[0]})
		}, nil},
		{"map through a registered table", []string{uniq("table-map")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Table("scope_items").Create(map[string]any{"name": r[0]})
		}, nil},
		{"slice of maps", []string{uniq("maps1"), uniq("maps2")}, func(g *gorm.DB, r []string) *gorm.DB {
			return g.Table("scope_items").Create([]map[string]any{{"name": r[0]}, {"name": r[1], "tenant_id": nil}})
		}, nil},
		{"FirstOrCreate", []string{uniq("first-or-create")}, func(g *gorm.DB, r []string) *gorm.DB {
			var it item
			return g.Where(&item{Name: r[0]}).FirstOrCreate(&it)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(a, tc.rows).Error; err != nil {
				t.Fatal(err)
			}
			got := byName(t, tc.rows...)
			if len(got) != len(tc.rows) {
				t.Fatalf("created %v, want %v", names(got), tc.rows)
			}
			for _, it := range got {
				if it.TenantID != tb.a {
					t.Errorf("%s has tenant %d, want %d", it.Name, it.TenantID, tb.a)
				}
			}
		})
	}
	t.Run("the caller's struct is stamped", func(t *testing.T) {
		it := item{Name: uniq("stamped")}
		if err := a.Create(&it).Error; err != nil {
			t.Fatal(err)
		}
		if it.TenantID != tb.a {
			t.Errorf("TenantID = %d, want %d", it.TenantID, tb.a)
		}
	})

	for _, tc := range []struct {
		name string
		row  string
		run  func(g *gorm.DB, row string) *gorm.DB
	}{
		{"struct of another tenant", uniq("x-struct"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Create(&item{TenantID: tb.b, Name: r})
		}},
		{"slice with one row of another tenant", uniq("x-slice"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Create(&[]item{{Name: r}, {TenantID: tb.b, Name: r}})
		}},
		{"map with tenant_id", uniq("x-map"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Model(&item{}).Create(map[string]any{"name": r, "tenant_id": tb.b})
		}},
		{"map with the field name", uniq("x-field"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Model(&item{}).Create(map[string]any{"Name": r, "TenantID": tb.b})
		}},
		{"map with a non-integer tenant", uniq("x-string"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Table("scope_items").Create(map[string]any{"name": r, "tenant_id": strconv.FormatInt(tb.b, 10)})
		}},
		{"map with an SQL expression", uniq("x-expr"), func(g *gorm.DB, r string) *gorm.DB {
			return g.Table("scope_items").Create(map[string]any{"name": r, "tenant_id": gorm.Expr("?", tb.b)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(a, tc.row).Error
			if !errors.Is(err, tenantscope.ErrCrossTenant) {
				t.Errorf("err = %v, want ErrCrossTenant", err)
			}
			if got := byName(t, tc.row); len(got) != 0 {
				t.Errorf("rows were created: %+v", got)
			}
		})
	}
}

func TestUpdateDeleteScoped(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a := tb.scoped.WithContext(tb.ctxA)
	unchanged := func(t *testing.T, want item) {
		t.Helper()
		if got := tb.item(t, want.ID); got.TenantID != want.TenantID || got.Name != want.Name {
			t.Errorf("row %d is now tenant %d %q, want tenant %d %q", want.ID, got.TenantID, got.Name, want.TenantID, want.Name)
		}
	}

	t.Run("another tenant's rows are out of reach", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			run  func(g *gorm.DB) *gorm.DB
		}{
			{"update by primary key", func(g *gorm.DB) *gorm.DB { return g.Model(&item{ID: tb.bOne.ID}).Update("name", "x") }},
			{"updates by WHERE", func(g *gorm.DB) *gorm.DB {
				return g.Model(&item{}).Where("name = ?", tb.bOne.Name).Updates(map[string]any{"name": "x"})
			}},
			{"update by WHERE with Or", func(g *gorm.DB) *gorm.DB {
				return g.Model(&item{}).Where("id = ?", 0).Or("id = ?", tb.bOne.ID).Update("name", "x")
			}},
			{"delete by primary key", func(g *gorm.DB) *gorm.DB { return g.Delete(&item{}, tb.bOne.ID) }},
			{"delete a loaded row", func(g *gorm.DB) *gorm.DB { return g.Delete(&item{ID: tb.bOne.ID}) }},
			{"delete by WHERE", func(g *gorm.DB) *gorm.DB { return g.Where("name = ?", tb.bOne.Name).Delete(&item{}) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := tc.run(a)
				if res.Error != nil || res.RowsAffected != 0 {
					t.Errorf("err %v, rows affected %d; want nil, 0", res.Error, res.RowsAffected)
				}
				unchanged(t, tb.bOne)
			})
		}
	})
	t.Run("own rows are updated", func(t *testing.T) {
		res := a.Model(&item{ID: tb.aOne.ID}).Update("name", "updated")
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("err %v, rows %d", res.Error, res.RowsAffected)
		}
		tb.aOne.Name = "updated"
		unchanged(t, tb.aOne)
	})
	t.Run("generated SQL", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			st   *gorm.Statement
			want string
		}{
			{"update", dry(tb.scoped, tb.ctxA).Model(&item{ID: 5}).Update("name", "x").Statement,
				`UPDATE "scope_items" SET "name"=$1 WHERE "scope_items"."tenant_id" = $2 AND "id" = $3`},
			{"delete", dry(tb.scoped, tb.ctxA).Delete(&item{}, 5).Statement,
				`DELETE FROM "scope_items" WHERE "scope_items"."id" = $1 AND "scope_items"."tenant_id" = $2`},
		} {
			if got := tc.st.SQL.String(); got != tc.want {
				t.Errorf("%s SQL\n got %s\nwant %s", tc.name, got, tc.want)
			}
		}
	})
	t.Run("moving a row to another tenant is refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			run  func(g *gorm.DB) *gorm.DB
		}{
			{"Update column", func(g *gorm.DB) *gorm.DB { return g.Model(&item{ID: tb.aOne.ID}).Update("tenant_id", tb.b) }},
			{"Updates map by field name", func(g *gorm.DB) *gorm.DB {
				return g.Model(&item{ID: tb.aOne.ID}).Updates(map[string]any{"TenantID": tb.b})
			}},
			{"Updates struct", func(g *gorm.DB) *gorm.DB {
				return g.Model(&item{ID: tb.aOne.ID}).Updates(&item{TenantID: tb.b})
			}},
			{"Save", func(g *gorm.DB) *gorm.DB { return g.Save(&item{ID: tb.aOne.ID, TenantID: tb.b, Name: "moved"}) }},
			{"SQL expression", func(g *gorm.DB) *gorm.DB {
				return g.Model(&item{ID: tb.aOne.ID}).Update("tenant_id", gorm.Expr("tenant_id + 1"))
			}},
			{"zero", func(g *gorm.DB) *gorm.DB { return g.Model(&item{ID: tb.aOne.ID}).Update("tenant_id", 0) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.run(a).Error; !errors.Is(err, tenantscope.ErrCrossTenant) {
					t.Errorf("err = %v, want ErrCrossTenant", err)
				}
				unchanged(t, tb.aOne)
			})
		}
	})
	t.Run("writes with neither WHERE nor primary key are refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			run  func(g *gorm.DB) *gorm.DB
		}{
			{"Update on a model", func(g *gorm.DB) *gorm.DB { return g.Model(&item{}).Update("name", "all") }},
			{"Updates on a model", func(g *gorm.DB) *gorm.DB { return g.Model(&item{}).Updates(map[string]any{"name": "all"}) }},
			{"Update on a registered table", func(g *gorm.DB) *gorm.DB { return g.Table("scope_items").Update("name", "all") }},
			{"Delete on a model", func(g *gorm.DB) *gorm.DB { return g.Delete(&item{}) }},
			{"Delete per-schema", func(g *gorm.DB) *gorm.DB { return g.Delete(&project{}) }},
			{"Update per-schema", func(g *gorm.DB) *gorm.DB { return g.Model(&project{}).Update("name", "all") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.run(a).Error; !errors.Is(err, gorm.ErrMissingWhereClause) {
					t.Errorf("err = %v, want ErrMissingWhereClause", err)
				}
				if got := tb.countItems(t, tb.a); got != 2 {
					t.Errorf("tenant a has %d items, want 2", got)
				}
				unchanged(t, tb.aOne)
				if got := tb.projectNames(t, tb.a); !sameStrings(got, []string{tb.paOne.Name}) {
					t.Errorf("tenant a projects = %v", got)
				}
			})
		}
	})
	t.Run("AllowGlobalUpdate stays within the tenant", func(t *testing.T) {
		res := a.Session(&gorm.Session{AllowGlobalUpdate: true}).Model(&item{}).Update("name", gorm.Expr("name || '!'"))
		if res.Error != nil || res.RowsAffected != 2 {
			t.Fatalf("err %v, rows %d; want 2 rows", res.Error, res.RowsAffected)
		}
		unchanged(t, tb.bOne)
	})
}

func TestSchemaPerTenant(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	a, b := tb.scoped.WithContext(tb.ctxA), tb.scoped.WithContext(tb.ctxB)
	sa, sb := tenantscope.DefaultSchemaName(tb.a), tenantscope.DefaultSchemaName(tb.b)

	t.Run("generated SQL", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			st   *gorm.Statement
			want string
		}{
			{"first", dry(tb.scoped, tb.ctxB).First(&project{}, 1).Statement,
				`SELECT * FROM "` + sb + `"."projects" WHERE "projects"."id" = $1 ORDER BY "projects"."id" LIMIT $2`},
			{"count via Table", dry(tb.scoped, tb.ctxA).Table("projects").Count(new(int64)).Statement,
				`SELECT count(*) FROM "` + sa + `"."projects"`},
			{"update", dry(tb.scoped, tb.ctxA).Model(&project{ID: 1}).Update("name", "x").Statement,
				`UPDATE "` + sa + `"."projects" SET "name"=$1 WHERE "id" = $2`},
			{"delete", dry(tb.scoped, tb.ctxA).Delete(&project{}, 1).Statement,
				`DELETE FROM "` + sa + `"."projects" WHERE "projects"."id" = $1`},
			{"create", dry(tb.scoped, tb.ctxA).Create(&project{Name: "x"}).Statement,
				`INSERT INTO "` + sa + `"."projects" ("name") VALUES ($1) RETURNING "id"`},
			{"alias", dry(tb.scoped, tb.ctxA).Table("projects AS p").Where("p.name = ?", "x").Find(&[]project{}).Statement,
				`SELECT * FROM "` + sa + `"."projects" AS "p" WHERE p.name = $1`},
		} {
			if got := tc.st.SQL.String(); got != tc.want {
				t.Errorf("%s SQL\n got %s\nwant %s", tc.name, got, tc.want)
			}
		}
	})
	t.Run("each tenant reads its own schema", func(t *testing.T) {
		// Both schemas' sequences start at 1, so the same id names a different row in each.
		if tb.paOne.ID != tb.pbOne.ID {
			t.Fatalf("ids differ (%d, %d): the test proves nothing", tb.paOne.ID, tb.pbOne.ID)
		}
		for _, tc := range []struct {
			g    *gorm.DB
			want string
		}{{a, tb.paOne.Name}, {b, tb.pbOne.Name}} {
			var p project
			if err := tc.g.First(&p, tb.paOne.ID).Error; err != nil {
				t.Fatal(err)
			}
			var all []project
			if err := tc.g.Find(&all).Error; err != nil {
				t.Fatal(err)
			}
			if p.Name != tc.want || len(all) != 1 || all[0].Name != tc.want {
				t.Errorf("first %q, all %v; want %q", p.Name, all, tc.want)
			}
		}
	})
	t.Run("own schema named explicitly is fine", func(t *testing.T) {
		var got []project
		if err := a.Table(sa + ".projects").Find(&got).Error; err != nil || len(got) != 1 {
			t.Errorf("got %v, %v", got, err)
		}
	})
	t.Run("writes land in the tenant's schema", func(t *testing.T) {
		if err := a.Create(&project{Name: "created"}).Error; err != nil {
			t.Fatal(err)
		}
		if err := a.Table("projects").Create(map[string]any{"name": "created-map"}).Error; err != nil {
			t.Fatal(err)
		}
		if err := a.Model(&project{ID: tb.paOne.ID}).Update("name", "renamed").Error; err != nil {
			t.Fatal(err)
		}
		gone := tb.seedProject(t, tb.a, "to-delete")
		if err := a.Delete(&project{}, gone.ID).Error; err != nil {
			t.Fatal(err)
		}
		if got, want := tb.projectNames(t, tb.a), []string{"renamed", "created", "created-map"}; !sameStrings(got, want) {
			t.Errorf("tenant a projects = %v, want %v", got, want)
		}
		if got, want := tb.projectNames(t, tb.b), []string{tb.pbOne.Name}; !sameStrings(got, want) {
			t.Errorf("tenant b projects = %v, want %v", got, want)
		}
	})
	t.Run("schema naming is configurable", func(t *testing.T) {
		name := func(id int64) string { return fmt.Sprintf("tenant_%06d", id) }
		exec(t, tb.d.OwnerPool, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.projects (id bigserial PRIMARY KEY, name text NOT NULL)`, name(tb.a)))
		p := newPlugin()
		p.SchemaName = name
		g := openGorm(t, tb.d.OwnerPool, p).WithContext(tb.ctxA)
		if err := g.Create(&project{Name: "custom"}).Error; err != nil {
			t.Fatal(err)
		}
		var got []project
		if err := g.Find(&got).Error; err != nil || len(got) != 1 || got[0].Name != "custom" {
			t.Errorf("got %v, %v", got, err)
		}
		st := g.Session(&gorm.Session{DryRun: true}).Find(&[]project{}).Statement
		if want := `SELECT * FROM "` + name(tb.a) + `"."projects"`; st.SQL.String() != want {
			t.Errorf("SQL %s, want %s", st.SQL.String(), want)
		}
		// With the custom naming, the default name counts as another schema.
		if err := g.Table(sa + ".projects").Find(&got).Error; !errors.Is(err, tenantscope.ErrCrossTenant) {
			t.Errorf("err = %v, want ErrCrossTenant", err)
		}
	})
}

var errRollbackInner = errors.New("roll back the inner transaction")

func TestRawSQLGuard(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	bg := context.Background()

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ctx  context.Context
			run  func(g *gorm.DB) error
		}{
			{"Raw Scan in a tenant context", tb.ctxA, func(g *gorm.DB) error {
				return g.Raw("SELECT name FROM scope_items").Scan(&[]string{}).Error
			}},
			{"Raw Find into a tenant model", tb.ctxA, func(g *gorm.DB) error {
				return g.Raw("SELECT * FROM scope_items").Find(&[]item{}).Error
			}},
			{"Raw Rows", tb.ctxA, func(g *gorm.DB) error {
				rows, err := g.Raw("SELECT 1").Rows()
				if rows != nil {
					rows.Close()
				}
				return err
			}},
			{"Exec in a tenant context", tb.ctxA, func(g *gorm.DB) error {
				return g.Exec("UPDATE scope_items SET name = 'raw'").Error
			}},
			{"savepoint look-alike", tb.ctxA, func(g *gorm.DB) error {
				return g.Exec("SAVEPOINT x; UPDATE scope_items SET name = 'raw'").Error
			}},
			{"Exec naming a registered table without tenant", bg, func(g *gorm.DB) error {
				return g.Exec("UPDATE scope_items SET name = 'raw' WHERE id = ?", tb.bOne.ID).Error
			}},
			{"Raw naming a per-schema table without tenant", bg, func(g *gorm.DB) error {
				return g.Raw(`SELECT * FROM "t_1"."projects"`).Scan(&[]map[string]any{}).Error
			}},
			{"Raw into a tenant model without tenant", bg, func(g *gorm.DB) error {
				return g.Raw("SELECT id, tenant_id, body AS name FROM scope_notes").Find(&[]item{}).Error
			}},
			{"table expression the plugin cannot parse", tb.ctxA, func(g *gorm.DB) error {
				return g.Table("(SELECT * FROM scope_items) AS s").Find(&[]map[string]any{}).Error
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.run(tb.scoped.WithContext(tc.ctx)); !errors.Is(err, tenantscope.ErrRawRefused) {
					t.Errorf("err = %v, want ErrRawRefused", err)
				}
			})
		}
		if got := tb.item(t, tb.bOne.ID); got.Name != tb.bOne.Name {
			t.Errorf("raw SQL ran: row renamed to %q", got.Name)
		}
	})
	t.Run("raw SQL on other tables passes without tenant", func(t *testing.T) {
		var n int64
		if err := tb.scoped.Raw("SELECT count(*) FROM scope_notes").Scan(&n).Error; err != nil {
			t.Error(err)
		}
		if err := tb.scoped.Exec("SELECT 1").Error; err != nil {
			t.Error(err)
		}
	})
	t.Run("AllowRaw runs raw SQL unscoped", func(t *testing.T) {
		g := tb.scoped.WithContext(tenantscope.AllowRaw(tb.ctxA))
		var got []string
		if err := g.Raw("SELECT name FROM scope_items WHERE tenant_id IN (?, ?) ORDER BY id", tb.a, tb.b).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if want := []string{tb.aOne.Name, tb.aTwo.Name, tb.bOne.Name}; !sameStrings(got, want) {
			t.Errorf("got %v, want both tenants' %v", got, want)
		}
		res := g.Exec("UPDATE scope_items SET name = name WHERE id = ?", tb.bOne.ID)
		if res.Error != nil || res.RowsAffected != 1 {
			t.Errorf("exec: err %v, rows %d; want tenant b's row reached", res.Error, res.RowsAffected)
		}
	})
	t.Run("nested transactions use savepoints", func(t *testing.T) {
		outer, inner, kept := "nested-outer", "nested-inner", "nested-kept"
		err := tb.scoped.WithContext(tb.ctxA).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&item{Name: outer}).Error; err != nil {
				return err
			}
			err := tx.Transaction(func(tx2 *gorm.DB) error {
				if err := tx2.Create(&item{Name: inner}).Error; err != nil {
					return err
				}
				return errRollbackInner
			})
			if !errors.Is(err, errRollbackInner) {
				return fmt.Errorf("inner transaction: %w", err)
			}
			return tx.Transaction(func(tx3 *gorm.DB) error { return tx3.Create(&item{Name: kept}).Error })
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []item
		if err := tb.plain.Where("tenant_id = ? AND name LIKE 'nested-%'", tb.a).Order("id").Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if want := []string{outer, kept}; !sameStrings(names(got), want) {
			t.Errorf("committed %v, want %v (inner rolled back to its savepoint)", names(got), want)
		}
	})
}

func TestPreloadScoped(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	own := kid{TenantID: tb.a, ItemID: tb.aOne.ID, Name: "own kid"}
	foreign := kid{TenantID: tb.b, ItemID: tb.aOne.ID, Name: "foreign kid"} // tenant b's row pointing at a's item
	if err := tb.plain.Create(&[]*kid{&own, &foreign}).Error; err != nil {
		t.Fatal(err)
	}
	kidNames := func(it item) []string {
		var out []string
		for _, k := range it.Kids {
			out = append(out, k.Name)
		}
		return out
	}

	var unscoped item
	if err := tb.plain.Preload("Kids", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&unscoped, tb.aOne.ID).Error; err != nil {
		t.Fatal(err)
	}
	if !sameStrings(kidNames(unscoped), []string{own.Name, foreign.Name}) {
		t.Fatalf("without the plugin the item has kids %v: the test proves nothing", kidNames(unscoped))
	}

	var got []item
	if err := tb.scoped.WithContext(tb.ctxA).Preload("Kids").Order("id").Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != tb.aOne.ID {
		t.Fatalf("items %v", names(got))
	}
	if !sameStrings(kidNames(got[0]), []string{own.Name}) {
		t.Errorf("preloaded kids %v, want only %q", kidNames(got[0]), own.Name)
	}
}

// TestJoinedTableIsNotScoped documents a known gap: the plugin scopes the statement's own table,
// not tables brought in by Joins. Row-level security is the backstop, and this test proves that
// it catches the same query on the app role. If the plugin ever scopes joins, update this test.
func TestJoinedTableIsNotScoped(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	foreign := kid{TenantID: tb.b, ItemID: tb.aOne.ID, Name: "foreign kid"}
	if err := tb.plain.Create(&foreign).Error; err != nil {
		t.Fatal(err)
	}
	type row struct{ Item, Kid string }
	join := func(g *gorm.DB) ([]row, error) {
		var rows []row
		err := g.Model(&item{}).Select("scope_items.name AS item, scope_kids.name AS kid").
			Joins("JOIN scope_kids ON scope_kids.item_id = scope_items.id").Scan(&rows).Error
		return rows, err
	}

	t.Run("plugin alone leaks the joined row", func(t *testing.T) {
		rows, err := join(tb.scoped.WithContext(tb.ctxA))
		if err != nil {
			t.Fatal(err)
		}
		if want := []row{{tb.aOne.Name, foreign.Name}}; !slices.Equal(rows, want) {
			t.Errorf("rows %v, want the leak %v", rows, want)
		}
	})
	t.Run("row-level security on the app role stops it", func(t *testing.T) {
		app := openGorm(t, tb.d.AppPool, newPlugin())
		err := app.WithContext(tb.ctxA).Transaction(func(tx *gorm.DB) error {
			set := tx.WithContext(tenantscope.AllowRaw(tb.ctxA)).Exec("SELECT set_config('app.tenant_id', ?, true)", strconv.FormatInt(tb.a, 10))
			if set.Error != nil {
				return set.Error
			}
			rows, err := join(tx)
			if err != nil {
				return err
			}
			if len(rows) != 0 {
				t.Errorf("app role saw %v through the join", rows)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Without app.tenant_id the policy fails closed instead of matching nothing silently.
		if _, err := join(app.WithContext(tb.ctxA)); err == nil {
			t.Error("query without app.tenant_id succeeded; want an error from the policy")
		}
	})
}

func TestNonTenantModelsPassUntouched(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	for _, ctx := range []context.Context{context.Background(), tb.ctxA} {
		g := tb.scoped.WithContext(ctx)
		n := note{Body: "hello"}
		if err := g.Create(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n.TenantID != 0 {
			t.Errorf("note stamped with tenant %d", n.TenantID)
		}
		if err := g.Model(&n).Update("body", "bye").Error; err != nil {
			t.Fatal(err)
		}
		var count int64
		if err := g.Table("scope_notes").Where("id = ?", n.ID).Count(&count).Error; err != nil || count != 1 {
			t.Errorf("count %d, %v", count, err)
		}
		if err := g.Delete(&note{}).Error; !errors.Is(err, gorm.ErrMissingWhereClause) {
			t.Errorf("GORM's own guard changed: err = %v", err)
		}
		st := g.Session(&gorm.Session{DryRun: true}).Find(&[]note{}).Statement
		if got, want := st.SQL.String(), `SELECT * FROM "scope_notes"`; got != want {
			t.Errorf("SQL %s, want %s", got, want)
		}
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	p := &tenantscope.Plugin{}
	g := openGorm(t, tb.d.OwnerPool, p)
	var n int64
	if err := g.Table("scope_items").Count(&n).Error; err != nil {
		t.Fatalf("unregistered table: %v", err)
	}
	p.Register("scope_items", tenantscope.Shared)
	if err := g.Table("scope_items").Count(&n).Error; !errors.Is(err, tenantscope.ErrNoTenant) {
		t.Errorf("registered table without tenant: err = %v, want ErrNoTenant", err)
	}
	if err := g.WithContext(tb.ctxB).Table("scope_items").Count(&n).Error; err != nil || n != 1 {
		t.Errorf("tenant b count %d, %v; want 1", n, err)
	}
	p.Register("scope_items", tenantscope.None)
	if err := g.Table("scope_items").Count(&n).Error; err != nil {
		t.Errorf("after unregistering: %v", err)
	}
}

// Misdeclared models are refused rather than half-scoped.
type (
	sharedWithoutTenant struct {
		ID   int64
		Body string
	}
	bothPlanes struct {
		ID       int64
		TenantID int64
	}
)

func (sharedWithoutTenant) TableName() string { return "scope_notes" }
func (sharedWithoutTenant) TenantShared()     {}
func (bothPlanes) TableName() string          { return "scope_notes" }
func (bothPlanes) TenantShared()              {}
func (bothPlanes) TenantSchema()              {}

func TestMisdeclaredModels(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	for name, dest := range map[string]any{
		"shared without tenant_id": &[]sharedWithoutTenant{},
		"both markers":             &[]bothPlanes{},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tb.scoped.WithContext(tb.ctxA).Find(dest).Error; err == nil {
				t.Error("query succeeded")
			}
		})
	}
}
