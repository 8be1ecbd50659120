package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// invitationRoutes: the set-password page an invitation e-mail links to, in the tenant's portal
// frame. The token in the address is the credential; it works once, until it expires.
func (s *Server) invitationRoutes(web *echo.Group) {
	mw := []echo.MiddlewareFunc{s.portalTenant, s.loadPortalUser, s.portalBranding, noReferrer}
	web.GET("/t/:slug/invitations/:token", s.invitationForm, mw...)
	web.POST("/t/:slug/invitations/:token", s.invitationAccept, mw...)
}

// noReferrer keeps the token out of Referer headers sent from the page.
func noReferrer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Referrer-Policy", "no-referrer")
		c.Response().Header().Set("Cache-Control", "no-store")
		return next(c)
	}
}

// invitationForm shows the set-password form, or why the link cannot be used.
func (s *Server) invitationForm(c echo.Context) error {
	a := currentPortal(c)
	if err := tenantauth.CheckOpen(a.tenant); err != nil {
		return s.invitationProblem(c, err)
	}
	inv, err := s.tenantAuth().InvitationByToken(c.Request().Context(), a.tenant.ID, c.Param("token"))
	if err != nil {
		return s.invitationProblem(c, err)
	}
	return s.renderInvitation(c, http.StatusOK, inv, "", nil)
}

func (s *Server) renderInvitation(c echo.Context, status int, inv tenantauth.Invitation, name string, errs map[string]string) error {
	a := currentPortal(c)
	m := portal.InvitationForm{CSRF: csrfToken(c), Action: a.url("/invitations/" + c.Param("token")), TenantName: a.tenant.Name,
		Email: inv.Email, Role: string(inv.Role), Expires: inv.ExpiresAt.Format(dateFormat + " 15:04 MST"), Name: name, Errors: errs}
	frame := portalFrame(&portalAccess{tenant: a.tenant, base: a.base})
	m.TenantName = frame.TenantName
	return s.render(c, status, page{Title: "Join " + a.tenant.Name, Content: portal.InvitationPage(m), Portal: frame})
}

// invitationAccept sets the password, creates the user with the invited role, marks the
// invitation used and signs the person in to the portal.
func (s *Server) invitationAccept(c echo.Context) error {
	a := currentPortal(c)
	ctx := c.Request().Context()
	token := c.Param("token")
	inv, err := s.tenantAuth().InvitationByToken(ctx, a.tenant.ID, token)
	if err != nil {
		return s.invitationProblem(c, err)
	}
	name := c.FormValue("name")
	u, err := s.tenantAuth().AcceptInvitation(ctx, a.tenant.ID, token, name, c.FormValue("password"))
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderInvitation(c, http.StatusUnprocessableEntity, inv, name, validation.Fields(err))
	}
	if err != nil {
		return s.invitationProblem(c, err)
	}
	s.flash(c, "success", "Welcome to "+a.tenant.Name+", "+u.Name+".")
	return s.portalPasswordAccepted(c, u)
}

// invitationProblem explains an unusable link: unknown, used, expired, or a closed tenant.
func (s *Server) invitationProblem(c echo.Context, err error) error {
	a := currentPortal(c)
	m := portal.InvitationProblem{TenantName: a.tenant.Name, SignInURL: a.url("/login")}
	status := http.StatusGone
	var closed *tenantauth.ClosedError
	switch {
	case errors.Is(err, tenantauth.ErrInvitationUsed):
		m.Title, m.Message = "This invitation was already used", "Each invitation link works once. If you set your password already, sign in; otherwise ask an admin of "+a.tenant.Name+" to invite you again."
	case errors.Is(err, tenantauth.ErrInvitationExpired):
		m.Title, m.Message = "This invitation has expired", "Invitation links work for 7 days. Ask an admin of "+a.tenant.Name+" to invite you again."
	case errors.Is(err, tenantauth.ErrInvitationUnknown):
		status = http.StatusNotFound
		m.Title, m.Message = "This invitation link is not valid", "Check that you opened the whole link from the e-mail. If it still does not work, ask an admin of "+a.tenant.Name+" to invite you again."
	case errors.As(err, &closed):
		status = http.StatusForbidden
		m.Title, m.Message = "This portal is not open", portalClosedMessage(a.tenant)
		if a.tenant.State == "provisioning" {
			m.Message = a.tenant.Name + " is still being set up. Try the link again in a minute."
		}
	default:
		return err
	}
	frame := portalFrame(&portalAccess{tenant: a.tenant, base: a.base})
	return s.render(c, status, page{Title: m.Title, Content: portal.InvitationProblemPage(m), Portal: frame})
}
