package demo

import (
	"context"
	"errors"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/signup"
)

// Demo signup brands: the platform's own (/signup, automatic, no template choice) and Initech
// Partners' reseller brand (/signup/initech, its own colours and copy, the demo's templates to
// choose from: Standard SaaS, HIPAA Clinic); signups on it become Initech Partners' children.
const (
	PlatformBrand = "tenantry"
	ResellerBrand = "initech"
)

func seedBrands(ctx context.Context, d *db.DB) error {
	svc := signup.NewService(d, nil, nil, "")
	if _, err := svc.PlatformBrand(ctx); errors.Is(err, signup.ErrNotFound) {
		_, err := svc.CreateBrand(ctx, "system:seed", signup.BrandInput{Slug: PlatformBrand, DisplayName: "Tenantry Cloud",
			PrimaryColour: "#4f46e5", AccentColour: "#0ea5e9", Headline: "Start your workspace in a minute",
			Blurb: "Free to try. Your own isolated tenant, ready as soon as you confirm your e-mail.", PlanKey: "starter", Approval: signup.ApprovalAutomatic})
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if _, err := svc.BrandBySlug(ctx, ResellerBrand); errors.Is(err, signup.ErrNotFound) {
		// A practice chooses between the plain template and the HIPAA one (which forces MFA).
		var ids []int64
		if err := d.App.WithContext(ctx).Raw(`SELECT id FROM tenantry.templates WHERE slug IN ('standard-saas', 'hipaa-clinic')
			AND archived_at IS NULL ORDER BY slug DESC`).Scan(&ids).Error; err != nil {
			return err
		}
		_, err = svc.CreateBrand(ctx, "system:seed", signup.BrandInput{Slug: ResellerBrand, DisplayName: "Initech Partner Cloud",
			PrimaryColour: "#b45309", AccentColour: "#0f766e", Headline: "Your practice, online with Initech",
			Blurb: "Initech Partners sets up and supports your workspace.", TemplateIDs: ids, PlanKey: "starter",
			Approval: signup.ApprovalAutomatic, TenantSlug: "initech-partners"})
		return err
	} else if err != nil {
		return err
	}
	return nil
}
