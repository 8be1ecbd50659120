// Package signup owns self-service signup: brands (the look and rules of a signup page, the
// platform's own and one per reseller or parent tenant), the signups visitors make on them, with
// rate limits, a honeypot and e-mail verification by a single-use expiring link, the Approvals
// queue for brands that hold signups, and the hand-over to provisioning. It also resolves the
// branding a tenant's portal and e-mails show: the tenant's effective branding settings, and
// where those are left at the platform default, the brand of the nearest tenant up its tree.
package signup

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// ErrNotFound means no brand or signup has the requested slug or id.
var ErrNotFound = errors.New("signup: not found")

// Approval modes of a brand.
const (
	ApprovalAutomatic = "automatic" // a verified signup is provisioned at once
	ApprovalHeld      = "held"      // a verified signup waits for a platform admin
)

// Int64s is a PostgreSQL bigint[] column.
type Int64s []int64

// Scan reads the array's text form, e.g. {1,2}.
func (a *Int64s) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("signup: scan %T into Int64s", src)
	}
	s = strings.Trim(s, "{}")
	out := Int64s{}
	if s != "" {
		for _, p := range strings.Split(s, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil {
				return fmt.Errorf("signup: bigint[] element %q: %w", p, err)
			}
			out = append(out, n)
		}
	}
	*a = out
	return nil
}

// Value writes the array's text form.
func (a Int64s) Value() (driver.Value, error) {
	parts := make([]string, len(a))
	for i, n := range a {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return "{" + strings.Join(parts, ",") + "}", nil
}

// Brand is the look and the rules of one signup page.
type Brand struct {
	ID int64
	// TenantID is the reseller or parent tenant whose signups become its children; nil for the
	// platform's own brand.
	TenantID      *int64
	Slug          string
	DisplayName   string
	LogoURL       string
	PrimaryColour string
	AccentColour  string
	Headline      string
	Blurb         string
	TemplateIDs   Int64s `gorm:"type:bigint[]"`
	PlanKey       string
	Approval      string
	CreatedAt     time.Time
	UpdatedAt     time.Time

	// TenantSlug and TenantName name the owning tenant (empty for the platform's brand).
	TenantSlug string `gorm:"->;-:migration"`
	TenantName string `gorm:"->;-:migration"`
}

// TableName places brands in the control plane.
func (Brand) TableName() string { return "tenantry.brands" }

// Platform reports whether b is the platform's own brand.
func (b Brand) Platform() bool { return b.TenantID == nil }

// Held reports whether b's verified signups wait for approval.
func (b Brand) Held() bool { return b.Approval == ApprovalHeld }

// SignupPath is the address of b's signup page.
func (b Brand) SignupPath() string {
	if b.Platform() {
		return "/signup"
	}
	return "/signup/" + b.Slug
}

// BrandInput is the brand form.
type BrandInput struct {
	Slug          string
	DisplayName   string
	LogoURL       string
	PrimaryColour string
	AccentColour  string
	Headline      string
	Blurb         string
	TemplateIDs   []int64
	PlanKey       string
	Approval      string
	// TenantSlug is the owning reseller or parent tenant; empty for the platform's brand. It is
	// fixed once the brand exists.
	TenantSlug string
}

// Template is a template a brand may offer.
type Template struct {
	ID   int64
	Name string
}

var (
	colourRE   = regexp.MustCompile(`^#[0-9a-f]{6}$`)
	brandSlug  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	logoPathRE = regexp.MustCompile(`^/(media/images/[0-9a-f]{64}|static/[A-Za-z0-9._/-]+)$`)
)

// Limits of the brand's copy.
const (
	MaxDisplayName = 80
	MaxHeadline    = 120
	MaxBlurb       = 600
)

// Templates lists the templates a brand may offer: not archived, by name.
func (s *Service) Templates(ctx context.Context) ([]Template, error) {
	var ts []Template
	err := s.db.App.WithContext(ctx).Table("tenantry.templates").Select("id, name").
		Where("archived_at IS NULL").Order("name").Scan(&ts).Error
	return ts, err
}

// TemplateNames maps template ids to names (archived ones included).
func (s *Service) TemplateNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	return s.templateNames(ctx, ids)
}

