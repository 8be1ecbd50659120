package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// newProvisioning is the server's provisioning service. It only inserts jobs; the River client
// started by `tenantry serve` (or a test) works them. E-mail links use TENANTRY_BASE_URL.
func newProvisioning(cfg Config) *provisioning.Service {
	return provisioning.NewService(cfg.DB, cfg.Log, provisioning.WithKeys(cfg.Keys), provisioning.WithBaseURL(os.Getenv("TENANTRY_BASE_URL")))
}

// Provisioning is the server's provisioning service, for the process to work its runs with.
func (s *Server) Provisioning() *provisioning.Service { return s.provisioning }

var provisioningCrumb = layouts.Crumb{Label: "Provisioning", Href: "/admin/provisioning"}

// provisioningRoutes: the Provisioning page, a run's page and actions, bulk CSV; the invitation
// link of the tenant portal.
func (s *Server) provisioningRoutes(adm, web *echo.Group) {
	adm.GET("/provisioning", s.runList)
	adm.GET("/provisioning/runs/:id", s.runShow)
	adm.POST("/provisioning/runs/:id/retry", s.runRetry)
	adm.POST("/provisioning/runs/:id/cancel", s.runCancel)
	adm.GET("/provisioning/bulk", s.bulkForm)
	adm.POST("/provisioning/bulk", s.bulkUpload)
	adm.GET("/provisioning/bulk/:id", s.bulkShow)
	adm.POST("/provisioning/bulk/:id/start", s.bulkStart)
	s.invitationRoutes(web)
}

func formatElapsed(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return d.Round(time.Minute).String()
	}
}

// runPanel converts a run for the progress panel.
func (s *Server) runPanel(c echo.Context, r provisioning.Run) admin.RunPanel {
	me, _ := currentUser(c)
	now := time.Now()
	done, total := r.Progress()
	m := admin.RunPanel{ID: r.ID, TenantSlug: r.TenantSlug, TenantName: r.TenantName, State: r.State, Error: r.Error,
		AdminEmail: r.AdminEmail, RequestedBy: r.RequestedBy, Started: r.CreatedAt.Format(dateFormat + " 15:04:05 MST"),
		Elapsed: formatElapsed(r.Elapsed(now)), Done: done, Total: total, Active: r.Active(), CanRetry: r.CanRetry(), CanCancel: r.CanCancel(),
		CanWrite: me.CanWrite(), CSRF: csrfToken(c), PollURL: "/admin/provisioning/runs/" + strconv.FormatInt(r.ID, 10)}
	if r.TemplateVersionID != nil {
		if v, err := templates.NewService(s.db).Version(c.Request().Context(), *r.TemplateVersionID); err == nil {
			m.Template = v.Label()
		}
	}
	if r.TenantID != nil {
		if t, err := s.tenants.Get(c.Request().Context(), r.TenantSlug); err == nil {
			m.TenantState = t.State
		}
	}
	for _, st := range r.Steps {
		row := admin.RunStep{Position: st.Position, Name: st.Name, State: st.State, Attempts: st.Attempts, Error: st.Error, Note: st.Note}
		switch {
		case st.DurationMS != nil:
			row.Duration = formatElapsed(time.Duration(*st.DurationMS) * time.Millisecond)
		case st.State == provisioning.StepRunning && st.StartedAt != nil:
			row.Duration = formatElapsed(now.Sub(*st.StartedAt))
		}
		if st.State == provisioning.StepPending && st.Error != "" && st.RetryAt != nil {
			row.State = "retrying"
			row.Error = st.Error + " (attempt " + strconv.Itoa(st.Attempts) + " failed; retrying)"
		}
		m.Steps = append(m.Steps, row)
	}
	return m
}

