package web

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/views/pages/portal"
	"github.com/tenantry/tenantry/views/pages/public"
)

// Progressive degradation, enforced for the tenant portal and the REST API:
//   - notice: everything works; a banner says what happens when;
//   - degraded: read-only: writes answer 423 Locked with the dates and a contact (API: JSON);
//   - suspended and later: sign-in and API keys are refused, naming the reason and a contact.

// statusLocked is 423: the tenant is read-only.
const statusLocked = http.StatusLocked

// safeMethod reports whether a request only reads.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// lifecycleNote is what people are told about a tenant being decommissioned.
type lifecycleNote struct {
	reason, contact      string
	degradeAt, suspendAt string
}

// lifecycleNoteFor reads the tenant's running decommissioning, if any.
func (s *Server) lifecycleNoteFor(c echo.Context, t tenant.Tenant) (lifecycleNote, bool, error) {
	p, ok, err := s.lifecycle.PlanOf(c.Request().Context(), t.ID)
	if err != nil || !ok || p.CancelledAt != nil {
		return lifecycleNote{}, false, err
	}
	return lifecycleNote{reason: p.Reason, contact: p.Policy.ContactEmail, degradeAt: fmtTime(p.DegradeAt), suspendAt: fmtTime(p.SuspendAt)}, true, nil
}

// portalWritesAllowed are the portal routes that stay usable while read-only: signing in and
// out, the act-as session and asking for an export of one's data.
var portalWritesAllowed = []string{"/login", "/logout", "/logout-all", "/act-as", "/act-as/stop", "/export"}

// lifecyclePortalGuard enforces the lifecycle on the tenant's portal: a banner while notice or
// read-only, 423 for writes while read-only, and a sign-in page naming the reason and a contact
// once the portal is closed.
func (s *Server) lifecyclePortalGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := currentPortal(c)
		if a == nil {
			return next(c)
		}
		t := a.tenant
		switch t.State {
		case lifecycle.Notice, lifecycle.Degraded:
			note, ok, err := s.lifecycleNoteFor(c, t)
			if err != nil {
				return err
			}
			if !ok { // put in this state without a dated plan (imported, demo data): still enforced
				note = lifecycleNote{reason: "no reason recorded", contact: "your provider", degradeAt: "now", suspendAt: "a date not set yet"}
			}
			exportHref := ""
			if a.isAdmin() {
				exportHref = a.url("/export")
			}
			if t.State == lifecycle.Notice {
				a.banner = public.LifecycleBanner(t.Name+" is being decommissioned.",
					"Reason: "+note.reason+". From "+note.degradeAt+" it becomes read-only; on "+note.suspendAt+" sign-in and API access end. Questions: "+note.contact+".", exportHref)
				return next(c)
			}
			a.banner = public.LifecycleBanner(t.Name+" is read-only.",
				"Reason: "+note.reason+". Changes are refused; on "+note.suspendAt+" sign-in and API access end. Export your data before then. Questions: "+note.contact+".", exportHref)
			rel := strings.TrimPrefix(c.Path(), "/t/:slug")
			if safeMethod(c.Request().Method) || allowedWhileReadOnly(rel) {
				return next(c)
			}
			return echo.NewHTTPError(statusLocked, t.Name+" is read-only while it is being decommissioned ("+note.reason+"): changes are refused. Its portal closes on "+
				note.suspendAt+". Questions: "+note.contact+".")
		case lifecycle.Suspended, lifecycle.Exported, lifecycle.Purged:
			if strings.HasSuffix(c.Path(), "/login") {
				msg, err := s.closedMessage(c, t)
				if err != nil {
					return err
				}
				return s.renderPortalSignIn(c, http.StatusForbidden, portal.SignIn{Closed: msg})
			}
		}
		return next(c)
	}
}

func allowedWhileReadOnly(rel string) bool {
	if strings.HasPrefix(rel, "/login/") || strings.HasPrefix(rel, "/mfa") {
		return true // the steps of signing in
	}
	return slices.Contains(portalWritesAllowed, rel)
}

// closedMessage says why a closed tenant refuses sign-in, with the reason and whom to contact.
func (s *Server) closedMessage(c echo.Context, t tenant.Tenant) (string, error) {
	p, ok, err := s.lifecycle.PlanOf(c.Request().Context(), t.ID)
	if err != nil || !ok {
		return portalClosedMessage(t), err
	}
	what := "is suspended"
	switch t.State {
	case lifecycle.Exported:
		what = "has been decommissioned and its data exported"
	case lifecycle.Purged:
		what = "has been decommissioned and its data destroyed"
	}
	return t.Name + " " + what + " (" + p.Reason + "): sign-in is refused. Contact " + p.Policy.ContactEmail + ".", nil
}