func (s *Service) templateNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var ts []Template
	if err := s.db.App.WithContext(ctx).Table("tenantry.templates").Select("id, name").Where("id IN ?", ids).Scan(&ts).Error; err != nil {
		return nil, err
	}
	for _, t := range ts {
		out[t.ID] = t.Name
	}
	return out, nil
}

// BrandTemplates returns the templates b offers that still exist and are not archived, in the
// brand's order.
func (s *Service) BrandTemplates(ctx context.Context, b Brand) ([]Template, error) {
	if len(b.TemplateIDs) == 0 {
		return nil, nil
	}
	var ts []Template
	err := s.db.App.WithContext(ctx).Table("tenantry.templates").Select("id, name").
		Where("id IN ? AND archived_at IS NULL", []int64(b.TemplateIDs)).Scan(&ts).Error
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ts, func(x, y Template) int {
		return slices.Index(b.TemplateIDs, x.ID) - slices.Index(b.TemplateIDs, y.ID)
	})
	return ts, nil
}

func brandQuery(tx *gorm.DB) *gorm.DB {
	return tx.Model(&Brand{}).Select("brands.*, t.slug AS tenant_slug, t.name AS tenant_name").
		Joins("LEFT JOIN tenantry.tenants t ON t.id = brands.tenant_id")
}

// BrandQuery selects brands for the admin list.
type BrandQuery struct {
	Search  string
	Page    int
	PerPage int
}

// Brands returns one page of brands (the platform's first, then by name) and the total.
func (s *Service) Brands(ctx context.Context, q BrandQuery) ([]Brand, int64, error) {
	q.Page = max(q.Page, 1)
	if q.PerPage <= 0 || q.PerPage > 100 {
		q.PerPage = 25
	}
	tx := brandQuery(s.db.App.WithContext(ctx))
	if q.Search = strings.TrimSpace(q.Search); q.Search != "" {
		like := db.Contains(q.Search)
		tx = tx.Where("(brands.slug ILIKE ? OR brands.display_name ILIKE ? OR t.name ILIKE ?)", like, like, like)
	}
	var total int64
	if err := tx.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, err
	}
	var bs []Brand
	err := tx.Order("brands.tenant_id IS NOT NULL, brands.display_name, brands.id").
		Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Find(&bs).Error
	return bs, total, err
}

// BrandBySlug returns the brand with slug.
func (s *Service) BrandBySlug(ctx context.Context, slug string) (Brand, error) {
	var b Brand
	err := brandQuery(s.db.App.WithContext(ctx)).Where("brands.slug = ?", strings.ToLower(slug)).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return b, ErrNotFound
	}
	return b, err
}

// PlatformBrand returns the platform's own brand.
func (s *Service) PlatformBrand(ctx context.Context) (Brand, error) {
	var b Brand
	err := brandQuery(s.db.App.WithContext(ctx)).Where("brands.tenant_id IS NULL").Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return b, ErrNotFound
	}
	return b, err
}

func (s *Service) brandByID(tx *gorm.DB, id int64) (Brand, error) {
	var b Brand
	err := brandQuery(tx).Where("brands.id = ?", id).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return b, ErrNotFound
	}
	return b, err
}

