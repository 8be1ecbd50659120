package db_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// tenantUser is a tenant-plane table: it lives in each tenant's own schema.
type tenantUser struct {
	ID    int64
	Email string
	Name  string
	Role  string
}

func (tenantUser) TableName() string { return "users" }
func (tenantUser) TenantSchema()     {}

func TestInTenant(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	a, b := newTenant(t, d, "in-a"), newTenant(t, d, "in-b")
	for _, id := range []int64{a, b} {
		if err := d.EnsureTenantPlane(ctx, id, dbtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
	}
	var aliceID int64
	err := d.InTenant(ctx, a, func(tx *gorm.DB) error {
		u := tenantUser{Email: "alice@a.example", Name: "Alice", Role: "admin"}
		err := tx.Create(&u).Error
		aliceID = u.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the other tenant sees nothing, even by id", func(t *testing.T) {
		err := d.InTenant(ctx, b, func(tx *gorm.DB) error {
			var u tenantUser
			return tx.First(&u, aliceID).Error
		})
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatalf("err = %v, want record not found", err)
		}
	})
	t.Run("raw SQL naming the other schema is refused", func(t *testing.T) {
		err := d.InTenant(ctx, b, func(tx *gorm.DB) error {
			var n int
			return tx.Raw("SELECT count(*) FROM t_" + strconv.FormatInt(a, 10) + ".users").Scan(&n).Error
		})
		if !errors.Is(err, tenantscope.ErrRawRefused) {
			t.Fatalf("err = %v, want ErrRawRefused", err)
		}
	})
	t.Run("even allowed raw SQL hits the role boundary", func(t *testing.T) {
		err := d.InTenant(ctx, b, func(tx *gorm.DB) error {
			var n int
			return tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).Raw("SELECT count(*) FROM t_" + strconv.FormatInt(a, 10) + ".users").Scan(&n).Error
		})
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("err = %v, want permission denied", err)
		}
	})
	t.Run("no tenant, no query", func(t *testing.T) {
		var us []tenantUser
		if err := d.App.WithContext(ctx).Find(&us).Error; !errors.Is(err, tenantscope.ErrNoTenant) {
			t.Fatalf("err = %v, want ErrNoTenant", err)
		}
		if err := d.InTenant(ctx, 0, func(*gorm.DB) error { return nil }); !errors.Is(err, tenantscope.ErrNoTenant) {
			t.Fatalf("InTenant(0): %v", err)
		}
	})
	t.Run("a failure rolls the whole unit back", func(t *testing.T) {
		boom := errors.New("boom")
		err := d.InTenant(ctx, a, func(tx *gorm.DB) error {
			if err := tx.Create(&tenantUser{Email: "ghost@a.example", Name: "G", Role: "member"}).Error; err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		var n int64
		_ = d.InTenant(ctx, a, func(tx *gorm.DB) error {
			return tx.Model(&tenantUser{}).Where("email = ?", "ghost@a.example").Count(&n).Error
		})
		if n != 0 {
			t.Fatal("rolled-back insert is visible")
		}
	})
}
