package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

const dateFormat = "2 Jan 2006"

var tenantsCrumb = layouts.Crumb{Label: "Tenants", Href: "/admin/tenants"}

// tenantList shows the registry; htmx requests get only the results.
func (s *Server) tenantList(c echo.Context) error {
	ctx := c.Request().Context()
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	q := tenant.ListQuery{Search: c.QueryParam("q"), State: c.QueryParam("state"), Plan: c.QueryParam("plan"),
		Sort: c.QueryParam("sort"), Desc: c.QueryParam("dir") == "desc", Page: pageNo}
	res, err := s.tenants.List(ctx, q)
	if err != nil {
		return err
	}
	plans, err := s.planOptions(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	m := admin.TenantList{
		Query: admin.TenantQuery{Search: res.Query.Search, State: res.Query.State, Plan: res.Query.Plan,
			Sort: res.Query.Sort, Desc: res.Query.Desc, Page: res.Query.Page},
		Total: res.Total, Pages: res.Pages(), States: tenant.States, Plans: plans, CanWrite: u.CanWrite(),
	}
	for _, it := range res.Items {
		row := admin.TenantRow{Slug: it.Slug, Name: it.Name, State: it.State, Plan: it.PlanName,
			Children: it.Children, Created: it.CreatedAt.Format(dateFormat)}
		if it.ParentSlug != nil {
			row.Parent = *it.ParentSlug
		}
		m.Rows = append(m.Rows, row)
	}
	if isFragmentRequest(c) { // push the canonical address, without empty parameters
		c.Response().Header().Set("HX-Push-Url", m.Query.URL())
	}
	return s.render(c, http.StatusOK, page{Title: "Tenants", Nav: "tenants", Crumbs: []layouts.Crumb{tenantsCrumb},
		Content: admin.TenantListPage(m), Fragment: admin.TenantResults(m)})
}

func (s *Server) planOptions(c echo.Context) ([]components.Option, error) {
	plans, err := s.tenants.Plans(c.Request().Context())
	opts := make([]components.Option, len(plans))
	for i, p := range plans {
		opts[i] = components.Option{Value: p.Key, Label: p.Name}
	}
	return opts, err
}

// tenantNew shows the create form.
func (s *Server) tenantNew(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	return s.renderTenantForm(c, http.StatusOK, admin.TenantForm{Parent: c.QueryParam("parent")})
}

func (s *Server) renderTenantForm(c echo.Context, status int, m admin.TenantForm) error {
	plans, err := s.planOptions(c)
	if err != nil {
		return err
	}
	m.Plans, m.CSRF = plans, csrfToken(c)
	if m.Templates, err = s.templateOptions(c.Request().Context()); err != nil {
		return err
	}
	return s.render(c, status, page{Title: "New tenant", Nav: "tenants",
		Crumbs: []layouts.Crumb{tenantsCrumb, {Label: "New tenant"}}, Content: admin.TenantNewPage(m)})
}

// tenantCreate registers a tenant and starts its provisioning run (internal/provisioning), or
// re-renders the form with field errors and the input kept. The tenant page shows the run's
// progress.
func (s *Server) tenantCreate(c echo.Context) error {
	u, _ := currentUser(c)
	form := admin.TenantForm{Slug: c.FormValue("slug"), Name: c.FormValue("name"), Plan: c.FormValue("plan"), Parent: c.FormValue("parent"),
		Template: c.FormValue("template"), AdminEmail: c.FormValue("admin_email")}
	req := provisioning.Request{Name: form.Name, Slug: form.Slug, PlanKey: form.Plan, ParentSlug: form.Parent, AdminEmail: form.AdminEmail, Actor: u.Email}
	if form.Template != "" {
		id, err := strconv.ParseInt(form.Template, 10, 64)
		if err != nil {
			id = -1 // refused below as an unknown template
		}
		req.TemplateID = &id
	}
	run, err := s.provisioning.Start(c.Request().Context(), req)
	if errors.Is(err, validation.ErrInvalid) {
		form.Errors = validation.Fields(err)
		if form.Template != "" && form.Errors["plan"] != "" && form.Errors["template"] == "" {
			delete(form.Errors, "plan") // the template gives the plan
		}
		return s.renderTenantForm(c, http.StatusUnprocessableEntity, form)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Tenant "+run.TenantName+" created; provisioning has started.")
	return redirect(c, "/admin/tenants/"+run.TenantSlug)
}

// tenantShow shows a tenant's page on one of its tabs; htmx tab switches get only the tabs.
func (s *Server) tenantShow(c echo.Context) error {
	return s.renderTenant(c, http.StatusOK, c.Param("tab"), nil)
}

// renderTenant renders the page of the tenant named by the :slug parameter on tab. after, when
// given, adjusts the loaded page: a form handler re-rendering its tab with errors or a result.
func (s *Server) renderTenant(c echo.Context, status int, tab string, after func(*admin.TenantDetail)) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	if tab == "" {
		tab = "overview"
	}
	if !validTab(tab) {
		return echo.ErrNotFound
	}
	ancestors, err := s.tenants.Ancestors(ctx, t)
	if err != nil {
		return err
	}
	plans, err := s.planOptions(c)
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	m := admin.TenantDetail{CanWrite: me.CanWrite(), ID: t.ID, Slug: t.Slug, Name: t.Name, State: t.State, Plan: t.PlanKey, Tab: tab,
		Created: t.CreatedAt.Format(dateFormat + " 15:04 MST"), Updated: t.UpdatedAt.Format(dateFormat + " 15:04 MST")}
	for _, p := range plans {
		if p.Value == t.PlanKey {
			m.Plan = p.Label
		}
	}
	crumbs := []layouts.Crumb{tenantsCrumb}
	for _, a := range ancestors {
		crumbs = append(crumbs, layouts.Crumb{Label: a.Name, Href: "/admin/tenants/" + a.Slug})
	}
	crumbs = append(crumbs, layouts.Crumb{Label: t.Name})
	if n := len(ancestors); n > 0 {
		m.Parent = &admin.Link{Label: ancestors[n-1].Name, Href: "/admin/tenants/" + ancestors[n-1].Slug}
	}
	switch tab {
	case "overview":
		children, err := s.tenants.Children(ctx, t)
		if err != nil {
			return err
		}
		if m.Provisioning, err = s.tenantRunPanel(c, t.ID); err != nil {
			return err
		}
		for _, ch := range children {
			m.Children = append(m.Children, admin.Link{Label: ch.Name, Href: "/admin/tenants/" + ch.Slug})
		}
	case "audit":
		if m.Audit, err = s.auditPage(c, m.TabURL("audit"), &t.ID); err != nil {
			return err
		}
		if m.TenantTrail, err = s.tenantTrail(c, t); err != nil {
			return err
		}
	case "users":
		if m.Users, err = s.tenantUsersTab(c, t); err != nil {
			return err
		}
	case "api-keys":
		if m.APIKeys, err = s.apiKeysTab(c, t); err != nil {
			return err
		}
	case "settings":
		if m.Settings, err = s.settingsPanel(c, &t, "/admin/tenants/"+t.Slug+"/settings"); err != nil {
			return err
		}
	case "security":
		if m.Security, err = s.securityTab(c, t); err != nil {
			return err
		}
	case "quotas":
		if m.Quotas, err = s.quotasTab(c, t); err != nil {
			return err
		}
	case "lifecycle":
		if m.Lifecycle, err = s.lifecycleTab(c, t); err != nil {
			return err
		}
	case "billing":
		if m.Billing, err = s.billingTab(c, t); err != nil {
			return err
		}
	}
	if after != nil {
		after(&m)
	}
	return s.render(c, status, page{Title: t.Name, Nav: "tenants", Crumbs: crumbs,
		Content: admin.TenantDetailPage(m), Fragment: tenantFragment(c, m)})
}

// tenantFragment answers a tab switch with the tabs, and the audit search with its results.
func tenantFragment(c echo.Context, m admin.TenantDetail) templ.Component {
	if c.Request().Header.Get("HX-Target") == "tenant-tabs" {
		return admin.TenantTabsPanel(m)
	}
	return admin.AuditResults(m.Audit)
}

func validTab(tab string) bool {
	for _, t := range admin.TenantTabs {
		if t.Key == tab {
			return true
		}
	}
	return false
}

// auditPage loads one page of audit events, for the whole platform or one tenant.
func (s *Server) auditPage(c echo.Context, base string, tenantID *int64) (admin.AuditList, error) {
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	if pageNo < 1 {
		pageNo = 1
	}
	const perPage = 50
	q := audit.Query{TenantID: tenantID, Search: c.QueryParam("q"), Page: pageNo, PerPage: perPage}
	events, total, err := audit.List(c.Request().Context(), s.db.App, q)
	m := admin.AuditList{BaseURL: base, Search: q.Search, Page: pageNo, Total: total, Pages: int((total + perPage - 1) / perPage)}
	if m.Pages == 0 {
		m.Pages = 1
	}
	for _, e := range events {
		m.Rows = append(m.Rows, auditRow(e))
	}
	return m, err
}

func auditRow(e audit.Event) admin.AuditRow {
	detail := string(e.Detail)
	if detail == "{}" {
		detail = ""
	}
	row := admin.AuditRow{ID: e.ID, When: e.CreatedAt.Format(dateFormat + " 15:04:05 MST"), Actor: e.Actor,
		Action: e.Action, Target: e.Target, Detail: detail}
	if e.SourceAddr != "" || e.RequestID != "" {
		row.Origin = "from " + e.SourceAddr + ", request " + e.RequestID
	}
	return row
}
