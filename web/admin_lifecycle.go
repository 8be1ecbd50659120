package web

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// The tenant's Lifecycle tab: decommissioning (internal/lifecycle), its campaign, exports, legal
// hold, purge and certificate; and the platform's /verify page (verify.go).

const lifecycleTime = "2 Jan 2006 15:04 MST"

// newLifecycle builds the server's lifecycle service from its configuration.
func newLifecycle(cfg Config, tenants *tenant.Service) *lifecycle.Service {
	return lifecycle.New(lifecycle.Config{DB: cfg.DB, Tenants: tenants, Keys: cfg.Keys, Master: cfg.Master, Log: cfg.Log, ExportDir: cfg.ExportDir})
}

// Lifecycle is the server's lifecycle service (the River workers and tests drive it).
func (s *Server) Lifecycle() *lifecycle.Service { return s.lifecycle }

// lifecycleRoutes adds the Lifecycle tab's actions to the admin group, the tenant portal's
// export page to web, and the public /verify page.
func (s *Server) lifecycleRoutes(web, admin *echo.Group) {
	base := "/tenants/:slug/lifecycle"
	admin.POST(base+"/start", s.lifecycleStart)
	admin.POST(base+"/cancel", s.lifecycleCancel)
	admin.POST(base+"/hold", s.lifecycleHold)
	admin.POST(base+"/hold/release", s.lifecycleHoldRelease)
	admin.POST(base+"/purge", s.lifecyclePurge)
	admin.POST(base+"/export", s.lifecycleExportRequest)
	admin.GET(base+"/exports", s.lifecycleExports)
	admin.GET(base+"/exports/:id/download", s.lifecycleExportDownload)
	admin.GET(base+"/messages/:id/edit", s.lifecycleMessageEdit)
	admin.POST(base+"/messages/:id", s.lifecycleMessageSave)
	admin.GET(base+"/certificate.json", s.lifecycleCertificate)
	admin.GET(base+"/certificate.pdf", s.lifecycleCertificate)
	admin.GET("/lifecycle/policies", s.lifecyclePolicies)
	admin.POST("/lifecycle/policies", s.lifecyclePolicySave)
	web.GET("/verify", s.verifyPage)
	web.POST("/verify", s.verifySubmit)
	s.portalExportRoutes(web)
}

