package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// The second step of a tenant user's sign-in (TOTP, internal/tenantauth/mfa.go).
//
// A correct password does not sign the user in when a second factor is due: the browser gets a
// separate, short-lived "pending" cookie naming the tenant, the user and the user's session
// epoch (and, while enrolling, the new secret — the cookie is encrypted), and the portal session
// stays empty. Portal pages therefore still send the browser to the sign-in page; only
// /mfa accepts the pending cookie. A correct code ends it and starts the real portal session.

const (
	mfaSessionName = "tenantry_mfa"
	keyMFATenant   = "tid"
	keyMFAUser     = "uid"
	keyMFAEpoch    = "epoch"
	keyMFASince    = "since"  // unix seconds of the correct password
	keyMFAEnrolURL = "enrol"  // otpauth:// URL of the secret being set up
	keyMFARequired = "policy" // the tenant requires it (wording only)
	// mfaPendingFor is how long after the password the code must be given.
	mfaPendingFor = 10 * time.Minute
)

// portalMFARoutes adds the second step of sign-in to the tenant portal group t.
func (s *Server) portalMFARoutes(t *echo.Group) {
	t.GET("/mfa", s.portalMFAForm)
	t.POST("/mfa", s.portalMFASubmit)
	t.POST("/mfa/cancel", s.portalMFACancel)
}

func (s *Server) mfa() *tenantauth.MFA { return tenantauth.NewMFA(s.tenantAuth(), s.keys) }

// portalPasswordAccepted finishes a sign-in whose password was right: it starts the portal
// session, or, when the user has a second factor or the tenant requires one, the pending
// second step.
func (s *Server) portalPasswordAccepted(c echo.Context, u tenantauth.User) error {
	a := currentPortal(c)
	ctx := c.Request().Context()
	m := s.mfa()
	enrolled, err := m.Enrolled(ctx, a.tenant.ID, u.ID)
	if err != nil {
		return err
	}
	required, err := m.Required(ctx, a.tenant)
	if err != nil {
		return err
	}
	if !enrolled && !required {
		if err := s.startPortalSession(c, a.tenant.ID, map[any]any{keyPortalUser: u.ID, keyPortalEpoch: u.SessionEpoch}); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, a.url(""))
	}
	if s.keys == nil {
		return fmt.Errorf("two-step sign-in for tenant %d needs tenant keys, and the server has no master key", a.tenant.ID)
	}
	// Whoever was signed in to the portal on this browser is not any more.
	if err := s.endPortalSession(c); err != nil {
		return err
	}
	sess := s.mfaSession(c)
	sess.Values = map[any]any{keyMFATenant: a.tenant.ID, keyMFAUser: u.ID, keyMFAEpoch: u.SessionEpoch,
		keyMFASince: time.Now().Unix(), keyMFARequired: required}
	if !enrolled {
		e, err := m.NewEnrolment(a.tenant, u)
		if err != nil {
			return err
		}
		sess.Values[keyMFAEnrolURL] = e.URL
	}
	if err := s.saveSession(c, sess); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, a.url("/mfa"))
}

func (s *Server) mfaSession(c echo.Context) *sessions.Session {
	sess, _ := s.sessions.Get(c.Request(), mfaSessionName)
	return sess
}

// mfaPending is a sign-in waiting for its second step.
type mfaPending struct {
	sess     *sessions.Session
	user     tenantauth.User
	enrolURL string
	required bool
}

