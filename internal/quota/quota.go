// Package quota owns resource quotas: the catalogue of dimensions, each tenant's soft and hard
// limits (from its plan's defaults, overridable per tenant), the exact check-and-consume that
// enforces them, and the usage reported by governed services.
//
// The truth is the counter row in tenantry.quota_limits. Consume is one SQL statement: a guarded
// UPDATE that adds the amount only if the result stays within the hard limit (resetting the
// counter first when a new period has begun), together with the idempotency record and the usage
// event, so it is atomic and exact under any concurrency and across server processes.
package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/validation"
)

// Sentinel errors. Callers test them with errors.Is; the API turns them into 4xx answers.
var (
	// ErrUnknownDimension means the dimension key is not in the catalogue.
	ErrUnknownDimension = errors.New("quota: unknown dimension")
	// ErrBadAmount means an amount or level is out of range (consume: 1..MaxAmount).
	ErrBadAmount = errors.New("quota: amount out of range")
	// ErrBadIdempotencyKey means the idempotency key is missing or longer than 255 characters.
	ErrBadIdempotencyKey = errors.New("quota: idempotency key missing or too long")
	// ErrIdempotencyMismatch means the key was used before for another dimension or amount.
	ErrIdempotencyMismatch = errors.New("quota: idempotency key already used for a different request")
	// ErrBadReport means a usage report is malformed (empty or oversized batch, time in the future).
	ErrBadReport = errors.New("quota: bad usage report")
	// ErrTenantNotFound means no tenant has the id.
	ErrTenantNotFound = errors.New("quota: tenant not found")
)

// MaxAmount is the largest amount one consume may ask for.
const MaxAmount = 1_000_000_000

// MaxLimit is the largest soft or hard limit that may be set.
const MaxLimit = 1_000_000_000_000_000

// MaxReports is the largest batch ReportUsage accepts.
const MaxReports = 1000

// Kinds of dimension.
const (
	Counter = "counter" // consumed over a period
	Gauge   = "gauge"   // reported as a level
)

// States of a tenant's dimension.
const (
	StateOK      = "ok"      // at or under the soft limit
	StateSoft    = "soft"    // over the soft limit, still under the hard one
	StateBlocked = "blocked" // at or over the hard limit: consumes are refused
)

// Dimension is one entry of the catalogue.
type Dimension struct {
	Key         string
	Name        string
	Unit        string
	Kind        string // Counter or Gauge
	ResetPeriod string // none, hourly, daily, monthly
	Category    string // compute, storage, network, api, seats, feature
	Position    int
}

