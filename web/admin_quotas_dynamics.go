package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// quotaDynamicsRoutes are the grants, burst, pools, alerts, scaling rules and charts of quotas.
func (s *Server) quotaDynamicsRoutes(g *echo.Group) {
	// Alerts this server records itself (a scaling rule applied from its page) are delivered too.
	if err := s.quotas.SetNotifier(&quota.Notifier{Prefs: quota.SettingsPrefs(s.db, settings.NewService(s.db.App, s.tenants)),
		Secret: quota.SettingsSecret(s.db, settings.NewService(s.db.App, s.tenants).WithKeys(s.keys))}); err != nil {
		s.log.Error("quota alerts will not be e-mailed or posted from this server", "error", err)
	}
	g.GET("/quotas/bell", s.quotaBell)
	g.GET("/quotas/chart", s.quotaPlatformChart)
	g.GET("/quotas/alerts", s.quotaAlertsPage)
	g.POST("/quotas/alerts/read", s.quotaAlertsRead)
	g.POST("/quotas/thresholds", s.quotaPlatformThresholds)
	g.GET("/quotas/rules", s.quotaRules)
	g.POST("/quotas/rules", s.quotaRuleCreate)
	g.GET("/quotas/rules/:id/preview", s.quotaRulePreview)
	g.POST("/quotas/rules/:id/apply", s.quotaRuleApply)
	g.POST("/quotas/rules/:id/delete", s.quotaRuleDelete)
	g.POST("/quotas/rules/:id/toggle", s.quotaRuleToggle)
	g.GET("/tenants/:slug/quotas-chart", s.quotaTenantChart)
	g.POST("/tenants/:slug/quotas/grants", s.quotaGrantAdd)
	g.POST("/tenants/:slug/quotas/grants/:id/revoke", s.quotaGrantRevoke)
	g.POST("/tenants/:slug/quotas/thresholds", s.quotaTenantThresholds)
	g.POST("/tenants/:slug/quotas/webhook", s.quotaTenantWebhook)
	g.POST("/tenants/:slug/quotas/pools", s.quotaTenantPool)
	g.POST("/tenants/:slug/quotas/alerts/read", s.quotaTenantAlertsRead)
}

const minuteFormat = "2 Jan 2006 15:04 MST"

// burstText describes a limit's burst capacity and today's window.
func burstText(b quota.Burst) string {
	switch b.State {
	case quota.BurstAvailable:
		return fmt.Sprintf("burst +%d%% for %s a day, available", b.Percent, b.Window)
	case quota.BurstOpen:
		return fmt.Sprintf("burst +%d%% open until %s", b.Percent, b.ClosesAt.UTC().Format("15:04 MST"))
	case quota.BurstUsed:
		return fmt.Sprintf("burst +%d%% used today", b.Percent)
	}
	return ""
}

func (s *Server) dimensionOptions(ctx context.Context) ([]components.Option, error) {
	dims, err := s.quotas.Dimensions(ctx)
	out := make([]components.Option, len(dims))
	for i, d := range dims {
		out[i] = components.Option{Value: d.Key, Label: d.Name + " (" + d.Unit + ")"}
	}
	return out, err
}

