package quota

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// DefaultThresholds are the alert thresholds, in percent of the effective hard limit, when
// neither the platform nor the tenant set others.
var DefaultThresholds = []int{50, 75, 90, 100}

// AllDimensions is the dimension of a threshold setting that applies to every dimension.
const AllDimensions = "*"

// Alert kinds.
const (
	AlertCrossed      = "crossed"       // usage reached a threshold
	AlertResolved     = "resolved"      // usage went back under a threshold it had crossed
	AlertScaled       = "scaled"        // a scaling rule raised the hard limit
	AlertGrantExpired = "grant_expired" // a grant ended
)

// Alert is one entry of a tenant's alert history (and of the admins' bell).
type Alert struct {
	ID          int64
	TenantID    int64
	Slug        string
	TenantName  string
	Dimension   string
	Kind        string
	PeriodStart time.Time
	Threshold   int
	Used        int64
	HardLimit   int64
	Message     string
	CreatedAt   time.Time
	ReadAt      *time.Time
}

// alertPeriod is the period in which each threshold of d fires at most once: the dimension's own
// reset period, or for dimensions that never reset (gauges), the UTC calendar month, so that a
// level that falls back and rises again alerts again the next month, not at every wobble.
func alertPeriod(d Dimension, now time.Time) time.Time {
	if d.ResetPeriod == "none" {
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d.periodStart(now)
}

// Prefs is where a tenant's alerts go, from its notification settings.
type Prefs struct {
	Channel string   // notify.channel: email, webhook or in_app (in-app history is always kept)
	Emails  []string // for email: notify.email, or the tenant's admins when it is empty
}

// Notifier delivers alerts beyond the in-app history. Prefs and Secret are read per tenant.
type Notifier struct {
	Prefs  func(ctx context.Context, tenantID int64) (Prefs, error)
	Secret func(ctx context.Context, tenantID int64) ([]byte, error)
	// HTTP posts webhooks; nil uses a client with a 10 s timeout.
	HTTP *http.Client
	jobs *river.Client[*sql.Tx]
}

// SetNotifier makes the evaluator deliver alerts by e-mail and webhook through n.
func (s *Service) SetNotifier(n *Notifier) error {
	jobs, err := river.NewClient(riverdatabasesql.New(nil), &river.Config{Schema: db.Schema})
	if err != nil {
		return fmt.Errorf("quota: notifier: %w", err)
	}
	n.jobs = jobs
	if n.HTTP == nil {
		n.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	s.notify = n
	return nil
}

// SettingsPrefs reads a tenant's notification preferences from its effective settings
// (notify.channel, notify.email); with no address set, alerts go to the tenant's active admins.
func SettingsPrefs(d *db.DB, st *settings.Service) func(ctx context.Context, tenantID int64) (Prefs, error) {
	return func(ctx context.Context, tenantID int64) (Prefs, error) {
		var t tenant.Tenant
		if err := d.App.WithContext(ctx).Where("id = ?", tenantID).Take(&t).Error; err != nil {
			return Prefs{}, err
		}
		eff, err := st.Effective(ctx, &t)
		if err != nil {
			return Prefs{}, err
		}
		var p Prefs
		for _, e := range eff {
			switch e.Key.Key {
			case "notify.channel":
				p.Channel = e.Value
			case "notify.email":
				if v := strings.TrimSpace(e.Value); v != "" {
					p.Emails = []string{v}
				}
			}
		}
		if p.Channel == "email" && len(p.Emails) == 0 {
			// A tenant without its own schema has no admins to write to: no e-mail.
			_ = d.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
				return tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).
					Raw("SELECT email FROM users WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id LIMIT 20").Scan(&p.Emails).Error
			})
		}
		return p, nil
	}
}

// SettingsSecret reads a tenant's webhook signing secret, the integrations.webhook_secret
// setting (st must have the key service); none set is an empty secret.
func SettingsSecret(d *db.DB, st *settings.Service) func(ctx context.Context, tenantID int64) ([]byte, error) {
	return func(ctx context.Context, tenantID int64) ([]byte, error) {
		var t tenant.Tenant
		if err := d.App.WithContext(ctx).Where("id = ?", tenantID).Take(&t).Error; err != nil {
			return nil, err
		}
		b, err := st.Reveal(ctx, t, "integrations.webhook_secret")
		if errors.Is(err, settings.ErrNoSecret) {
			return nil, nil
		}
		return b, err
	}
}

