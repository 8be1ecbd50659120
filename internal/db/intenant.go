package db

import (
	"context"
	"strconv"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// InTenant is the one way to run code for a tenant. It opens a transaction on the app pool, sets
// app.tenant_id (read by row-level security) and switches to the tenant's own role (so only its
// schema is reachable), and gives fn a *gorm.DB whose context carries the tenant, so the
// tenantscope plugin scopes every model query. Everything commits or rolls back together.
func (d *DB) InTenant(ctx context.Context, tenantID int64, fn func(tx *gorm.DB) error) error {
	if tenantID <= 0 {
		return tenantscope.ErrNoTenant
	}
	ctx = tenantscope.WithTenant(ctx, tenantID)
	return d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// One round trip: set_config('role', …, true) is SET LOCAL ROLE.
		err := tx.WithContext(tenantscope.AllowRaw(ctx)).
			Exec("SELECT set_config('app.tenant_id', ?, true), set_config('role', ?, true)", strconv.FormatInt(tenantID, 10), TenantSchema(tenantID)).Error
		if err != nil {
			return err
		}
		return fn(tx.WithContext(ctx))
	})
}