// fillQuotaDynamics adds the chart, grants, alerts and pools to the Quotas tab.
func (s *Server) fillQuotaDynamics(c echo.Context, t tenant.Tenant, m *admin.Quotas) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	m.Slug, m.CSRF, m.CanWrite = t.Slug, csrfToken(c), u.CanWrite()
	var err error
	if m.Dimensions, err = s.dimensionOptions(ctx); err != nil {
		return err
	}
	if m.Chart, err = s.quotaChart(ctx, &t, c.QueryParam("dimension"), c.QueryParam("granularity")); err != nil {
		return err
	}
	grants, err := s.quotas.Grants(ctx, t.ID, 50)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, g := range grants {
		m.Grants = append(m.Grants, admin.GrantRow{ID: g.ID, Dimension: g.Dimension, Amount: g.Amount, Starts: g.StartsAt.UTC().Format(minuteFormat),
			Ends: g.EndsAt.UTC().Format(minuteFormat), Reason: g.Reason, By: g.CreatedBy, State: g.State(now)})
	}
	// Alerts: thresholds, channel, history, deliveries.
	own, err := s.quotas.ThresholdSettings(ctx, &t.ID)
	if err != nil {
		return err
	}
	m.Alerts.Thresholds, m.Alerts.Own = thresholdRows(own, m.Dimensions)
	m.Alerts.ThresholdsInput, m.Alerts.ThresholdDimension = m.Alerts.Thresholds, quota.AllDimensions
	m.Alerts.ThresholdOptions = append([]components.Option{{Value: quota.AllDimensions, Label: "Every dimension"}}, m.Dimensions...)
	eff, err := s.quotas.Thresholds(ctx, t.ID, quota.AllDimensions)
	if err != nil {
		return err
	}
	m.Alerts.Effective = joinInts(eff) + " %"
	m.Alerts.Channel = "email"
	if e, err := settings.NewService(s.db.App, s.tenants).EffectiveOf(ctx, &t, "notify.channel"); err == nil {
		m.Alerts.Channel = e.Value
	}
	if m.Alerts.WebhookURL, err = s.quotas.Webhook(ctx, t.ID); err != nil {
		return err
	}
	page, _ := strconv.Atoi(c.QueryParam("alerts_page"))
	page = max(1, page)
	rows, total, err := s.quotas.Alerts(ctx, quota.AlertFilter{TenantID: &t.ID, Page: page, PerPage: 10})
	if err != nil {
		return err
	}
	m.Alerts.Rows, m.Alerts.Total, m.Alerts.Page, m.Alerts.Pages = alertRows(rows), total, page, max(1, int((total+9)/10))
	ds, err := s.quotas.Deliveries(ctx, t.ID, 10)
	if err != nil {
		return err
	}
	for _, d := range ds {
		r := admin.DeliveryRow{ID: d.ID, URL: d.URL, Attempts: d.Attempts, Error: d.LastError, When: d.CreatedAt.UTC().Format(minuteFormat), Delivered: "not yet"}
		if d.LastStatus != nil {
			r.Status = strconv.Itoa(*d.LastStatus)
		}
		if d.DeliveredAt != nil {
			r.Delivered = d.DeliveredAt.UTC().Format(minuteFormat)
		}
		m.Alerts.Deliveries = append(m.Alerts.Deliveries, r)
	}
	// Pools, for tenants with children.
	children, err := s.tenants.Children(ctx, t)
	if err != nil {
		return err
	}
	if m.Pools.HasChildren = len(children) > 0; m.Pools.HasChildren {
		pools, err := s.quotas.Pools(ctx, t.ID)
		if err != nil {
			return err
		}
		for _, p := range pools {
			m.Pools.Rows = append(m.Pools.Rows, admin.PoolRow{Dimension: p.Dimension, Name: p.DimensionName, Cap: p.Cap, Allocated: p.Allocated})
		}
	}
	return nil
}

// thresholdRows lists threshold settings for people, and returns the every-dimension one.
func thresholdRows(own []quota.ThresholdSetting, dims []components.Option) (string, []admin.ThresholdRow) {
	all := ""
	var rows []admin.ThresholdRow
	for _, o := range own {
		label := "Every dimension"
		if o.Dimension == quota.AllDimensions {
			all = joinInts(o.Thresholds)
		} else {
			label = o.Dimension
			for _, d := range dims {
				if d.Value == o.Dimension {
					label = d.Label
				}
			}
		}
		rows = append(rows, admin.ThresholdRow{Dimension: o.Dimension, Label: label, Values: joinInts(o.Thresholds)})
	}
	return all, rows
}