// normalize trims in and checks every field; existing is the brand being edited (nil: new).
func (s *Service) checkBrand(tx *gorm.DB, in *BrandInput, existing *Brand) (owner *tenant.Tenant, err error) {
	in.Slug = strings.ToLower(strings.TrimSpace(in.Slug))
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	in.LogoURL = strings.TrimSpace(in.LogoURL)
	in.PrimaryColour = strings.ToLower(strings.TrimSpace(in.PrimaryColour))
	in.AccentColour = strings.ToLower(strings.TrimSpace(in.AccentColour))
	in.Headline = strings.TrimSpace(in.Headline)
	in.Blurb = strings.TrimSpace(in.Blurb)
	in.TenantSlug = strings.ToLower(strings.TrimSpace(in.TenantSlug))
	errs := validation.Errors{}
	switch {
	case in.Slug == "":
		errs.Add("slug", "Enter a slug; it is the signup page's address, /signup/<slug>.")
	case !brandSlug.MatchString(in.Slug):
		errs.Add("slug", "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit.")
	case in.Slug == "progress" || in.Slug == "verify" || in.Slug == "slug" || in.Slug == "continue":
		errs.Add("slug", "This word is part of the signup pages' own addresses; choose another slug.")
	default:
		q := tx.Model(&Brand{}).Where("slug = ?", in.Slug)
		if existing != nil {
			q = q.Where("id <> ?", existing.ID)
		}
		var n int64
		if err := q.Count(&n).Error; err != nil {
			return nil, err
		}
		if n > 0 {
			errs.Add("slug", "Another brand already uses this slug.")
		}
	}
	switch {
	case in.DisplayName == "":
		errs.Add("display_name", "Enter the name visitors see.")
	case len([]rune(in.DisplayName)) > MaxDisplayName:
		errs.Add("display_name", fmt.Sprintf("Use at most %d characters.", MaxDisplayName))
	}
	if in.LogoURL != "" && !logoPathRE.MatchString(in.LogoURL) {
		errs.Add("logo_url", "Use an image uploaded to Tenantry (an address starting /media/images/), or leave it empty to use the tenant's branding logo. External images are not allowed.")
	}
	if in.PrimaryColour == "" {
		in.PrimaryColour = "#4f46e5"
	}
	if !colourRE.MatchString(in.PrimaryColour) {
		errs.Add("primary_colour", "Use a colour as #rrggbb, like #4f46e5.")
	}
	if in.AccentColour == "" {
		in.AccentColour = "#0ea5e9"
	}
	if !colourRE.MatchString(in.AccentColour) {
		errs.Add("accent_colour", "Use a colour as #rrggbb, like #0ea5e9.")
	}
	if len([]rune(in.Headline)) > MaxHeadline {
		errs.Add("headline", fmt.Sprintf("Use at most %d characters.", MaxHeadline))
	}
	if len([]rune(in.Blurb)) > MaxBlurb {
		errs.Add("blurb", fmt.Sprintf("Use at most %d characters.", MaxBlurb))
	}
	if in.Approval != ApprovalAutomatic && in.Approval != ApprovalHeld {
		errs.Add("approval", "Choose automatic or held for approval.")
	}
	var plans int64
	if in.PlanKey == "" {
		errs.Add("plan", "Choose the plan of tenants made without a template.")
	} else if err := tx.Table("tenantry.plans").Where("key = ?", in.PlanKey).Count(&plans).Error; err != nil {
		return nil, err
	} else if plans == 0 {
		errs.Add("plan", "Choose one of the listed plans.")
	}
	in.TemplateIDs = slices.Compact(in.TemplateIDs)
	if len(in.TemplateIDs) > 0 {
		var ok int64
		if err := tx.Table("tenantry.templates").Where("id IN ? AND archived_at IS NULL", in.TemplateIDs).Count(&ok).Error; err != nil {
			return nil, err
		}
		if int(ok) != len(in.TemplateIDs) {
			errs.Add("templates", "Choose among the listed templates; archived ones cannot be offered.")
		}
	}
	if existing == nil {
		if in.TenantSlug == "" {
			var n int64
			if err := tx.Model(&Brand{}).Where("tenant_id IS NULL").Count(&n).Error; err != nil {
				return nil, err
			}
			if n > 0 {
				errs.Add("tenant", "The platform already has its brand; choose the reseller or parent tenant this brand is for.")
			}
		} else {
			var t tenant.Tenant
			if err := tx.Where("slug = ?", in.TenantSlug).Take(&t).Error; errors.Is(err, gorm.ErrRecordNotFound) {
				errs.Add("tenant", "No tenant has this slug.")
			} else if err != nil {
				return nil, err
			} else {
				var n int64
				if err := tx.Model(&Brand{}).Where("tenant_id = ?", t.ID).Count(&n).Error; err != nil {
					return nil, err
				}
				if n > 0 {
					errs.Add("tenant", t.Name+" already has a brand; edit that one.")
				}
				owner = &t
			}
		}
	}
	return owner, errs.Err()
}