func fmtTime(t time.Time) string { return t.UTC().Format(lifecycleTime) }

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// lifecycleTab builds the Lifecycle tab of tenant t.
func (s *Server) lifecycleTab(c echo.Context, t tenant.Tenant) (admin.LifecyclePanel, error) {
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	lc := s.lifecycle
	base := "/admin/tenants/" + t.Slug + "/lifecycle"
	m := admin.LifecyclePanel{Slug: t.Slug, Name: t.Name, State: t.State, CSRF: csrfToken(c), CanWrite: me.CanWrite(), Base: base,
		Now: fmtTime(lc.Now())}
	pol, err := lc.PolicyFor(ctx, t)
	if err != nil {
		return m, err
	}
	var srcs []string
	for k, v := range pol.Sources {
		srcs = append(srcs, strings.ReplaceAll(strings.TrimSuffix(k, "_days"), "_", " ")+" from "+v)
	}
	sort.Strings(srcs)
	m.Policy = admin.LifecyclePolicy{NoticeDays: pol.NoticeDays, ReadOnlyDays: pol.ReadOnlyDays, RetentionDays: pol.RetentionDays,
		ExportKeepDays: pol.ExportKeepDays, Contact: pol.ContactEmail, Compliance: pol.Compliance,
		Sources: fmt.Sprintf("compliance profile %s; %s", pol.Compliance, strings.Join(srcs, ", "))}
	if t.State == lifecycle.Active {
		m.Start = &admin.LifecycleStartForm{}
		children, err := s.tenants.Children(ctx, t)
		if err != nil {
			return m, err
		}
		for _, ch := range children {
			m.Children = append(m.Children, admin.Link{Label: ch.Name + " (" + ch.Slug + ")", Href: "/admin/tenants/" + ch.Slug})
		}
	}
	p, ok, err := lc.PlanOf(ctx, t.ID)
	if err != nil {
		return m, err
	}
	if ok {
		info := &admin.LifecyclePlanInfo{Reason: p.Reason, RequestedBy: p.RequestedBy, NoticeDays: p.NoticeDays, Started: fmtTime(p.StartedAt)}
		switch p.ChildrenAction {
		case "move":
			info.Children = "children moved to " + orTop(p.ChildrenTarget)
		case "decommission":
			info.Children = "children decommissioned too"
		}
		if p.CancelledAt != nil {
			by := ""
			if p.CancelledBy != nil {
				by = " by " + *p.CancelledBy
			}
			info.Cancelled = "Cancelled on " + fmtTime(*p.CancelledAt) + by + "; the tenant was reactivated."
		}
		m.Plan = info
		m.Timeline = timeline(t, p, lc.Now())
		msgs, err := lc.Campaign(ctx, t.ID)
		if err != nil {
			return m, err
		}
		del, err := lc.Deliveries(ctx, t.ID, msgs)
		if err != nil {
			return m, err
		}
		for _, msg := range msgs {
			r := admin.LifecycleMessageRow{ID: msg.ID, Label: lifecycle.MessageLabels[msg.Key], Scheduled: fmtTime(msg.ScheduledAt),
				Subject: msg.Subject, Recipients: msg.Recipients}
			if subj, _, err := lc.Preview(ctx, t, msg); err == nil {
				r.Subject = subj
			}
			d := del[msg.ID]
			switch {
			case msg.SentAt != nil:
				r.Status = "sent"
				r.Delivery = fmt.Sprintf("%d recipient(s): %d sent, %d pending, %d failed", msg.Recipients, d.Sent, d.Pending, d.Failed)
				if msg.Recipients == 0 {
					r.Delivery = "no active users to tell"
				}
			case msg.Skipped:
				r.Status, r.Delivery = "dropped", "not sent (cancelled)"
			default:
				r.Status, r.Delivery = "scheduled", "not sent yet"
				r.EditURL = base + "/messages/" + strconv.FormatInt(msg.ID, 10) + "/edit"
			}
			m.Messages = append(m.Messages, r)
		}
	}
	if m.Exports, err = s.exportList(c, t); err != nil {
		return m, err
	}
	if h, ok, err := lc.LegalHoldOf(ctx, t.ID); err != nil {
		return m, err
	} else if ok {
		m.Hold = &admin.LegalHoldInfo{Reason: h.Reason, SetBy: h.SetBy, SetAt: fmtTime(h.SetAt)}
	}
	m.CanCancel = lifecycle.CheckTransition(t.State, lifecycle.Active) == nil && t.State != lifecycle.Active
	if t.State == lifecycle.Exported {
		m.CanPurge = true
		if err := lc.PurgeCheck(ctx, t.ID); err != nil {
			m.PurgeBlocked = purgeMessage(err)
		}
	}
	if _, ok, err := lc.CertificateOf(ctx, t.ID); err != nil {
		return m, err
	} else if ok {
		m.Certificate = &admin.CertificateLinks{ID: certID(t, p), JSONURL: base + "/certificate.json", PDFURL: base + "/certificate.pdf"}
	}
	if !lc.CanSign() && t.State != lifecycle.Purged {
		m.Unsigned = "No master key is configured, so this server cannot sign certificates of destruction: purging is refused until one is."
	}
	return m, nil
}

func certID(t tenant.Tenant, p lifecycle.Plan) string {
	return fmt.Sprintf("TDC-%d-%d", t.ID, p.StartedAt.Unix())
}

func orTop(slug string) string {
	if slug == "" {
		return "the top level"
	}
	return slug
}

