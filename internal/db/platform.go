package db

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// AsPlatform runs fn inside tx, a transaction opened by InTenant, as the app role and outside the
// tenant's scope, then switches tx back to the tenant's role. It is for the control-plane writes
// that must commit or roll back with a change to the tenant's own data, such as the platform
// audit event that records it.
//
// fn cannot reach tenant data: its *gorm.DB carries no tenant (the plugin refuses tenant models)
// and the app role holds no privileges on tenant schemas.
func AsPlatform(tx *gorm.DB, fn func(ptx *gorm.DB) error) error {
	ctx := tx.Statement.Context
	tenantID, ok := tenantscope.TenantFrom(ctx)
	if !ok {
		return fmt.Errorf("db: AsPlatform outside InTenant: %w", tenantscope.ErrNoTenant)
	}
	raw := tx.WithContext(tenantscope.AllowRaw(ctx))
	if err := raw.Exec("SET LOCAL ROLE " + pgx.Identifier{AppRole}.Sanitize()).Error; err != nil {
		return err
	}
	if err := fn(tx.WithContext(tenantscope.WithTenant(ctx, 0))); err != nil {
		return err
	}
	return raw.Exec("SET LOCAL ROLE " + pgx.Identifier{TenantSchema(tenantID)}.Sanitize()).Error
}
