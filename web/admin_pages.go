package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/isolation"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// dashboard is the platform home.
func (s *Server) dashboard(c echo.Context) error {
	ctx := c.Request().Context()
	counts, err := s.tenants.CountByState(ctx)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	m := admin.Dashboard{CanWrite: u.CanWrite()}
	for _, st := range tenant.States {
		m.Total += counts[st]
		m.ByState = append(m.ByState, admin.StateCount{State: st, N: counts[st]})
	}
	if runs, err := isolation.Latest(ctx, s.db.App, 1); err != nil {
		return err
	} else if len(runs) == 1 && runs[0].Failures > 0 {
		m.IsolationBreach = runs[0].Summary()
	}
	events, _, err := audit.List(ctx, s.db.App, audit.Query{Page: 1, PerPage: 8})
	if err != nil {
		return err
	}
	for _, e := range events {
		m.Recent = append(m.Recent, auditRow(e))
	}
	return s.render(c, http.StatusOK, page{Title: "Dashboard", Nav: "dashboard",
		Crumbs: []layouts.Crumb{{Label: "Dashboard"}}, Content: admin.DashboardPage(m)})
}

// auditList is the platform audit trail, with the chain verified on full page loads.
func (s *Server) auditList(c echo.Context) error {
	m, err := s.auditPage(c, "/admin/audit", nil)
	if err != nil {
		return err
	}
	if !isFragmentRequest(c) {
		m.Chain = s.chainStatus(c)
	}
	return s.render(c, http.StatusOK, page{Title: "Audit trail", Nav: "audit",
		Crumbs: []layouts.Crumb{{Label: "Audit trail"}}, Content: admin.AuditPage(m), Fragment: admin.AuditResults(m)})
}

// userList shows the platform users and the add-user form.
func (s *Server) userList(c echo.Context) error {
	return s.renderUsers(c, http.StatusOK, admin.UserForm{Role: string(identity.RoleExecutive)})
}

func (s *Server) renderUsers(c echo.Context, status int, form admin.UserForm) error {
	users, err := s.users.List(c.Request().Context())
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	m := admin.Users{CSRF: csrfToken(c), Form: form, CanWrite: me.CanWrite()}
	for _, u := range users {
		last := "never"
		if u.LastSignInAt != nil {
			last = u.LastSignInAt.Format(dateFormat + " 15:04 MST")
		}
		m.Rows = append(m.Rows, admin.UserRow{Name: u.Name, Email: u.Email, Role: string(u.Role), LastSignIn: last})
	}
	return s.render(c, status, page{Title: "Platform users", Nav: "users",
		Crumbs: []layouts.Crumb{{Label: "Platform users"}}, Content: admin.UsersPage(m)})
}

// userCreate adds a platform user.
func (s *Server) userCreate(c echo.Context) error {
	me, _ := currentUser(c)
	in := identity.NewUser{Email: c.FormValue("email"), Name: c.FormValue("name"), Role: identity.Role(c.FormValue("role")), Password: c.FormValue("password")}
	u, err := s.users.Create(c.Request().Context(), me.Email, in)
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderUsers(c, http.StatusUnprocessableEntity, admin.UserForm{Email: in.Email, Name: in.Name, Role: string(in.Role), Errors: validation.Fields(err)})
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Added "+u.Name+" ("+string(u.Role)+").")
	return redirect(c, "/admin/users")
}
