package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// Self-service signup: /signup (the platform's brand) and /signup/{brand}, rendered in the
// brand's look. After the e-mail link is confirmed, this browser holds a short signup session
// naming the signup, so its progress page can follow the provisioning run and, at the end, sign
// the visitor in to their new tenant's portal as its admin.

var signupServices sync.Map // *Server → *signup.Service

// signups is the server's signup service, wired to provisioning.
func (s *Server) signups() *signup.Service {
	if v, ok := signupServices.Load(s); ok {
		return v.(*signup.Service)
	}
	prov := provisioning.NewService(s.db, s.log, provisioning.WithKeys(s.keys))
	svc := signup.NewService(s.db, s.log, signup.Provisioning{Service: prov}, os.Getenv("TENANTRY_BASE_URL"))
	v, _ := signupServices.LoadOrStore(s, svc)
	return v.(*signup.Service)
}

// signupBaseURL is where links in signup e-mails point: TENANTRY_BASE_URL when set (it should be
// in production: a request's Host header is the visitor's to choose), otherwise this request's.
func signupBaseURL(c echo.Context) string {
	if u := os.Getenv("TENANTRY_BASE_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return c.Scheme() + "://" + c.Request().Host
}

func (s *Server) signupRoutes(g *echo.Group) {
	g.GET("/signup", s.signupForm)
	g.POST("/signup", s.signupSubmit)
	g.GET("/signup/slug", s.signupSlugCheck)
	g.GET("/signup/verify/:token", s.signupVerify)
	g.GET("/signup/progress", s.signupProgress)
	g.GET("/signup/continue", s.signupContinue)
	g.GET("/signup/:brand", s.signupForm)
	g.POST("/signup/:brand", s.signupSubmit)
}

const (
	signupSessionName = "tenantry_su"
	keySignupID       = "sid"
	keySignupAt       = "at"
	// signupSessionTTL bounds how long after confirming the e-mail this browser may be signed in
	// to the new portal without a password.
	signupSessionTTL = time.Hour
)

// signupBrand is the brand of the address: /signup is the platform's.
func (s *Server) signupBrand(c echo.Context) (signup.Brand, error) {
	ctx := c.Request().Context()
	var (
		b   signup.Brand
		err error
	)
	if slug := c.Param("brand"); slug != "" {
		b, err = s.signups().BrandBySlug(ctx, slug)
	} else {
		b, err = s.signups().PlatformBrand(ctx)
	}
	if errors.Is(err, signup.ErrNotFound) {
		return b, echo.NewHTTPError(http.StatusNotFound, "There is no signup page here.")
	}
	return b, err
}

// brandFrame is the minimal portal frame in b's look (with its owner's logo when it has none).
func (s *Server) brandFrame(c echo.Context, b signup.Brand) *layouts.Portal {
	l, err := s.signups().LookOf(c.Request().Context(), b)
	if err != nil {
		s.log.Warn("brand look", "id", requestID(c), "brand", b.Slug, "err", err)
		l = signup.BrandLook(b)
	}
	return &layouts.Portal{TenantName: l.Name, LogoURL: l.LogoURL, Primary: l.Primary, Accent: l.Accent, Subtitle: "Sign up"}
}

func (s *Server) renderSignup(c echo.Context, status int, b signup.Brand, m portal.Signup) error {
	ts, err := s.signups().BrandTemplates(c.Request().Context(), b)
	if err != nil {
		return err
	}
	for _, t := range ts {
		m.Templates = append(m.Templates, portal.TemplateChoice{ID: strconv.FormatInt(t.ID, 10), Name: t.Name})
	}
	if m.Template == "" && len(ts) > 0 {
		m.Template = strconv.FormatInt(ts[0].ID, 10)
	}
	m.CSRF, m.Action, m.Headline, m.Blurb, m.BrandName = csrfToken(c), b.SignupPath(), b.Headline, b.Blurb, b.DisplayName
	return s.render(c, status, page{Title: "Sign up · " + b.DisplayName, Content: portal.SignupPage(m), Portal: s.brandFrame(c, b)})
}

func (s *Server) signupForm(c echo.Context) error {
	b, err := s.signupBrand(c)
	if err != nil {
		return err
	}
	return s.renderSignup(c, http.StatusOK, b, portal.Signup{})
}

func (s *Server) signupNotice(c echo.Context, status int, b signup.Brand, n portal.Notice) error {
	return s.render(c, status, page{Title: n.Title, Content: portal.NoticePage(n), Portal: s.brandFrame(c, b)})
}

// signupSubmit stores the signup and queues the verification e-mail. A filled honeypot gets the
// same answer as a real signup, and nothing is stored.
func (s *Server) signupSubmit(c echo.Context) error {
	b, err := s.signupBrand(c)
	if err != nil {
		return err
	}
	in := signup.Input{OrgName: c.FormValue("org_name"), Slug: c.FormValue("slug"), Email: c.FormValue("email"),
		Password: c.FormValue("password"), TemplateID: c.FormValue("template"), Honeypot: c.FormValue("website"),
		RemoteAddr: addrText(clientAddr(c))}
	if !clientAddr(c).IsValid() {
		in.RemoteAddr = "unknown"
	}
	keep := portal.Signup{OrgName: in.OrgName, Slug: strings.ToLower(strings.TrimSpace(in.Slug)), Email: in.Email, Template: in.TemplateID}
	svc := s.signups().WithBaseURL(signupBaseURL(c))
	_, err = svc.Submit(c.Request().Context(), b, in)
	var limited *signup.RateLimitedError
	switch {
	case errors.Is(err, signup.ErrHoneypot):
		s.log.Info("signup refused: honeypot filled", "id", requestID(c), "brand", b.Slug, "addr", in.RemoteAddr)
	case errors.As(err, &limited):
		minutes := int(math.Ceil(limited.RetryAfter.Minutes()))
		keep.Error = fmt.Sprintf("Too many signups from your network or for this e-mail address. Try again in %d minute%s.", minutes, plural(minutes))
		return s.renderSignup(c, http.StatusTooManyRequests, b, keep)
	case errors.Is(err, validation.ErrInvalid):
		keep.Errors = validation.Fields(err)
		return s.renderSignup(c, http.StatusUnprocessableEntity, b, keep)
	case err != nil:
		return err
	}
	return s.signupNotice(c, http.StatusOK, b, portal.Notice{Title: "Check your inbox", TestID: "signup-sent",
		Body: "We sent a link to " + strings.ToLower(strings.TrimSpace(in.Email)) + ". Open it within 24 hours to confirm your address; your workspace is set up after that."})
}

// slugChecksPerMinute bounds the live checks one address may make, so the check cannot be used
// to list the tenants' slugs quickly (per server; a visitor types far fewer).
const slugChecksPerMinute = 60

type slugCheckWindow struct {
	start time.Time
	n     int
}

// slugLimiter counts live checks per address in one-minute windows.
type slugLimiter struct {
	mu      sync.Mutex
	windows map[string]*slugCheckWindow
}

var slugLimiters sync.Map // *Server → *slugLimiter

// slugCheckAllowed counts a check from addr and reports whether it is within the limit.
func (s *Server) slugCheckAllowed(addr string, now time.Time) bool {
	v, _ := slugLimiters.LoadOrStore(s, &slugLimiter{windows: map[string]*slugCheckWindow{}})
	l := v.(*slugLimiter)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.windows) > 10000 { // forget finished windows now and then
		for k, w := range l.windows {
			if now.Sub(w.start) > time.Minute {
				delete(l.windows, k)
			}
		}
	}
	w := l.windows[addr]
	if w == nil || now.Sub(w.start) > time.Minute {
		w = &slugCheckWindow{start: now}
		l.windows[addr] = w
	}
	w.n++
	return w.n <= slugChecksPerMinute
}

