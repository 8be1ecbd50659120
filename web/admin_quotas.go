package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// quotasTab builds the Quotas tab of tenant t.
func (s *Server) quotasTab(c echo.Context, t tenant.Tenant) (admin.Quotas, error) {
	limits, err := s.quotas.Limits(c.Request().Context(), t.ID)
	if err != nil {
		return admin.Quotas{}, err
	}
	var m admin.Quotas
	for _, l := range limits {
		m.Rows = append(m.Rows, s.quotaRow(c, t, l))
	}
	return m, s.fillQuotaDynamics(c, t, &m)
}

func (s *Server) quotaRow(c echo.Context, t tenant.Tenant, l quota.Limit) admin.QuotaRow {
	u, _ := currentUser(c)
	r := admin.QuotaRow{Slug: t.Slug, CSRF: csrfToken(c), CanWrite: u.CanWrite(), Dimension: l.Dimension.Key,
		Name: l.Dimension.Name, Unit: l.Dimension.Unit, Kind: l.Dimension.Kind, Reset: l.Dimension.ResetPeriod,
		Soft: l.Soft, Hard: l.Hard, Used: l.Used, Remaining: l.Remaining, State: l.State, Default: l.Default,
		SoftInput: strconv.FormatInt(l.Soft, 10), HardInput: strconv.FormatInt(l.Hard, 10),
		Grants: l.Grants, Burst: burstText(l.Burst),
		BurstPercentInput: strconv.Itoa(l.Burst.Percent), BurstWindowInput: shortDuration(l.Burst.Window)}
	if !l.ResetAt.IsZero() {
		r.ResetAt = l.ResetAt.UTC().Format(dateFormat + " 15:04 MST")
	}
	return r
}

// quotaLimit loads the tenant and the limit named by :slug and :dimension.
func (s *Server) quotaLimit(c echo.Context) (tenant.Tenant, quota.Limit, error) {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return t, quota.Limit{}, err
	}
	l, err := s.quotas.Limit(ctx, t.ID, c.Param("dimension"))
	if errors.Is(err, quota.ErrUnknownDimension) {
		return t, l, echo.ErrNotFound
	}
	return t, l, err
}

// renderQuotaRow answers with one row: alone for htmx, or on the whole tab otherwise.
func (s *Server) renderQuotaRow(c echo.Context, status int, row admin.QuotaRow) error {
	if isFragmentRequest(c) {
		return write(c, status, admin.QuotaRowItem(row))
	}
	return s.renderTenant(c, status, "quotas", func(m *admin.TenantDetail) {
		for i := range m.Quotas.Rows {
			if m.Quotas.Rows[i].Dimension == row.Dimension {
				m.Quotas.Rows[i] = row
			}
		}
	})
}

// quotaShow is one dimension's row (what Cancel swaps back in).
func (s *Server) quotaShow(c echo.Context) error {
	t, l, err := s.quotaLimit(c)
	if err != nil {
		return err
	}
	return s.renderQuotaRow(c, http.StatusOK, s.quotaRow(c, t, l))
}

// quotaEdit is one dimension's row as its edit form; executives may not edit.
func (s *Server) quotaEdit(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	t, l, err := s.quotaLimit(c)
	if err != nil {
		return err
	}
	row := s.quotaRow(c, t, l)
	row.Editing = true
	return s.renderQuotaRow(c, http.StatusOK, row)
}

// quotaSave sets a dimension's soft and hard limit. It answers with the updated row, or with the
// form, the input kept and errors at the fields. htmx gets the form with status 200: htmx 2 does
// not swap 4xx answers, and the errors must replace the form; other requests get 422.
func (s *Server) quotaSave(c echo.Context) error {
	t, l, err := s.quotaLimit(c)
	if err != nil {
		return err
	}
	row := s.quotaRow(c, t, l)
	row.SoftInput, row.HardInput = strings.TrimSpace(c.FormValue("soft")), strings.TrimSpace(c.FormValue("hard"))
	errs := validation.Errors{}
	ch := quota.LimitChange{Soft: parseLimit(row.SoftInput, "soft", errs), Hard: parseLimit(row.HardInput, "hard", errs)}
	// Burst fields are optional: a form without them keeps the limit's burst settings.
	if v, ok := formValue(c, "burst_percent"); ok {
		row.BurstPercentInput = v
		if v == "" {
			v = "0"
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs.Add("burst_percent", "Enter a whole percentage from 0 (no burst) to 100.")
		}
		ch.BurstPercent = &n
	}
	if v, ok := formValue(c, "burst_window"); ok && v != "" {
		row.BurstWindowInput = v
		d, err := time.ParseDuration(v)
		if err != nil {
			errs.Add("burst_window", "Enter a window such as 30m or 1h.")
		}
		ch.BurstWindow = &d
	}
	if len(errs) == 0 {
		u, _ := currentUser(c)
		l, err = s.quotas.Change(c.Request().Context(), u.Email, t.ID, l.Dimension.Key, ch)
		if fields := validation.Fields(err); fields != nil {
			errs = fields
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		row.Editing, row.Errors = true, errs
		status := http.StatusUnprocessableEntity
		if isFragmentRequest(c) {
			status = http.StatusOK
		}
		return s.renderQuotaRow(c, status, row)
	}
	if !isFragmentRequest(c) {
		s.flash(c, "success", l.Dimension.Name+" limits saved.")
		return redirect(c, "/admin/tenants/"+t.Slug+"/quotas")
	}
	return s.renderQuotaRow(c, http.StatusOK, s.quotaRow(c, t, l))
}

// formValue is a form field's trimmed value and whether the form had the field.
func formValue(c echo.Context, name string) (string, bool) {
	if err := c.Request().ParseForm(); err != nil {
		return "", false
	}
	v, ok := c.Request().PostForm[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return strings.TrimSpace(v[0]), true
}

// shortDuration writes 1h0m0s as 1h and 30m0s as 30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseLimit reads a limit typed in the form; thousands separators are allowed.
func parseLimit(text, field string, errs validation.Errors) int64 {
	text = strings.NewReplacer(",", "", "_", "", " ", "").Replace(text)
	if text == "" {
		errs.Add(field, "Enter a limit: a whole number of zero or more.")
		return 0
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if strings.HasPrefix(text, "-") {
			errs.Add(field, "Enter a whole number of zero or more.")
		} else {
			errs.Add(field, "Enter a whole number, such as 1000.")
		}
		return 0
	}
	return n
}

// quotaOverview is the platform Quotas page: tenants blocked now and those nearest a limit.
func (s *Server) quotaOverview(c echo.Context) error {
	ps, err := s.quotas.Nearest(c.Request().Context(), 100)
	if err != nil {
		return err
	}
	var m admin.QuotaOverview
	if m.Chart, err = s.quotaChart(c.Request().Context(), nil, c.QueryParam("dimension"), c.QueryParam("granularity")); err != nil {
		return err
	}
	for _, p := range ps {
		r := admin.QuotaPressureRow{Slug: p.Slug, Tenant: p.Name, Dimension: p.DimensionName, Unit: p.Unit,
			Used: p.Used, Soft: p.Soft, Hard: p.Hard + p.Grants, State: p.State()}
		if r.State == quota.StateBlocked {
			m.Blocked = append(m.Blocked, r)
		} else if len(m.Nearest) < 50 {
			m.Nearest = append(m.Nearest, r)
		}
	}
	return s.render(c, http.StatusOK, page{Title: "Quotas", Nav: "quotas",
		Crumbs: []layouts.Crumb{{Label: "Quotas"}}, Content: admin.QuotaOverviewPage(m)})
}
