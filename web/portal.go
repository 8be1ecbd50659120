package web

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// The tenant portal: /t/{slug}/..., and the same pages at / on a tenant's own host name.
//
// A portal session is its own cookie, bound to one tenant: it names the tenant, and either a user
// of that tenant with the user's session epoch, or a platform admin acting as the tenant's admin
// with the reason and the start time. On any other tenant's pages it counts for nothing, so those
// pages send the browser to their own sign-in page.

// portalRoutes adds the tenant portal to the browser-page group g (session and CSRF already on).
// It also installs the pre-routing step that serves a tenant's portal at / on its own host name.
func (s *Server) portalRoutes(g *echo.Group) {
	s.echo.Pre(s.portalHosts())

	t := g.Group("/t/:slug", s.portalTenant, s.loadPortalUser, s.lifecyclePortalGuard, s.portalBranding)
	s.portalPageRoutes(t) // overview numbers, users, audit trail; branding (portal_pages.go)
	t.GET("/login", s.portalSignInForm)
	t.POST("/login", s.portalSignIn)
	t.POST("/logout", s.portalSignOut)
	s.portalMFARoutes(t)     // the second step of sign-in (portal_mfa.go)
	s.portalAccountRoutes(t) // Your account: two-step sign-in on/off, password (portal_account.go)
	s.mfaAdminRoutes(g, t)   // reset a user's two-step sign-in, admin and portal (portal_mfa_admin.go)
	t.GET("", s.portalHome, s.requirePortalUser)
	t.POST("/users", s.portalUserCreate, s.requirePortalUser)
	t.POST("/logout-all", s.portalSignOutEverywhere, s.requirePortalUser)
	// Platform admins only: executives get 403 from readOnlyForExecutives.
	t.POST("/act-as", s.actAsStart, s.requireUser, s.readOnlyForExecutives)
	t.POST("/act-as/stop", s.actAsStop)
}

const (
	portalSessionName = "tenantry_t"
	keyPortalTenant   = "tid"
	keyPortalUser     = "uid"
	keyPortalEpoch    = "epoch"
	keyActAsBy        = "act_by"       // platform user id
	keyActAsReason    = "act_reason"   // as recorded in the audit trails
	keyActAsSince     = "act_since_us" // unix microseconds: names the act-as session in the audit trails
	keyPortalSeen     = "seen"         // unix seconds of the last activity, for the idle timeout
	ctxPortal         = "tenantry.portal"
	ctxPortalHost     = "tenantry.portal_host"
)

// portalAccess is the tenant a portal request is for, and who may act in it.
type portalAccess struct {
	tenant tenant.Tenant
	// base is the portal's address prefix: /t/<slug>, or "" on the tenant's own host name.
	base string
	// user is the signed-in tenant user; nil when nobody is, or a platform admin acts as admin.
	user *tenantauth.User
	// actAs is set while a platform admin acts as the tenant's admin.
	actAs *actAsSession
	// actAsEnded is set when this request found an act-as session ended (expired, revoked).
	actAsEnded string
	// banner, when set, tells of the tenant's decommissioning on every page (lifecycle_guard.go).
	banner templ.Component
}

type actAsSession struct {
	by     identity.User
	reason string
	since  time.Time
}

func (a *portalAccess) signedIn() bool { return a.user != nil || a.actAs != nil }

// isAdmin reports whether the request may manage the tenant's users.
func (a *portalAccess) isAdmin() bool { return a.actAs != nil || (a.user != nil && a.user.IsAdmin()) }

// actor names who acts, for the tenant's audit trail.
func (a *portalAccess) actor() string {
	if a.actAs != nil {
		return tenantauth.ActingActor(a.actAs.by.Email)
	}
	return a.user.Email
}

// url is the portal address of path ("" for the home page).
func (a *portalAccess) url(path string) string {
	if a.base == "" && path == "" {
		return "/"
	}
	return a.base + path
}

func currentPortal(c echo.Context) *portalAccess {
	a, _ := c.Get(ctxPortal).(*portalAccess)
	return a
}