// periodStart is the start of the period containing t (UTC), or the zero time for "none".
func (d Dimension) periodStart(t time.Time) time.Time {
	t = t.UTC()
	switch d.ResetPeriod {
	case "hourly":
		return t.Truncate(time.Hour)
	case "daily":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case "monthly":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// ResetAfter is when the period starting at start ends, or the zero time when it never resets.
func (d Dimension) ResetAfter(start time.Time) time.Time {
	if start.IsZero() || start.Year() < 1000 {
		return time.Time{}
	}
	start = start.UTC()
	switch d.ResetPeriod {
	case "hourly":
		return start.Add(time.Hour)
	case "daily":
		return start.AddDate(0, 0, 1)
	case "monthly":
		return start.AddDate(0, 1, 0)
	}
	return time.Time{}
}

// truncUnit is the date_trunc field of the reset period, "" for none.
func (d Dimension) truncUnit() string {
	switch d.ResetPeriod {
	case "hourly":
		return "hour"
	case "daily":
		return "day"
	case "monthly":
		return "month"
	}
	return ""
}

// Limit is a tenant's quota on one dimension, as it stands now.
type Limit struct {
	Dimension Dimension
	Soft      int64
	Hard      int64
	Used      int64 // in the current period
	Remaining int64 // what may still be consumed: max(0, Hard-Used)
	ResetAt   time.Time
	State     string // StateOK, StateSoft or StateBlocked
	// Default is true while the limits are the plan's (no row yet, or one with the same numbers).
	Default bool
	// Grants is the sum of the grants active now; Effective = Hard + Grants is what consumes
	// may reach outside a burst window.
	Grants    int64
	Effective int64
	Burst     Burst
}

// Burst is a limit's burst capacity and the state of today's window.
type Burst struct {
	Percent   int           // allowance above the hard limit, in percent of it; 0: none
	Window    time.Duration // how long the window stays open once opened, per UTC day
	StartedAt time.Time     // when the window last opened; zero: never
	Amount    int64         // Hard * Percent / 100
	State     string        // BurstOff, BurstAvailable, BurstOpen or BurstUsed
	ClosesAt  time.Time     // while open
}

// Burst window states.
const (
	BurstOff       = "off"       // no burst capacity
	BurstAvailable = "available" // not used yet today: the first consume beyond the limit opens it
	BurstOpen      = "open"      // open now, until ClosesAt
	BurstUsed      = "used"      // used today and closed: consumes beyond the limit are refused until tomorrow
)

func burstState(b Burst, now time.Time) Burst {
	day := now.UTC().Truncate(24 * time.Hour)
	switch {
	case b.Percent == 0:
		b.State = BurstOff
	case b.StartedAt.IsZero() || b.StartedAt.Before(day):
		b.State = BurstAvailable
	case now.Before(b.StartedAt.Add(b.Window)):
		b.State, b.ClosesAt = BurstOpen, b.StartedAt.Add(b.Window)
	default:
		b.State = BurstUsed
	}
	return b
}

// Result is the answer to a consume.
type Result struct {
	Dimension    string
	Allowed      bool
	SoftExceeded bool // allowed, but used is now over the soft limit
	Soft         int64
	Limit        int64 // the hard limit
	Used         int64
	Remaining    int64
	ResetAt      time.Time // zero when the dimension never resets
	// Replayed is true when the idempotency key was seen before and this is its first answer.
	Replayed bool
}

// Service reads and changes quotas.
type Service struct {
	db    *db.DB
	clock func() time.Time
	// Notify delivers alerts (see alerts.go); nil until SetNotifier.
	notify *Notifier

	mu         sync.RWMutex
	dimensions map[string]Dimension
	ordered    []Dimension
}

// NewService returns a Service on d.
func NewService(d *db.DB) *Service {
	return &Service{db: d}
}

// SetClock makes the service read the time from now instead of the database's clock (tests use
// it to move through grant windows, burst windows and periods). Call it before any other use.
func (s *Service) SetClock(now func() time.Time) { s.clock = now }

// now is the service's time: the set clock, or the local one.
func (s *Service) now() time.Time {
	if s.clock != nil {
		return s.clock().UTC()
	}
	return time.Now().UTC()
}

// sqlNow is the time statements use: nil (the database's now()) unless a clock is set.
func (s *Service) sqlNow() *time.Time {
	if s.clock == nil {
		return nil
	}
	t := s.clock().UTC()
	return &t
}

// Dimensions returns the catalogue in display order.
func (s *Service) Dimensions(ctx context.Context) ([]Dimension, error) {
	if err := s.loadCatalogue(ctx, false); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Dimension(nil), s.ordered...), nil
}

// dimension looks key up in the cached catalogue, reloading it once when the key is missing
// (a dimension added since the cache was filled).
func (s *Service) dimension(ctx context.Context, key string) (Dimension, error) {
	for reload := range 2 {
		if err := s.loadCatalogue(ctx, reload == 1); err != nil {
			return Dimension{}, err
		}
		s.mu.RLock()
		d, ok := s.dimensions[key]
		s.mu.RUnlock()
		if ok {
			return d, nil
		}
	}
	return Dimension{}, fmt.Errorf("%w: %q", ErrUnknownDimension, key)
}

func (s *Service) loadCatalogue(ctx context.Context, force bool) error {
	s.mu.RLock()
	loaded := s.dimensions != nil
	s.mu.RUnlock()
	if loaded && !force {
		return nil
	}
	rows, err := s.db.AppPool.Query(ctx, `SELECT key, name, unit, kind, reset_period, category, position
		FROM tenantry.quota_dimensions ORDER BY position, key`)
	if err != nil {
		return fmt.Errorf("quota: load dimensions: %w", err)
	}
	ordered, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Dimension, error) {
		var d Dimension
		err := r.Scan(&d.Key, &d.Name, &d.Unit, &d.Kind, &d.ResetPeriod, &d.Category, &d.Position)
		return d, err
	})
	if err != nil {
		return fmt.Errorf("quota: load dimensions: %w", err)
	}
	m := make(map[string]Dimension, len(ordered))
	for _, d := range ordered {
		m[d.Key] = d
	}
	s.mu.Lock()
	s.dimensions, s.ordered = m, ordered
	s.mu.Unlock()
	return nil
}

