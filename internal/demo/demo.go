// Package demo fills an empty Tenantry with believable demo data: tenants across plans, states
// and a few parent/child families, and a read-only executive. Seeding twice changes nothing.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Demo sign-ins, printed by `make run`.
const (
	AdminEmail     = "admin@tenantry.local"
	ExecutiveEmail = "exec@tenantry.local"
	Password       = "tenantry-demo"
)

type seedTenant struct {
	slug, name, plan, state, parent string
}

// tenants lists parents before their children.
var tenants = []seedTenant{
	{"acme-holdings", "Acme Holdings", "enterprise", "active", ""},
	{"acme-europe", "Acme Europe", "enterprise", "active", "acme-holdings"},
	{"acme-americas", "Acme Americas", "enterprise", "active", "acme-holdings"},
	{"acme-americas-retail", "Acme Americas Retail", "professional", "active", "acme-americas"},
	{"acme-labs", "Acme Labs", "professional", "notice", "acme-holdings"},
	{"northwind-group", "Northwind Group", "enterprise", "active", ""},
	{"northwind-logistics", "Northwind Logistics", "professional", "active", "northwind-group"},
	{"northwind-foods", "Northwind Foods", "starter", "active", "northwind-group"},
	{"globex", "Globex Corporation", "enterprise", "active", ""},
	{"globex-research", "Globex Research", "professional", "active", "globex"},
	{"globex-health", "Globex Health", "enterprise", "provisioning", "globex"},
	{"initech-partners", "Initech Partners", "enterprise", "active", ""},
	{"bluebird-dental", "Bluebird Dental", "starter", "active", "initech-partners"},
	{"harbor-fitness", "Harbor Fitness", "starter", "active", "initech-partners"},
	{"copperleaf-realty", "Copperleaf Realty", "professional", "active", "initech-partners"},
	{"umbrella-analytics", "Umbrella Analytics", "professional", "active", ""},
	{"stark-manufacturing", "Stark Manufacturing", "enterprise", "active", ""},
	{"wayne-ventures", "Wayne Ventures", "enterprise", "active", ""},
	{"soylent-foods", "Soylent Foods", "professional", "degraded", ""},
	{"cyberdyne-systems", "Cyberdyne Systems", "enterprise", "suspended", ""},
	{"tyrell-biotech", "Tyrell Biotech", "professional", "active", ""},
	{"wonka-confections", "Wonka Confections", "starter", "active", ""},
	{"hooli", "Hooli", "enterprise", "active", ""},
	{"pied-piper", "Pied Piper", "starter", "active", ""},
	{"vandelay-industries", "Vandelay Industries", "professional", "active", ""},
	{"dunder-mifflin", "Dunder Mifflin Paper", "professional", "active", ""},
	{"sterling-cooper", "Sterling Cooper Advertising", "professional", "notice", ""},
	{"oceanic-airlines", "Oceanic Airlines", "enterprise", "active", ""},
	{"gringotts-finance", "Gringotts Finance", "enterprise", "active", ""},
	{"monarch-solutions", "Monarch Solutions", "starter", "exported", ""},
	{"aperture-science", "Aperture Science", "professional", "active", ""},
	{"black-mesa", "Black Mesa Research", "professional", "purged", ""},
	{"massive-dynamic", "Massive Dynamic", "enterprise", "active", ""},
	{"prestige-worldwide", "Prestige Worldwide", "free", "active", ""},
	{"bluth-company", "The Bluth Company", "starter", "suspended", ""},
	{"los-pollos", "Los Pollos Hermanos", "starter", "active", ""},
	{"krusty-krab", "Krusty Krab", "free", "active", ""},
	{"nakatomi-trading", "Nakatomi Trading", "professional", "active", ""},
	{"gekko-capital", "Gekko & Co Capital", "professional", "active", ""},
	{"bright-path-schools", "Bright Path Schools", "starter", "active", ""},
	{"evergreen-clinics", "Evergreen Clinics", "professional", "active", ""},
	{"lumen-legal", "Lumen Legal", "starter", "active", ""},
	{"quartz-payments", "Quartz Payments", "enterprise", "active", ""},
	{"riverbend-credit", "Riverbend Credit Union", "professional", "active", ""},
	{"solstice-travel", "Solstice Travel", "free", "active", ""},
	{"tidewater-energy", "Tidewater Energy", "enterprise", "active", ""},
	{"kestrel-robotics", "Kestrel Robotics", "starter", "provisioning", ""},
	{"meadowlark-farms", "Meadowlark Farms", "free", "active", ""},
	{"orbit-media", "Orbit Media", "starter", "degraded", ""},
	{"pinecrest-hotels", "Pinecrest Hotels", "professional", "active", ""},
	{"redwood-insurance", "Redwood Insurance", "enterprise", "active", ""},
	{"saffron-kitchens", "Saffron Kitchens", "free", "active", ""},
	{"summit-outdoor", "Summit Outdoor Gear", "starter", "active", ""},
	{"vertex-logistics", "Vertex Logistics", "professional", "active", ""},
	{"zephyr-software", "Zephyr Software", "starter", "active", ""},
}