// ThresholdSetting is one row of threshold configuration.
type ThresholdSetting struct {
	TenantID   *int64
	Dimension  string // a dimension key or AllDimensions
	Thresholds []int
	UpdatedBy  string
	UpdatedAt  time.Time
}

type thresholdRow struct {
	TenantID   *int64
	Dimension  string
	Thresholds string
	UpdatedBy  string
	UpdatedAt  time.Time
}

func (r thresholdRow) setting() ThresholdSetting {
	return ThresholdSetting{TenantID: r.TenantID, Dimension: r.Dimension, Thresholds: parseIntArray(r.Thresholds), UpdatedBy: r.UpdatedBy, UpdatedAt: r.UpdatedAt}
}

func parseIntArray(s string) []int {
	var out []int
	for _, f := range strings.Split(strings.Trim(s, "{}"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func intArray(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// ThresholdSettings returns the platform's rows (tenantID nil) or the tenant's.
func (s *Service) ThresholdSettings(ctx context.Context, tenantID *int64) ([]ThresholdSetting, error) {
	var rows []thresholdRow
	q := s.db.App.WithContext(ctx).Table("tenantry.quota_alert_thresholds").Select("tenant_id, dimension, thresholds::text AS thresholds, updated_by, updated_at")
	if tenantID == nil {
		q = q.Where("tenant_id IS NULL")
	} else {
		q = q.Where("tenant_id = ?", *tenantID)
	}
	if err := q.Order("dimension").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("quota: thresholds: %w", err)
	}
	out := make([]ThresholdSetting, len(rows))
	for i, r := range rows {
		out[i] = r.setting()
	}
	return out, nil
}

// ParseThresholds reads "50, 75, 90, 100" into sorted distinct percentages (1–1000).
func ParseThresholds(text string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == ';' || r == '%' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 1000 {
			return nil, validation.Errors{"thresholds": "Enter percentages from 1 to 1000 separated by commas, such as 50, 75, 90, 100."}.Err()
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 || len(out) > 10 {
		return nil, validation.Errors{"thresholds": "Enter between 1 and 10 percentages, such as 50, 75, 90, 100."}.Err()
	}
	sort.Ints(out)
	return out, nil
}

// SetThresholds sets the alert thresholds for the platform (tenantID nil) or a tenant, for one
// dimension or AllDimensions; nil thresholds removes the setting (inherit). Audited.
func (s *Service) SetThresholds(ctx context.Context, actor string, tenantID *int64, dimension string, thresholds []int) error {
	if dimension != AllDimensions {
		if _, err := s.dimension(ctx, dimension); err != nil {
			return validation.Errors{"dimension": "Choose a dimension from the list."}.Err()
		}
	}
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		target := "platform"
		if tenantID != nil {
			if err := tx.Raw("SELECT slug FROM tenantry.tenants WHERE id = ?", *tenantID).Scan(&target).Error; err != nil {
				return err
			}
		}
		var err error
		if thresholds == nil {
			err = tx.Exec("DELETE FROM tenantry.quota_alert_thresholds WHERE COALESCE(tenant_id, 0) = COALESCE(?::bigint, 0) AND dimension = ?", tenantID, dimension).Error
		} else {
			err = tx.Exec(`INSERT INTO tenantry.quota_alert_thresholds (tenant_id, dimension, thresholds, updated_by) VALUES (?, ?, ?::int[], ?)
				ON CONFLICT (COALESCE(tenant_id, 0), dimension) DO UPDATE SET thresholds = EXCLUDED.thresholds, updated_by = EXCLUDED.updated_by, updated_at = now()`,
				tenantID, dimension, intArray(thresholds), actor).Error
		}
		if err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: tenantID, Actor: actor, Action: "quota.alert_thresholds_changed", Target: target,
			Detail: audit.Detail(map[string]any{"dimension": dimension, "thresholds": thresholds})})
	})
}