// state classifies used against the limits.
func state(used, soft, hard int64) string {
	switch {
	case used >= hard:
		return StateBlocked
	case used > soft:
		return StateSoft
	}
	return StateOK
}

// Limits returns the tenant's quota on every dimension, in catalogue order. Dimensions the tenant
// has no row for yet show the plan's default (Default true) with nothing used.
func (s *Service) Limits(ctx context.Context, tenantID int64) ([]Limit, error) {
	dims, err := s.Dimensions(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rows, err := s.db.AppPool.Query(ctx, `
		SELECT d.key, l.tenant_id IS NULL,
		       l.tenant_id IS NULL OR (l.soft_limit = p.soft_limit AND l.hard_limit = p.hard_limit),
		       COALESCE(l.soft_limit, p.soft_limit, 0), COALESCE(l.hard_limit, p.hard_limit, 0),
		       COALESCE(l.used, 0), COALESCE(l.period_start, '-infinity'),
		       COALESCE(l.burst_percent, 0), COALESCE(extract(epoch FROM l.burst_window), 3600)::bigint, l.burst_started_at,
		       COALESCE((SELECT sum(g.amount) FROM tenantry.quota_grants g
		                  WHERE g.tenant_id = t.id AND g.dimension = d.key AND g.revoked_at IS NULL
		                    AND g.starts_at <= $2 AND g.ends_at > $2), 0)::bigint
		  FROM tenantry.tenants t
		 CROSS JOIN tenantry.quota_dimensions d
		  LEFT JOIN tenantry.quota_limits l ON l.tenant_id = t.id AND l.dimension = d.key
		  LEFT JOIN tenantry.plan_quota_defaults p ON p.plan_key = t.plan_key AND p.dimension = d.key
		 WHERE t.id = $1`, tenantID, now)
	if err != nil {
		return nil, fmt.Errorf("quota: limits of tenant %d: %w", tenantID, err)
	}
	type row struct {
		key              string
		norow, def       bool
		soft, hard, used int64
		start            pgtime
		burstPct         int
		burstSecs        int64
		burstStart       *time.Time
		grants           int64
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.key, &x.norow, &x.def, &x.soft, &x.hard, &x.used, &x.start, &x.burstPct, &x.burstSecs, &x.burstStart, &x.grants)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("quota: limits of tenant %d: %w", tenantID, err)
	}
	if len(got) == 0 {
		return nil, ErrTenantNotFound
	}
	byKey := make(map[string]row, len(got))
	for _, x := range got {
		byKey[x.key] = x
	}
	out := make([]Limit, 0, len(dims))
	for _, d := range dims {
		x, ok := byKey[d.Key]
		if !ok {
			continue
		}
		cur := d.periodStart(now)
		used, start := x.used, x.start.Time
		if d.ResetPeriod != "none" && (x.norow || start.Before(cur)) {
			used, start = 0, cur // a new period has begun; the next consume resets the row
		}
		b := Burst{Percent: x.burstPct, Window: time.Duration(x.burstSecs) * time.Second, Amount: x.hard * int64(x.burstPct) / 100}
		if x.burstStart != nil {
			b.StartedAt = x.burstStart.UTC()
		}
		eff := x.hard + x.grants
		l := Limit{Dimension: d, Soft: x.soft, Hard: x.hard, Used: used, Remaining: max(0, eff-used),
			ResetAt: d.ResetAfter(start), State: state(used, x.soft, eff), Default: x.def,
			Grants: x.grants, Effective: eff, Burst: burstState(b, now)}
		if st := l.Burst.State; st == BurstOpen || st == BurstAvailable {
			// Consumes may still go into the burst allowance: over the soft limit, not blocked.
			l.Remaining = max(0, eff+l.Burst.Amount-used)
			if l.Remaining > 0 && l.State == StateBlocked {
				l.State = StateSoft
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// Limit returns the tenant's quota on one dimension.
func (s *Service) Limit(ctx context.Context, tenantID int64, dimension string) (Limit, error) {
	if _, err := s.dimension(ctx, dimension); err != nil {
		return Limit{}, err
	}
	all, err := s.Limits(ctx, tenantID)
	if err != nil {
		return Limit{}, err
	}
	for _, l := range all {
		if l.Dimension.Key == dimension {
			return l, nil
		}
	}
	return Limit{}, fmt.Errorf("%w: %q", ErrUnknownDimension, dimension)
}

// ensureRow creates the tenant's limit row for dimension from its plan's default (or 0/0 when the
// plan has none, which refuses every consume: fail closed). It does nothing if the row exists.
func ensureRow(ctx context.Context, q querier, tenantID int64, dimension string) error {
	tag, err := q.Exec(ctx, `
		INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit)
		SELECT t.id, $2, COALESCE(p.soft_limit, 0), COALESCE(p.hard_limit, 0)
		  FROM tenantry.tenants t
		  LEFT JOIN tenantry.plan_quota_defaults p ON p.plan_key = t.plan_key AND p.dimension = $2
		 WHERE t.id = $1
		ON CONFLICT (tenant_id, dimension) DO NOTHING`, tenantID, dimension)
	if err != nil {
		return fmt.Errorf("quota: create limit row: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenantry.tenants WHERE id = $1)", tenantID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrTenantNotFound
		}
	}
	return nil
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SetLimit sets the tenant's soft and hard limit on dimension, keeping its burst settings; see
// Change.
func (s *Service) SetLimit(ctx context.Context, actor string, tenantID int64, dimension string, soft, hard int64) (Limit, error) {
	return s.Change(ctx, actor, tenantID, dimension, LimitChange{Soft: soft, Hard: hard})
}

// LimitChange is what an admin sets on a limit. Nil burst fields keep the current values.
type LimitChange struct {
	Soft, Hard   int64
	BurstPercent *int
	BurstWindow  *time.Duration
	// Reason is recorded in the audit event (a scaling rule's name); empty for an admin's edit.
	Reason string
}

// MaxBurstWindow is the longest burst window: a whole day.
const MaxBurstWindow = 24 * time.Hour

// Change sets the tenant's limits on dimension, recording before and after in the audit trail in
// the same transaction. Validation errors are keyed "soft", "hard", "burst_percent" and
// "burst_window"; raising the hard limit of a child beyond its parent's pool is an error at
// "hard" naming the pool. Lowering the hard limit below what is used is allowed: further
// consumes are refused until the period resets.
func (s *Service) Change(ctx context.Context, actor string, tenantID int64, dimension string, ch LimitChange) (Limit, error) {
	d, err := s.dimension(ctx, dimension)
	if err != nil {
		return Limit{}, err
	}
	soft, hard := ch.Soft, ch.Hard
	errs := validation.Errors{}
	if soft < 0 {
		errs.Add("soft", "Enter a whole number of zero or more.")
	} else if soft > MaxLimit {
		errs.Add("soft", "Enter at most 1,000,000,000,000,000.")
	}
	if hard < 0 {
		errs.Add("hard", "Enter a whole number of zero or more.")
	} else if hard > MaxLimit {
		errs.Add("hard", "Enter at most 1,000,000,000,000,000.")
	}
	if len(errs) == 0 && soft > hard {
		errs.Add("soft", "The soft limit cannot be above the hard limit.")
	}
	if ch.BurstPercent != nil && (*ch.BurstPercent < 0 || *ch.BurstPercent > 100) {
		errs.Add("burst_percent", "Enter a percentage from 0 (no burst) to 100.")
	}
	if ch.BurstWindow != nil && (*ch.BurstWindow < time.Minute || *ch.BurstWindow > MaxBurstWindow) {
		errs.Add("burst_window", "Enter a window from 1m to 24h, such as 1h.")
	}
	if err := errs.Err(); err != nil {
		return Limit{}, err
	}
	err = s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t struct {
			Slug     string
			ParentID *int64
		}
		if err := tx.Raw("SELECT slug, parent_id FROM tenantry.tenants WHERE id = ?", tenantID).Scan(&t).Error; err != nil {
			return err
		}
		if t.Slug == "" {
			return ErrTenantNotFound
		}
		if err := tx.Exec(`
			INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit)
			SELECT t.id, ?, COALESCE(p.soft_limit, 0), COALESCE(p.hard_limit, 0)
			  FROM tenantry.tenants t
			  LEFT JOIN tenantry.plan_quota_defaults p ON p.plan_key = t.plan_key AND p.dimension = ?
			 WHERE t.id = ?
			ON CONFLICT (tenant_id, dimension) DO NOTHING`, dimension, dimension, tenantID).Error; err != nil {
			return err
		}
		var before struct {
			SoftLimit    int64
			HardLimit    int64
			BurstPercent int
			BurstSecs    int64
		}
		if err := tx.Raw(`SELECT soft_limit, hard_limit, burst_percent, extract(epoch FROM burst_window)::bigint AS burst_secs
			FROM tenantry.quota_limits WHERE tenant_id = ? AND dimension = ? FOR UPDATE`,
			tenantID, dimension).Scan(&before).Error; err != nil {
			return err
		}
		if t.ParentID != nil && hard > before.HardLimit {
			if err := checkPool(tx, *t.ParentID, tenantID, d, hard); err != nil {
				return err
			}
		}
		pct, win := before.BurstPercent, time.Duration(before.BurstSecs)*time.Second
		if ch.BurstPercent != nil {
			pct = *ch.BurstPercent
		}
		if ch.BurstWindow != nil {
			win = *ch.BurstWindow
		}
		if err := tx.Exec(`UPDATE tenantry.quota_limits SET soft_limit = ?, hard_limit = ?, burst_percent = ?,
			burst_window = make_interval(secs => ?), updated_at = now() WHERE tenant_id = ? AND dimension = ?`,
			soft, hard, pct, int64(win.Seconds()), tenantID, dimension).Error; err != nil {
			return err
		}
		b4 := map[string]any{"soft": before.SoftLimit, "hard": before.HardLimit}
		after := map[string]any{"soft": soft, "hard": hard}
		if oldWin := time.Duration(before.BurstSecs) * time.Second; before.BurstPercent != pct || oldWin != win || pct > 0 {
			b4["burst_percent"], b4["burst_window"] = before.BurstPercent, oldWin.String()
			after["burst_percent"], after["burst_window"] = pct, win.String()
		}
		action, detail := "quota.limit_changed", map[string]any{"dimension": dimension, "before": b4, "after": after}
		if ch.Reason != "" {
			action, detail["reason"] = "quota.limit_scaled", ch.Reason
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: action, Target: t.Slug, Detail: audit.Detail(detail)})
	})
	if err != nil {
		if fields := validation.Fields(err); fields != nil {
			return Limit{}, err
		}
		return Limit{}, fmt.Errorf("quota: set limit: %w", err)
	}
	return s.Limit(ctx, tenantID, dimension)
}

// consumeSQL is the whole check-and-consume, one statement and so one round trip and one
// transaction:
//   - p fixes the clock ($6, or the database's now() when NULL), the period start, the UTC day
//     (the burst period) and extra: the sum of the tenant's grants active now, read by index;
//   - cur reads the row as the statement began, to answer a denial (and to tell "no row yet");
//   - upd adds $4 only when the result stays within the allowance: hard_limit + extra, plus the
//     burst allowance (burst_percent of hard_limit) while the day's burst window is unused or
//     still open. The first consume beyond hard_limit + extra opens the window (burst_started_at)
//     in the same write. used counts as 0 when the row's period has ended (period_start moves
//     forward in the same write). Concurrent consumes of one row queue on its lock and re-check
//     the guard, burst window included, against the committed row;
//   - ins records the answer under the idempotency key. A key seen before makes it fail with a
//     unique violation, which aborts the statement, the UPDATE included: nothing is consumed twice;
//   - ev appends the usage event of a granted consume.
//
// $5 is the date_trunc field of the reset period, or NULL when the dimension never resets.
const consumeSQL = `
WITH c AS (
    SELECT COALESCE($6::timestamptz, now()) AS now
), p AS (
    SELECT c.now,
           CASE WHEN $5::text IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($5::text, c.now, 'UTC') END AS start,
           date_trunc('day', c.now, 'UTC') AS day,
           (SELECT COALESCE(sum(g.amount), 0) FROM tenantry.quota_grants g
             WHERE g.tenant_id = $1 AND g.dimension = $2 AND g.revoked_at IS NULL
               AND g.ends_at > c.now AND g.starts_at <= c.now)::bigint AS extra
      FROM c
), cur AS (
    SELECT q.soft_limit, q.hard_limit,
           CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END AS used,
           GREATEST(q.period_start, p.start) AS period_start,
           q.hard_limit + p.extra + CASE WHEN q.burst_percent > 0 AND (q.burst_started_at IS NULL
                   OR q.burst_started_at < p.day OR p.now < q.burst_started_at + q.burst_window)
               THEN q.hard_limit * q.burst_percent / 100 ELSE 0 END AS allowance
      FROM tenantry.quota_limits q, p
     WHERE q.tenant_id = $1 AND q.dimension = $2
), upd AS (
    UPDATE tenantry.quota_limits q
       SET used = CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END + $4,
           period_start = GREATEST(q.period_start, p.start),
           burst_started_at = CASE
               WHEN CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END + $4 > q.hard_limit + p.extra
                    AND (q.burst_started_at IS NULL OR q.burst_started_at < p.day)
               THEN p.now ELSE q.burst_started_at END
      FROM p
     WHERE q.tenant_id = $1 AND q.dimension = $2
       AND CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END + $4 <= q.hard_limit + p.extra
           + CASE WHEN q.burst_percent > 0 AND (q.burst_started_at IS NULL
                   OR q.burst_started_at < p.day OR p.now < q.burst_started_at + q.burst_window)
               THEN q.hard_limit * q.burst_percent / 100 ELSE 0 END
    RETURNING q.used, q.soft_limit, q.hard_limit, q.period_start
), res AS (
    SELECT upd.used IS NOT NULL AS allowed,
           COALESCE(upd.used, cur.used) AS used,
           COALESCE(upd.soft_limit, cur.soft_limit) AS soft_limit,
           COALESCE(upd.hard_limit, cur.hard_limit) AS hard_limit,
           COALESCE(upd.period_start, cur.period_start) AS period_start,
           cur.allowance
      FROM cur LEFT JOIN upd ON true
), ins AS (
    INSERT INTO tenantry.quota_consumptions
           (tenant_id, idempotency_key, dimension, amount, allowed, used_after, soft_limit, hard_limit, period_start)
    SELECT $1, $3, $2, $4, res.allowed, res.used, res.soft_limit, res.hard_limit, res.period_start FROM res
), ev AS (
    INSERT INTO tenantry.usage_events (tenant_id, dimension, value, occurred_at)
    SELECT $1, $2, $4, p.now FROM upd, p
)
SELECT allowed, used, soft_limit, hard_limit, period_start, allowance FROM res`

// Consume asks for amount units of dimension for the tenant. It grants them only if used stays
// within the hard limit, and answers Allowed false (with the limit, used and reset time) when it
// would not. The same idempotencyKey always gets the first answer again and never consumes twice,
// even when the calls race; reusing a key for another dimension or amount is ErrIdempotencyMismatch.
func (s *Service) Consume(ctx context.Context, tenantID int64, dimension string, amount int64, idempotencyKey string) (Result, error) {
	d, err := s.dimension(ctx, dimension)
	if err != nil {
		return Result{}, err
	}
	if amount <= 0 || amount > MaxAmount {
		return Result{}, fmt.Errorf("%w: %d is not between 1 and %d", ErrBadAmount, amount, MaxAmount)
	}
	if idempotencyKey == "" || len(idempotencyKey) > 255 {
		return Result{}, ErrBadIdempotencyKey
	}
	var unit *string
	if u := d.truncUnit(); u != "" {
		unit = &u
	}
	for attempt := 0; ; attempt++ {
		var (
			allowed                     *bool
			used, soft, hard, allowance *int64
			start                       pgtime
		)
		err := s.db.AppPool.QueryRow(ctx, consumeSQL, tenantID, dimension, idempotencyKey, amount, unit, s.sqlNow()).
			Scan(&allowed, &used, &soft, &hard, &start, &allowance)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "quota_consumptions_pkey":
			return s.replay(ctx, d, tenantID, dimension, amount, idempotencyKey)
		case errors.Is(err, pgx.ErrNoRows) && attempt == 0:
			// The tenant has no row for this dimension yet: create it from the plan, then retry.
			if err := ensureRow(ctx, s.db.AppPool, tenantID, dimension); err != nil {
				return Result{}, err
			}
			continue
		case errors.Is(err, pgx.ErrNoRows):
			return Result{}, ErrTenantNotFound
		case err != nil:
			return Result{}, fmt.Errorf("quota: consume: %w", err)
		}
		if !*allowed && *used+amount <= *allowance {
			// Denied against a value committed while this statement waited for the row, newer
			// than the statement's snapshot that cur read: answer, and record, what is committed.
			return s.refreshDenial(ctx, d, tenantID, idempotencyKey, unit)
		}
		r := result(d, *allowed, *used, *soft, *hard, start.Time)
		// What may still be consumed counts the active grants and an open or unused burst window.
		r.Remaining = max(0, *allowance-*used)
		return r, nil
	}
}

// refreshDenial re-reads the limit row after a denial whose snapshot numbers were stale, and
// stores the fresh numbers under the idempotency key so a retry gets the same answer.
func (s *Service) refreshDenial(ctx context.Context, d Dimension, tenantID int64, key string, unit *string) (Result, error) {
	var (
		used, soft, hard int64
		start            pgtime
	)
	err := s.db.AppPool.QueryRow(ctx, `
		WITH p AS (
		    SELECT CASE WHEN $4::text IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($4::text, COALESCE($5::timestamptz, now()), 'UTC') END AS start
		), cur AS (
		    SELECT CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END AS used, q.soft_limit, q.hard_limit,
		           GREATEST(q.period_start, p.start) AS period_start
		      FROM tenantry.quota_limits q, p
		     WHERE q.tenant_id = $1 AND q.dimension = $2
		)
		UPDATE tenantry.quota_consumptions c
		   SET used_after = cur.used, soft_limit = cur.soft_limit, hard_limit = cur.hard_limit, period_start = cur.period_start
		  FROM cur
		 WHERE c.tenant_id = $1 AND c.idempotency_key = $3
		RETURNING cur.used, cur.soft_limit, cur.hard_limit, cur.period_start`, tenantID, d.Key, key, unit, s.sqlNow()).
		Scan(&used, &soft, &hard, &start)
	if err != nil {
		return Result{}, fmt.Errorf("quota: consume: refresh denial: %w", err)
	}
	return result(d, false, used, soft, hard, start.Time), nil
}

func result(d Dimension, allowed bool, used, soft, hard int64, start time.Time) Result {
	return Result{Dimension: d.Key, Allowed: allowed, SoftExceeded: allowed && used > soft, Soft: soft, Limit: hard,
		Used: used, Remaining: max(0, hard-used), ResetAt: d.ResetAfter(start)}
}

// replay answers a key seen before with its recorded answer.
func (s *Service) replay(ctx context.Context, d Dimension, tenantID int64, dimension string, amount int64, key string) (Result, error) {
	var (
		gotDim           string
		gotAmount        int64
		allowed          bool
		used, soft, hard int64
		start            pgtime
	)
	err := s.db.AppPool.QueryRow(ctx, `SELECT dimension, amount, allowed, used_after, soft_limit, hard_limit, period_start
		FROM tenantry.quota_consumptions WHERE tenant_id = $1 AND idempotency_key = $2`, tenantID, key).
		Scan(&gotDim, &gotAmount, &allowed, &used, &soft, &hard, &start)
	if err != nil {
		return Result{}, fmt.Errorf("quota: replay idempotency key: %w", err)
	}
	if gotDim != dimension || gotAmount != amount {
		return Result{}, fmt.Errorf("%w (first used for %d of %s)", ErrIdempotencyMismatch, gotAmount, gotDim)
	}
	r := result(d, allowed, used, soft, hard, start.Time)
	r.Replayed = true
	return r, nil
}

// Report is one usage report: for a counter, an amount used at At; for a gauge, the level at At.
type Report struct {
	Dimension string
	Value     int64
	At        time.Time // zero means now
}

// ReportUsage records a batch of reports in one transaction: every report is appended as a usage
// event; a gauge's level also becomes its used value (unless a later level was reported already),
// so its state and the consumes of it see the level. Counter reports do not change the counter:
// enforcement is Consume's, and reports feed analytics and billing. The whole batch is refused when
// one report is bad.
func (s *Service) ReportUsage(ctx context.Context, tenantID int64, reports []Report) error {
	if len(reports) == 0 || len(reports) > MaxReports {
		return fmt.Errorf("%w: send between 1 and %d reports", ErrBadReport, MaxReports)
	}
	now := time.Now().UTC()
	dims := make([]Dimension, len(reports))
	for i, r := range reports {
		d, err := s.dimension(ctx, r.Dimension)
		if err != nil {
			return fmt.Errorf("report %d: %w", i+1, err)
		}
		if r.Value < 0 || r.Value > MaxLimit {
			return fmt.Errorf("report %d: %w: %d", i+1, ErrBadAmount, r.Value)
		}
		if r.At.After(now.Add(5 * time.Minute)) {
			return fmt.Errorf("report %d: %w: its time is in the future", i+1, ErrBadReport)
		}
		if r.At.IsZero() {
			reports[i].At = now
		}
		dims[i] = d
	}
	return pgx.BeginFunc(ctx, s.db.AppPool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, r := range reports {
			b.Queue(`INSERT INTO tenantry.usage_events (tenant_id, dimension, value, occurred_at) VALUES ($1, $2, $3, $4)`,
				tenantID, r.Dimension, r.Value, r.At)
			if dims[i].Kind == Gauge {
				b.Queue(`INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit)
					SELECT t.id, $2, COALESCE(p.soft_limit, 0), COALESCE(p.hard_limit, 0)
					  FROM tenantry.tenants t
					  LEFT JOIN tenantry.plan_quota_defaults p ON p.plan_key = t.plan_key AND p.dimension = $2
					 WHERE t.id = $1
					ON CONFLICT (tenant_id, dimension) DO NOTHING`, tenantID, r.Dimension)
				b.Queue(`UPDATE tenantry.quota_limits SET used = $3, reported_at = $4
					WHERE tenant_id = $1 AND dimension = $2 AND (reported_at IS NULL OR reported_at <= $4)`,
					tenantID, r.Dimension, r.Value, r.At)
			}
		}
		err := tx.SendBatch(ctx, b).Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return ErrTenantNotFound
		}
		if err != nil {
			return fmt.Errorf("quota: report usage: %w", err)
		}
		return nil
	})
}

// pgtime scans timestamptz values that may be -infinity (a period that never began), which
// time.Time cannot hold; its Time is then the zero time.
type pgtime = pgtype.Timestamptz