func brandDetail(b Brand) map[string]any {
	return map[string]any{"slug": b.Slug, "display_name": b.DisplayName, "logo_url": b.LogoURL,
		"primary_colour": b.PrimaryColour, "accent_colour": b.AccentColour, "headline": b.Headline,
		"blurb": b.Blurb, "template_ids": []int64(b.TemplateIDs), "plan": b.PlanKey, "approval": b.Approval}
}

// CreateBrand adds a brand; on a validation error (field keys slug, display_name, logo_url,
// primary_colour, accent_colour, headline, blurb, templates, plan, approval, tenant) nothing is
// stored.
func (s *Service) CreateBrand(ctx context.Context, actor string, in BrandInput) (Brand, error) {
	var b Brand
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		owner, err := s.checkBrand(tx, &in, nil)
		if err != nil {
			return err
		}
		b = Brand{Slug: in.Slug, DisplayName: in.DisplayName, LogoURL: in.LogoURL, PrimaryColour: in.PrimaryColour,
			AccentColour: in.AccentColour, Headline: in.Headline, Blurb: in.Blurb, TemplateIDs: in.TemplateIDs,
			PlanKey: in.PlanKey, Approval: in.Approval}
		if owner != nil {
			b.TenantID = &owner.ID
		}
		if err := tx.Omit("CreatedAt", "UpdatedAt").Create(&b).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return validation.Errors{"slug": "Another brand already uses this slug, or this tenant already has a brand."}
			}
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: actor, Action: "brand.created", Target: b.Slug, Detail: audit.Detail(brandDetail(b))})
	})
	if err != nil {
		return Brand{}, err
	}
	return s.brandByID(s.db.App.WithContext(ctx), b.ID)
}

// UpdateBrand changes brand id; the owning tenant stays.
func (s *Service) UpdateBrand(ctx context.Context, actor string, id int64, in BrandInput) (Brand, error) {
	var b Brand
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		old, err := s.brandByID(tx, id)
		if err != nil {
			return err
		}
		if _, err := s.checkBrand(tx, &in, &old); err != nil {
			return err
		}
		b = old
		b.Slug, b.DisplayName, b.LogoURL, b.PrimaryColour, b.AccentColour = in.Slug, in.DisplayName, in.LogoURL, in.PrimaryColour, in.AccentColour
		b.Headline, b.Blurb, b.TemplateIDs, b.PlanKey, b.Approval = in.Headline, in.Blurb, in.TemplateIDs, in.PlanKey, in.Approval
		err = tx.Model(&Brand{}).Where("id = ?", id).Updates(map[string]any{
			"slug": b.Slug, "display_name": b.DisplayName, "logo_url": b.LogoURL, "primary_colour": b.PrimaryColour,
			"accent_colour": b.AccentColour, "headline": b.Headline, "blurb": b.Blurb, "template_ids": b.TemplateIDs,
			"plan_key": b.PlanKey, "approval": b.Approval, "updated_at": gorm.Expr("now()")}).Error
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return validation.Errors{"slug": "Another brand already uses this slug."}
		}
		if err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: b.TenantID, Actor: actor, Action: "brand.updated", Target: b.Slug,
			Detail: audit.Detail(map[string]any{"before": brandDetail(old), "after": brandDetail(b)})})
	})
	if err != nil {
		return Brand{}, err
	}
	return s.brandByID(s.db.App.WithContext(ctx), id)
}

// TemplateLabels returns the names of b's templates, for lists ("#7" for one deleted).
func (s *Service) TemplateLabels(ctx context.Context, b Brand) ([]string, error) {
	names, err := s.templateNames(ctx, b.TemplateIDs)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(b.TemplateIDs))
	for _, id := range b.TemplateIDs {
		if n, ok := names[id]; ok {
			out = append(out, n)
		} else {
			out = append(out, "#"+strconv.FormatInt(id, 10))
		}
	}
	return out, nil
}

// BrandByID returns brand id.
func (s *Service) BrandByID(ctx context.Context, id int64) (Brand, error) {
	return s.brandByID(s.db.App.WithContext(ctx), id)
}