// thresholdTable resolves thresholds: tenant+dimension, tenant+*, platform+dimension,
// platform+*, then DefaultThresholds.
type thresholdTable map[[2]string][]int

func (s *Service) loadThresholds(ctx context.Context) (thresholdTable, error) {
	var rows []thresholdRow
	if err := s.db.App.WithContext(ctx).Raw("SELECT tenant_id, dimension, thresholds::text AS thresholds FROM tenantry.quota_alert_thresholds").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("quota: thresholds: %w", err)
	}
	t := thresholdTable{}
	for _, r := range rows {
		id := ""
		if r.TenantID != nil {
			id = strconv.FormatInt(*r.TenantID, 10)
		}
		t[[2]string{id, r.Dimension}] = parseIntArray(r.Thresholds)
	}
	return t, nil
}

func (t thresholdTable) get(tenantID int64, dimension string) []int {
	id := strconv.FormatInt(tenantID, 10)
	for _, k := range [][2]string{{id, dimension}, {id, AllDimensions}, {"", dimension}, {"", AllDimensions}} {
		if v, ok := t[k]; ok {
			return v
		}
	}
	return DefaultThresholds
}

// Thresholds returns the thresholds in force for a tenant's dimension.
func (s *Service) Thresholds(ctx context.Context, tenantID int64, dimension string) ([]int, error) {
	t, err := s.loadThresholds(ctx)
	if err != nil {
		return nil, err
	}
	return t.get(tenantID, dimension), nil
}