// timeline lays the plan's dated steps out against the lifecycle clock.
func timeline(t tenant.Tenant, p lifecycle.Plan, now time.Time) []admin.TimelineStep {
	order := map[string]int{"active": 0, "notice": 1, "degraded": 2, "suspended": 3, "exported": 4, "purged": 5}
	cur := order[t.State]
	if p.CancelledAt != nil {
		cur = -1
	}
	status := func(idx int) string {
		switch {
		case p.CancelledAt != nil && idx > 0:
			return "cancelled"
		case idx <= cur:
			return "done"
		case idx == cur+1:
			return "next"
		}
		return "pending"
	}
	purge := "after the export + " + strconv.Itoa(p.Policy.RetentionDays) + " days of retention"
	if p.PurgeAfter != nil {
		purge = "not before " + fmtTime(*p.PurgeAfter)
	} else {
		purge = "about " + fmtTime(p.SuspendAt.Add(time.Duration(p.Policy.RetentionDays)*24*time.Hour)) + " (" + purge + ")"
	}
	steps := []admin.TimelineStep{
		{Label: "Notice: users told, everything still works", When: fmtTime(p.StartedAt), Status: status(1)},
		{Label: "Read-only: writes refused in the portal and API", When: fmtTime(p.DegradeAt), Status: status(2)},
		{Label: "Suspended: sign-in and API keys refused, export made", When: fmtTime(p.SuspendAt), Status: status(3)},
		{Label: "Exported: archive ready, quotas released", When: orText(fmtTimePtr(p.ExportedAt), "when the export is done"), Status: status(4),
			Note: "The archive is kept " + strconv.Itoa(p.Policy.ExportKeepDays) + " days."},
		{Label: "Purged: schema, role and keys destroyed, certificate issued", When: orText(fmtTimePtr(p.PurgedAt), purge), Status: status(5),
			Note: "Retention " + strconv.Itoa(p.Policy.RetentionDays) + " days (" + orText(p.Policy.Sources["retention_days"], "global") + "); blocked while a legal hold is set."},
	}
	if status(1) != "cancelled" && cur >= 1 && cur < 5 && now.After(p.SuspendAt) && t.State == lifecycle.Degraded {
		steps[2].Note = "Due: the next tick (every minute) suspends the tenant."
	}
	return steps
}

