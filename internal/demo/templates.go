package demo

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/templates"
)

// demoTemplates are the provisioning templates of the demo, each with the demo tenants made
// from it. HIPAA Clinic gets a second version, so its tenants show drift.
var demoTemplates = []struct {
	in      templates.Input
	tenants []string
}{
	{templates.Input{Name: "Standard SaaS", Slug: "standard-saas", TenantType: "company", Industry: "technology", Compliance: templates.ComplianceNone,
		PlanKey: "starter", SeedDataset: "sample-projects",
		Quotas:   map[string]templates.QuotaLimit{"seats": {Soft: 15, Hard: 20}, "projects": {Soft: 10, Hard: 12}},
		Settings: map[string]string{"flags.new_dashboard": "true", "branding.primary_colour": "#4f46e5"}},
		[]string{"zephyr-software", "pied-piper", "summit-outdoor"}},
	{templates.Input{Name: "HIPAA Clinic", Slug: "hipaa-clinic", TenantType: "company", Industry: "healthcare", Compliance: templates.HIPAA,
		PlanKey: "professional", SeedDataset: "empty",
		Quotas:   map[string]templates.QuotaLimit{"storage_gb": {Soft: 400, Hard: 500}},
		Settings: map[string]string{"security.session_timeout": "30m", "backup.retention_days": "365", "branding.primary_colour": "#0f766e"}},
		[]string{"evergreen-clinics", "bluebird-dental"}},
	{templates.Input{Name: "Payments (PCI-DSS)", Slug: "payments-pci", TenantType: "company", Industry: "finance", Compliance: templates.PCIDSS,
		PlanKey: "enterprise", SeedDataset: "empty",
		Settings: map[string]string{"security.password_min_length": "14", "flags.sso": "true"}},
		[]string{"quartz-payments"}},
	{templates.Input{Name: "Enterprise", Slug: "enterprise", TenantType: "company", Industry: "general", Compliance: templates.SOC2,
		PlanKey: "enterprise", SeedDataset: "sample-projects",
		Quotas:   map[string]templates.QuotaLimit{"seats": {Soft: 900, Hard: 1000}},
		Settings: map[string]string{"flags.sso": "true", "flags.beta_reports": "true", "notify.channel": "webhook"}},
		[]string{"tidewater-energy", "redwood-insurance"}},
	{templates.Input{Name: "EU Retail (GDPR)", Slug: "eu-retail", TenantType: "company", Industry: "retail", Compliance: templates.GDPR,
		PlanKey: "professional", SeedDataset: "empty"},
		nil},
}

// seedTemplates creates the demo templates that are missing and applies each to its demo
// tenants not made from a template yet; seeding twice changes nothing.
func seedTemplates(ctx context.Context, d *db.DB, ids map[string]int64) error {
	svc := templates.NewService(d)
	for _, dt := range demoTemplates {
		t, err := svc.BySlugOrName(ctx, dt.in.Slug)
		if errors.Is(err, templates.ErrNotFound) {
			if t, err = svc.Create(ctx, "system:seed", dt.in); err != nil {
				return err
			}
			for _, slug := range dt.tenants {
				id, ok := ids[slug]
				if !ok {
					continue
				}
				err := d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					var made *int64
					if err := tx.Raw("SELECT template_version_id FROM tenantry.tenants WHERE id = ?", id).Scan(&made).Error; err != nil || made != nil {
						return err
					}
					return svc.Apply(tx, id, t.Latest, "system:seed")
				})
				if err != nil {
					return err
				}
			}
			if dt.in.Compliance == templates.HIPAA { // a newer version: its tenants show drift
				in := dt.in
				in.Settings = map[string]string{"security.session_timeout": "15m", "backup.retention_days": "365",
					"branding.primary_colour": "#0f766e", "flags.beta_reports": "true"}
				in.Note = "Shorter idle timeout; beta reports on"
				if _, err := svc.Edit(ctx, "system:seed", t.ID, in); err != nil {
					return err
				}
			}
		} else if err != nil && !errors.Is(err, templates.ErrArchived) {
			return err
		}
	}
	return nil
}
