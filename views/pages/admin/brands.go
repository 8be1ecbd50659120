package admin

import "github.com/tenantry/tenantry/views/components"

// BrandRow is one brand in the list.
type BrandRow struct {
	ID          int64
	Slug        string
	DisplayName string
	Owner       string // "Platform" or the tenant's name
	Primary     string
	Accent      string
	Approval    string
	Templates   string
	SignupURL   string
}

// Brands is the brands list page.
type Brands struct {
	Query    string
	Rows     []BrandRow
	Pager    components.PaginationProps
	CanWrite bool
}

// BrandForm is the create/edit form of a brand.
type BrandForm struct {
	CSRF string
	// ID is 0 for a new brand.
	ID            int64
	Action        string
	Slug          string
	DisplayName   string
	LogoURL       string
	PrimaryColour string
	AccentColour  string
	Headline      string
	Blurb         string
	PlanKey       string
	Approval      string
	TenantSlug    string
	// Owner names the owning tenant of an existing brand ("" for the platform's).
	Owner     string
	Templates []BrandTemplate
	Plans     []components.Option
	Errors    map[string]string
	SignupURL string
	CanWrite  bool
}

// BrandTemplate is a template the brand may offer, and whether it does.
type BrandTemplate struct {
	ID      string
	Name    string
	Checked bool
}

// Focus names the field that should have focus after a failed submission.
func (f BrandForm) Focus() string {
	return components.FocusField(f.Errors, "tenant", "slug", "display_name", "logo_url", "primary_colour", "accent_colour", "headline", "blurb", "templates", "plan", "approval")
}

// ApprovalRow is one signup in the Approvals queue.
type ApprovalRow struct {
	ID       int64
	OrgName  string
	Slug     string
	Email    string
	Brand    string
	Template string
	Created  string
	Verified string
	State    string
	Reason   string
	Error    string
	Source   string
}

// Approvals is the Approvals queue page.
type Approvals struct {
	CSRF     string
	State    string
	States   []string
	Counts   map[string]int64
	Query    string
	Rows     []ApprovalRow
	Pager    components.PaginationProps
	CanWrite bool
	// RejectID and RejectErrors re-show a reject form with its error.
	RejectID     int64
	RejectReason string
	RejectError  string
}