// tenantRunPanel is the panel on a tenant's Overview tab: its latest run, or nil when it has
// none (tenants made before provisioning runs, or by the demo seed).
func (s *Server) tenantRunPanel(c echo.Context, tenantID int64) (*admin.RunPanel, error) {
	r, err := s.provisioning.LatestForTenant(c.Request().Context(), tenantID)
	if errors.Is(err, provisioning.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := s.runPanel(c, r)
	return &m, nil
}

func (s *Server) loadRun(c echo.Context) (provisioning.Run, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return provisioning.Run{}, echo.ErrNotFound
	}
	r, err := s.provisioning.Run(c.Request().Context(), id)
	if errors.Is(err, provisioning.ErrNotFound) {
		return r, echo.ErrNotFound
	}
	return r, err
}

// runShow is a run's page; the panel's polling gets the panel alone (with the tenant page's
// state badge out of band).
func (s *Server) runShow(c echo.Context) error {
	r, err := s.loadRun(c)
	if err != nil {
		return err
	}
	m := s.runPanel(c, r)
	if isFragmentRequest(c) {
		m.OOB = true
		if r.State == "done" && strings.Contains(c.Request().Header.Get("HX-Current-URL"), "/admin/tenants/") {
			m.RefreshURL = "/admin/tenants/" + r.TenantSlug
		}
		return write(c, http.StatusOK, admin.RunPanelView(m))
	}
	return s.render(c, http.StatusOK, page{Title: "Provisioning of " + r.TenantName, Nav: "provisioning",
		Crumbs: []layouts.Crumb{provisioningCrumb, {Label: "Run #" + strconv.FormatInt(r.ID, 10)}}, Content: admin.RunPage(m)})
}

// runAction retries or cancels a run, then shows the panel (htmx) or goes back (plain form).
func (s *Server) runAction(c echo.Context, act func(context.Context, int64, string) error, done string) error {
	u, _ := currentUser(c)
	r, err := s.loadRun(c)
	if err != nil {
		return err
	}
	if err := act(c.Request().Context(), r.ID, u.Email); errors.Is(err, provisioning.ErrState) {
		s.flash(c, "error", "Run #"+strconv.FormatInt(r.ID, 10)+" is "+r.State+" now; nothing was changed.")
	} else if err != nil {
		return err
	} else {
		s.flash(c, "success", done)
	}
	if isFragmentRequest(c) {
		if r, err = s.provisioning.Run(c.Request().Context(), r.ID); err != nil {
			return err
		}
		m := s.runPanel(c, r)
		return write(c, http.StatusOK, admin.RunPanelView(m))
	}
	back := "/admin/provisioning/runs/" + strconv.FormatInt(r.ID, 10)
	if r.TenantID != nil {
		back = "/admin/tenants/" + r.TenantSlug
	}
	return redirect(c, back)
}

func (s *Server) runRetry(c echo.Context) error {
	return s.runAction(c, s.provisioning.Retry, "Run retried from the step that failed.")
}

func (s *Server) runCancel(c echo.Context) error {
	return s.runAction(c, s.provisioning.Cancel, "Run cancelled: its steps are being undone.")
}