// signupSlugCheck answers the live availability check under the address field.
func (s *Server) signupSlugCheck(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !s.slugCheckAllowed(addrText(clientAddr(c)), time.Now()) { // answered like a check, so htmx shows it
		return write(c, http.StatusOK, portal.SlugStatus("limited", "Too many checks from your network; the address is checked when you submit."))
	}
	kind, msg, err := s.signups().SlugStatus(c.Request().Context(), c.QueryParam("slug"))
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, portal.SlugStatus(kind, msg))
}

// signupVerify uses the link from the e-mail, then shows the progress page.
func (s *Server) signupVerify(c echo.Context) error {
	ctx := c.Request().Context()
	svc := s.signups().WithBaseURL(signupBaseURL(c))
	su, err := svc.Verify(ctx, c.Param("token"))
	platform, _ := svc.PlatformBrand(ctx)
	switch {
	case errors.Is(err, signup.ErrLinkUnknown):
		return s.signupNotice(c, http.StatusNotFound, platform, portal.Notice{Kind: "error", Title: "This link is not valid", TestID: "verify-unknown",
			Body: "It may be incomplete: copy the whole address from the e-mail. If it still does not work, sign up again.", LinkLabel: "Sign up", LinkURL: "/signup"})
	case errors.Is(err, signup.ErrLinkExpired):
		return s.signupNotice(c, http.StatusGone, platform, portal.Notice{Kind: "error", Title: "This link has expired", TestID: "verify-expired",
			Body: "Confirmation links work for 24 hours. Nothing was created; sign up again to get a new link.", LinkLabel: "Sign up again", LinkURL: "/signup"})
	case errors.Is(err, signup.ErrLinkUsed):
		return s.signupNotice(c, http.StatusConflict, platform, portal.Notice{Kind: "error", Title: "This link was already used", TestID: "verify-used",
			Body: "Each confirmation link works once. If you confirmed already, your workspace is being set up or waiting for approval; you will get an e-mail when it is ready."})
	case err != nil:
		return err
	}
	sess, _ := s.sessions.Get(c.Request(), signupSessionName)
	sess.Values = map[any]any{keySignupID: su.ID, keySignupAt: time.Now().Unix()}
	if err := s.saveSession(c, sess); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/signup/progress")
}