func alertRows(as []quota.Alert) []admin.AlertRow {
	out := make([]admin.AlertRow, len(as))
	for i, a := range as {
		out[i] = admin.AlertRow{ID: a.ID, Slug: a.Slug, Tenant: a.TenantName, Dimension: a.Dimension, Kind: a.Kind, Threshold: a.Threshold,
			Message: a.Message, When: a.CreatedAt.UTC().Format(minuteFormat), Unread: a.ReadAt == nil}
	}
	return out
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// quotaChart builds a usage chart of one tenant (t) or of every tenant together (t nil).
func (s *Server) quotaChart(ctx context.Context, t *tenant.Tenant, dimension, granularity string) (admin.QuotaChart, error) {
	dims, err := s.quotas.Dimensions(ctx)
	if err != nil {
		return admin.QuotaChart{}, err
	}
	var d quota.Dimension
	for _, x := range dims {
		if x.Key == dimension {
			d = x
		}
	}
	if d.Key == "" {
		d = dims[0]
		for _, x := range dims {
			if x.Key == "api_requests" {
				d = x
			}
		}
	}
	if granularity != "day" {
		granularity = "hour"
	}
	ch := admin.QuotaChart{ID: "quota-chart", Dimension: d.Key, Granularity: granularity, Unit: d.Unit, BaseURL: "/admin/quotas/chart"}
	if t != nil {
		ch.BaseURL = "/admin/tenants/" + t.Slug + "/quotas-chart"
	}
	ch.URL = ch.BaseURL + "?dimension=" + urlQueryEscape(d.Key) + "&granularity=" + granularity
	ch.Dimensions, _ = s.dimensionOptions(ctx)
	now := time.Now().UTC()
	step, n, label := time.Hour, 48, "15:04"
	from := now.Truncate(time.Hour).Add(-47 * time.Hour)
	if granularity == "day" {
		step, n, label = 24*time.Hour, 30, "2 Jan"
		from = now.Truncate(24*time.Hour).AddDate(0, 0, -29)
	}
	var buckets []quota.Bucket
	if t != nil {
		buckets, err = s.quotas.Usage(ctx, t.ID, d.Key, granularity, from, now.Add(time.Hour))
	} else {
		buckets, err = s.quotas.PlatformUsage(ctx, d.Key, granularity, from, now.Add(time.Hour))
	}
	if err != nil {
		return ch, err
	}
	if len(buckets) == 0 {
		ch.Empty = true
		return ch, nil
	}
	byStart := make(map[int64]quota.Bucket, len(buckets))
	for _, b := range buckets {
		byStart[b.Start.Unix()] = b
	}
	xs := make([]string, n)
	ys := make([]opts.LineData, n)
	for i := range n {
		at := from.Add(time.Duration(i) * step)
		xs[i] = at.Format(label)
		b := byStart[at.Unix()]
		v := b.Total
		if d.Kind == quota.Gauge {
			v = b.Peak // a level: the highest reported in the bucket
		}
		ys[i] = opts.LineData{Value: v}
	}
	series := "Used (" + d.Unit + ")"
	if d.Kind == quota.Gauge {
		series = "Peak level (" + d.Unit + ")"
	}
	line := charts.NewLine()
	line.SetGlobalOptions(
		// The page serves echarts itself (/static/js); the CSP allows no other script host.
		charts.WithInitializationOpts(opts.Initialization{Width: "100%", Height: "260px", AssetsHost: "/static/js/", ChartID: "c" + strconv.FormatInt(now.UnixNano(), 36)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAnimation(false),
	)
	line.SetXAxis(xs).AddSeries(series, ys, charts.WithAreaStyleOpts(opts.AreaStyle{Opacity: opts.Float(0.15)}))
	snip := line.RenderSnippet()
	ch.Element = snip.Element
	ch.Script = deferredChartScript(snip.Script)
	return ch, nil
}

var scriptTag = regexp.MustCompile(`(?s)^\s*<script[^>]*>(.*)</script>\s*$`)

// deferredChartScript wraps go-echarts' inline script so that it runs once echarts has loaded
// (a tab switched in by htmx loads /static/js/echarts.min.js asynchronously) and inside a
// function, so that the chart's `let` names never clash when the fragment is swapped again.
func deferredChartScript(script string) string {
	m := scriptTag.FindStringSubmatch(script)
	if m == nil {
		return ""
	}
	return "<script>(function draw(){if(!window.echarts){return setTimeout(draw,50)}\n" + m[1] + "\n})();</script>"
}

// quotaTenantChart is the tenant's chart fragment (polled, and on selector changes).
func (s *Server) quotaTenantChart(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	ch, err := s.quotaChart(c.Request().Context(), &t, c.QueryParam("dimension"), c.QueryParam("granularity"))
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, admin.QuotaChartFragment(ch))
}

// quotaPlatformChart is the platform chart fragment.
func (s *Server) quotaPlatformChart(c echo.Context) error {
	ch, err := s.quotaChart(c.Request().Context(), nil, c.QueryParam("dimension"), c.QueryParam("granularity"))
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, admin.QuotaChartFragment(ch))
}

// quotaBell is the header bell with the number of unread alerts.
func (s *Server) quotaBell(c echo.Context) error {
	n, err := s.quotas.UnreadAlerts(c.Request().Context())
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, components.QuotaBell(n))
}