// runList is the Provisioning page.
func (s *Server) runList(c echo.Context) error {
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	state := c.QueryParam("state")
	q := provisioning.ListQuery{State: state, Search: c.QueryParam("q"), Page: pageNo}
	if state == provisioning.StateRunning {
		q.State = "" // "running" shows everything still working: pending, running, cancelling
	}
	res, err := s.listRuns(ctx, q, state)
	if err != nil {
		return err
	}
	m := admin.RunList{State: state, Search: res.Query.Search, Page: res.Query.Page, Pages: res.Pages(), Total: res.Total,
		Counts: map[string]int64{}, CanWrite: me.CanWrite()}
	for k, n := range res.ByState {
		m.Counts[k] += n
		if k == provisioning.StatePending || k == provisioning.StateCancelling {
			m.Counts[provisioning.StateRunning] += n
		}
	}
	now := time.Now()
	for _, r := range res.Runs {
		m.Rows = append(m.Rows, admin.RunRow{ID: r.ID, TenantSlug: r.TenantSlug, TenantName: r.TenantName, Linked: r.TenantID != nil,
			State: r.State, Done: r.StepsDone, Total: r.StepsTotal, FailedStep: r.FailedStep, Error: r.Error,
			Created: r.CreatedAt.Format(dateFormat + " 15:04"), Elapsed: formatElapsed(r.Elapsed(now))})
	}
	if state == "" && m.Search == "" && m.Page <= 1 {
		bs, err := s.provisioning.RecentBatches(ctx, 5)
		if err != nil {
			return err
		}
		for _, b := range bs {
			m.Batches = append(m.Batches, admin.BatchRow{ID: b.ID, Filename: b.Filename, Rows: len(b.Rows), Created: b.CreatedAt.Format(dateFormat + " 15:04")})
		}
	}
	return s.render(c, http.StatusOK, page{Title: "Provisioning", Nav: "provisioning", Crumbs: []layouts.Crumb{{Label: "Provisioning"}},
		Content: admin.RunListPage(m)})
}

// listRuns lists runs; the "running" filter covers every run still at work.
func (s *Server) listRuns(ctx context.Context, q provisioning.ListQuery, state string) (provisioning.ListResult, error) {
	if state != provisioning.StateRunning {
		return s.provisioning.List(ctx, q)
	}
	q.State = provisioning.StateRunning
	res, err := s.provisioning.List(ctx, q)
	if err != nil {
		return res, err
	}
	// Pending and cancelling runs are at work too; they are rare and short-lived, so they are
	// shown on the first page above the running ones.
	if q.Page <= 1 {
		for _, st := range []string{provisioning.StateCancelling, provisioning.StatePending} {
			more, err := s.provisioning.List(ctx, provisioning.ListQuery{State: st, Search: q.Search, PerPage: 50})
			if err != nil {
				return res, err
			}
			res.Runs = append(more.Runs, res.Runs...)
			res.Total += more.Total
		}
	}
	return res, nil
}

// bulkForm is the CSV upload form.
func (s *Server) bulkForm(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	return s.renderBulkForm(c, http.StatusOK, "")
}

func (s *Server) renderBulkForm(c echo.Context, status int, problem string) error {
	return s.render(c, status, page{Title: "Bulk provisioning", Nav: "provisioning",
		Crumbs: []layouts.Crumb{provisioningCrumb, {Label: "Bulk CSV upload"}}, Content: admin.BulkUploadPage(admin.BulkUpload{CSRF: csrfToken(c), Error: problem})})
}

// bulkUpload checks an uploaded CSV into a stored batch and shows its preview.
func (s *Server) bulkUpload(c echo.Context) error {
	u, _ := currentUser(c)
	fh, err := c.FormFile("file")
	if err != nil {
		return s.renderBulkForm(c, http.StatusUnprocessableEntity, "Choose a CSV file to upload.")
	}
	if fh.Size > provisioning.MaxBatchBytes {
		return s.renderBulkForm(c, http.StatusUnprocessableEntity, fmt.Sprintf("The file is larger than %d MB; split it into smaller files.", provisioning.MaxBatchBytes>>20))
	}
	f, err := fh.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, provisioning.MaxBatchBytes+1))
	if err != nil {
		return err
	}
	b, err := s.provisioning.CheckCSV(c.Request().Context(), u.Email, fh.Filename, data)
	if err != nil {
		return err
	}
	return redirect(c, "/admin/provisioning/bulk/"+strconv.FormatInt(b.ID, 10))
}

func (s *Server) loadBatch(c echo.Context) (provisioning.Batch, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return provisioning.Batch{}, echo.ErrNotFound
	}
	b, err := s.provisioning.Batch(c.Request().Context(), id)
	if errors.Is(err, provisioning.ErrBatchNotFound) {
		return b, echo.ErrNotFound
	}
	return b, err
}

