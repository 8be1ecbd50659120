package demo

import (
	"context"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

// TenantAdminEmail is the demo admin of a seeded tenant's portal, e.g.
// admin@acme-holdings.example on /t/acme-holdings/login, with Password.
func TenantAdminEmail(slug string) string { return "admin@" + slug + ".example" }

// tenantUserSlugs are the demo tenants whose portals have users: three open ones, and a
// suspended one to show that its portal refuses everyone.
var tenantUserSlugs = []string{"acme-holdings", "northwind-group", "globex", "cyberdyne-systems"}

// seedTenantUsers gives each of tenantUserSlugs an admin and a member in the tenant's own schema;
// users that already exist are left alone.
func seedTenantUsers(ctx context.Context, d *db.DB, ids map[string]int64) error {
	svc := tenantauth.NewService(d)
	for _, slug := range tenantUserSlugs {
		for _, u := range []tenantauth.NewUser{
			{Email: TenantAdminEmail(slug), Name: "Alex Admin", Role: tenantauth.RoleAdmin, Password: Password},
			{Email: "member@" + slug + ".example", Name: "Morgan Member", Role: tenantauth.RoleMember, Password: Password},
		} {
			_, err := svc.CreateUser(ctx, ids[slug], "system:seed", u)
			if err != nil && validation.Fields(err)["email"] == "" { // an existing user is fine
				return err
			}
		}
	}
	return nil
}
