package admin

import (
	"net/url"
	"strconv"

	"github.com/tenantry/tenantry/views/components"
)

// TemplateQuery is the template list's filter and page, as it appears in the URL.
type TemplateQuery struct {
	Search string
	Status string // active, archived, all
	Page   int
}

// URL is the list's address for this query.
func (q TemplateQuery) URL() string {
	v := url.Values{}
	if q.Search != "" {
		v.Set("q", q.Search)
	}
	if q.Status != "" && q.Status != "active" {
		v.Set("status", q.Status)
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if enc := v.Encode(); enc != "" {
		return "/admin/templates?" + enc
	}
	return "/admin/templates"
}

// WithPage returns the address of another page of the same list.
func (q TemplateQuery) WithPage(p int) string {
	q.Page = p
	return q.URL()
}

// TemplateRow is one line of the template list.
type TemplateRow struct {
	ID         int64
	Slug       string
	Name       string
	Compliance string // label, "" for none
	Plan       string
	Version    int
	Tenants    int64
	Archived   bool
	Updated    string
}

// TemplateList is the template list page.
type TemplateList struct {
	Query    TemplateQuery
	Rows     []TemplateRow
	Total    int64
	Pages    int
	CanWrite bool
}

// Filtered reports whether a filter is applied (to word the empty state).
func (m TemplateList) Filtered() bool { return m.Query.Search != "" || m.Query.Status == "archived" }

// TemplateQuotaRow is one dimension of the form's quota table.
type TemplateQuotaRow struct {
	Key         string
	Name        string
	Unit        string
	Soft, Hard  string // as typed; empty keeps the plan's default
	PlanDefault string // "80 / 100" for the chosen plan
	Error       string
}

// TemplateSettingRow is one catalogue key of the template form.
type TemplateSettingRow struct {
	Key         string
	Field       string // form field name, "setting.<key>"
	Label       string
	Description string
	Type        string
	Value       string // as typed; empty inherits
	Default     string // the catalogue default, for the placeholder
	Options     []components.Option
	// Fixed: the compliance profile fixes the value (the field is shown disabled, the value is
	// carried in a hidden input). Rule: the profile bounds it ("at least 12"); LockReason says why.
	Fixed      bool
	Rule       string
	LockReason string
	Error      string
}

// TemplateSettingGroup is a heading of the form's settings.
type TemplateSettingGroup struct {
	Name string
	Rows []TemplateSettingRow
}

// TemplateForm is the new, edit and clone form of a template.
type TemplateForm struct {
	Mode        string // new, edit
	Action      string
	PreviewURL  string
	CSRF        string
	Heading     string
	Name        string
	Slug        string
	TenantType  string
	Industry    string
	Compliance  string
	Plan        string
	SeedDataset string
	Note        string
	LogoURL     string // the current logo
	LogoID      string
	Quotas      []TemplateQuotaRow
	Groups      []TemplateSettingGroup
	Errors      map[string]string
	TenantTypes []components.Option
	Industries  []components.Option
	Profiles    []components.Option
	Plans       []components.Option
	Datasets    []components.Option
	// ComplianceNote summarises the chosen profile's locks, above the fields.
	ComplianceNote []string
	CancelURL      string
}

// Focus names the field that should have focus: the first one in error, else the name.
func (m TemplateForm) Focus() string {
	return components.FocusField(m.Errors, "name", "slug", "tenant_type", "industry", "compliance", "plan", "seed_dataset", "logo")
}

// TemplateField is one labelled value of a version summary.
type TemplateField struct {
	Label  string
	Value  string
	Locked string // the compliance reason when the profile locks it
}

// TemplateVersionView is one version as the template page shows it.
type TemplateVersionView struct {
	ID         int64
	Number     int
	Label      string
	Created    string
	CreatedBy  string
	Note       string
	Plan       string
	Compliance string
	LogoURL    string
	Fields     []TemplateField // general fields
	Quotas     []TemplateField
	Settings   []TemplateField
	Latest     bool
}

// TemplateShow is a template's page: its latest version and the history.
type TemplateShow struct {
	ID       int64
	Slug     string
	Name     string
	Archived bool
	Tenants  int64
	CSRF     string
	CanWrite bool
	Latest   TemplateVersionView
	History  []TemplateVersionView
}

// TemplateCloneForm asks for the clone's name and slug.
type TemplateCloneForm struct {
	ID     int64
	From   string
	CSRF   string
	Name   string
	Slug   string
	Errors map[string]string
}

// TemplateChange is one line of a drift report.
type TemplateChange struct {
	Label  string
	From   string
	To     string
	Source string
}

// TenantTemplatePanel is the tenant page's Template section.
type TenantTemplatePanel struct {
	Slug       string
	CSRF       string
	CanWrite   bool
	LatestID   int64
	Made       bool // made from a template
	Template   string
	TemplateID int64
	From       string // "HIPAA Clinic v1"
	Latest     string
	Behind     bool
	InSync     bool
	Archived   bool
	Upgrades   []TemplateChange
	Overrides  []TemplateChange
}
