package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// tenantUsersTab builds the Users tab of a tenant's admin page: the users in the tenant's own
// schema and the act-as form.
func (s *Server) tenantUsersTab(c echo.Context, t tenant.Tenant) (admin.TenantUsers, error) {
	me, _ := currentUser(c)
	m := admin.TenantUsers{CSRF: csrfToken(c), CanActAs: me.CanWrite(), ActAsURL: "/t/" + t.Slug + "/act-as"}
	if tenantauth.CheckOpen(t) != nil {
		m.Closed = portalClosedMessage(t) + " Nobody can act as its admin either."
	}
	if t.State == "purged" {
		m.Unavailable = t.Name + " has been purged: its users were destroyed with its schema."
		return m, nil
	}
	users, err := s.tenantAuth().List(c.Request().Context(), t.ID)
	if err != nil {
		if t.State == "provisioning" {
			m.Unavailable = t.Name + "'s schema is not ready yet, so it has no users. Tenantry finishes setting it up within a minute."
			return m, nil
		}
		return m, err
	}
	for _, u := range users {
		r := portalUserRow(u)
		m.Rows = append(m.Rows, admin.TenantUserRow{ID: u.ID, Name: r.Name, Email: r.Email, Role: r.Role, LastSignIn: r.LastSignIn, Disabled: r.Disabled})
	}
	return m, s.markTenantUsersMFA(c.Request().Context(), t, m.Rows) // portal_mfa_admin.go
}

// actAsStart lets a platform admin act as the tenant's admin, with a reason, on the record in
// both audit trails; the portal then shows a banner on every page until they stop.
func (s *Server) actAsStart(c echo.Context) error {
	a := currentPortal(c)
	u, _ := currentUser(c)
	if !u.CanWrite() { // readOnlyForExecutives already refused; never rely on one check alone
		return errReadOnly
	}
	reason, started, err := s.tenantAuth().StartActing(c.Request().Context(), a.tenant.ID, u.Email, c.FormValue("reason"))
	switch {
	case errors.Is(err, validation.ErrInvalid):
		return s.renderTenant(c, http.StatusUnprocessableEntity, "users", func(m *admin.TenantDetail) {
			m.Users.Form = admin.ActAsForm{Reason: c.FormValue("reason"), Errors: validation.Fields(err)}
		})
	case errors.Is(err, tenantauth.ErrTenantClosed):
		s.flash(c, "error", portalClosedMessage(a.tenant)+" Nobody can act as its admin.")
		return redirect(c, "/admin/tenants/"+a.tenant.Slug+"/users")
	case err != nil:
		return err
	}
	err = s.startPortalSession(c, a.tenant.ID, map[any]any{
		keyActAsBy: u.ID, keyActAsReason: reason, keyActAsSince: started.UnixMicro()})
	if err != nil {
		return err
	}
	s.flash(c, "info", "You are now acting as an admin of "+a.tenant.Name+". It is recorded in the platform's and the tenant's audit trails; press Stop when you are done.")
	return redirect(c, a.url(""))
}

// actAsStop ends the platform admin's act-as session, on the record, and returns to the tenant's
// page in the admin portal.
func (s *Server) actAsStop(c echo.Context) error {
	a := currentPortal(c)
	if a.actAs == nil {
		return redirect(c, a.url(""))
	}
	err := s.tenantAuth().StopActing(c.Request().Context(), a.tenant.ID, a.actAs.by.Email, a.actAs.reason, tenantauth.EndStopped, a.actAs.since)
	if err != nil {
		return err
	}
	if err := s.endPortalSession(c); err != nil {
		return err
	}
	s.flash(c, "success", "You stopped acting as an admin of "+a.tenant.Name+".")
	return redirect(c, "/admin/tenants/"+a.tenant.Slug+"/users")
}
