package db_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// platformNote is a control-plane row written next to a tenant change (like an audit event).
type platformNote struct {
	ID   int64
	Slug string
}

func (platformNote) TableName() string { return "tenantry.tenants" }

func TestAsPlatform(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	a := newTenant(t, d, "asp-a")
	if err := d.EnsureTenantPlane(ctx, a, dbtest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	var role string
	currentRole := func(tx *gorm.DB) string {
		t.Helper()
		var r string
		if err := tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).Raw("SELECT current_user").Scan(&r).Error; err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("control plane reachable, tenant data not, then back to the tenant", func(t *testing.T) {
		err := d.InTenant(ctx, a, func(tx *gorm.DB) error {
			if err := tx.Create(&tenantUser{Email: "p@a.example", Name: "P", Role: "admin"}).Error; err != nil {
				return err
			}
			err := db.AsPlatform(tx, func(ptx *gorm.DB) error {
				role = currentRole(ptx)
				var n platformNote
				if err := ptx.Where("id = ?", a).Take(&n).Error; err != nil {
					return err
				}
				var us []tenantUser
				if err := ptx.Find(&us).Error; !errors.Is(err, tenantscope.ErrNoTenant) {
					t.Errorf("tenant model inside AsPlatform: err = %v, want ErrNoTenant", err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if r := currentRole(tx); r != db.TenantSchema(a) {
				t.Errorf("role after AsPlatform = %q, want %q", r, db.TenantSchema(a))
			}
			var n int64
			return tx.Model(&tenantUser{}).Where("email = ?", "p@a.example").Count(&n).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		if role != db.AppRole {
			t.Fatalf("role inside AsPlatform = %q, want %q", role, db.AppRole)
		}
	})
	t.Run("refused outside InTenant", func(t *testing.T) {
		err := db.AsPlatform(d.App.WithContext(ctx), func(*gorm.DB) error { return nil })
		if !errors.Is(err, tenantscope.ErrNoTenant) {
			t.Fatalf("err = %v, want ErrNoTenant", err)
		}
	})
	t.Run("an error inside rolls the tenant change back", func(t *testing.T) {
		boom := errors.New("boom")
		err := d.InTenant(ctx, a, func(tx *gorm.DB) error {
			if err := tx.Create(&tenantUser{Email: "q@a.example", Name: "Q", Role: "admin"}).Error; err != nil {
				return err
			}
			return db.AsPlatform(tx, func(*gorm.DB) error { return boom })
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		var n int64
		if err := d.InTenant(ctx, a, func(tx *gorm.DB) error {
			return tx.Model(&tenantUser{}).Where("email = ?", "q@a.example").Count(&n).Error
		}); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("the tenant change committed although the platform step failed")
		}
	})
}
