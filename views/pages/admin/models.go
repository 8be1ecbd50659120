// Package admin renders the platform admin's pages. Handlers build the flat view models below
// from domain values; the templates only render them.
package admin

import (
	"net/url"
	"strconv"

	"github.com/tenantry/tenantry/views/components"
)

// TenantQuery is the list's filter, sort and page, as it appears in the URL.
type TenantQuery struct {
	Search string
	State  string
	Plan   string
	Sort   string
	Desc   bool
	Page   int
}

// Values encodes the query for a URL, leaving out defaults so links stay short.
func (q TenantQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("q", q.Search)
	set("state", q.State)
	set("plan", q.Plan)
	if q.Sort != "" && q.Sort != "name" {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("dir", "desc")
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	return v
}

// URL is the list's address for this query.
func (q TenantQuery) URL() string {
	if enc := q.Values().Encode(); enc != "" {
		return "/admin/tenants?" + enc
	}
	return "/admin/tenants"
}

// WithPage returns the address of another page of the same list.
func (q TenantQuery) WithPage(p int) string {
	q.Page = p
	return q.URL()
}

// SortedBy returns the address that sorts by col, flipping the direction when already sorted by it.
func (q TenantQuery) SortedBy(col string) string {
	q.Desc = q.Sort == col && !q.Desc
	q.Sort = col
	q.Page = 1
	return q.URL()
}

// AriaSort is the aria-sort value of a column header.
func (q TenantQuery) AriaSort(col string) string {
	switch {
	case q.Sort != col:
		return "none"
	case q.Desc:
		return "descending"
	default:
		return "ascending"
	}
}

// TenantRow is one line of the tenant list.
type TenantRow struct {
	Slug     string
	Name     string
	State    string
	Plan     string
	Parent   string
	Children int
	Created  string
}

// TenantList is the tenant list page.
type TenantList struct {
	Query    TenantQuery
	Rows     []TenantRow
	Total    int64
	Pages    int
	States   []string
	Plans    []components.Option
	CanWrite bool
}

// Filtered reports whether any filter is applied (to word the empty state).
func (m TenantList) Filtered() bool {
	return m.Query.Search != "" || m.Query.State != "" || m.Query.Plan != ""
}

// TenantForm is the create-tenant form, with the user's input and field errors.
type TenantForm struct {
	CSRF   string
	Slug   string
	Name   string
	Plan   string
	Parent string
	Errors map[string]string
	Plans  []components.Option
	// Template (a template id) and AdminEmail start a provisioning run from a template with an
	// invited admin; Templates are the choices.
	Template   string
	AdminEmail string
	Templates  []components.Option
}

// Focus names the field that should have focus: the first one in error, else the first one.
func (m TenantForm) Focus() string {
	return components.FocusField(m.Errors, "name", "slug", "plan", "template", "parent", "admin_email")
}

// Link is a named address.
type Link struct {
	Label string
	Href  string
}

// Tab is one tab of the tenant page.
type Tab struct {
	Key   string
	Label string
}

// TenantTabs lists the tenant page's tabs in order.
var TenantTabs = []Tab{
	{"overview", "Overview"},
	{"settings", "Settings"},
	{"quotas", "Quotas"},
	{"users", "Users"},
	{"api-keys", "API keys"},
	{"security", "Security"},
	{"billing", "Billing"},
	{"audit", "Audit"},
	{"lifecycle", "Lifecycle"},
}

// TenantDetail is the tenant page.
type TenantDetail struct {
	// CanWrite shows the actions an admin may take (executives only read).
	CanWrite  bool
	ID        int64
	Slug      string
	Name      string
	State     string
	Plan      string
	Parent    *Link
	Ancestors []Link
	Children  []Link
	APIKeys   APIKeys
	// TenantTrail is the tenant's own audit chain (sign-ins, users, act-as), on the Audit tab.
	TenantTrail TenantTrail
	Security    Security
	Settings    SettingsPanel
	Created     string
	Updated     string
	Tab         string
	Audit       AuditList
	Users       TenantUsers
	Quotas      Quotas
	Lifecycle   LifecyclePanel
	Billing     BillingTab
	// Provisioning is the tenant's latest provisioning run, on the Overview tab; nil: none.
	Provisioning *RunPanel
}

// TabURL is the address of a tab.
func (m TenantDetail) TabURL(tab string) string {
	if tab == "overview" {
		return "/admin/tenants/" + m.Slug
	}
	return "/admin/tenants/" + m.Slug + "/" + tab
}

// AuditRow is one audit event.
type AuditRow struct {
	ID     int64
	When   string
	Actor  string
	Action string
	Target string
	Detail string
	// Origin is the request id and client address, when the change came over HTTP.
	Origin string
}

// AuditList is a page of audit events with its search.
type AuditList struct {
	BaseURL string // the list's address without query
	Search  string
	Rows    []AuditRow
	Page    int
	Pages   int
	Total   int64
	// Chain is the result of verifying the hash chain (zero when not checked).
	Chain Chain
}

// Chain is the outcome of re-checking an audit hash chain.
type Chain struct {
	OK      bool
	Message string
	Checked string // when it was checked
}

// Noun words what the export holds.
func (m AuditList) Noun() string {
	if m.Search != "" {
		return "the matching events"
	}
	return "all events"
}

// CSVURL is the address of the CSV export of the events the search selects.
func (m AuditList) CSVURL() string {
	u := m.BaseURL + ".csv"
	if m.Search != "" {
		u += "?q=" + url.QueryEscape(m.Search)
	}
	return u
}

// PageURL is the address of another page of the list.
func (m AuditList) PageURL(p int) string {
	v := url.Values{}
	if m.Search != "" {
		v.Set("q", m.Search)
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if enc := v.Encode(); enc != "" {
		return m.BaseURL + "?" + enc
	}
	return m.BaseURL
}

// StateCount is how many tenants are in one state.
type StateCount struct {
	State string
	N     int64
}

// Dashboard is the platform home page.
type Dashboard struct {
	// IsolationBreach, when set, is the latest isolation run's finding, shown as an alert.
	IsolationBreach string
	Total           int64
	ByState         []StateCount
	Recent          []AuditRow
	CanWrite        bool
}

// UserRow is one platform user.
type UserRow struct {
	Name       string
	Email      string
	Role       string
	LastSignIn string
}

// UserForm is the add-user form with the user's input and field errors.
type UserForm struct {
	Email  string
	Name   string
	Role   string
	Errors map[string]string
}

// Users is the platform users page.
type Users struct {
	CSRF     string
	Rows     []UserRow
	Form     UserForm
	CanWrite bool
}
