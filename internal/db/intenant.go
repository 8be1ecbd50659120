package db

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
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
		setup := tx.WithContext(tenantscope.AllowRaw(ctx))
		if err := setup.Exec("SELECT set_config('app.tenant_id', ?, true)", strconv.FormatInt(tenantID, 10)).Error; err != nil {
			return err
		}
		if err := setup.Exec("SET LOCAL ROLE " + pgx.Identifier{TenantSchema(tenantID)}.Sanitize()).Error; err != nil {
			return err
		}
		return fn(tx.WithContext(ctx))
	})
}
