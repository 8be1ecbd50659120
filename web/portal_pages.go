package web

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/portal"
)

// portalFrame is the layout's view of the request's portal access.
func portalFrame(a *portalAccess) *layouts.Portal {
	f := &layouts.Portal{TenantName: a.tenant.Name, Base: a.base, IsAdmin: a.isAdmin()}
	if v, ok := portalLooks.Load(a.tenant.ID); ok {
		l := v.(signup.Look)
		f.TenantName, f.LogoURL, f.Primary, f.Accent = l.Name, l.LogoURL, l.Primary, l.Accent
	}
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
	var err error
	if m.IsAdmin {
		users, err := s.tenantAuth().List(c.Request().Context(), a.tenant.ID)
		if err != nil {
			return err
		}
		for _, u := range users {
			m.Users = append(m.Users, portalUserRow(u))
		}
	}
	if m.Numbers, err = s.portalNumbers(c, a); err != nil {
		return err
	}
	frame := portalFrame(a)
	frame.Nav = "overview"
	return s.render(c, status, page{Title: a.tenant.Name, Content: portal.HomePage(m), Portal: frame})
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

// portalLooks holds each tenant portal's look (effective branding, inherited from its parent or
// reseller), refreshed by portalBranding at the start of every portal request, so every frame of
// that request (sign-in, MFA, pages, error pages) is drawn in it.
var portalLooks sync.Map // tenant id → signup.Look

// portalBranding resolves the tenant's look for the frame.
func (s *Server) portalBranding(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := currentPortal(c)
		if a != nil {
			l, err := s.signups().TenantLook(c.Request().Context(), a.tenant)
			if err != nil {
				return err
			}
			portalLooks.Store(a.tenant.ID, l)
		}
		return next(c)
	}
}

// portalPageRoutes adds the portal's sections to the tenant group t.
func (s *Server) portalPageRoutes(t *echo.Group) {
	t.GET("/users", s.portalUsers, s.requirePortalUser, s.requirePortalAdmin)
	t.POST("/invitations", s.portalInvite, s.requirePortalUser, s.requirePortalAdmin)
	t.POST("/users/:id/role", s.portalUserRole, s.requirePortalUser, s.requirePortalAdmin)
	t.POST("/users/:id/deactivate", s.portalUserActive(false), s.requirePortalUser, s.requirePortalAdmin)
	t.POST("/users/:id/reactivate", s.portalUserActive(true), s.requirePortalUser, s.requirePortalAdmin)
	t.GET("/audit", s.portalAudit, s.requirePortalUser, s.requirePortalAdmin)
}

// requirePortalAdmin refuses members: only the tenant's admins (and acting platform admins)
// manage users and read the audit trail.
func (s *Server) requirePortalAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !currentPortal(c).isAdmin() {
			return echo.NewHTTPError(http.StatusForbidden, "Only the tenant's admins may manage users and read the audit trail.")
		}
		return next(c)
	}
}

// portalNumbers are the overview's key numbers: plan, users, API keys, and the most used quota.
func (s *Server) portalNumbers(c echo.Context, a *portalAccess) ([]portal.Number, error) {
	ctx := c.Request().Context()
	plan := a.tenant.PlanKey
	if plans, err := s.tenants.Plans(ctx); err == nil {
		for _, p := range plans {
			if p.Key == a.tenant.PlanKey {
				plan = p.Name
			}
		}
	}
	users, active, keys, err := s.tenantAuth().Counts(ctx, a.tenant.ID)
	if err != nil {
		return nil, err
	}
	out := []portal.Number{
		{Label: "Plan", Value: plan, Detail: "State: " + a.tenant.State, Percent: -1},
		{Label: "Users", Value: strconv.FormatInt(active, 10), Detail: fmt.Sprintf("%d in all, %d deactivated", users, users-active), Percent: -1},
		{Label: "API keys", Value: strconv.FormatInt(keys, 10), Detail: "live", Percent: -1},
	}
	limits, err := s.quotas.Limits(ctx, a.tenant.ID)
	if err != nil {
		return nil, err
	}
	best, pct := -1, -1
	for i, l := range limits {
		if l.Hard <= 0 {
			continue
		}
		if p := int(min(100, l.Used*100/l.Hard)); p > pct {
			best, pct = i, p
		}
	}
	if best >= 0 {
		l := limits[best]
		out = append(out, portal.Number{Label: "Top quota use", Value: strconv.Itoa(pct) + "%",
			Detail: fmt.Sprintf("%s: %d of %d %s", l.Dimension.Name, l.Used, l.Hard, l.Dimension.Unit), Percent: pct})
	}
	return out, nil
}

