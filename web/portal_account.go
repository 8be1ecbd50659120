package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// "Your account" in the tenant portal: a signed-in tenant user turns two-step sign-in (TOTP) on
// when the tenant does not require it, sees whether it is on, turns it off with a current code
// when the policy allows, and changes their password under the tenant's password policy.
//
// A secret being set up lives in the (encrypted) portal session cookie until a code confirms it,
// like the sign-in enrolment keeps it in the pending cookie (portal_mfa.go).

// keyAccountEnrol is the otpauth:// URL of the secret being set up from the account page.
const keyAccountEnrol = "acct_enrol"

// portalAccountRoutes adds the account page to the tenant portal group t.
func (s *Server) portalAccountRoutes(t *echo.Group) {
	t.GET("/account", s.portalAccount, s.requirePortalUser, s.requireOwnAccount)
	t.POST("/account/mfa/start", s.portalAccountMFAStart, s.requirePortalUser, s.requireOwnAccount)
	t.POST("/account/mfa", s.portalAccountMFAConfirm, s.requirePortalUser, s.requireOwnAccount)
	t.POST("/account/mfa/cancel", s.portalAccountMFACancel, s.requirePortalUser, s.requireOwnAccount)
	t.POST("/account/mfa/disable", s.portalAccountMFADisable, s.requirePortalUser, s.requireOwnAccount)
	t.POST("/account/password", s.portalAccountPassword, s.requirePortalUser, s.requireOwnAccount)
}

// requireOwnAccount refuses a platform admin acting as the tenant's admin: they have no account
// in the tenant.
func (s *Server) requireOwnAccount(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentPortal(c).user == nil {
			return echo.NewHTTPError(http.StatusForbidden, "You are acting as this tenant's admin: you have no account of your own here.")
		}
		return next(c)
	}
}

func (s *Server) portalAccount(c echo.Context) error {
	return s.renderAccount(c, http.StatusOK, func(*portal.Account) {})
}

func (s *Server) renderAccount(c echo.Context, status int, adjust func(*portal.Account)) error {
	a := currentPortal(c)
	ctx := c.Request().Context()
	m := portal.Account{CSRF: csrfToken(c), Base: a.base, TenantName: a.tenant.Name, Name: a.user.Name, Email: a.user.Email, Role: string(a.user.Role)}
	mf := s.mfa()
	var err error
	if m.MFAOn, err = mf.Enrolled(ctx, a.tenant.ID, a.user.ID); err != nil {
		return err
	}
	if m.MFARequired, err = mf.Required(ctx, a.tenant); err != nil {
		return err
	}
	if u, _ := s.portalSession(c).Values[keyAccountEnrol].(string); u != "" && !m.MFAOn {
		e, err := tenantauth.EnrolmentFromURL(u)
		if err != nil {
			return err
		}
		m.Enrol = &portal.AccountEnrol{QR: e.QR, Secret: e.Secret}
	}
	raw, err := s.tenantAuth().Policy(ctx, a.tenant, "security.password_min_length")
	if err != nil {
		return err
	}
	m.MinPassword, _ = strconv.Atoi(raw)
	m.MinPassword = max(m.MinPassword, tenantauth.MinPasswordLength)
	adjust(&m)
	frame := portalFrame(a)
	frame.Nav = "account"
	return s.render(c, status, page{Title: "Your account · " + a.tenant.Name, Content: portal.AccountPage(m), Portal: frame})
}

// setAccountEnrol keeps (or, with "", forgets) the secret being set up.
func (s *Server) setAccountEnrol(c echo.Context, url string) error {
	sess := s.portalSession(c)
	if url == "" {
		delete(sess.Values, keyAccountEnrol)
	} else {
		sess.Values[keyAccountEnrol] = url
	}
	return s.saveSession(c, sess)
}

// portalAccountMFAStart generates a secret to set up and shows it.
func (s *Server) portalAccountMFAStart(c echo.Context) error {
	a := currentPortal(c)
	if s.keys == nil {
		return fmt.Errorf("two-step sign-in for tenant %d needs tenant keys, and the server has no master key", a.tenant.ID)
	}
	on, err := s.mfa().Enrolled(c.Request().Context(), a.tenant.ID, a.user.ID)
	if err != nil {
		return err
	}
	if on {
		s.flash(c, "info", "Two-step sign-in is already on for your account.")
		return redirect(c, a.url("/account"))
	}
	e, err := s.mfa().NewEnrolment(a.tenant, *a.user)
	if err != nil {
		return err
	}
	if err := s.setAccountEnrol(c, e.URL); err != nil {
		return err
	}
	return redirect(c, a.url("/account"))
}