// parseFormTime reads a datetime-local value (UTC); empty is the zero time.
func parseFormTime(v, field string, errs validation.Errors) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t
		}
	}
	errs.Add(field, "Enter a date and time, such as 2030-01-31T18:00.")
	return time.Time{}
}

// quotaGrantAdd adds a grant from the Quotas tab's form; errors come back at the fields.
func (s *Server) quotaGrantAdd(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	form := admin.GrantForm{Dimension: c.FormValue("dimension"), Amount: strings.TrimSpace(c.FormValue("amount")), StartsAt: c.FormValue("starts_at"),
		EndsAt: c.FormValue("ends_at"), Reason: c.FormValue("reason")}
	errs := validation.Errors{}
	amount := parseLimit(form.Amount, "amount", errs)
	starts := parseFormTime(form.StartsAt, "starts_at", errs)
	ends := parseFormTime(form.EndsAt, "ends_at", errs)
	if len(errs) == 0 {
		u, _ := currentUser(c)
		_, err = s.quotas.AddGrant(ctx, u.Email, t.ID, quota.NewGrant{Dimension: form.Dimension, Amount: amount, StartsAt: starts, EndsAt: ends, Reason: form.Reason})
		if f := validation.Fields(err); f != nil {
			errs = f
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		form.Errors = errs
		return s.renderTenant(c, http.StatusUnprocessableEntity, "quotas", func(m *admin.TenantDetail) { m.Quotas.GrantForm = form })
	}
	s.flash(c, "success", "Grant added.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-grants")
}

// quotaGrantRevoke ends a grant now.
func (s *Server) quotaGrantRevoke(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.ErrNotFound
	}
	u, _ := currentUser(c)
	if err := s.quotas.RevokeGrant(ctx, u.Email, t.ID, id); err != nil {
		return err
	}
	s.flash(c, "success", "Grant revoked.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-grants")
}

// quotaTenantThresholds sets (or, empty, removes) the tenant's own alert thresholds.
func (s *Server) quotaTenantThresholds(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	input, dim := strings.TrimSpace(c.FormValue("thresholds")), c.FormValue("dimension")
	if dim == "" {
		dim = quota.AllDimensions
	}
	var th []int
	if input != "" {
		th, err = quota.ParseThresholds(input)
	}
	if err == nil {
		u, _ := currentUser(c)
		err = s.quotas.SetThresholds(ctx, u.Email, &t.ID, dim, th)
	}
	if f := validation.Fields(err); f != nil {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "quotas", func(m *admin.TenantDetail) {
			m.Quotas.Alerts.ThresholdsInput, m.Quotas.Alerts.ThresholdDimension, m.Quotas.Alerts.Errors = input, dim, f
		})
	} else if err != nil {
		return err
	}
	s.flash(c, "success", "Alert thresholds saved.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-alerts")
}