// Result says what seeding did.
type Result struct {
	TenantsCreated int
	Skipped        bool // --if-empty and the registry already had tenants
}

// Seed inserts the demo tenants and the demo executive that are missing. With ifEmpty, it does
// nothing when any tenant exists.
func Seed(ctx context.Context, d *db.DB, ifEmpty bool, log *slog.Logger) (Result, error) {
	var res Result
	ids := map[string]int64{}
	err := d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if ifEmpty {
			var n int64
			if err := tx.Model(&tenant.Tenant{}).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				res.Skipped = true
				return nil
			}
		}
		start := time.Now().UTC().AddDate(0, -18, 0)
		for i, s := range tenants {
			t := tenant.Tenant{Slug: s.slug, Name: s.name, PlanKey: s.plan, State: s.state,
				CreatedAt: start.Add(time.Duration(i) * 9 * 24 * time.Hour)}
			t.UpdatedAt = t.CreatedAt
			if s.parent != "" {
				pid, ok := ids[s.parent]
				if !ok {
					return fmt.Errorf("demo: parent %s of %s not seeded", s.parent, s.slug)
				}
				t.ParentID = &pid
			}
			r := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "slug"}}, DoNothing: true}).Create(&t)
			if r.Error != nil {
				return r.Error
			}
			if r.RowsAffected == 1 {
				res.TenantsCreated++
			} else if err := tx.Where("slug = ?", s.slug).First(&t).Error; err != nil {
				return err
			}
			ids[s.slug] = t.ID
		}
		if res.TenantsCreated > 0 {
			return audit.Record(tx, audit.Event{Actor: "system:seed", Action: "demo.seeded",
				Detail: audit.Detail(map[string]any{"tenants_created": res.TenantsCreated})})
		}
		return nil
	})
	if err != nil || res.Skipped {
		return res, err
	}
	// Every tenant that still has data gets its own schema and role.
	for _, s := range tenants {
		if s.state == "purged" {
			continue
		}
		if err := d.EnsureTenantPlane(ctx, ids[s.slug], log); err != nil {
			return res, err
		}
	}
	if err := seedTenantUsers(ctx, d, ids); err != nil {
		return res, err
	}
	if err := seedBilling(ctx, d, ids); err != nil { // plan prices, usage and two months of invoices (billing.go)
		return res, err
	}
	if err := seedTemplates(ctx, d, ids); err != nil {
		return res, err
	}
	if err := seedBrands(ctx, d); err != nil { // signup brands (brands.go)
		return res, err
	}
	_, err = identity.NewService(d.App).Create(ctx, "system:seed", identity.NewUser{
		Email: ExecutiveEmail, Name: "Erin Executive", Role: identity.RoleExecutive, Password: Password})
	if err != nil && validation.Fields(err)["email"] == "" { // an existing executive is fine
		return res, err
	}
	return res, nil
}