// portalAccountMFAConfirm turns two-step sign-in on with a first code from the app.
func (s *Server) portalAccountMFAConfirm(c echo.Context) error {
	a := currentPortal(c)
	raw, _ := s.portalSession(c).Values[keyAccountEnrol].(string)
	if raw == "" {
		s.flash(c, "info", "Start the setup again: no secret was waiting for a code.")
		return redirect(c, a.url("/account"))
	}
	e, err := tenantauth.EnrolmentFromURL(raw)
	if err != nil {
		return err
	}
	err = s.mfa().Enrol(c.Request().Context(), a.tenant.ID, *a.user, e, c.FormValue("code"), clientAddr(c).String())
	if msg, status := codeRefusal(err); msg != "" {
		return s.renderAccount(c, status, func(m *portal.Account) { m.MFAError = msg })
	}
	switch {
	case errors.Is(err, tenantauth.ErrEnrolled):
		s.flash(c, "info", "Two-step sign-in is already on for your account.")
	case err != nil:
		return err
	default:
		s.flash(c, "success", "Two-step sign-in is on. From your next sign-in you will be asked for a code from your app after your password.")
	}
	if err := s.setAccountEnrol(c, ""); err != nil {
		return err
	}
	return redirect(c, a.url("/account"))
}

// codeRefusal words a refused code for the page, or returns "" for other outcomes.
func codeRefusal(err error) (string, int) {
	var throttled *tenantauth.ThrottledError
	switch {
	case errors.Is(err, tenantauth.ErrBadCode):
		return "That code is not right. Enter the 6 digits your app shows now.", http.StatusUnprocessableEntity
	case errors.Is(err, tenantauth.ErrCodeReused):
		return "That code was already used. Wait for your app to show a new one.", http.StatusUnprocessableEntity
	case errors.As(err, &throttled):
		minutes := int(math.Ceil(throttled.RetryAfter.Minutes()))
		return fmt.Sprintf("Too many wrong codes. For your security, this is paused: try again in %d minute%s.", minutes, plural(minutes)), http.StatusTooManyRequests
	}
	return "", 0
}

// portalAccountMFACancel forgets a setup under way.
func (s *Server) portalAccountMFACancel(c echo.Context) error {
	if err := s.setAccountEnrol(c, ""); err != nil {
		return err
	}
	return redirect(c, currentPortal(c).url("/account"))
}

// portalAccountMFADisable turns two-step sign-in off with a current code, unless the tenant
// requires it.
func (s *Server) portalAccountMFADisable(c echo.Context) error {
	a := currentPortal(c)
	err := s.mfa().Disable(c.Request().Context(), a.tenant, *a.user, c.FormValue("code"), clientAddr(c).String())
	if msg, status := codeRefusal(err); msg != "" {
		return s.renderAccount(c, status, func(m *portal.Account) { m.MFAError = msg })
	}
	switch {
	case errors.Is(err, tenantauth.ErrMFARequired):
		return s.renderAccount(c, http.StatusConflict, func(m *portal.Account) {
			m.MFAError = a.tenant.Name + " requires two-step sign-in for every user: it cannot be turned off."
		})
	case errors.Is(err, tenantauth.ErrNotEnrolled):
		s.flash(c, "info", "Two-step sign-in was already off.")
	case err != nil:
		return err
	default:
		s.flash(c, "success", "Two-step sign-in is off: your password alone signs you in.")
	}
	return redirect(c, a.url("/account"))
}

// portalAccountPassword changes the user's password; this browser stays signed in, every other
// session ends.
func (s *Server) portalAccountPassword(c echo.Context) error {
	a := currentPortal(c)
	in := tenantauth.PasswordChange{Current: c.FormValue("current_password"), New: c.FormValue("new_password"), Confirm: c.FormValue("confirm_password")}
	u, err := s.tenantAuth().ChangePassword(c.Request().Context(), a.tenant.ID, a.user.ID, in, clientAddr(c).String())
	var throttled *tenantauth.ThrottledError
	switch {
	case errors.Is(err, validation.ErrInvalid):
		return s.renderAccount(c, http.StatusUnprocessableEntity, func(m *portal.Account) { m.PasswordErrors = validation.Fields(err) })
	case errors.As(err, &throttled):
		minutes := int(math.Ceil(throttled.RetryAfter.Minutes()))
		return s.renderAccount(c, http.StatusTooManyRequests, func(m *portal.Account) {
			m.PasswordErrors = map[string]string{"current_password": fmt.Sprintf("Too many wrong passwords. For your security, this is paused: try again in %d minute%s.", minutes, plural(minutes))}
		})
	case err != nil:
		return err
	}
	// The epoch moved on: keep this browser signed in with the new one.
	sess := s.portalSession(c)
	sess.Values[keyPortalEpoch] = u.SessionEpoch
	if err := s.saveSession(c, sess); err != nil {
		return err
	}
	s.flash(c, "success", "Your password is changed. You are signed out on your other devices.")
	return redirect(c, a.url("/account"))
}
