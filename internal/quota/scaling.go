package quota

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Rule is an automated scaling policy: when a tenant's utilisation of Dimension stays above
// ThresholdPercent of its hard limit for Days consecutive days, raise the hard limit by
// RaisePercent, never above MaxHard, and (Notify) tell the tenant. PlanKey "" is every plan.
type Rule struct {
	ID               int64
	Name             string
	Dimension        string
	PlanKey          *string
	ThresholdPercent int
	Days             int
	RaisePercent     int
	MaxHard          int64
	Notify           bool
	Enabled          bool
	CreatedBy        string
	CreatedAt        time.Time
	LastRunAt        *time.Time
}

// Describe is the rule in words, also the reason recorded with every change it makes.
func (r Rule) Describe() string {
	scope := "every plan"
	if r.PlanKey != nil {
		scope = "plan " + *r.PlanKey
	}
	return fmt.Sprintf("rule #%d %q: %s above %d%% for %d consecutive days (%s) → raise the hard limit %d%%, at most %d",
		r.ID, r.Name, r.Dimension, r.ThresholdPercent, r.Days, scope, r.RaisePercent, r.MaxHard)
}

// ErrRuleNotFound means no rule has the id.
var ErrRuleNotFound = errors.New("quota: scaling rule not found")

// SaveRule creates (ID 0) or updates a rule, audited. Validation errors are keyed by the form's
// fields: name, dimension, plan_key, threshold_percent, days, raise_percent, max_hard.
func (s *Service) SaveRule(ctx context.Context, actor string, r Rule) (Rule, error) {
	errs := validation.Errors{}
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || len(r.Name) > 120 {
		errs.Add("name", "Give the rule a name of 1 to 120 characters.")
	}
	if _, err := s.dimension(ctx, r.Dimension); err != nil {
		errs.Add("dimension", "Choose a dimension from the list.")
	}
	if r.PlanKey != nil {
		var n int64
		if err := s.db.App.WithContext(ctx).Raw("SELECT count(*) FROM tenantry.plans WHERE key = ?", *r.PlanKey).Scan(&n).Error; err != nil {
			return Rule{}, err
		}
		if n == 0 {
			errs.Add("plan_key", "Choose a plan from the list, or every plan.")
		}
	}
	if r.ThresholdPercent < 1 || r.ThresholdPercent > 100 {
		errs.Add("threshold_percent", "Enter a percentage from 1 to 100.")
	}
	if r.Days < 1 || r.Days > 90 {
		errs.Add("days", "Enter a number of days from 1 to 90.")
	}
	if r.RaisePercent < 1 || r.RaisePercent > 1000 {
		errs.Add("raise_percent", "Enter a percentage from 1 to 1000.")
	}
	if r.MaxHard < 1 || r.MaxHard > MaxLimit {
		errs.Add("max_hard", "Enter the largest hard limit the rule may set: a whole number of 1 or more.")
	}
	if err := errs.Err(); err != nil {
		return Rule{}, err
	}
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		action := "quota.rule_created"
		if r.ID == 0 {
			r.CreatedBy = actor
			if err := tx.Raw(`INSERT INTO tenantry.quota_scaling_rules (name, dimension, plan_key, threshold_percent, days, raise_percent, max_hard, notify, enabled, created_by)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, created_at`, r.Name, r.Dimension, r.PlanKey, r.ThresholdPercent, r.Days,
				r.RaisePercent, r.MaxHard, r.Notify, r.Enabled, actor).Row().Scan(&r.ID, &r.CreatedAt); err != nil {
				return err
			}
		} else {
			action = "quota.rule_changed"
			res := tx.Exec(`UPDATE tenantry.quota_scaling_rules SET name = ?, dimension = ?, plan_key = ?, threshold_percent = ?, days = ?,
				raise_percent = ?, max_hard = ?, notify = ?, enabled = ? WHERE id = ?`, r.Name, r.Dimension, r.PlanKey, r.ThresholdPercent,
				r.Days, r.RaisePercent, r.MaxHard, r.Notify, r.Enabled, r.ID)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return ErrRuleNotFound
			}
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: action, Target: fmt.Sprintf("rule #%d", r.ID),
			Detail: audit.Detail(map[string]any{"rule": r.Describe(), "enabled": r.Enabled, "notify": r.Notify})})
	})
	if err != nil {
		return Rule{}, fmt.Errorf("quota: save rule: %w", err)
	}
	return r, nil
}

// DeleteRule removes a rule, audited.
func (s *Service) DeleteRule(ctx context.Context, actor string, id int64) error {
	r, err := s.Rule(ctx, id)
	if err != nil {
		return err
	}
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM tenantry.quota_scaling_rules WHERE id = ?", id).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "quota.rule_deleted", Target: fmt.Sprintf("rule #%d", id),
			Detail: audit.Detail(map[string]any{"rule": r.Describe()})})
	})
}