// portalUsers lists the tenant's users with search and pagination, and the invitation form.
func (s *Server) portalUsers(c echo.Context) error {
	return s.renderPortalUsers(c, http.StatusOK, func(*portal.Users) {})
}

func (s *Server) renderPortalUsers(c echo.Context, status int, adjust func(*portal.Users)) error {
	ctx := c.Request().Context()
	a := currentPortal(c)
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	q := tenantauth.UserQuery{Search: strings.TrimSpace(c.QueryParam("q")), Page: max(pageNo, 1), PerPage: 25}
	users, total, admins, err := s.tenantAuth().UserPage(ctx, a.tenant.ID, q)
	if err != nil {
		return err
	}
	var me int64
	if a.user != nil {
		me = a.user.ID
	}
	m := portal.Users{CSRF: csrfToken(c), Base: a.base, TenantName: a.tenant.Name, Query: q.Search,
		Form: portal.InviteForm{Role: string(tenantauth.RoleMember)}}
	for _, u := range users {
		r := portalUserRow(u)
		m.Rows = append(m.Rows, portal.UserItem{ID: u.ID, Name: r.Name, Email: r.Email, Role: r.Role, LastSignIn: r.LastSignIn,
			Disabled: r.Disabled, Self: u.ID == me, LastAdmin: admins <= 1 && u.IsAdmin() && u.Active()})
	}
	m.Pager = components.PaginationProps{Page: q.Page, Pages: pages(total, q.PerPage), Total: total, Noun: "users",
		URL: func(p int) string {
			return a.url("/users") + "?" + url.Values{"q": {q.Search}, "page": {strconv.Itoa(p)}}.Encode()
		}}
	invites, err := s.tenantAuth().OpenInvitations(ctx, a.tenant.ID)
	if err != nil {
		return err
	}
	for _, i := range invites {
		m.Invites = append(m.Invites, portal.Invitation{Email: i.Email, Role: string(i.Role), Expires: i.ExpiresAt.UTC().Format(dateFormat + " 15:04 MST")})
	}
	if err := s.markPortalMFA(ctx, a.tenant.ID, m.Rows); err != nil { // portal_mfa_admin.go
		return err
	}
	adjust(&m)
	frame := portalFrame(a)
	frame.Nav = "users"
	return s.render(c, status, page{Title: "Users · " + a.tenant.Name, Content: portal.UsersPage(m), Portal: frame})
}

// portalInvite invites a person by e-mail with a role; the e-mail carries a single-use link.
func (s *Server) portalInvite(c echo.Context) error {
	a := currentPortal(c)
	ctx := c.Request().Context()
	look, err := s.signups().TenantLook(ctx, a.tenant)
	if err != nil {
		return err
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	in := tenantauth.NewInvitation{Email: c.FormValue("email"), Role: tenantauth.Role(c.FormValue("role")), BaseURL: signupBaseURL(c),
		DedupKey: fmt.Sprintf("invitation:%d:portal:%x", a.tenant.ID, nonce)}
	var inv tenantauth.Invitation
	// The e-mail is queued and drawn in the tenant's look in the same transaction.
	err = s.db.InTenant(ctx, a.tenant.ID, func(tx *gorm.DB) error {
		var err error
		if inv, err = tenantauth.InviteTx(tx, a.tenant, a.actor(), in); err != nil {
			return err
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return s.signups().WithBaseURL(signupBaseURL(c)).BrandInvitationTx(ptx, look, in.DedupKey, string(inv.Role), inv.ExpiresAt)
		})
	})
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderPortalUsers(c, http.StatusUnprocessableEntity, func(m *portal.Users) {
			m.Form, m.Refocus = portal.InviteForm{Email: in.Email, Role: string(in.Role), Errors: validation.Fields(err)}, true
		})
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Invitation sent to "+inv.Email+" as "+string(inv.Role)+". The link works once, for 7 days.")
	return redirect(c, a.url("/users"))
}