// quotaTenantWebhook sets the tenant's alert webhook URL.
func (s *Server) quotaTenantWebhook(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	input := c.FormValue("url")
	err = s.quotas.SetWebhook(ctx, u.Email, t.ID, input)
	if f := validation.Fields(err); f != nil {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "quotas", func(m *admin.TenantDetail) {
			m.Quotas.Alerts.WebhookURL, m.Quotas.Alerts.Errors = input, f
		})
	} else if err != nil {
		return err
	}
	s.flash(c, "success", "Webhook saved.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-alerts")
}

// quotaTenantPool sets or removes a pool on the tenant's children.
func (s *Server) quotaTenantPool(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	dim, input := c.FormValue("dimension"), strings.TrimSpace(c.FormValue("cap"))
	errs := validation.Errors{}
	var limit *int64
	if input != "" {
		n := parseLimit(input, "cap", errs)
		limit = &n
	}
	if len(errs) == 0 {
		u, _ := currentUser(c)
		err = s.quotas.SetPool(ctx, u.Email, t.ID, dim, limit)
		if errors.Is(err, quota.ErrUnknownDimension) {
			errs.Add("dimension", "Choose a dimension from the list.")
		} else if f := validation.Fields(err); f != nil {
			errs = f
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "quotas", func(m *admin.TenantDetail) {
			m.Quotas.Pools.Dimension, m.Quotas.Pools.CapInput, m.Quotas.Pools.Errors = dim, input, errs
		})
	}
	s.flash(c, "success", "Pool saved.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-pools")
}

// quotaTenantAlertsRead marks the tenant's alerts read.
func (s *Server) quotaTenantAlertsRead(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	if _, err := s.quotas.MarkAlertsRead(c.Request().Context(), &t.ID); err != nil {
		return err
	}
	return redirect(c, "/admin/tenants/"+t.Slug+"/quotas#quota-alerts")
}

var quotasCrumb = layouts.Crumb{Label: "Quotas", Href: "/admin/quotas"}

// quotaAlertsPage lists every tenant's alerts (the bell's page).
func (s *Server) quotaAlertsPage(c echo.Context) error {
	return s.renderQuotaAlerts(c, http.StatusOK, "", quota.AllDimensions, nil)
}

func (s *Server) renderQuotaAlerts(c echo.Context, status int, input, dim string, errs map[string]string) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	pg, _ := strconv.Atoi(c.QueryParam("page"))
	pg = max(1, pg)
	search := strings.TrimSpace(c.QueryParam("q"))
	rows, total, err := s.quotas.Alerts(ctx, quota.AlertFilter{Page: pg, PerPage: 25, Search: search})
	if err != nil {
		return err
	}
	unread, err := s.quotas.UnreadAlerts(ctx)
	if err != nil {
		return err
	}
	m := admin.QuotaAlertsPage{CSRF: csrfToken(c), CanWrite: u.CanWrite(), Rows: alertRows(rows), Page: pg, Pages: max(1, int((total+24)/25)),
		Total: total, Unread: unread, Errors: errs, Search: search, ThresholdDimension: dim}
	own, err := s.quotas.ThresholdSettings(ctx, nil)
	if err != nil {
		return err
	}
	dims, err := s.dimensionOptions(ctx)
	if err != nil {
		return err
	}
	m.Thresholds, m.Own = thresholdRows(own, dims)
	m.ThresholdOptions = append([]components.Option{{Value: quota.AllDimensions, Label: "Every dimension"}}, dims...)
	m.ThresholdsInput = m.Thresholds
	if errs != nil {
		m.ThresholdsInput = input
	}
	return s.render(c, status, page{Title: "Quota alerts", Nav: "quotas",
		Crumbs: []layouts.Crumb{quotasCrumb, {Label: "Alerts"}}, Content: admin.QuotaAlertsListPage(m)})
}