// pendingMFA reads this browser's pending second step for the request's tenant. It returns
// false when there is none, it is for another tenant, it is too old, or the user was disabled
// or signed out everywhere since the password was given.
func (s *Server) pendingMFA(c echo.Context) (mfaPending, bool, error) {
	a := currentPortal(c)
	sess := s.mfaSession(c)
	p := mfaPending{sess: sess}
	tid, _ := sess.Values[keyMFATenant].(int64)
	uid, _ := sess.Values[keyMFAUser].(int64)
	epoch, _ := sess.Values[keyMFAEpoch].(int)
	since, _ := sess.Values[keyMFASince].(int64)
	p.enrolURL, _ = sess.Values[keyMFAEnrolURL].(string)
	p.required, _ = sess.Values[keyMFARequired].(bool)
	if tid == 0 || tid != a.tenant.ID || time.Since(time.Unix(since, 0)) > mfaPendingFor {
		return p, false, nil
	}
	u, err := s.tenantAuth().Get(c.Request().Context(), a.tenant.ID, uid)
	if errors.Is(err, tenantauth.ErrNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	if u.SessionEpoch != epoch || !u.Active() || tenantauth.CheckOpen(a.tenant) != nil {
		return p, false, nil
	}
	p.user = u
	return p, true, nil
}

// portalMFAForm shows the enrolment (QR code) or the code prompt.
func (s *Server) portalMFAForm(c echo.Context) error {
	a := currentPortal(c)
	if a.signedIn() {
		return c.Redirect(http.StatusSeeOther, a.url(""))
	}
	p, ok, err := s.pendingMFA(c)
	if err != nil {
		return err
	}
	if !ok {
		return s.mfaStartOver(c, p.sess)
	}
	return s.renderMFA(c, http.StatusOK, p, "")
}

func (s *Server) renderMFA(c echo.Context, status int, p mfaPending, errMsg string) error {
	a := currentPortal(c)
	frame := portalFrame(&portalAccess{tenant: a.tenant, base: a.base})
	if p.enrolURL != "" {
		e, err := tenantauth.EnrolmentFromURL(p.enrolURL)
		if err != nil {
			return err
		}
		m := portal.MFAEnrol{CSRF: csrfToken(c), Base: a.base, TenantName: a.tenant.Name, Email: p.user.Email,
			QR: e.QR, Secret: e.Secret, Required: p.required, Error: errMsg}
		return s.render(c, status, page{Title: "Set up two-step sign-in · " + a.tenant.Name, Content: portal.MFAEnrolPage(m), Portal: frame})
	}
	m := portal.MFAVerify{CSRF: csrfToken(c), Base: a.base, TenantName: a.tenant.Name, Email: p.user.Email, Error: errMsg}
	return s.render(c, status, page{Title: "Sign-in code · " + a.tenant.Name, Content: portal.MFAVerifyPage(m), Portal: frame})
}

// mfaStartOver forgets a pending step that cannot continue and sends the browser to sign in.
func (s *Server) mfaStartOver(c echo.Context, sess *sessions.Session) error {
	a := currentPortal(c)
	if len(sess.Values) > 0 {
		sess.Values = map[any]any{}
		if err := s.saveSession(c, sess); err != nil {
			return err
		}
		s.flash(c, "info", "Your sign-in was not finished in time. Sign in again.")
	}
	return redirect(c, a.url("/login"))
}

// portalMFASubmit checks the code: it confirms an enrolment or verifies an enrolled factor,
// and on success starts the portal session.
func (s *Server) portalMFASubmit(c echo.Context) error {
	a := currentPortal(c)
	ctx := c.Request().Context()
	p, ok, err := s.pendingMFA(c)
	if err != nil {
		return err
	}
	if !ok {
		return s.mfaStartOver(c, p.sess)
	}
	code, addr := c.FormValue("code"), clientAddr(c).String()
	m := s.mfa()
	if p.enrolURL != "" {
		e, perr := tenantauth.EnrolmentFromURL(p.enrolURL)
		if perr != nil {
			return perr
		}
		err = m.Enrol(ctx, a.tenant.ID, p.user, e, code, addr)
		if errors.Is(err, tenantauth.ErrEnrolled) { // enrolled meanwhile, e.g. in another tab
			delete(p.sess.Values, keyMFAEnrolURL)
			if err := s.saveSession(c, p.sess); err != nil {
				return err
			}
			s.flash(c, "info", "Two-step sign-in is already set up for your account: enter a code from your app.")
			return redirect(c, a.url("/mfa"))
		}
	} else {
		err = m.Verify(ctx, a.tenant.ID, p.user, code, addr)
	}
	var throttled *tenantauth.ThrottledError
	switch {
	case errors.Is(err, tenantauth.ErrBadCode):
		return s.renderMFA(c, http.StatusUnprocessableEntity, p, "That code is not right. Enter the 6 digits your app shows now.")
	case errors.Is(err, tenantauth.ErrCodeReused):
		return s.renderMFA(c, http.StatusUnprocessableEntity, p, "That code was already used. Wait for your app to show a new one.")
	case errors.As(err, &throttled):
		minutes := int(math.Ceil(throttled.RetryAfter.Minutes()))
		return s.renderMFA(c, http.StatusTooManyRequests, p,
			fmt.Sprintf("Too many wrong codes. For your security, sign-in is paused: try again in %d minute%s.", minutes, plural(minutes)))
	case err != nil:
		return err
	}
	// The session starts now: only now is the user signed in (tenantauth.SignIn recorded the
	// password as accepted).
	if err := s.tenantAuth().SessionStarted(ctx, a.tenant.ID, p.user, addr, "totp"); err != nil {
		return err
	}
	p.sess.Values = map[any]any{}
	if err := s.saveSession(c, p.sess); err != nil {
		return err
	}
	if err := s.startPortalSession(c, a.tenant.ID, map[any]any{keyPortalUser: p.user.ID, keyPortalEpoch: p.user.SessionEpoch}); err != nil {
		return err
	}
	if p.enrolURL != "" {
		s.flash(c, "success", "Two-step sign-in is set up. From now on you will be asked for a code from your app after your password.")
	}
	return c.Redirect(http.StatusSeeOther, a.url(""))
}

// portalMFACancel abandons the pending sign-in.
func (s *Server) portalMFACancel(c echo.Context) error {
	a := currentPortal(c)
	sess := s.mfaSession(c)
	sess.Values = map[any]any{}
	if err := s.saveSession(c, sess); err != nil {
		return err
	}
	return redirect(c, a.url("/login"))
}
