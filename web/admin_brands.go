package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// Brands (admin): the signup pages' looks and rules. Approvals: the queue of held signups.

var brandsCrumb = layouts.Crumb{Label: "Brands", Href: "/admin/brands"}

// signupAdminRoutes adds the Brands and Approvals pages to the admin group.
func (s *Server) signupAdminRoutes(g *echo.Group) {
	g.GET("/brands", s.brandList)
	g.GET("/brands/new", s.brandNew)
	g.POST("/brands", s.brandCreate)
	g.GET("/brands/:id", s.brandEdit)
	g.POST("/brands/:id", s.brandUpdate)
	g.GET("/approvals", s.approvalList)
	g.POST("/approvals/:id/approve", s.approvalApprove)
	g.POST("/approvals/:id/reject", s.approvalReject)
}

func (s *Server) brandList(c echo.Context) error {
	ctx := c.Request().Context()
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	q := signup.BrandQuery{Search: c.QueryParam("q"), Page: max(pageNo, 1), PerPage: 25}
	bs, total, err := s.signups().Brands(ctx, q)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	m := admin.Brands{Query: strings.TrimSpace(q.Search), CanWrite: u.CanWrite()}
	for _, b := range bs {
		labels, err := s.signups().TemplateLabels(ctx, b)
		if err != nil {
			return err
		}
		owner := "Platform"
		if !b.Platform() {
			owner = b.TenantName
		}
		m.Rows = append(m.Rows, admin.BrandRow{ID: b.ID, Slug: b.Slug, DisplayName: b.DisplayName, Owner: owner,
			Primary: b.PrimaryColour, Accent: b.AccentColour, Approval: b.Approval, Templates: strings.Join(labels, ", "), SignupURL: b.SignupPath()})
	}
	m.Pager = components.PaginationProps{Page: q.Page, Pages: pages(total, q.PerPage), Total: total, Noun: "brands",
		URL: func(p int) string {
			return "/admin/brands?" + url.Values{"q": {m.Query}, "page": {strconv.Itoa(p)}}.Encode()
		}}
	return s.render(c, http.StatusOK, page{Title: "Brands", Nav: "brands", Crumbs: []layouts.Crumb{brandsCrumb}, Content: admin.BrandsPage(m)})
}

func pages(total int64, per int) int {
	return max(1, int((total+int64(per)-1)/int64(per)))
}

func (s *Server) renderBrandForm(c echo.Context, status int, m admin.BrandForm, checked []int64) error {
	ctx := c.Request().Context()
	ts, err := s.signups().Templates(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		m.Templates = append(m.Templates, admin.BrandTemplate{ID: strconv.FormatInt(t.ID, 10), Name: t.Name, Checked: containsID(checked, t.ID)})
	}
	if m.Plans, err = s.planOptions(c); err != nil {
		return err
	}
	u, _ := currentUser(c)
	m.CSRF, m.CanWrite = csrfToken(c), u.CanWrite()
	title := "New brand"
	if m.ID != 0 {
		title = m.DisplayName
	}
	return s.render(c, status, page{Title: title, Nav: "brands", Crumbs: []layouts.Crumb{brandsCrumb, {Label: title}}, Content: admin.BrandFormPage(m)})
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (s *Server) brandNew(c echo.Context) error {
	return s.renderBrandForm(c, http.StatusOK, admin.BrandForm{Action: "/admin/brands", PrimaryColour: "#4f46e5", AccentColour: "#0ea5e9",
		Approval: signup.ApprovalAutomatic, PlanKey: "starter"}, nil)
}

// brandInput reads the brand form; a template id that is not a number is kept as an impossible
// id so validation names it.
func brandInput(c echo.Context) signup.BrandInput {
	in := signup.BrandInput{Slug: c.FormValue("slug"), DisplayName: c.FormValue("display_name"), LogoURL: c.FormValue("logo_url"),
		PrimaryColour: c.FormValue("primary_colour"), AccentColour: c.FormValue("accent_colour"), Headline: c.FormValue("headline"),
		Blurb: c.FormValue("blurb"), PlanKey: c.FormValue("plan"), Approval: c.FormValue("approval"), TenantSlug: c.FormValue("tenant")}
	form, _ := c.FormParams()
	for _, v := range form["templates"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			id = -1
		}
		in.TemplateIDs = append(in.TemplateIDs, id)
	}
	return in
}

func brandFormOf(in signup.BrandInput) admin.BrandForm {
	return admin.BrandForm{Slug: in.Slug, DisplayName: in.DisplayName, LogoURL: in.LogoURL, PrimaryColour: in.PrimaryColour,
		AccentColour: in.AccentColour, Headline: in.Headline, Blurb: in.Blurb, PlanKey: in.PlanKey, Approval: in.Approval, TenantSlug: in.TenantSlug}
}

func (s *Server) brandCreate(c echo.Context) error {
	u, _ := currentUser(c)
	in := brandInput(c)
	b, err := s.signups().CreateBrand(c.Request().Context(), u.Email, in)
	if errors.Is(err, validation.ErrInvalid) {
		m := brandFormOf(in)
		m.Action, m.Errors = "/admin/brands", validation.Fields(err)
		return s.renderBrandForm(c, http.StatusUnprocessableEntity, m, in.TemplateIDs)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Brand "+b.DisplayName+" created; its signup page is "+b.SignupPath()+".")
	return redirect(c, "/admin/brands/"+strconv.FormatInt(b.ID, 10))
}

func (s *Server) brandByParam(c echo.Context) (signup.Brand, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return signup.Brand{}, echo.ErrNotFound
	}
	b, err := s.signups().BrandByID(c.Request().Context(), id)
	if errors.Is(err, signup.ErrNotFound) {
		return b, echo.ErrNotFound
	}
	return b, err
}

func (s *Server) brandEdit(c echo.Context) error {
	b, err := s.brandByParam(c)
	if err != nil {
		return err
	}
	m := admin.BrandForm{ID: b.ID, Action: "/admin/brands/" + strconv.FormatInt(b.ID, 10), Slug: b.Slug, DisplayName: b.DisplayName,
		LogoURL: b.LogoURL, PrimaryColour: b.PrimaryColour, AccentColour: b.AccentColour, Headline: b.Headline, Blurb: b.Blurb,
		PlanKey: b.PlanKey, Approval: b.Approval, Owner: b.TenantName, SignupURL: b.SignupPath()}
	return s.renderBrandForm(c, http.StatusOK, m, b.TemplateIDs)
}

func (s *Server) brandUpdate(c echo.Context) error {
	b, err := s.brandByParam(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	in := brandInput(c)
	nb, err := s.signups().UpdateBrand(c.Request().Context(), u.Email, b.ID, in)
	if errors.Is(err, validation.ErrInvalid) {
		m := brandFormOf(in)
		m.ID, m.Action, m.Owner, m.SignupURL, m.Errors = b.ID, "/admin/brands/"+strconv.FormatInt(b.ID, 10), b.TenantName, b.SignupPath(), validation.Fields(err)
		return s.renderBrandForm(c, http.StatusUnprocessableEntity, m, in.TemplateIDs)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Brand "+nb.DisplayName+" saved.")
	return redirect(c, "/admin/brands/"+strconv.FormatInt(nb.ID, 10))
}