// quotaAlertsRead marks every alert read.
func (s *Server) quotaAlertsRead(c echo.Context) error {
	if _, err := s.quotas.MarkAlertsRead(c.Request().Context(), nil); err != nil {
		return err
	}
	s.flash(c, "success", "All quota alerts marked read.")
	return redirect(c, "/admin/quotas/alerts")
}

// quotaPlatformThresholds sets the platform's default thresholds (empty: the built-in ones).
func (s *Server) quotaPlatformThresholds(c echo.Context) error {
	input, dim := strings.TrimSpace(c.FormValue("thresholds")), c.FormValue("dimension")
	if dim == "" {
		dim = quota.AllDimensions
	}
	var th []int
	var err error
	if input != "" {
		th, err = quota.ParseThresholds(input)
	}
	if err == nil {
		u, _ := currentUser(c)
		err = s.quotas.SetThresholds(c.Request().Context(), u.Email, nil, dim, th)
	}
	if f := validation.Fields(err); f != nil {
		return s.renderQuotaAlerts(c, http.StatusUnprocessableEntity, input, dim, f)
	} else if err != nil {
		return err
	}
	s.flash(c, "success", "Platform alert thresholds saved.")
	return redirect(c, "/admin/quotas/alerts")
}

// quotaRules lists the scaling rules with the new-rule form.
func (s *Server) quotaRules(c echo.Context) error {
	return s.renderQuotaRules(c, http.StatusOK, admin.RuleForm{Threshold: "85", Days: "3", Raise: "25", Notify: true, Enabled: true})
}

func (s *Server) renderQuotaRules(c echo.Context, status int, form admin.RuleForm) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	rules, err := s.quotas.Rules(ctx)
	if err != nil {
		return err
	}
	m := admin.QuotaRules{CSRF: csrfToken(c), CanWrite: u.CanWrite(), Form: form}
	for _, r := range rules {
		row := admin.RuleRow{ID: r.ID, Name: r.Name, Description: r.Describe(), Enabled: r.Enabled, Notify: r.Notify}
		if r.LastRunAt != nil {
			row.LastRun = r.LastRunAt.UTC().Format(minuteFormat)
		}
		m.Rules = append(m.Rules, row)
	}
	if m.Dimensions, err = s.dimensionOptions(ctx); err != nil {
		return err
	}
	plans, err := s.planOptions(c)
	if err != nil {
		return err
	}
	m.Plans = append([]components.Option{{Value: "", Label: "Every plan"}}, plans...)
	return s.render(c, status, page{Title: "Scaling rules", Nav: "quotas",
		Crumbs: []layouts.Crumb{quotasCrumb, {Label: "Scaling rules"}}, Content: admin.QuotaRulesPage(m)})
}

// quotaRuleCreate adds a rule; errors come back at the fields.
func (s *Server) quotaRuleCreate(c echo.Context) error {
	form := admin.RuleForm{Name: c.FormValue("name"), Dimension: c.FormValue("dimension"), Plan: c.FormValue("plan"),
		Threshold: strings.TrimSpace(c.FormValue("threshold_percent")), Days: strings.TrimSpace(c.FormValue("days")),
		Raise: strings.TrimSpace(c.FormValue("raise_percent")), MaxHard: strings.TrimSpace(c.FormValue("max_hard")),
		Notify: c.FormValue("notify") != "", Enabled: c.FormValue("enabled") != ""}
	errs := validation.Errors{}
	num := func(v, field string) int {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs.Add(field, "Enter a whole number.")
		}
		return n
	}
	r := quota.Rule{Name: form.Name, Dimension: form.Dimension, ThresholdPercent: num(form.Threshold, "threshold_percent"),
		Days: num(form.Days, "days"), RaisePercent: num(form.Raise, "raise_percent"), MaxHard: parseLimit(form.MaxHard, "max_hard", errs),
		Notify: form.Notify, Enabled: form.Enabled}
	if form.Plan != "" {
		r.PlanKey = &form.Plan
	}
	if len(errs) == 0 {
		u, _ := currentUser(c)
		saved, err := s.quotas.SaveRule(c.Request().Context(), u.Email, r)
		if f := validation.Fields(err); f != nil {
			errs = f
		} else if err != nil {
			return err
		} else {
			s.flash(c, "success", "Rule "+saved.Name+" added. Preview it to see whom it would change.")
			return redirect(c, "/admin/quotas/rules")
		}
	}
	form.Errors = errs
	return s.renderQuotaRules(c, http.StatusUnprocessableEntity, form)
}