// currentSignup is the signup this browser confirmed, within signupSessionTTL.
func (s *Server) currentSignup(c echo.Context) (int64, bool) {
	sess, _ := s.sessions.Get(c.Request(), signupSessionName)
	id, _ := sess.Values[keySignupID].(int64)
	at, _ := sess.Values[keySignupAt].(int64)
	if id == 0 || time.Since(time.Unix(at, 0)) > signupSessionTTL {
		return 0, false
	}
	return id, true
}

// signupProgress shows (and, for htmx, refreshes) the confirmed signup's progress.
func (s *Server) signupProgress(c echo.Context) error {
	id, ok := s.currentSignup(c)
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "There is no signup in progress in this browser. Open the link from your e-mail again, or sign in to your workspace.")
	}
	p, err := s.signups().Progress(c.Request().Context(), id)
	if err != nil {
		return err
	}
	m := portal.Progress{State: p.Signup.State, OrgName: p.Signup.OrgName, Slug: p.Signup.Slug}
	switch p.Signup.State {
	case signup.StateHeld:
		m.Message = p.Brand.DisplayName + " reviews new workspaces before they are set up. You will get an e-mail at " + p.Signup.Email + " when " + p.Signup.OrgName + " is ready."
	case signup.StateDone:
		m.ContinueURL = "/signup/continue"
	case signup.StateFailed:
		m.Message = p.Signup.Error
	case signup.StateRejected:
		m.Message = "Your request was not approved: " + p.Signup.Reason
	default:
		m.Poll = true
		m.Message = "This takes a few seconds. You can keep this page open; you will be signed in when it is done."
		if p.Run != nil {
			for _, st := range p.Run.Steps {
				m.Steps = append(m.Steps, portal.ProgressStep{Name: st.Name, State: st.State})
				if st.State == "done" {
					m.Done++
				}
			}
			m.Total = len(p.Run.Steps)
			m.Elapsed = p.Run.Elapsed.Round(100 * time.Millisecond).String()
			if p.Run.State == "failed" {
				m.Message = "A step failed and is being looked at by a platform admin: " + p.Run.Error
			}
		}
	}
	// Once done, htmx navigates straight to the portal.
	if m.State == signup.StateDone && isFragmentRequest(c) {
		c.Response().Header().Set("HX-Redirect", m.ContinueURL)
	}
	return s.render(c, http.StatusOK, page{Title: "Setting up " + p.Signup.OrgName, Content: portal.ProgressPage(m),
		Fragment: portal.ProgressPanel(m), Portal: s.brandFrame(c, p.Brand)})
}

// signupContinue signs the visitor who confirmed the signup in this browser in to the new
// tenant's portal as its admin, once.
func (s *Server) signupContinue(c echo.Context) error {
	ctx := c.Request().Context()
	id, ok := s.currentSignup(c)
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "There is no signup in progress in this browser.")
	}
	su, err := s.signups().Get(ctx, id)
	if err != nil {
		return err
	}
	if su.State != signup.StateDone || su.TenantID == nil {
		return c.Redirect(http.StatusSeeOther, "/signup/progress")
	}
	t, err := s.tenantAuth().Tenant(ctx, *su.TenantID)
	if err != nil {
		return err
	}
	uid, err := s.signups().AdminUserID(ctx, su)
	if err != nil {
		return err
	}
	u, err := s.tenantAuth().Get(ctx, t.ID, uid)
	if err != nil {
		return err
	}
	sess, _ := s.sessions.Get(c.Request(), signupSessionName)
	sess.Values = map[any]any{}
	if err := s.saveSession(c, sess); err != nil {
		return err
	}
	s.flash(c, "success", "Welcome to "+t.Name+". You are its admin: invite your colleagues from Users.")
	if err := s.signups().RecordSignIn(ctx, su, addrText(clientAddr(c))); err != nil {
		return err
	}
	// As after a password: signed in, or on to the second factor when the tenant's policy (its
	// template's compliance profile, say) requires one.
	c.Set(ctxPortal, &portalAccess{tenant: t, base: "/t/" + t.Slug})
	return s.portalPasswordAccepted(c, u)
}