// bulkShow is a batch: the preview with each row's problems, then the runs' progress.
func (s *Server) bulkShow(c echo.Context) error {
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	b, err := s.loadBatch(c)
	if err != nil {
		return err
	}
	m := admin.Batch{ID: b.ID, Filename: b.Filename, FileError: b.FileError, Started: b.StartedAt != nil, CanWrite: me.CanWrite(), CSRF: csrfToken(c)}
	m.Valid, m.Invalid = b.Counts()
	states := map[int64]string{}
	if m.Started {
		if states, err = s.provisioning.RunStatesOf(ctx, b.ID); err != nil {
			return err
		}
		m.Valid, m.Invalid = 0, 0
		for _, st := range states {
			switch st {
			case provisioning.StateDone:
				m.Done++
			case provisioning.StateFailed:
				m.Failed++
			case provisioning.StateCancelled:
				m.Cancelled++
			default:
				m.Running++
			}
		}
		m.Active = m.Running > 0
	}
	for _, r := range b.Rows {
		line := admin.BatchLine{Line: r.Line, Name: r.Name, Slug: r.Slug, Template: r.Template, AdminEmail: r.AdminEmail, Parent: r.Parent}
		for _, k := range []string{"line", "name", "slug", "template", "admin_email", "parent", "plan"} {
			if msg := r.Errors[k]; msg != "" {
				line.Errors = append(line.Errors, bulkFieldLabel(k)+": "+msg)
			}
		}
		if r.RunID != nil {
			line.RunID, line.RunState = *r.RunID, states[*r.RunID]
		}
		if m.Started {
			if r.RunID != nil {
				m.Valid++
			} else {
				m.Invalid++
			}
		}
		m.Rows = append(m.Rows, line)
	}
	if isFragmentRequest(c) {
		return write(c, http.StatusOK, admin.BatchBody(m))
	}
	return s.render(c, http.StatusOK, page{Title: "CSV batch " + b.Filename, Nav: "provisioning",
		Crumbs: []layouts.Crumb{provisioningCrumb, {Label: "Batch " + b.Filename}}, Content: admin.BatchPage(m)})
}

func bulkFieldLabel(k string) string {
	switch k {
	case "admin_email":
		return "Admin e-mail"
	case "line":
		return "Line"
	}
	return string(k[0]-'a'+'A') + k[1:]
}

// bulkStart starts one run per valid row.
func (s *Server) bulkStart(c echo.Context) error {
	u, _ := currentUser(c)
	b, err := s.loadBatch(c)
	if err != nil {
		return err
	}
	plans, err := s.tenants.Plans(c.Request().Context())
	if err != nil {
		return err
	}
	plan := ""
	if len(plans) > 0 {
		plan = plans[0].Key // rows without a template get the first (cheapest) plan
	}
	b, err = s.provisioning.StartBatch(c.Request().Context(), b.ID, u.Email, plan)
	switch {
	case errors.Is(err, provisioning.ErrState):
		s.flash(c, "error", "This batch was already started.")
	case err != nil:
		return err
	default:
		valid, _ := b.Counts()
		s.flash(c, "success", fmt.Sprintf("Started %d provisioning runs.", valid))
	}
	return redirect(c, "/admin/provisioning/bulk/"+strconv.FormatInt(b.ID, 10))
}

// templateOptions lists the templates a new tenant may be made from.
func (s *Server) templateOptions(ctx context.Context) ([]components.Option, error) {
	res, err := templates.NewService(s.db).List(ctx, templates.ListQuery{PerPage: 100})
	if err != nil {
		return nil, err
	}
	opts := []components.Option{{Value: "", Label: "No template (choose a plan)"}}
	for _, t := range res.Items {
		if t.Archived() {
			continue
		}
		opts = append(opts, components.Option{Value: strconv.FormatInt(t.ID, 10), Label: t.Name})
	}
	return opts, nil
}