// Rules lists the rules, oldest first.
func (s *Service) Rules(ctx context.Context) ([]Rule, error) {
	var out []Rule
	err := s.db.App.WithContext(ctx).Raw("SELECT * FROM tenantry.quota_scaling_rules ORDER BY id").Scan(&out).Error
	return out, err
}

// Rule returns one rule.
func (s *Service) Rule(ctx context.Context, id int64) (Rule, error) {
	var r Rule
	if err := s.db.App.WithContext(ctx).Raw("SELECT * FROM tenantry.quota_scaling_rules WHERE id = ?", id).Scan(&r).Error; err != nil {
		return r, err
	}
	if r.ID == 0 {
		return r, ErrRuleNotFound
	}
	return r, nil
}

// Proposal is what a rule would do (dry run) or did (apply) to one tenant.
type Proposal struct {
	TenantID    int64
	Slug        string
	Name        string
	Hard        int64
	NewHard     int64
	Utilisation []int // percent of the hard limit on each day considered, oldest first
	// Skipped says why the tenant qualifies but is not changed (at the maximum, pool full).
	Skipped string
}

// DryRun lists the tenants the rule would change now, and to what, changing nothing. A day counts
// when it is complete (before today, UTC) and after the limit's last change, so a tenant is
// raised again only after Days more days above the threshold at its new limit. Utilisation of
// a day is the day's peak level for gauges; for counters, what was used in the period up to the
// day's end (the busiest hour for hourly periods) against the hard limit.
func (s *Service) DryRun(ctx context.Context, ruleID int64) ([]Proposal, error) {
	r, err := s.Rule(ctx, ruleID)
	if err != nil {
		return nil, err
	}
	return s.propose(ctx, r)
}

func (s *Service) propose(ctx context.Context, r Rule) ([]Proposal, error) {
	d, err := s.dimension(ctx, r.Dimension)
	if err != nil {
		return nil, err
	}
	today := s.now().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -r.Days)
	from := first
	if d.Kind == Counter && d.ResetPeriod == "monthly" {
		from = time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC)
	} else if d.Kind == Counter && d.ResetPeriod == "none" {
		from = time.Unix(0, 0)
	}
	var tenants []struct {
		ID        int64
		Slug      string
		Name      string
		Hard      int64
		UpdatedAt time.Time
	}
	err = s.db.App.WithContext(ctx).Raw(`
		SELECT t.id, t.slug, t.name, l.hard_limit AS hard, l.updated_at
		  FROM tenantry.quota_limits l JOIN tenantry.tenants t ON t.id = l.tenant_id
		 WHERE l.dimension = ? AND l.hard_limit > 0 AND t.state = 'active' AND (?::text IS NULL OR t.plan_key = ?)
		 ORDER BY t.id`, r.Dimension, r.PlanKey, r.PlanKey).Scan(&tenants).Error
	if err != nil {
		return nil, fmt.Errorf("quota: rule %d: %w", r.ID, err)
	}
	if len(tenants) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(tenants))
	for i, t := range tenants {
		ids[i] = t.ID
	}
	gran := "day"
	if d.Kind == Counter && d.ResetPeriod == "hourly" {
		gran = "hour"
	}
	var buckets []struct {
		TenantID    int64
		Day         time.Time
		Total, Peak int64
	}
	err = s.db.App.WithContext(ctx).Raw(`
		SELECT tenant_id, date_trunc('day', bucket_start, 'UTC') AS day, sum(total)::bigint AS total, max(total)::bigint AS peak
		  FROM tenantry.usage_rollups
		 WHERE dimension = ? AND granularity = ? AND tenant_id IN ? AND bucket_start >= ? AND bucket_start < ?
		 GROUP BY 1, 2`, r.Dimension, gran, ids, from, today).Scan(&buckets).Error
	if err != nil {
		return nil, fmt.Errorf("quota: rule %d: %w", r.ID, err)
	}
	if d.Kind == Gauge {
		// A gauge's rollup peak is the highest level; re-read it.
		err = s.db.App.WithContext(ctx).Raw(`
			SELECT tenant_id, bucket_start AS day, total, peak FROM tenantry.usage_rollups
			 WHERE dimension = ? AND granularity = 'day' AND tenant_id IN ? AND bucket_start >= ? AND bucket_start < ?`,
			r.Dimension, ids, from, today).Scan(&buckets).Error
		if err != nil {
			return nil, fmt.Errorf("quota: rule %d: %w", r.ID, err)
		}
	}
	type dayKey struct {
		tenant int64
		day    int64
	}
	byDay := map[dayKey][2]int64{}
	for _, b := range buckets {
		byDay[dayKey{b.TenantID, b.Day.UTC().Unix()}] = [2]int64{b.Total, b.Peak}
	}
	var out []Proposal
	for _, t := range tenants {
		// Only days after the limit's last change count.
		if !first.After(t.UpdatedAt.UTC()) {
			continue
		}
		util := make([]int, 0, r.Days)
		qualifies := true
		for i := 0; i < r.Days; i++ {
			day := first.AddDate(0, 0, i)
			var level int64
			switch {
			case d.Kind == Gauge:
				level = byDay[dayKey{t.ID, day.Unix()}][1]
			case d.ResetPeriod == "daily":
				level = byDay[dayKey{t.ID, day.Unix()}][0]
			case d.ResetPeriod == "hourly":
				level = byDay[dayKey{t.ID, day.Unix()}][1]
			default: // monthly or never: used in the period up to the day's end
				start := from
				if d.ResetPeriod == "monthly" {
					start = time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
				}
				for x := start; !x.After(day); x = x.AddDate(0, 0, 1) {
					level += byDay[dayKey{t.ID, x.Unix()}][0]
				}
			}
			pct := int(level * 100 / t.Hard)
			util = append(util, pct)
			if level*100 <= int64(r.ThresholdPercent)*t.Hard {
				qualifies = false
			}
		}
		if !qualifies {
			continue
		}
		p := Proposal{TenantID: t.ID, Slug: t.Slug, Name: t.Name, Hard: t.Hard, Utilisation: util}
		raise := (t.Hard*int64(r.RaisePercent) + 99) / 100
		p.NewHard = min(r.MaxHard, t.Hard+raise)
		if p.NewHard <= t.Hard {
			p.NewHard, p.Skipped = t.Hard, fmt.Sprintf("already at or above the rule's maximum of %d", r.MaxHard)
		}
		out = append(out, p)
	}
	return out, nil
}