func (s *Server) quotaRuleParam(c echo.Context) (quota.Rule, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return quota.Rule{}, echo.ErrNotFound
	}
	r, err := s.quotas.Rule(c.Request().Context(), id)
	if errors.Is(err, quota.ErrRuleNotFound) {
		return r, echo.ErrNotFound
	}
	return r, err
}

func proposalRows(ps []quota.Proposal) []admin.ProposalRow {
	out := make([]admin.ProposalRow, len(ps))
	for i, p := range ps {
		util := make([]string, len(p.Utilisation))
		for j, u := range p.Utilisation {
			util[j] = strconv.Itoa(u) + "%"
		}
		out[i] = admin.ProposalRow{Slug: p.Slug, Tenant: p.Name, Hard: p.Hard, NewHard: p.NewHard, Utilisation: strings.Join(util, ", "), Skipped: p.Skipped}
	}
	return out
}

// quotaRulePreview is a rule's dry run: whom it would change now and to what, changing nothing.
func (s *Server) quotaRulePreview(c echo.Context) error {
	r, err := s.quotaRuleParam(c)
	if err != nil {
		return err
	}
	ps, err := s.quotas.DryRun(c.Request().Context(), r.ID)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	return s.render(c, http.StatusOK, page{Title: "Preview " + r.Name, Nav: "quotas",
		Crumbs: []layouts.Crumb{quotasCrumb, {Label: "Scaling rules", Href: "/admin/quotas/rules"}, {Label: r.Name}},
		Content: admin.QuotaRulePreviewPage(admin.QuotaRulePreview{CSRF: csrfToken(c), CanWrite: u.CanWrite(), ID: r.ID, Name: r.Name,
			Description: r.Describe(), Rows: proposalRows(ps)})})
}

// quotaRuleApply applies a rule now (audited with the rule as the reason) and shows what it did.
func (s *Server) quotaRuleApply(c echo.Context) error {
	r, err := s.quotaRuleParam(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	ps, err := s.quotas.ApplyRule(c.Request().Context(), u.Email, r.ID)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, page{Title: "Applied " + r.Name, Nav: "quotas",
		Crumbs: []layouts.Crumb{quotasCrumb, {Label: "Scaling rules", Href: "/admin/quotas/rules"}, {Label: r.Name}},
		Content: admin.QuotaRulePreviewPage(admin.QuotaRulePreview{CSRF: csrfToken(c), CanWrite: u.CanWrite(), ID: r.ID, Name: r.Name,
			Description: r.Describe(), Rows: proposalRows(ps), Applied: true})})
}

// quotaRuleDelete removes a rule.
func (s *Server) quotaRuleDelete(c echo.Context) error {
	r, err := s.quotaRuleParam(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	if err := s.quotas.DeleteRule(c.Request().Context(), u.Email, r.ID); err != nil {
		return err
	}
	s.flash(c, "success", "Rule "+r.Name+" deleted.")
	return redirect(c, "/admin/quotas/rules")
}

// quotaRuleToggle enables or disables a rule (audited as a change).
func (s *Server) quotaRuleToggle(c echo.Context) error {
	r, err := s.quotaRuleParam(c)
	if err != nil {
		return err
	}
	r.Enabled = !r.Enabled
	u, _ := currentUser(c)
	if _, err := s.quotas.SaveRule(c.Request().Context(), u.Email, r); err != nil {
		return err
	}
	state := "disabled"
	if r.Enabled {
		state = "enabled: applied every hour"
	}
	s.flash(c, "success", "Rule "+r.Name+" "+state+".")
	return redirect(c, "/admin/quotas/rules")
}