// EvaluateAlerts compares every limit in use with its thresholds and records, exactly once per
// period, each threshold newly crossed and each crossed threshold usage has gone back under,
// delivering them in the same transaction (e-mail queued, webhook job inserted) according to
// the tenant's preferences. Consume is not slowed: it records nothing about alerts; this runs
// every few seconds (AlertsPeriodic). It returns the alerts recorded.
func (s *Service) EvaluateAlerts(ctx context.Context) ([]Alert, error) {
	table, err := s.loadThresholds(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	type usage struct {
		TenantID    int64
		Slug        string
		TenantName  string
		Dimension   string
		Name        string
		Unit        string
		ResetPeriod string
		Used        int64
		HardLimit   int64
		PeriodStart time.Time
		Infinite    bool
		Grants      int64
	}
	var rows []usage
	// Rows in use, and rows with a crossing not yet resolved (which may have gone back to 0).
	// Set-based (hash joins, no per-row subqueries): one pass over the limits in use.
	pgRows, err := s.db.AppPool.Query(ctx, `
		WITH g AS (
			SELECT tenant_id, dimension, sum(amount)::bigint AS grants FROM tenantry.quota_grants
			 WHERE revoked_at IS NULL AND starts_at <= $1 AND ends_at > $1 GROUP BY 1, 2
		), open AS (
			SELECT DISTINCT tenant_id, dimension FROM tenantry.quota_alerts
			 WHERE kind = 'crossed' AND created_at > $1::timestamptz - interval '32 days'
		)
		SELECT l.tenant_id, t.slug, t.name AS tenant_name, l.dimension, d.name, d.unit, d.reset_period, l.used, l.hard_limit,
		       CASE WHEN isfinite(l.period_start) THEN l.period_start ELSE 'epoch' END AS period_start,
		       NOT isfinite(l.period_start) AS infinite, COALESCE(g.grants, 0) AS grants
		  FROM tenantry.quota_limits l
		  JOIN tenantry.tenants t ON t.id = l.tenant_id
		  JOIN tenantry.quota_dimensions d ON d.key = l.dimension
		  LEFT JOIN g ON g.tenant_id = l.tenant_id AND g.dimension = l.dimension
		  LEFT JOIN open o ON o.tenant_id = l.tenant_id AND o.dimension = l.dimension
		 WHERE l.used > 0 OR o.tenant_id IS NOT NULL`, now)
	if err == nil {
		rows, err = pgx.CollectRows(pgRows, func(r pgx.CollectableRow) (usage, error) {
			var u usage
			err := r.Scan(&u.TenantID, &u.Slug, &u.TenantName, &u.Dimension, &u.Name, &u.Unit, &u.ResetPeriod, &u.Used, &u.HardLimit, &u.PeriodStart, &u.Infinite, &u.Grants)
			return u, err
		})
	}

	if err != nil {
		return nil, fmt.Errorf("quota: evaluate alerts: %w", err)
	}
	type akey struct {
		tenant    int64
		dim       string
		period    int64
		threshold int
		kind      string
	}
	exRows, err := s.db.AppPool.Query(ctx, `SELECT tenant_id, dimension, period_start, threshold, kind FROM tenantry.quota_alerts
		WHERE kind IN ('crossed', 'resolved') AND period_start > $1::timestamptz - interval '32 days'`, now)
	if err != nil {
		return nil, fmt.Errorf("quota: evaluate alerts: %w", err)
	}
	seen := map[akey]bool{}
	var e akey
	var ps time.Time
	_, err = pgx.ForEachRow(exRows, []any{&e.tenant, &e.dim, &ps, &e.threshold, &e.kind}, func() error {
		e.period = ps.Unix()
		seen[e] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quota: evaluate alerts: %w", err)
	}
	var fresh []Alert
	for _, r := range rows {
		d := Dimension{ResetPeriod: r.ResetPeriod}
		period, used := alertPeriod(d, now), r.Used
		if r.ResetPeriod != "none" {
			if r.Infinite || r.PeriodStart.Before(period) {
				used = 0 // a new period has begun and nothing is consumed in it yet
			}
		}
		eff := r.HardLimit + r.Grants
		for _, th := range table.get(r.TenantID, r.Dimension) {
			over := eff > 0 && used*100 >= int64(th)*eff || eff == 0 && used > 0
			k := akey{r.TenantID, r.Dimension, period.Unix(), th, AlertCrossed}
			a := Alert{TenantID: r.TenantID, Slug: r.Slug, TenantName: r.TenantName, Dimension: r.Dimension, PeriodStart: period,
				Threshold: th, Used: used, HardLimit: eff}
			switch {
			case over && !seen[k]:
				a.Kind = AlertCrossed
				a.Message = fmt.Sprintf("%s reached %d%% of its limit: %d of %d %s used.", r.Name, th, used, eff, r.Unit)
				fresh = append(fresh, a)
			case !over && seen[k] && !seen[akey{r.TenantID, r.Dimension, period.Unix(), th, AlertResolved}]:
				a.Kind = AlertResolved
				a.Message = fmt.Sprintf("%s is back under %d%% of its limit: %d of %d %s used.", r.Name, th, used, eff, r.Unit)
				fresh = append(fresh, a)
			}
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	var recorded []Alert
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		recorded = recorded[:0]
		for _, a := range fresh {
			var id int64
			// Unique per tenant, dimension, period, threshold and kind: a concurrent evaluator
			// (another node, a retried job) records nothing twice.
			err := tx.Raw(`INSERT INTO tenantry.quota_alerts (tenant_id, dimension, kind, period_start, threshold, used, hard_limit, message, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (tenant_id, dimension, period_start, threshold, kind) WHERE kind IN ('crossed', 'resolved') DO NOTHING
				RETURNING id`, a.TenantID, a.Dimension, a.Kind, a.PeriodStart, a.Threshold, a.Used, a.HardLimit, a.Message, now).Scan(&id).Error
			if err != nil {
				return err
			}
			if id == 0 {
				continue
			}
			a.ID, a.CreatedAt = id, now
			if err := s.deliver(ctx, tx, a); err != nil {
				return err
			}
			recorded = append(recorded, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quota: record alerts: %w", err)
	}
	return recorded, nil
}

// alertSubject is the e-mail subject and webhook event type of an alert.
func alertEvent(a Alert) (typ, subject string) {
	switch a.Kind {
	case AlertCrossed:
		return "quota.threshold_crossed", fmt.Sprintf("%s: %s at %d%% of its quota", a.TenantName, a.Dimension, a.Threshold)
	case AlertResolved:
		return "quota.back_under", fmt.Sprintf("%s: %s back under %d%% of its quota", a.TenantName, a.Dimension, a.Threshold)
	case AlertScaled:
		return "quota.limit_scaled", fmt.Sprintf("%s: %s quota raised", a.TenantName, a.Dimension)
	}
	return "quota." + a.Kind, fmt.Sprintf("%s: %s quota", a.TenantName, a.Dimension)
}

// deliver sends a recorded alert by e-mail or webhook according to the tenant's channel, in
// tx: the message and the webhook job exist exactly when the alert does.
func (s *Service) deliver(ctx context.Context, tx *gorm.DB, a Alert) error {
	n := s.notify
	if n == nil || n.Prefs == nil {
		return nil
	}
	p, err := n.Prefs(ctx, a.TenantID)
	if err != nil {
		return fmt.Errorf("quota: notification preferences of tenant %d: %w", a.TenantID, err)
	}
	typ, subject := alertEvent(a)
	switch p.Channel {
	case "email":
		for _, to := range p.Emails {
			tid := a.TenantID
			_, err := mail.Enqueue(tx, mail.Message{TenantID: &tid, Kind: "quota.alert", To: to, Subject: subject,
				DedupKey: fmt.Sprintf("quota.alert/%d/%s/%s/%d/%s/%s", a.TenantID, a.Dimension, a.PeriodStart.Format(time.RFC3339), a.Threshold, a.Kind, to),
				Text:     a.Message + "\n\nSee the tenant's Quotas tab for the history."})
			if err != nil && validation.Fields(err) == nil {
				return err
			}
		}
	case "webhook":
		var url string
		if err := tx.Raw("SELECT url FROM tenantry.quota_webhooks WHERE tenant_id = ?", a.TenantID).Scan(&url).Error; err != nil {
			return err
		}
		if url == "" {
			return nil // no endpoint configured: the in-app history has it
		}
		body, _ := json.Marshal(map[string]any{"id": a.ID, "type": typ, "tenant": a.Slug, "dimension": a.Dimension,
			"threshold_percent": a.Threshold, "used": a.Used, "limit": a.HardLimit, "period_start": a.PeriodStart,
			"message": a.Message, "created_at": a.CreatedAt})
		var id int64
		if err := tx.Raw(`INSERT INTO tenantry.quota_webhook_deliveries (tenant_id, alert_id, url, body) VALUES (?, ?, ?, ?)
			ON CONFLICT (alert_id) DO NOTHING RETURNING id`, a.TenantID, a.ID, url, string(body)).Scan(&id).Error; err != nil || id == 0 {
			return err
		}
		sqlTx, err := db.SQLTx(tx)
		if err != nil {
			return err
		}
		if _, err := n.jobs.InsertTx(ctx, sqlTx, WebhookArgs{DeliveryID: id}, &river.InsertOpts{MaxAttempts: WebhookAttempts}); err != nil {
			return fmt.Errorf("quota: enqueue webhook: %w", err)
		}
	}
	return nil
}

// AlertFilter selects alerts for the history and the bell.
type AlertFilter struct {
	TenantID   *int64
	UnreadOnly bool
	Search     string // matches the tenant's name or slug, or the dimension
	Page       int    // from 1
	PerPage    int
}

// Alerts returns a page of alerts, newest first, and how many match.
func (s *Service) Alerts(ctx context.Context, f AlertFilter) ([]Alert, int64, error) {
	if f.PerPage <= 0 {
		f.PerPage = 20
	}
	if f.Page < 1 {
		f.Page = 1
	}
	q := s.db.App.WithContext(ctx).Table("tenantry.quota_alerts a").Joins("JOIN tenantry.tenants t ON t.id = a.tenant_id")
	if f.TenantID != nil {
		q = q.Where("a.tenant_id = ?", *f.TenantID)
	}
	if f.UnreadOnly {
		q = q.Where("a.read_at IS NULL")
	}
	if f.Search = strings.TrimSpace(f.Search); f.Search != "" {
		like := db.Contains(f.Search)
		q = q.Where("(t.name ILIKE ? OR t.slug ILIKE ? OR a.dimension ILIKE ?)", like, like, like)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("quota: alerts: %w", err)
	}
	var out []Alert
	err := q.Select("a.id, a.tenant_id, t.slug, t.name AS tenant_name, a.dimension, a.kind, a.period_start, a.threshold, a.used, a.hard_limit, a.message, a.created_at, a.read_at").
		Order("a.created_at DESC, a.id DESC").Limit(f.PerPage).Offset((f.Page - 1) * f.PerPage).Scan(&out).Error
	if err != nil {
		return nil, 0, fmt.Errorf("quota: alerts: %w", err)
	}
	return out, total, nil
}

// UnreadAlerts counts the alerts no admin has marked read (the bell's number).
func (s *Service) UnreadAlerts(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.App.WithContext(ctx).Raw("SELECT count(*) FROM tenantry.quota_alerts WHERE read_at IS NULL").Scan(&n).Error
	return n, err
}

// MarkAlertsRead marks the unread alerts read, of one tenant or (tenantID nil) all.
func (s *Service) MarkAlertsRead(ctx context.Context, tenantID *int64) (int64, error) {
	q := s.db.App.WithContext(ctx).Exec("UPDATE tenantry.quota_alerts SET read_at = now() WHERE read_at IS NULL AND (?::bigint IS NULL OR tenant_id = ?)", tenantID, tenantID)
	return q.RowsAffected, q.Error
}

// AlertsArgs asks for the alert evaluation (and the recording of expired grants).
type AlertsArgs struct{}

// Kind names the job in River.
func (AlertsArgs) Kind() string { return "quota.alerts" }

// AlertsWorker evaluates alert thresholds and records expired grants.
type AlertsWorker struct {
	river.WorkerDefaults[AlertsArgs]
	Service *Service
}

// Work evaluates the thresholds, then records expired grants.
func (w *AlertsWorker) Work(ctx context.Context, _ *river.Job[AlertsArgs]) error {
	if _, err := w.Service.EvaluateAlerts(ctx); err != nil {
		return err
	}
	_, err := w.Service.RecordExpiredGrants(ctx)
	return err
}

// AlertsInterval is how often alerts are evaluated.
const AlertsInterval = 5 * time.Second

// AlertsPeriodic runs the evaluation every AlertsInterval, on one node.
func AlertsPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(AlertsInterval),
		func() (river.JobArgs, *river.InsertOpts) { return AlertsArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// AlertState is where a tenant's dimension stands against its alert thresholds this period.
type AlertState struct {
	Thresholds []int // in force
	// Crossed are the thresholds crossed this period and not gone back under, ascending.
	Crossed []int
}

// AlertStates returns the alert state of each of the tenant's dimensions, by key.
func (s *Service) AlertStates(ctx context.Context, tenantID int64) (map[string]AlertState, error) {
	dims, err := s.Dimensions(ctx)
	if err != nil {
		return nil, err
	}
	table, err := s.loadThresholds(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var rows []struct {
		Dimension   string
		PeriodStart time.Time
		Threshold   int
		Kind        string
	}
	if err := s.db.App.WithContext(ctx).Raw(`SELECT dimension, period_start, threshold, kind FROM tenantry.quota_alerts
		WHERE tenant_id = ? AND kind IN ('crossed', 'resolved') AND period_start > ?::timestamptz - interval '32 days'
		ORDER BY threshold`, tenantID, now).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("quota: alert states: %w", err)
	}
	out := make(map[string]AlertState, len(dims))
	for _, d := range dims {
		period := alertPeriod(d, now)
		st := AlertState{Thresholds: table.get(tenantID, d.Key), Crossed: []int{}}
		resolved := map[int]bool{}
		for _, r := range rows {
			if r.Dimension == d.Key && r.PeriodStart.Equal(period) && r.Kind == AlertResolved {
				resolved[r.Threshold] = true
			}
		}
		for _, r := range rows {
			if r.Dimension == d.Key && r.PeriodStart.Equal(period) && r.Kind == AlertCrossed && !resolved[r.Threshold] {
				st.Crossed = append(st.Crossed, r.Threshold)
			}
		}
		out[d.Key] = st
	}
	return out, nil
}