func portalUserID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return 0, echo.ErrNotFound
	}
	return id, nil
}

// portalUserChangeError turns a refused change into the message shown above the list.
func (s *Server) portalUserChangeError(c echo.Context, id int64, err error) error {
	msg := ""
	switch {
	case errors.Is(err, tenantauth.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, tenantauth.ErrSelf):
		msg = "You cannot change your own role or deactivate yourself; ask another admin."
	case errors.Is(err, tenantauth.ErrLastAdmin):
		msg = "This is the tenant's last active admin. Make someone else an admin first."
	default:
		return err
	}
	return s.renderPortalUsers(c, http.StatusConflict, func(m *portal.Users) { m.RowError, m.RowErrorID = msg, id })
}

func (a *portalAccess) userID() int64 {
	if a.user != nil {
		return a.user.ID
	}
	return 0
}

// portalUserRole changes a user's role.
func (s *Server) portalUserRole(c echo.Context) error {
	a := currentPortal(c)
	id, err := portalUserID(c)
	if err != nil {
		return err
	}
	role := tenantauth.Role(c.FormValue("role"))
	if role != tenantauth.RoleAdmin && role != tenantauth.RoleMember {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "Choose admin or member.")
	}
	u, err := s.tenantAuth().SetRole(c.Request().Context(), a.tenant.ID, id, a.userID(), a.actor(), role)
	if err != nil {
		return s.portalUserChangeError(c, id, err)
	}
	s.flash(c, "success", u.Name+" is now "+string(u.Role)+".")
	return redirect(c, a.url("/users"))
}

// portalUserActive deactivates (ending their sessions) or reactivates a user.
func (s *Server) portalUserActive(active bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := currentPortal(c)
		id, err := portalUserID(c)
		if err != nil {
			return err
		}
		u, err := s.tenantAuth().SetActive(c.Request().Context(), a.tenant.ID, id, a.userID(), a.actor(), active)
		if err != nil {
			return s.portalUserChangeError(c, id, err)
		}
		msg := u.Name + " is deactivated: they are signed out and cannot sign in until reactivated."
		if active {
			msg = u.Name + " is reactivated and can sign in again."
		}
		s.flash(c, "success", msg)
		return redirect(c, a.url("/users"))
	}
}

// portalAudit is the tenant's own audit trail with search and pagination.
func (s *Server) portalAudit(c echo.Context) error {
	a := currentPortal(c)
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	pageNo = max(pageNo, 1)
	q := strings.TrimSpace(c.QueryParam("q"))
	const per = 50
	events, total, err := s.tenantAuth().AuditPage(c.Request().Context(), a.tenant.ID, q, pageNo, per)
	if err != nil {
		return err
	}
	m := portal.Audit{Base: a.base, Query: q}
	for _, e := range events {
		detail := string(e.Detail)
		if detail == "{}" {
			detail = ""
		}
		m.Rows = append(m.Rows, portal.AuditRow{At: e.CreatedAt.UTC().Format(dateFormat + " 15:04:05 MST"), Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: detail})
	}
	m.Pager = components.PaginationProps{Page: pageNo, Pages: pages(total, per), Total: total, Noun: "events",
		URL: func(p int) string {
			return a.url("/audit") + "?" + url.Values{"q": {q}, "page": {strconv.Itoa(p)}}.Encode()
		}}
	frame := portalFrame(a)
	frame.Nav = "audit"
	return s.render(c, http.StatusOK, page{Title: "Audit trail · " + a.tenant.Name, Content: portal.AuditPage(m), Portal: frame})
}
