package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/auth"
)

// signInForm shows the sign-in page, or the first-run page when no admin exists yet.
func (s *Server) signInForm(c echo.Context) error {
	if _, ok := currentUser(c); ok {
		return c.Redirect(http.StatusSeeOther, "/admin")
	}
	has, err := s.users.HasAdmin(c.Request().Context())
	if err != nil {
		return err
	}
	if !has {
		return c.Redirect(http.StatusSeeOther, "/setup")
	}
	return s.renderSignIn(c, http.StatusOK, auth.SignIn{Next: safeNext(c.QueryParam("next"))})
}

func (s *Server) renderSignIn(c echo.Context, status int, m auth.SignIn) error {
	m.CSRF = csrfToken(c)
	return s.render(c, status, page{Title: "Sign in", Content: auth.SignInPage(m)})
}

// signIn checks the credentials and starts a session.
func (s *Server) signIn(c echo.Context) error {
	email, next := c.FormValue("email"), safeNext(c.FormValue("next"))
	u, err := s.users.SignIn(c.Request().Context(), email, c.FormValue("password"), clientAddr(c).String())
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		minutes := int(math.Ceil(throttled.RetryAfter.Minutes()))
		return s.renderSignIn(c, http.StatusTooManyRequests, auth.SignIn{Email: email, Next: next,
			Error: fmt.Sprintf("Too many failed sign-in attempts. For your security, sign-in is paused: try again in %d minute%s.", minutes, plural(minutes))})
	case errors.Is(err, identity.ErrBadCredentials):
		return s.renderSignIn(c, http.StatusUnauthorized, auth.SignIn{Email: email, Next: next, Error: "Wrong e-mail or password."})
	case err != nil:
		return err
	}
	if err := s.startSession(c, u); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, next)
}

// safeNext keeps post-sign-in redirects inside the admin portal.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/admin") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/admin"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// signOut ends this browser's session.
func (s *Server) signOut(c echo.Context) error {
	if err := s.endSession(c); err != nil {
		return err
	}
	s.flash(c, "success", "You are signed out.")
	return redirect(c, "/login")
}

// signOutEverywhere revokes every session of the user, this one included.
func (s *Server) signOutEverywhere(c echo.Context) error {
	u, _ := currentUser(c)
	if err := s.users.RevokeSessions(c.Request().Context(), u); err != nil {
		return err
	}
	if err := s.endSession(c); err != nil {
		return err
	}
	s.flash(c, "success", "You are signed out on every device.")
	return redirect(c, "/login")
}

// setupForm shows the first-run page while no admin exists.
func (s *Server) setupForm(c echo.Context) error {
	has, err := s.users.HasAdmin(c.Request().Context())
	if err != nil {
		return err
	}
	if has {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return s.renderSetup(c, http.StatusOK, auth.Setup{})
}

func (s *Server) renderSetup(c echo.Context, status int, m auth.Setup) error {
	m.CSRF = csrfToken(c)
	return s.render(c, status, page{Title: "Set up Tenantry", Content: auth.SetupPage(m)})
}

// setup creates the first platform admin and signs them in.
func (s *Server) setup(c echo.Context) error {
	in := identity.NewUser{Email: c.FormValue("email"), Name: c.FormValue("name"), Password: c.FormValue("password")}
	u, err := s.users.SetupFirstAdmin(c.Request().Context(), in, "setup:"+strings.ToLower(strings.TrimSpace(in.Email)))
	switch {
	case errors.Is(err, identity.ErrSetupDone):
		s.flash(c, "info", "Tenantry is already set up. Sign in instead.")
		return c.Redirect(http.StatusSeeOther, "/login")
	case errors.Is(err, validation.ErrInvalid):
		return s.renderSetup(c, http.StatusUnprocessableEntity, auth.Setup{Email: in.Email, Name: in.Name, Errors: validation.Fields(err)})
	case err != nil:
		return err
	}
	if err := s.startSession(c, u); err != nil {
		return err
	}
	s.flash(c, "success", "Welcome, "+u.Name+". Tenantry is ready.")
	return c.Redirect(http.StatusSeeOther, "/admin")
}