func (s *Server) tenantAuth() *tenantauth.Service { return tenantauth.NewService(s.db) }

// portalTenant resolves the tenant of the address; an unknown slug is a 404 page.
func (s *Server) portalTenant(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		a := &portalAccess{tenant: t, base: "/t/" + t.Slug}
		if _, ok := c.Get(ctxPortalHost).(string); ok {
			a.base = ""
		}
		c.Set(ctxPortal, a)
		return next(c)
	}
}

func (s *Server) portalSession(c echo.Context) *sessions.Session {
	sess, _ := s.sessions.Get(c.Request(), portalSessionName)
	return sess
}

// startPortalSession binds this browser's portal session to tenant tenantID with values,
// replacing any session it had for this or another tenant.
func (s *Server) startPortalSession(c echo.Context, tenantID int64, values map[any]any) error {
	sess := s.portalSession(c)
	sess.Values = map[any]any{keyPortalTenant: tenantID}
	for k, v := range values {
		sess.Values[k] = v
	}
	return s.saveSession(c, sess)
}

func (s *Server) endPortalSession(c echo.Context) error {
	sess := s.portalSession(c)
	sess.Values = map[any]any{}
	return s.saveSession(c, sess)
}

// loadPortalUser fills in who is signed in to this tenant's portal. A session bound to another
// tenant is ignored (left for that tenant); a revoked, disabled, expired or closed one is ended.
func (s *Server) loadPortalUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := currentPortal(c)
		sess := s.portalSession(c)
		if tid, _ := sess.Values[keyPortalTenant].(int64); tid == 0 || tid != a.tenant.ID {
			return next(c)
		}
		ctx := c.Request().Context()
		if by, _ := sess.Values[keyActAsBy].(int64); by != 0 {
			reason, _ := sess.Values[keyActAsReason].(string)
			sinceUnix, _ := sess.Values[keyActAsSince].(int64)
			since := time.UnixMicro(sinceUnix)
			pu, signedIn := currentUser(c)
			how := ""
			switch {
			case !signedIn || pu.ID != by || !pu.CanWrite() || tenantauth.CheckOpen(a.tenant) != nil:
				how = tenantauth.EndRevoked
			case time.Since(since) > tenantauth.ActAsMaxDuration:
				how = tenantauth.EndExpired
			}
			if how == "" {
				a.actAs = &actAsSession{by: pu, reason: reason, since: since}
				return next(c)
			}
			email := "unknown"
			if signedIn && pu.ID == by {
				email = pu.Email
			} else if u, err := s.users.Get(ctx, by); err == nil {
				email = u.Email
			}
			if err := s.tenantAuth().StopActing(ctx, a.tenant.ID, email, reason, how, since); err != nil {
				return err
			}
			a.actAsEnded = how
			if err := s.endPortalSession(c); err != nil {
				return err
			}
			return next(c)
		}
		uid, _ := sess.Values[keyPortalUser].(int64)
		epoch, _ := sess.Values[keyPortalEpoch].(int)
		u, err := s.tenantAuth().Get(ctx, a.tenant.ID, uid)
		switch {
		case err == nil && epoch == u.SessionEpoch && u.Active() && tenantauth.CheckOpen(a.tenant) == nil:
			idle, err := s.portalIdle(c, sess)
			if err != nil {
				return err
			}
			if idle != "" {
				if err := s.endPortalSession(c); err != nil {
					return err
				}
				s.flash(c, "info", "You were signed out after "+idle+" without activity, as "+a.tenant.Name+"'s policy asks.")
				return next(c)
			}
			a.user = &u
		case err == nil || errors.Is(err, tenantauth.ErrNotFound):
			if err := s.endPortalSession(c); err != nil {
				return err
			}
		default:
			return err
		}
		return next(c)
	}
}

// seenEvery bounds how often a portal session's last-activity time is rewritten (a cookie write).
const seenEvery = time.Minute