func orText(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func purgeMessage(err error) string {
	switch {
	case errors.Is(err, lifecycle.ErrLegalHold):
		return "Purge refused: " + strings.TrimPrefix(err.Error(), "lifecycle: ") + "."
	case errors.Is(err, lifecycle.ErrRetention):
		return "Purge refused: " + strings.TrimPrefix(err.Error(), "lifecycle: ") + "."
	case errors.Is(err, lifecycle.ErrNoSigningKey):
		return "Purge refused: no master key is configured, so no certificate of destruction can be signed."
	}
	var te *lifecycle.TransitionError
	if errors.As(err, &te) {
		return "Not allowed: " + te.Reason + "."
	}
	return err.Error()
}

// lifecycleTenant loads the :slug tenant for an action.
func (s *Server) lifecycleTenant(c echo.Context) (tenant.Tenant, string, error) {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	u, _ := currentUser(c)
	return t, u.Email, err
}

func lifecycleURL(t tenant.Tenant) string { return "/admin/tenants/" + t.Slug + "/lifecycle" }

// lifecycleStart starts decommissioning, or re-renders the form with its errors.
func (s *Server) lifecycleStart(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	form := admin.LifecycleStartForm{Reason: c.FormValue("reason"), NoticeDays: strings.TrimSpace(c.FormValue("notice_days")),
		ChildrenAction: c.FormValue("children_action"), ChildrenTarget: c.FormValue("children_target")}
	in := lifecycle.StartInput{Reason: form.Reason, ChildrenAction: form.ChildrenAction, ChildrenTarget: form.ChildrenTarget}
	if form.NoticeDays != "" {
		n, err := strconv.Atoi(form.NoticeDays)
		if err != nil || n < 1 {
			n = -1 // the service names the field
		}
		in.NoticeDays = n
	}
	_, err = s.lifecycle.Start(c.Request().Context(), actor, t.ID, in)
	var te *lifecycle.TransitionError
	switch {
	case errors.Is(err, validation.ErrInvalid):
		form.Errors = validation.Fields(err)
		return s.renderTenant(c, http.StatusUnprocessableEntity, "lifecycle", func(m *admin.TenantDetail) {
			if m.Lifecycle.Start != nil {
				m.Lifecycle.Start = &form
			}
		})
	case errors.As(err, &te):
		s.flash(c, "error", "Not started: "+te.Reason+".")
		return redirect(c, lifecycleURL(t))
	case err != nil:
		return err
	}
	s.flash(c, "success", "Decommissioning of "+t.Name+" started; its users have been told.")
	return redirect(c, lifecycleURL(t))
}

func (s *Server) lifecycleCancel(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	err = s.lifecycle.Cancel(c.Request().Context(), actor, t.ID, c.FormValue("note"))
	var te *lifecycle.TransitionError
	switch {
	case errors.Is(err, validation.ErrInvalid):
		return s.renderTenant(c, http.StatusUnprocessableEntity, "lifecycle", func(m *admin.TenantDetail) {
			m.Lifecycle.CancelError = validation.Fields(err)["note"]
		})
	case errors.As(err, &te):
		s.flash(c, "error", "Not reactivated: "+te.Reason+".")
		return redirect(c, lifecycleURL(t))
	case err != nil:
		return err
	}
	s.flash(c, "success", t.Name+" is active again; its users can sign in and its API keys work (keys revoked once the export was made stay revoked).")
	return redirect(c, lifecycleURL(t))
}

func (s *Server) lifecycleHold(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	err = s.lifecycle.SetLegalHold(c.Request().Context(), actor, t.ID, c.FormValue("hold_reason"))
	var te *lifecycle.TransitionError
	switch {
	case errors.Is(err, validation.ErrInvalid):
		return s.renderTenant(c, http.StatusUnprocessableEntity, "lifecycle", func(m *admin.TenantDetail) {
			m.Lifecycle.HoldError = validation.Fields(err)["hold_reason"]
		})
	case errors.As(err, &te):
		s.flash(c, "error", te.Reason+".")
		return redirect(c, lifecycleURL(t))
	case err != nil:
		return err
	}
	s.flash(c, "success", "Legal hold set: "+t.Name+" will not be purged until it is released.")
	return redirect(c, lifecycleURL(t))
}

func (s *Server) lifecycleHoldRelease(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	if err := s.lifecycle.ReleaseLegalHold(c.Request().Context(), actor, t.ID); err != nil {
		return err
	}
	s.flash(c, "success", "Legal hold released.")
	return redirect(c, lifecycleURL(t))
}

func (s *Server) lifecyclePurge(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	cert, err := s.lifecycle.Purge(c.Request().Context(), actor, t.ID)
	var te *lifecycle.TransitionError
	switch {
	case errors.Is(err, lifecycle.ErrLegalHold), errors.Is(err, lifecycle.ErrRetention), errors.Is(err, lifecycle.ErrNoSigningKey),
		errors.Is(err, lifecycle.ErrNotStarted), errors.As(err, &te):
		s.flash(c, "error", purgeMessage(err))
		return redirect(c, lifecycleURL(t))
	case err != nil:
		return err
	}
	s.flash(c, "success", t.Name+" was purged. Certificate "+cert.ID+" was issued.")
	return redirect(c, lifecycleURL(t))
}

func (s *Server) lifecycleExportRequest(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	_, err = s.lifecycle.RequestExport(c.Request().Context(), actor, t.ID)
	var te *lifecycle.TransitionError
	if errors.As(err, &te) {
		s.flash(c, "error", "No export: "+te.Reason+".")
		return redirect(c, lifecycleURL(t))
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Export queued; its progress shows below.")
	return redirect(c, lifecycleURL(t))
}

// exportList builds the export list of t.
func (s *Server) exportList(c echo.Context, t tenant.Tenant) (admin.LifecycleExports, error) {
	me, _ := currentUser(c)
	base := lifecycleURL(t)
	m := admin.LifecycleExports{URL: base + "/exports", RequestURL: base + "/export", CSRF: csrfToken(c),
		CanRequest: me.CanWrite() && t.State != lifecycle.Purged && t.State != "provisioning"}
	es, err := s.lifecycle.Exports(c.Request().Context(), t.ID)
	if err != nil {
		return m, err
	}
	now := s.lifecycle.Now()
	for _, e := range es {
		r := admin.ExportRow{ID: e.ID, State: e.State, Requested: fmtTime(e.CreatedAt) + " by " + e.RequestedBy, Error: e.Error, SHA256: e.SHA256}
		if e.TablesTotal > 0 {
			r.Percent = 100 * e.TablesDone / e.TablesTotal
		}
		switch e.State {
		case lifecycle.ExportPending:
			r.Progress, m.Polling = "Waiting for a worker…", true
		case lifecycle.ExportRunning:
			r.Progress = fmt.Sprintf("%d of %d tables, %d rows, %s", e.TablesDone, e.TablesTotal, e.RowsDone, humanBytes(e.Bytes))
			m.Polling = true
		case lifecycle.ExportDone:
			r.Progress = fmt.Sprintf("%d tables, %d rows", e.TablesDone, e.RowsDone)
			r.Size, r.Expires = humanBytes(e.Bytes), fmtTimePtr(e.ExpiresAt)
			if e.ExpiresAt == nil || now.Before(*e.ExpiresAt) {
				r.DownloadURL = base + "/exports/" + strconv.FormatInt(e.ID, 10) + "/download"
			} else {
				r.Progress += " · no longer kept"
			}
		case lifecycle.ExportDeleted:
			r.Progress = "Archive deleted " + fmtTimePtr(e.DeletedAt)
		}
		m.Rows = append(m.Rows, r)
	}
	return m, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// lifecycleExports answers the export list's poll.
func (s *Server) lifecycleExports(c echo.Context) error {
	t, _, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	m, err := s.exportList(c, t)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, admin.LifecycleExportList(m))
}

func (s *Server) lifecycleExportDownload(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	return s.serveArchive(c, t, id, actor)
}

// serveArchive sends a finished export's archive, audited.
func (s *Server) serveArchive(c echo.Context, t tenant.Tenant, id int64, actor string) error {
	f, e, err := s.lifecycle.OpenArchive(c.Request().Context(), t.ID, id)
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, lifecycle.ErrNoExport):
		return echo.ErrNotFound
	case errors.Is(err, lifecycle.ErrExportExpired):
		return echo.NewHTTPError(http.StatusGone, "This export is no longer kept: archives are deleted after the policy's keeping period.")
	case err != nil:
		return err
	}
	defer f.Close()
	if err := s.lifecycle.RecordDownload(c.Request().Context(), actor, t, e); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", `attachment; filename="`+e.FileName+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-SHA256", e.SHA256)
	return c.Stream(http.StatusOK, "application/zip", f)
}

func (s *Server) lifecycleMessageEdit(c echo.Context) error {
	t, _, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	msgs, err := s.lifecycle.Campaign(c.Request().Context(), t.ID)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.ID == id && m.SentAt == nil && !m.Skipped {
			form := admin.LifecycleMessageForm{ID: m.ID, Label: lifecycle.MessageLabels[m.Key], Subject: m.Subject, Body: m.Body,
				ScheduledAt: m.ScheduledAt.UTC().Format("2006-01-02T15:04"), Action: lifecycleURL(t) + "/messages/" + c.Param("id")}
			if form.PreviewSubject, form.PreviewBody, err = s.lifecycle.Preview(c.Request().Context(), t, m); err != nil {
				return err
			}
			return s.renderTenant(c, http.StatusOK, "lifecycle", func(d *admin.TenantDetail) { d.Lifecycle.Edit = &form })
		}
	}
	return echo.ErrNotFound
}

func (s *Server) lifecycleMessageSave(c echo.Context) error {
	t, actor, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	form := admin.LifecycleMessageForm{ID: id, Subject: c.FormValue("subject"), Body: c.FormValue("body"), ScheduledAt: c.FormValue("scheduled_at"),
		Action: lifecycleURL(t) + "/messages/" + c.Param("id")}
	at, perr := time.ParseInLocation("2006-01-02T15:04", strings.TrimSpace(form.ScheduledAt), time.UTC)
	err = s.lifecycle.EditMessage(c.Request().Context(), actor, t.ID, id, lifecycle.MessageEdit{Subject: form.Subject, Body: form.Body, ScheduledAt: at})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return echo.ErrNotFound
	}
	if perr != nil || errors.Is(err, validation.ErrInvalid) {
		form.Errors = validation.Fields(err)
		if form.Errors == nil {
			form.Errors = map[string]string{}
		}
		if perr != nil {
			form.Errors["scheduled_at"] = "Enter a date and time, such as 2030-01-31T09:00."
		}
		return s.renderTenant(c, http.StatusUnprocessableEntity, "lifecycle", func(d *admin.TenantDetail) { d.Lifecycle.Edit = &form })
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Message saved.")
	return redirect(c, lifecycleURL(t))
}

// lifecycleCertificate sends the certificate of destruction: the signed JSON, or its PDF.
func (s *Server) lifecycleCertificate(c echo.Context) error {
	t, _, err := s.lifecycleTenant(c)
	if err != nil {
		return err
	}
	doc, ok, err := s.lifecycle.CertificateOf(c.Request().Context(), t.ID)
	if err != nil {
		return err
	}
	if !ok {
		return echo.ErrNotFound
	}
	name := "certificate-of-destruction-" + t.Slug
	if strings.HasSuffix(c.Path(), ".pdf") {
		sc, err := lifecycle.VerifyCertificate(doc)
		if err != nil {
			return err
		}
		pdf, err := lifecycle.CertificatePDF(sc)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`.pdf"`)
		return c.Blob(http.StatusOK, "application/pdf", pdf)
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
	return c.Blob(http.StatusOK, "application/json", doc)
}