// ApplyRule makes the changes DryRun lists: each one through Change (validated, pool-checked,
// audited as quota.limit_scaled with the rule as its reason) and, when the rule says so, an
// alert to the tenant. It returns the proposals with Skipped set for those that were refused.
func (s *Service) ApplyRule(ctx context.Context, actor string, ruleID int64) ([]Proposal, error) {
	r, err := s.Rule(ctx, ruleID)
	if err != nil {
		return nil, err
	}
	props, err := s.propose(ctx, r)
	if err != nil {
		return nil, err
	}
	for i, p := range props {
		if p.Skipped != "" {
			continue
		}
		l, err := s.Limit(ctx, p.TenantID, r.Dimension)
		if err != nil {
			return props, err
		}
		_, err = s.Change(ctx, actor, p.TenantID, r.Dimension, LimitChange{Soft: l.Soft, Hard: p.NewHard, Reason: r.Describe()})
		if f := validation.Fields(err); f != nil {
			props[i].Skipped = f["hard"]
			continue
		} else if err != nil {
			return props, err
		}
		if r.Notify {
			a := Alert{TenantID: p.TenantID, Slug: p.Slug, TenantName: p.Name, Dimension: r.Dimension, Kind: AlertScaled,
				PeriodStart: s.now(), Used: l.Used, HardLimit: p.NewHard,
				Message: fmt.Sprintf("The %s hard limit was raised from %d to %d by %s.", r.Dimension, p.Hard, p.NewHard, r.Describe())}
			err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := tx.Raw(`INSERT INTO tenantry.quota_alerts (tenant_id, dimension, kind, period_start, used, hard_limit, message)
					VALUES (?, ?, 'scaled', ?, ?, ?, ?) RETURNING id, created_at`, a.TenantID, a.Dimension, a.PeriodStart, a.Used, a.HardLimit,
					a.Message).Row().Scan(&a.ID, &a.CreatedAt); err != nil {
					return err
				}
				return s.deliver(ctx, tx, a)
			})
			if err != nil {
				return props, err
			}
		}
	}
	if err := s.db.App.WithContext(ctx).Exec("UPDATE tenantry.quota_scaling_rules SET last_run_at = ? WHERE id = ?", s.now(), r.ID).Error; err != nil {
		return props, err
	}
	return props, nil
}

// ScalingArgs asks for the enabled scaling rules to be applied.
type ScalingArgs struct{}

// Kind names the job in River.
func (ScalingArgs) Kind() string { return "quota.scaling" }

// ScalingWorker applies every enabled rule (actor "system").
type ScalingWorker struct {
	river.WorkerDefaults[ScalingArgs]
	Service *Service
}

// Work applies the enabled rules one after the other.
func (w *ScalingWorker) Work(ctx context.Context, _ *river.Job[ScalingArgs]) error {
	rules, err := w.Service.Rules(ctx)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		if _, err := w.Service.ApplyRule(ctx, "system", r.ID); err != nil {
			return err
		}
	}
	return nil
}

// ScalingPeriodic runs the rules every hour (a tenant qualifies once a day at most: its streak
// starts again after each change).
func ScalingPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return ScalingArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
