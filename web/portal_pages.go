package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// portalFrame is the layout's view of the request's portal access.
func portalFrame(a *portalAccess) *layouts.Portal {
	f := &layouts.Portal{TenantName: a.tenant.Name, Base: a.base}
	switch {
	case a.actAs != nil:
		f.User = &layouts.PortalUser{Name: a.actAs.by.Name, Role: "acting admin"}
		f.ActAs = &layouts.ActAs{PlatformUser: a.actAs.by.Name + " (" + a.actAs.by.Email + ")", Reason: a.actAs.reason,
			Until: a.actAs.since.Add(tenantauth.ActAsMaxDuration).UTC().Format("15:04 MST")}
	case a.user != nil:
		f.User = &layouts.PortalUser{Name: a.user.Name, Role: string(a.user.Role)}
	}
	f.Banner = a.banner // the tenant's decommissioning (lifecycle_guard.go)
	return f
}

// portalSignInForm shows the tenant's branded sign-in page, or why its portal is closed.
func (s *Server) portalSignInForm(c echo.Context) error {
	a := currentPortal(c)
	if a.signedIn() {
		return c.Redirect(http.StatusSeeOther, a.url(""))
	}
	if tenantauth.CheckOpen(a.tenant) != nil {
		return s.renderPortalSignIn(c, http.StatusForbidden, portal.SignIn{Closed: portalClosedMessage(a.tenant)})
	}
	return s.renderPortalSignIn(c, http.StatusOK, portal.SignIn{})
}

func (s *Server) renderPortalSignIn(c echo.Context, status int, m portal.SignIn) error {
	a := currentPortal(c)
	m.CSRF, m.Base, m.TenantName = csrfToken(c), a.base, a.tenant.Name
	return s.render(c, status, page{Title: "Sign in to " + a.tenant.Name, Content: portal.SignInPage(m), Portal: portalFrame(&portalAccess{tenant: a.tenant, base: a.base})})
}

// portalSignIn checks a tenant user's credentials and binds this browser's portal session to
// the tenant. Refusals never say whether the e-mail exists.
func (s *Server) portalSignIn(c echo.Context) error {
	a := currentPortal(c)
	email := strings.TrimSpace(c.FormValue("email"))
	addr := clientAddr(c) // the connection's peer unless proxies are configured, see api.go
	u, err := s.tenantAuth().SignIn(c.Request().Context(), a.tenant.ID, email, c.FormValue("password"), addr.String())
	var throttled *tenantauth.ThrottledError
	switch {
	case errors.Is(err, tenantauth.ErrTenantClosed):
		return s.renderPortalSignIn(c, http.StatusForbidden, portal.SignIn{Closed: portalClosedMessage(a.tenant)})
	case errors.Is(err, tenantauth.ErrAddressRefused):
		s.log.Info("tenant sign-in refused by IP allowlist", "id", requestID(c), "tenant", a.tenant.ID, "addr", addrText(addr))
		return s.renderPortalSignIn(c, http.StatusForbidden, portal.SignIn{Email: email,
			Error: "Sign-in to " + a.tenant.Name + " is not allowed from your network (" + addrText(addr) + "). Your organisation limits sign-ins to its own networks; connect through one of them, or ask your administrator."})
	case errors.As(err, &throttled):
		minutes := int(math.Ceil(throttled.RetryAfter.Minutes()))
		return s.renderPortalSignIn(c, http.StatusTooManyRequests, portal.SignIn{Email: email,
			Error: fmt.Sprintf("Too many failed sign-in attempts. For your security, sign-in is paused: try again in %d minute%s.", minutes, plural(minutes))})
	case errors.Is(err, tenantauth.ErrBadCredentials):
		return s.renderPortalSignIn(c, http.StatusUnauthorized, portal.SignIn{Email: email, Error: "Wrong e-mail or password."})
	case err != nil:
		return err
	}
	return s.portalPasswordAccepted(c, u) // signs in, or asks for the second factor (portal_mfa.go)
}

// portalSignOut ends this browser's portal session; for an acting platform admin it stops acting.
func (s *Server) portalSignOut(c echo.Context) error {
	a := currentPortal(c)
	if a.actAs != nil {
		return s.actAsStop(c)
	}
	if err := s.endPortalSession(c); err != nil {
		return err
	}
	s.flash(c, "success", "You are signed out of "+a.tenant.Name+".")
	return redirect(c, a.url("/login"))
}

// portalSignOutEverywhere revokes every portal session of the signed-in tenant user.
func (s *Server) portalSignOutEverywhere(c echo.Context) error {
	a := currentPortal(c)
	if a.user == nil { // an acting platform admin has no tenant sessions of their own
		return echo.ErrNotFound
	}
	if err := s.tenantAuth().RevokeSessions(c.Request().Context(), a.tenant.ID, a.user.ID, a.user.Email); err != nil {
		return err
	}
	if err := s.endPortalSession(c); err != nil {
		return err
	}
	s.flash(c, "success", "You are signed out of "+a.tenant.Name+" on every device.")
	return redirect(c, a.url("/login"))
}

// portalHome is the tenant home: who is signed in and, for admins, the tenant's users.
func (s *Server) portalHome(c echo.Context) error {
	return s.renderPortalHome(c, http.StatusOK, portal.UserForm{Role: string(tenantauth.RoleMember)}, false)
}

func (s *Server) renderPortalHome(c echo.Context, status int, form portal.UserForm, refocus bool) error {
	a := currentPortal(c)
	m := portal.Home{CSRF: csrfToken(c), Base: a.base, TenantName: a.tenant.Name, State: a.tenant.State,
		IsAdmin: a.isAdmin(), Form: form, Refocus: refocus}
	if a.actAs != nil {
		m.Me = portal.Me{Name: a.actAs.by.Name, Email: a.actAs.by.Email, Role: "admin", ActingAs: true}
	} else {
		m.Me = portal.Me{Name: a.user.Name, Email: a.user.Email, Role: string(a.user.Role)}
	}
	if m.IsAdmin {
		users, err := s.tenantAuth().List(c.Request().Context(), a.tenant.ID)
		if err != nil {
			return err
		}
		for _, u := range users {
			m.Users = append(m.Users, portalUserRow(u))
		}
	}
	return s.render(c, status, page{Title: a.tenant.Name, Content: portal.HomePage(m), Portal: portalFrame(a)})
}

func portalUserRow(u tenantauth.User) portal.UserRow {
	last := "never"
	if u.LastSignInAt != nil {
		last = u.LastSignInAt.Format(dateFormat + " 15:04 MST")
	}
	return portal.UserRow{Name: u.Name, Email: u.Email, Role: string(u.Role), LastSignIn: last, Disabled: !u.Active()}
}

// portalUserCreate adds a user to the tenant (tenant admins and acting platform admins only).
func (s *Server) portalUserCreate(c echo.Context) error {
	a := currentPortal(c)
	if !a.isAdmin() {
		return echo.NewHTTPError(http.StatusForbidden, "Only the tenant's admins may add users.")
	}
	in := tenantauth.NewUser{Email: c.FormValue("email"), Name: c.FormValue("name"), Role: tenantauth.Role(c.FormValue("role")), Password: c.FormValue("password")}
	u, err := s.tenantAuth().CreateUser(c.Request().Context(), a.tenant.ID, a.actor(), in)
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderPortalHome(c, http.StatusUnprocessableEntity, portal.UserForm{Email: in.Email, Name: in.Name, Role: string(in.Role), Errors: validation.Fields(err)}, true)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", u.Name+" can now sign in to "+a.tenant.Name+" as "+string(u.Role)+".")
	return redirect(c, a.url(""))
}
