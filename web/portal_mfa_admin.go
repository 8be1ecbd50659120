package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/views/pages/admin"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// Resetting a tenant user's second factor (TOTP, internal/tenantauth/mfa.go): by a platform
// admin from the tenant's Users tab (recorded in the tenant's and the platform's audit chains),
// or by a tenant admin from the portal's Users page (the tenant's chain). The user is signed out
// everywhere and sets a factor up again at the next sign-in if the tenant requires one.

// mfaAdminRoutes adds the reset actions: web is the browser-page group, t the tenant portal group.
func (s *Server) mfaAdminRoutes(web, t *echo.Group) {
	// Executives get 403 from readOnlyForExecutives; the handler checks again.
	web.POST("/admin/tenants/:slug/users/:id/mfa-reset", s.adminMFAReset, s.requireUser, s.readOnlyForExecutives)
	t.POST("/users/:id/mfa-reset", s.portalMFAReset, s.requirePortalUser, s.requirePortalAdmin)
}

// markTenantUsersMFA fills in, on the admin's Users tab, who has a second factor and where its
// reset posts.
func (s *Server) markTenantUsersMFA(ctx context.Context, t tenant.Tenant, rows []admin.TenantUserRow) error {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	on, err := s.mfa().EnrolledAmong(ctx, t.ID, ids)
	for i := range rows {
		rows[i].MFA = on[rows[i].ID]
		rows[i].ResetURL = "/admin/tenants/" + t.Slug + "/users/" + strconv.FormatInt(rows[i].ID, 10) + "/mfa-reset"
	}
	return err
}

// markPortalMFA fills in, on the portal's Users page, who has a second factor.
func (s *Server) markPortalMFA(ctx context.Context, tenantID int64, rows []portal.UserItem) error {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	on, err := s.mfa().EnrolledAmong(ctx, tenantID, ids)
	for i := range rows {
		rows[i].MFA = on[rows[i].ID]
	}
	return err
}

// adminMFAReset resets a tenant user's second factor from the admin portal.
func (s *Server) adminMFAReset(c echo.Context) error {
	me, _ := currentUser(c)
	if !me.CanWrite() { // readOnlyForExecutives already refused; never rely on one check alone
		return errReadOnly
	}
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	id, err := portalUserID(c)
	if err != nil {
		return err
	}
	back := "/admin/tenants/" + t.Slug + "/users"
	if t.State == "purged" {
		return echo.ErrNotFound
	}
	u, err := s.mfa().ResetByPlatform(ctx, t, me.Email, id)
	switch {
	case errors.Is(err, tenantauth.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, tenantauth.ErrNotEnrolled):
		s.flash(c, "info", u.Name+" ("+u.Email+") has no two-step sign-in set up: there was nothing to reset.")
		return redirect(c, back)
	case err != nil:
		return err
	}
	s.flash(c, "success", "Two-step sign-in of "+u.Name+" ("+u.Email+") is reset: they are signed out everywhere and set it up again at their next sign-in if "+t.Name+" requires it. Recorded in both audit trails.")
	return redirect(c, back)
}

// portalMFAReset resets a user's second factor from the portal's Users page (tenant admins and
// acting platform admins; members get 403 from requirePortalAdmin).
func (s *Server) portalMFAReset(c echo.Context) error {
	a := currentPortal(c)
	if !a.isAdmin() {
		return echo.NewHTTPError(http.StatusForbidden, "Only the tenant's admins may reset two-step sign-in.")
	}
	id, err := portalUserID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var u tenantauth.User
	if a.actAs != nil { // on the record in the platform's trail too
		u, err = s.mfa().ResetByPlatform(ctx, a.tenant, a.actAs.by.Email, id)
	} else {
		u, err = s.mfa().Reset(ctx, a.tenant.ID, a.userID(), a.actor(), id)
	}
	switch {
	case errors.Is(err, tenantauth.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, tenantauth.ErrSelf):
		return s.renderPortalUsers(c, http.StatusConflict, func(m *portal.Users) {
			m.RowError, m.RowErrorID = "You cannot reset your own two-step sign-in here: turn it off or on from Your account.", id
		})
	case errors.Is(err, tenantauth.ErrNotEnrolled):
		s.flash(c, "info", u.Name+" has no two-step sign-in set up: there was nothing to reset.")
		return redirect(c, a.url("/users"))
	case err != nil:
		return err
	}
	s.flash(c, "success", "Two-step sign-in of "+u.Name+" is reset: they are signed out everywhere and set it up again at their next sign-in if "+a.tenant.Name+" requires it.")
	return redirect(c, a.url("/users"))
}
