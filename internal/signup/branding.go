package signup

import (
	"context"
	"log/slog"

	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TenantLook is the look of tenant t's portal and e-mails: its effective branding settings
// (branding.name, branding.logo, branding.primary_colour), which already inherit from its parent
// or reseller. A key not set by the tenant or an ancestor (left at the platform's or the template's
// value) takes instead the brand of the nearest tenant from t up its tree that has one (a
// reseller's brand); the name stays the tenant's own unless branding.name is set.
func (s *Service) TenantLook(ctx context.Context, t tenant.Tenant) (Look, error) {
	tenants := tenant.NewService(s.db, slog.New(slog.DiscardHandler))
	eff, err := settings.NewService(s.db.App, tenants).Effective(ctx, &t)
	if err != nil {
		return Look{}, err
	}
	vals := map[string]settings.Effective{}
	for _, e := range eff {
		vals[e.Key.Key] = e
	}
	defaulted := func(key string) bool {
		e, ok := vals[key]
		// A reseller's brand speaks for the reseller, an ancestor: like an ancestor's value it
		// overrides the defaults and the tenant's template, not a value set in the tree.
		return !ok || (e.Kind == settings.FromDefault || e.Kind == settings.FromPlatform || e.Kind == settings.FromTemplate) && e.LockedBy == ""
	}
	l := Look{Name: vals["branding.name"].Value, Primary: vals["branding.primary_colour"].Value}
	if id := vals["branding.logo"].Value; id != "" {
		l.LogoURL = settings.ImageURL(id)
	}
	if defaulted("branding.name") || defaulted("branding.logo") || defaulted("branding.primary_colour") {
		b, ok, err := s.nearestBrand(ctx, t)
		if err != nil {
			return Look{}, err
		}
		if ok {
			// The brand's name is its signup page's; the tenant's portal keeps the tenant's name
			// unless branding.name says otherwise.
			if defaulted("branding.logo") && b.LogoURL != "" {
				l.LogoURL = b.LogoURL
			}
			if defaulted("branding.primary_colour") {
				l.Primary = b.PrimaryColour
			}
			l.Accent = b.AccentColour
		}
	}
	if l.Name == "" {
		l.Name = t.Name
	}
	return l.Safe(), nil
}

// nearestBrand returns the brand of t or of its nearest ancestor that has one.
func (s *Service) nearestBrand(ctx context.Context, t tenant.Tenant) (Brand, bool, error) {
	var b Brand
	res := s.db.App.WithContext(ctx).Raw(`SELECT b.* FROM tenantry.brands b JOIN tenantry.tenants a ON a.id = b.tenant_id
		WHERE a.path @> (SELECT path FROM tenantry.tenants WHERE id = ?) ORDER BY nlevel(a.path) DESC LIMIT 1`, t.ID).Scan(&b)
	if res.Error != nil {
		return b, false, res.Error
	}
	return b, res.RowsAffected > 0 && b.ID != 0, nil
}