// portalIdle applies the tenant's idle timeout (security.session_timeout): it returns the
// timeout, worded, when the session has been idle longer, and otherwise refreshes the session's
// last-activity time (at most once a minute).
func (s *Server) portalIdle(c echo.Context, sess *sessions.Session) (string, error) {
	a := currentPortal(c)
	raw, err := s.tenantAuth().Policy(c.Request().Context(), a.tenant, "security.session_timeout")
	if err != nil {
		return "", err
	}
	timeout, err := time.ParseDuration(raw)
	if err != nil {
		return "", fmt.Errorf("session timeout %q: %w", raw, err)
	}
	now := time.Now()
	seen, _ := sess.Values[keyPortalSeen].(int64)
	if seen != 0 && now.Sub(time.Unix(seen, 0)) > timeout {
		return raw, nil
	}
	if now.Sub(time.Unix(seen, 0)) >= seenEvery {
		sess.Values[keyPortalSeen] = now.Unix()
		if err := s.saveSession(c, sess); err != nil {
			return "", err
		}
	}
	return "", nil
}

// requirePortalUser sends visitors without a session for this tenant to its sign-in page, and a
// platform admin whose act-as session just ended back to the tenant's page in the admin portal.
func (s *Server) requirePortalUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := currentPortal(c)
		if a.signedIn() {
			return next(c)
		}
		if a.actAsEnded != "" {
			msg := "Your act-as session for " + a.tenant.Name + " has ended: it lasts at most an hour. Start again with a reason if you still need it."
			if a.actAsEnded == tenantauth.EndRevoked {
				msg = "Your act-as session for " + a.tenant.Name + " has ended: your platform session or rights changed, or the tenant's portal closed."
			}
			s.flash(c, "info", msg)
			return redirect(c, "/admin/tenants/"+a.tenant.Slug+"/users")
		}
		return redirect(c, a.url("/login"))
	}
}

// portalClosedMessage says why nobody can use the tenant's portal in its current state.
func portalClosedMessage(t tenant.Tenant) string {
	switch t.State {
	case "provisioning":
		return t.Name + "'s portal is not open yet: the tenant is still being set up."
	case "suspended":
		return t.Name + " is suspended: its portal is closed, and nobody can sign in until it is reactivated."
	case "exported", "purged":
		return t.Name + " has been decommissioned: its portal is closed."
	default:
		return t.Name + "'s portal is closed (state: " + t.State + ")."
	}
}

// portalHostRefresh is how long a node serves from its copy of the tenants' host names.
const portalHostRefresh = 15 * time.Second

// portalHosts serves a tenant's portal on the tenant's own host name: a request whose Host is a
// tenant's host name is routed as /t/<slug><path>, so / is the tenant's home and /login its
// sign-in page, and nothing else (the admin portal, other tenants) is reachable on that host.
// Static files, operations endpoints and the API keep their own paths. Host names are read from
// the registry at most every portalHostRefresh, so a change takes effect within that time.
func (s *Server) portalHosts() echo.MiddlewareFunc {
	var (
		mu     sync.Mutex
		hosts  map[string]string
		expiry time.Time
	)
	lookup := func(c echo.Context, host string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().After(expiry) {
			m, err := s.tenantAuth().Hostnames(c.Request().Context())
			if err != nil {
				s.log.Warn("read tenant host names", "id", requestID(c), "err", err)
				expiry = time.Now().Add(2 * time.Second)
			} else {
				hosts, expiry = m, time.Now().Add(portalHostRefresh)
			}
		}
		slug, ok := hosts[host]
		return slug, ok
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			p := r.URL.Path
			for _, keep := range []string{"/static/", "/api/", "/healthz", "/readyz", "/metrics"} {
				if strings.HasPrefix(p, keep) {
					return next(c)
				}
			}
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = strings.TrimSuffix(strings.ToLower(host), ".")
			slug, ok := lookup(c, host)
			if !ok {
				return next(c)
			}
			c.Set(ctxPortalHost, slug)
			if p == "/" {
				p = ""
			}
			r.URL.Path = "/t/" + slug + p
			r.URL.RawPath = ""
			return next(c)
		}
	}
}