// lifecycleAPIGuard refuses writes through the API while the key's tenant is read-only. Called
// by requireAPIKey once the key is known.
func (s *Server) lifecycleAPIGuard(c echo.Context, p apikeys.Principal) error {
	if p.Tenant.State != lifecycle.Degraded || safeMethod(c.Request().Method) {
		return nil
	}
	note, ok, err := s.lifecycleNoteFor(c, p.Tenant)
	if err != nil {
		return err
	}
	msg := "Tenant " + p.Tenant.Slug + " is read-only while it is being decommissioned: writes are refused, reads still work."
	if ok {
		msg = "Tenant " + p.Tenant.Slug + " is read-only while it is being decommissioned (" + note.reason + "): writes, quota consumption and usage reports are refused, reads still work. API keys stop working on " +
			note.suspendAt + ". Contact " + note.contact + "."
	}
	return &apiError{Status: statusLocked, Code: "tenant_read_only", Message: msg}
}

// lifecycleNotServing words the refusal of an API key whose tenant is closed, naming the
// decommissioning's reason and a contact when there is one.
func (s *Server) lifecycleNotServing(c echo.Context, ns *apikeys.NotServingError) *apiError {
	ae := &apiError{Status: http.StatusForbidden, Code: "tenant_not_serving", Err: ns,
		Message: "Tenant " + ns.Slug + " is " + ns.State + ", so its API keys are refused until it is active again."}
	t, err := s.tenants.Get(c.Request().Context(), ns.Slug)
	if err != nil {
		return ae
	}
	if p, ok, err := s.lifecycle.PlanOf(c.Request().Context(), t.ID); err == nil && ok && p.CancelledAt == nil {
		ae.Message = "Tenant " + ns.Slug + " is " + ns.State + " (" + p.Reason + "), so its API keys are refused. Contact " + p.Policy.ContactEmail + "."
	}
	return ae
}

// portalExportRoutes serve the tenant admin's export page in the portal.
func (s *Server) portalExportRoutes(web *echo.Group) {
	// Per-route middleware, not a group: a group's middleware would also answer every unknown
	// address under /t/:slug (echo routes a group's not-found through it).
	mw := []echo.MiddlewareFunc{s.portalTenant, s.loadPortalUser, s.lifecyclePortalGuard, s.requirePortalUser}
	web.GET("/t/:slug/export", s.portalExport, mw...)
	web.POST("/t/:slug/export", s.portalExportRequest, mw...)
	web.GET("/t/:slug/export/:id/download", s.portalExportDownload, mw...)
}

func (s *Server) portalAdmin(c echo.Context) (*portalAccess, error) {
	a := currentPortal(c)
	if !a.isAdmin() {
		return a, echo.NewHTTPError(http.StatusForbidden, "Only the tenant's administrators can export its data.")
	}
	return a, nil
}

func (s *Server) portalExport(c echo.Context) error {
	a, err := s.portalAdmin(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	es, err := s.lifecycle.Exports(ctx, a.tenant.ID)
	if err != nil {
		return err
	}
	m := public.PortalExport{CSRF: csrfToken(c), Base: a.url(""), CanAsk: true}
	if m.Base == "/" {
		m.Base = ""
	}
	if note, ok, err := s.lifecycleNoteFor(c, a.tenant); err != nil {
		return err
	} else if ok {
		m.Notice = "The portal closes on " + note.suspendAt + ". Download your data before then; afterwards ask " + note.contact + "."
	}
	now := s.lifecycle.Now()
	for _, e := range es {
		r := public.ExportRow{ID: e.ID, State: e.State, When: fmtTime(e.CreatedAt)}
		switch e.State {
		case lifecycle.ExportPending, lifecycle.ExportRunning:
			m.Polling, m.CanAsk = true, false
			r.Progress = strconv.Itoa(e.TablesDone) + " of " + strconv.Itoa(e.TablesTotal) + " tables"
		case lifecycle.ExportDone:
			r.Size, r.SHA256, r.Expires = humanBytes(e.Bytes), e.SHA256, fmtTimePtr(e.ExpiresAt)
			if e.ExpiresAt == nil || now.Before(*e.ExpiresAt) {
				r.DownloadURL = m.Base + "/export/" + strconv.FormatInt(e.ID, 10) + "/download"
			}
		}
		m.Rows = append(m.Rows, r)
	}
	return s.render(c, http.StatusOK, page{Title: "Export · " + a.tenant.Name, Content: public.PortalExportPage(m), Portal: portalFrame(a)})
}

func (s *Server) portalExportRequest(c echo.Context) error {
	a, err := s.portalAdmin(c)
	if err != nil {
		return err
	}
	if _, err := s.lifecycle.RequestExport(c.Request().Context(), a.actor(), a.tenant.ID); err != nil {
		return err
	}
	s.flash(c, "success", "Your export is being prepared; this page refreshes until it is ready.")
	return redirect(c, a.url("/export"))
}

func (s *Server) portalExportDownload(c echo.Context) error {
	a, err := s.portalAdmin(c)
	if err != nil {
		return err
	}
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	err = s.serveArchive(c, a.tenant, id, a.actor())
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return echo.ErrNotFound
	}
	return err
}