func intText(v *int) string {
	if v == nil {
		return ""
	}
	return strconv.Itoa(*v)
}

// lifecyclePolicies shows the decommissioning policies.
func (s *Server) lifecyclePolicies(c echo.Context) error {
	return s.renderPolicies(c, http.StatusOK, nil)
}

func (s *Server) renderPolicies(c echo.Context, status int, failed *admin.LifecyclePolicyRow) error {
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	rows, err := s.lifecycle.Policies(ctx)
	if err != nil {
		return err
	}
	plans, err := s.tenants.Plans(ctx)
	if err != nil {
		return err
	}
	m := admin.LifecyclePolicies{CSRF: csrfToken(c), CanWrite: me.CanWrite(), New: admin.LifecyclePolicyRow{Scope: "plan", Key: "new"}}
	planName := map[string]string{}
	for _, p := range plans {
		planName[p.Key] = p.Name
		m.Plans = append(m.Plans, components.Option{Value: "plan:" + p.Key, Label: "Plan " + p.Name})
	}
	complianceName := map[string]string{}
	for _, o := range templates.ComplianceProfiles {
		complianceName[o.Value] = o.Label
		m.Compliance = append(m.Compliance, components.Option{Value: "compliance:" + o.Value, Label: "Compliance profile " + o.Label})
	}
	for _, r := range rows {
		v := admin.LifecyclePolicyRow{Scope: r.Scope, Key: r.Key, NoticeDays: intText(r.NoticeDays), ReadOnlyDays: intText(r.ReadOnlyDays),
			RetentionDays: intText(r.RetentionDays), ExportKeepDays: intText(r.ExportKeepDays)}
		if r.ContactEmail != nil {
			v.Contact = *r.ContactEmail
		}
		switch r.Scope {
		case "global":
			v.Label = "Global policy"
		case "plan":
			v.Label = "Plan " + orText(planName[r.Key], r.Key)
		default:
			v.Label = "Compliance profile " + orText(complianceName[r.Key], r.Key)
		}
		if failed != nil && failed.Scope == r.Scope && failed.Key == r.Key {
			failed.Label = v.Label
			v = *failed
		}
		m.Rows = append(m.Rows, v)
	}
	m.New.Key = ""
	if failed != nil && failed.Label == "" { // the add form failed
		m.New = *failed
		m.New.Key = failed.Scope + ":" + failed.Key
		if failed.Key == "" {
			m.New.Key = ""
		}
	}
	return s.render(c, status, page{Title: "Decommissioning policies", Nav: "tenants",
		Crumbs: []layouts.Crumb{{Label: "Decommissioning policies"}}, Content: admin.LifecyclePoliciesPage(m)})
}

// lifecyclePolicySave stores (or removes) one policy row, or re-renders it with its errors.
func (s *Server) lifecyclePolicySave(c echo.Context) error {
	me, _ := currentUser(c)
	scope, key := c.FormValue("scope"), c.FormValue("key")
	if s2, k2, ok := strings.Cut(key, ":"); ok { // the add form's select carries both
		scope, key = s2, k2
	}
	form := admin.LifecyclePolicyRow{Scope: scope, Key: key, NoticeDays: strings.TrimSpace(c.FormValue("notice_days")),
		ReadOnlyDays: strings.TrimSpace(c.FormValue("read_only_days")), RetentionDays: strings.TrimSpace(c.FormValue("retention_days")),
		ExportKeepDays: strings.TrimSpace(c.FormValue("export_keep_days")), Contact: strings.TrimSpace(c.FormValue("contact_email"))}
	if c.FormValue("delete") == "1" {
		if err := s.lifecycle.DeletePolicy(c.Request().Context(), me.Email, scope, key); err != nil {
			return err
		}
		s.flash(c, "success", "Override removed; those tenants now follow the broader policy.")
		return redirect(c, "/admin/lifecycle/policies")
	}
	errs := validation.Errors{}
	num := func(field, v string) *int {
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs.Add(field, "Enter a whole number of days, or leave it empty to inherit.")
			return nil
		}
		return &n
	}
	row := lifecycle.PolicyRow{Scope: scope, Key: key, NoticeDays: num("notice_days", form.NoticeDays), ReadOnlyDays: num("read_only_days", form.ReadOnlyDays),
		RetentionDays: num("retention_days", form.RetentionDays), ExportKeepDays: num("export_keep_days", form.ExportKeepDays)}
	if form.Contact != "" {
		row.ContactEmail = &form.Contact
	}
	if scope != "global" && scope != "plan" && scope != "compliance" {
		return echo.NewHTTPError(http.StatusBadRequest, "Unknown policy scope.")
	}
	err := errs.Err()
	if err == nil {
		err = s.lifecycle.SetPolicyBy(c.Request().Context(), me.Email, row)
	}
	if errors.Is(err, validation.ErrInvalid) {
		form.Errors = validation.Fields(err)
		for k, v := range errs {
			form.Errors[k] = v
		}
		return s.renderPolicies(c, http.StatusUnprocessableEntity, &form)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Policy saved. Tenants already being decommissioned keep the policy they started with.")
	return redirect(c, "/admin/lifecycle/policies")
}
