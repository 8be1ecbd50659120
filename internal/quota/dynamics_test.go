package quota_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// clock is a settable time for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// clocked returns a fresh service on b's database reading time from a clock set to t.
func (b *testBundle) clocked(t time.Time) (*quota.Service, *clock) {
	c := &clock{t: t}
	svc := quota.NewService(b.db)
	svc.SetClock(c.now)
	return svc, c
}

func mustConsume(t *testing.T, svc *quota.Service, tenantID int64, dim string, amount int64, want bool) quota.Result {
	t.Helper()
	r, err := svc.Consume(context.Background(), tenantID, dim, amount, key())
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed != want {
		t.Fatalf("consume %d of %s: allowed %v, want %v (used %d, limit %d)", amount, dim, r.Allowed, want, r.Used, r.Limit)
	}
	return r
}

func auditActions(t *testing.T, b *testBundle, tenantID int64) map[string][]string {
	t.Helper()
	events, _, err := audit.List(context.Background(), b.db.App, audit.Query{TenantID: &tenantID, Page: 1, PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range events {
		out[e.Action] = append(out[e.Action], e.Actor+" "+string(e.Detail))
	}
	return out
}

func TestGrantStartAndExpiry(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	t0 := time.Date(2030, 1, 10, 8, 0, 0, 0, time.UTC)
	svc, clk := b.clocked(t0)
	// Grants of other tests in this database that ended by the time checked below are recorded
	// first, so the counts below are this test's own.
	clk.set(t0.Add(time.Hour))
	if _, err := svc.RecordExpiredGrants(ctx); err != nil {
		t.Fatal(err)
	}
	clk.set(t0)
	tn := b.newTenant(t, "free")
	if _, err := svc.SetLimit(ctx, "admin@example.com", tn.ID, "api_requests", 5, 10); err != nil {
		t.Fatal(err)
	}
	g, err := svc.AddGrant(ctx, "admin@example.com", tn.ID, quota.NewGrant{Dimension: "api_requests", Amount: 5,
		StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour), Reason: "launch week"})
	if err != nil {
		t.Fatal(err)
	}
	mustConsume(t, svc, tn.ID, "api_requests", 10, true)
	mustConsume(t, svc, tn.ID, "api_requests", 1, false) // the grant has not started
	if l, _ := svc.Limit(ctx, tn.ID, "api_requests"); l.Grants != 0 || l.Effective != 10 || l.State != quota.StateBlocked {
		t.Fatalf("before the grant: %+v", l)
	}

	clk.set(t0.Add(time.Hour)) // its first second
	r := mustConsume(t, svc, tn.ID, "api_requests", 4, true)
	if r.Used != 14 || r.Remaining != 1 {
		t.Fatalf("within the grant: %+v", r)
	}
	if r := mustConsume(t, svc, tn.ID, "api_requests", 2, false); r.Remaining != 1 { // 16 > 15
		t.Fatalf("denied within the grant: remaining %d, want 1", r.Remaining)
	}
	mustConsume(t, svc, tn.ID, "api_requests", 1, true)
	if l, _ := svc.Limit(ctx, tn.ID, "api_requests"); l.Grants != 5 || l.Effective != 15 || l.Remaining != 0 {
		t.Fatalf("during the grant: %+v", l)
	}
	ps, err := svc.Nearest(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.TenantID == tn.ID && (p.Grants != 5 || p.State() != quota.StateBlocked) {
			t.Fatalf("pressure: %+v %s", p, p.State())
		}
	}
	if n, err := svc.RecordExpiredGrants(ctx); err != nil || n != 0 {
		t.Fatalf("expired while active: %d %v", n, err)
	}

	clk.set(t0.Add(2 * time.Hour)) // its end: no longer counts
	// Lower usage is impossible for a counter, so prove expiry with a fresh tenant's view and a refused consume.
	mustConsume(t, svc, tn.ID, "api_requests", 1, false)
	if l, _ := svc.Limit(ctx, tn.ID, "api_requests"); l.Grants != 0 || l.Effective != 10 {
		t.Fatalf("after the grant: %+v", l)
	}
	if n, err := svc.RecordExpiredGrants(ctx); err != nil || n != 1 {
		t.Fatalf("record expiry: %d %v", n, err)
	}
	if n, err := svc.RecordExpiredGrants(ctx); err != nil || n != 0 {
		t.Fatalf("expiry recorded twice: %d %v", n, err)
	}
	acts := auditActions(t, b, tn.ID)
	if len(acts["quota.grant_added"]) != 1 || !strings.Contains(acts["quota.grant_added"][0], "launch week") ||
		len(acts["quota.grant_expired"]) != 1 || !strings.HasPrefix(acts["quota.grant_expired"][0], "system ") {
		t.Fatalf("audit: %v", acts)
	}
	gs, err := svc.Grants(ctx, tn.ID, 10)
	if err != nil || len(gs) != 1 || gs[0].ID != g.ID || gs[0].State(clk.now()) != quota.GrantExpired || gs[0].ExpiryRecordedAt == nil {
		t.Fatalf("grants: %+v %v", gs, err)
	}
	alerts, _, err := svc.Alerts(ctx, quota.AlertFilter{TenantID: &tn.ID})
	if err != nil || len(alerts) != 1 || alerts[0].Kind != quota.AlertGrantExpired {
		t.Fatalf("history: %+v %v", alerts, err)
	}

	// Bad grants change nothing and say why at the field.
	_, err = svc.AddGrant(ctx, "admin@example.com", tn.ID, quota.NewGrant{Dimension: "api_requests", Amount: 0,
		StartsAt: t0, EndsAt: t0.Add(-time.Hour), Reason: " "})
	f := validation.Fields(err)
	if f["amount"] == "" || f["ends_at"] == "" || f["reason"] == "" {
		t.Fatalf("validation: %v", err)
	}
	// A revoked grant stops counting at once.
	g2, err := svc.AddGrant(ctx, "admin@example.com", tn.ID, quota.NewGrant{Dimension: "api_requests", Amount: 100,
		EndsAt: clk.now().Add(time.Hour), Reason: "support ticket 42"})
	if err != nil {
		t.Fatal(err)
	}
	mustConsume(t, svc, tn.ID, "api_requests", 50, true)
	if err := svc.RevokeGrant(ctx, "admin@example.com", tn.ID, g2.ID); err != nil {
		t.Fatal(err)
	}
	mustConsume(t, svc, tn.ID, "api_requests", 1, false)
}

func TestBurstWindow(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	day1 := time.Date(2030, 1, 10, 10, 0, 0, 0, time.UTC)
	svc, clk := b.clocked(day1)
	tn := b.newTenant(t, "free")
	pct, win := 20, time.Hour
	// compute_vcpu_hours resets monthly: the used amount carries over days, the burst window does not.
	if _, err := svc.Change(ctx, "admin@example.com", tn.ID, "compute_vcpu_hours", quota.LimitChange{Soft: 80, Hard: 100, BurstPercent: &pct, BurstWindow: &win}); err != nil {
		t.Fatal(err)
	}
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 100, true)
	if l, _ := svc.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Burst.State != quota.BurstAvailable || l.Burst.Amount != 20 || l.State != quota.StateSoft || l.Remaining != 20 {
		t.Fatalf("at the limit: %+v, state %s, remaining %d", l.Burst, l.State, l.Remaining)
	}
	clk.set(day1.Add(10 * time.Minute))
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 10, true) // beyond hard: opens the window
	l, _ := svc.Limit(ctx, tn.ID, "compute_vcpu_hours")
	if l.Burst.State != quota.BurstOpen || !l.Burst.StartedAt.Equal(day1.Add(10*time.Minute)) || !l.Burst.ClosesAt.Equal(day1.Add(70*time.Minute)) {
		t.Fatalf("window: %+v", l.Burst)
	}
	clk.set(day1.Add(60 * time.Minute))
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 11, false) // 121 > 120
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 5, true)   // 115
	clk.set(day1.Add(70 * time.Minute))                         // the window has closed
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 1, false)
	if l, _ := svc.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Burst.State != quota.BurstUsed || l.Used != 115 || l.State != quota.StateBlocked || l.Remaining != 0 {
		t.Fatalf("closed: %+v used %d", l.Burst, l.Used)
	}
	clk.set(day1.Add(13*time.Hour + 59*time.Minute)) // 23:59, still day 1
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 1, false)
	day2 := time.Date(2030, 1, 11, 9, 0, 0, 0, time.UTC) // the next burst period: a fresh window
	clk.set(day2)
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 5, true) // 120
	mustConsume(t, svc, tn.ID, "compute_vcpu_hours", 1, false)
	if l, _ := svc.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Burst.State != quota.BurstOpen || !l.Burst.StartedAt.Equal(day2) {
		t.Fatalf("day 2: %+v", l.Burst)
	}
	if _, err := svc.Change(ctx, "a", tn.ID, "compute_vcpu_hours", quota.LimitChange{Soft: 1, Hard: 2, BurstPercent: ptr(101), BurstWindow: ptr(25 * time.Hour)}); validation.Fields(err)["burst_percent"] == "" || validation.Fields(err)["burst_window"] == "" {
		t.Fatalf("burst validation: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentGrantsAndBurst drives 400 goroutines against a limit with an active grant and
// burst capacity: never more than hard + grants + burst is granted, and used == granted.
func TestConcurrentGrantsAndBurst(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	type lim struct {
		dim              string
		hard, grant, pct int64
	}
	tn := b.newTenant(t, "enterprise")
	lims := []lim{{"api_requests", 1000, 300, 20}, {"compute_vcpu_hours", 500, 0, 50}, {"network_egress_gb", 700, 200, 0}}
	for _, l := range lims {
		p := int(l.pct)
		if _, err := svc.Change(ctx, "a", tn.ID, l.dim, quota.LimitChange{Soft: l.hard / 2, Hard: l.hard, BurstPercent: &p}); err != nil {
			t.Fatal(err)
		}
		if l.grant > 0 {
			if _, err := svc.AddGrant(ctx, "a", tn.ID, quota.NewGrant{Dimension: l.dim, Amount: l.grant, StartsAt: time.Now().Add(-time.Minute),
				EndsAt: time.Now().Add(time.Hour), Reason: "load test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	granted := make([]atomic.Int64, len(lims))
	var wg sync.WaitGroup
	for g := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 12 {
				i := (g + j) % len(lims)
				amount := int64(1 + (g*7+j)%10)
				r, err := svc.Consume(ctx, tn.ID, lims[i].dim, amount, fmt.Sprintf("c%d-%d", g, j))
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					granted[i].Add(amount)
				}
			}
		}()
	}
	wg.Wait()
	for i, l := range lims {
		ceiling := l.hard + l.grant + l.hard*l.pct/100
		used := b.used(t, tn.ID, l.dim)
		if g := granted[i].Load(); g > ceiling || used != g || g < ceiling-10 {
			t.Errorf("%s: granted %d, used %d, ceiling %d", l.dim, g, used, ceiling)
		}
	}
}

// notifyTo records the preferences the tests give tenants.
func notifier(channel string, emails []string, secret string) *quota.Notifier {
	return &quota.Notifier{
		Prefs: func(context.Context, int64) (quota.Prefs, error) {
			return quota.Prefs{Channel: channel, Emails: emails}, nil
		},
		Secret: func(context.Context, int64) ([]byte, error) { return []byte(secret), nil },
	}
}

func TestAlertsOncePerPeriodAndBackUnder(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	t0 := time.Date(2030, 2, 3, 9, 0, 0, 0, time.UTC)
	svc, clk := b.clocked(t0)
	if err := svc.SetNotifier(notifier("email", []string{"ops@example.com"}, "")); err != nil {
		t.Fatal(err)
	}
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "api_requests", 80, 100)
	kinds := func(as []quota.Alert) []string {
		var out []string
		for _, a := range as {
			if a.TenantID == tn.ID {
				out = append(out, fmt.Sprintf("%s%d", a.Kind, a.Threshold))
			}
		}
		return out
	}
	eval := func(want ...string) {
		t.Helper()
		got, err := svc.EvaluateAlerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k := kinds(got); fmt.Sprint(k) != fmt.Sprint(want) && !(len(k) == 0 && len(want) == 0) {
			t.Fatalf("alerts %v, want %v", k, want)
		}
	}
	eval()
	mustConsume(t, svc, tn.ID, "api_requests", 50, true)
	eval("crossed50")
	eval() // once per period
	mustConsume(t, svc, tn.ID, "api_requests", 45, true)
	eval("crossed75", "crossed90")
	// A grant doubles the effective limit: 95 of 200 is back under 75 % and 90 %, not under 50 %... 47 %: all three.
	if _, err := svc.AddGrant(ctx, "a", tn.ID, quota.NewGrant{Dimension: "api_requests", Amount: 100, EndsAt: t0.Add(time.Hour), Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	eval("resolved50", "resolved75", "resolved90")
	eval()
	mustConsume(t, svc, tn.ID, "api_requests", 60, true) // 155 of 200: 77 %, crossed again but already fired this period
	eval()
	// Per-tenant thresholds replace the defaults.
	if err := svc.SetThresholds(ctx, "a", &tn.ID, "api_requests", []int{60}); err != nil {
		t.Fatal(err)
	}
	eval("crossed60")
	// The next period starts afresh.
	clk.set(t0.Add(24 * time.Hour))
	eval()
	mustConsume(t, svc, tn.ID, "api_requests", 70, true)
	eval("crossed60")

	var mails []string
	if err := b.db.App.Raw("SELECT dedup_key FROM tenantry.mail_outbox WHERE tenant_id = ? AND kind = 'quota.alert' ORDER BY id", tn.ID).Scan(&mails).Error; err != nil {
		t.Fatal(err)
	}
	if len(mails) != 8 || !strings.Contains(mails[0], fmt.Sprintf("quota.alert/%d/api_requests/2030-02-03T00:00:00Z/50/crossed", tn.ID)) {
		t.Fatalf("mails: %v", mails)
	}
	all, total, err := svc.Alerts(ctx, quota.AlertFilter{TenantID: &tn.ID, PerPage: 5})
	if err != nil || total != 8 || len(all) != 5 || all[0].Kind != quota.AlertCrossed || all[0].Threshold != 60 {
		t.Fatalf("history: %d %+v %v", total, all, err)
	}
	if n, err := svc.MarkAlertsRead(ctx, &tn.ID); err != nil || n != 8 {
		t.Fatalf("mark read: %d %v", n, err)
	}
	if _, err := quota.ParseThresholds("50, x"); validation.Fields(err)["thresholds"] == "" {
		t.Fatal("bad thresholds accepted")
	}
	if th, _ := quota.ParseThresholds("90,50 75%"); fmt.Sprint(th) != "[50 75 90]" {
		t.Fatalf("parse: %v", th)
	}
}

func TestWebhookSignedAndRetried(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	const secret = "whsec-test-1"
	var calls atomic.Int32
	var bad atomic.Int32
	var lastBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !quota.VerifySignature([]byte(secret), r.Header.Get(quota.HeaderTimestamp), r.Header.Get(quota.HeaderSignature), body, time.Now(), 5*time.Minute) {
			bad.Add(1)
		}
		lastBody.Store(string(body))
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if err := svc.SetNotifier(notifier("webhook", nil, secret)); err != nil {
		t.Fatal(err)
	}
	tn := b.newTenant(t, "free")
	if err := svc.SetWebhook(ctx, "a", tn.ID, "ftp://x"); validation.Fields(err)["url"] == "" {
		t.Fatalf("bad url: %v", err)
	}
	if err := svc.SetWebhook(ctx, "a", tn.ID, srv.URL+"/hook"); err != nil {
		t.Fatal(err)
	}
	b.setLimit(t, tn.ID, "api_requests", 80, 100)
	if err := svc.SetThresholds(ctx, "a", &tn.ID, quota.AllDimensions, []int{50}); err != nil {
		t.Fatal(err)
	}
	mustConsume(t, svc, tn.ID, "api_requests", 60, true)
	if _, err := svc.EvaluateAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := svc.Deliveries(ctx, tn.ID, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries: %+v %v", ds, err)
	}
	var jobs int
	if err := b.db.App.Raw("SELECT count(*) FROM tenantry.river_job WHERE kind = 'quota.webhook' AND args->>'delivery_id' = ?", fmt.Sprint(ds[0].ID)).Scan(&jobs).Error; err != nil || jobs != 1 {
		t.Fatalf("river job: %d %v", jobs, err)
	}
	// First attempt: the receiver answers 500, the worker fails (River retries it).
	if err := svc.DeliverWebhook(ctx, ds[0].ID); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("attempt 1: %v", err)
	}
	ds, _ = svc.Deliveries(ctx, tn.ID, 10)
	if ds[0].Attempts != 1 || ds[0].LastStatus == nil || *ds[0].LastStatus != 500 || ds[0].DeliveredAt != nil {
		t.Fatalf("after 500: %+v", ds[0])
	}
	if err := svc.DeliverWebhook(ctx, ds[0].ID); err != nil {
		t.Fatalf("attempt 2: %v", err)
	}
	ds, _ = svc.Deliveries(ctx, tn.ID, 10)
	if ds[0].Attempts != 2 || *ds[0].LastStatus != 204 || ds[0].DeliveredAt == nil {
		t.Fatalf("after 204: %+v", ds[0])
	}
	if err := svc.DeliverWebhook(ctx, ds[0].ID); err != nil || calls.Load() != 2 {
		t.Fatalf("delivered twice: %v %d", err, calls.Load())
	}
	if bad.Load() != 0 {
		t.Fatalf("%d requests with a bad signature", bad.Load())
	}
	body := lastBody.Load().(string)
	if !strings.Contains(body, `"type":"quota.threshold_crossed"`) || !strings.Contains(body, `"threshold_percent":50`) || !strings.Contains(body, tn.Slug) {
		t.Fatalf("body: %s", body)
	}
	now := time.Now()
	sig := quota.Sign([]byte(secret), now, []byte(body))
	if quota.VerifySignature([]byte(secret), fmt.Sprint(now.Unix()), sig, []byte(body+" "), now, time.Minute) ||
		quota.VerifySignature([]byte("other"), fmt.Sprint(now.Unix()), sig, []byte(body), now, time.Minute) ||
		quota.VerifySignature([]byte(secret), fmt.Sprint(now.Add(-time.Hour).Unix()), quota.Sign([]byte(secret), now.Add(-time.Hour), []byte(body)), []byte(body), now, time.Minute) {
		t.Fatal("a tampered, wrongly keyed or stale webhook verified")
	}
	if quota.WebhookBackoff(1) != 10*time.Second || quota.WebhookBackoff(3) != 40*time.Second || quota.WebhookBackoff(20) != time.Hour {
		t.Fatal("backoff")
	}
}

func TestScalingRuleDryRunAndApply(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	day := time.Date(2031, 3, 10, 12, 0, 0, 0, time.UTC)
	svc, _ := b.clocked(day)
	hot, mixed := b.newTenant(t, "starter"), b.newTenant(t, "starter")
	for _, tn := range []tenant.Tenant{hot, mixed} {
		b.setLimit(t, tn.ID, "api_requests", 800, 1000)
	}
	put := func(tn tenant.Tenant, daysAgo int, total int64) {
		_, err := b.db.OwnerPool.Exec(ctx, `INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
			VALUES ($1, 'api_requests', 'day', $2, $3, $3, 1)`, tn.ID, time.Date(2031, 3, 10-daysAgo, 0, 0, 0, 0, time.UTC), total)
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range []int64{900, 950, 870} {
		put(hot, 3-i, v)
	}
	for i, v := range []int64{900, 500, 900} {
		put(mixed, 3-i, v)
	}
	put(mixed, 0, 999) // today is not complete: it does not count
	if _, err := svc.SaveRule(ctx, "a", quota.Rule{Name: "", Dimension: "nope", ThresholdPercent: 0, Days: 0, RaisePercent: 0}); len(validation.Fields(err)) != 6 {
		t.Fatalf("rule validation: %v", err)
	}
	r, err := svc.SaveRule(ctx, "admin@example.com", quota.Rule{Name: "busy APIs", Dimension: "api_requests", ThresholdPercent: 85,
		Days: 3, RaisePercent: 25, MaxHard: 1200, Notify: true, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := svc.DryRun(ctx, r.ID)
	if err != nil || len(dry) != 1 || dry[0].TenantID != hot.ID || dry[0].Hard != 1000 || dry[0].NewHard != 1200 || fmt.Sprint(dry[0].Utilisation) != "[90 95 87]" {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if l, _ := svc.Limit(ctx, hot.ID, "api_requests"); l.Hard != 1000 {
		t.Fatal("the dry run changed the limit")
	}
	applied, err := svc.ApplyRule(ctx, "system", r.ID)
	if err != nil || len(applied) != 1 || applied[0].Skipped != "" {
		t.Fatalf("apply: %+v %v", applied, err)
	}
	if l, _ := svc.Limit(ctx, hot.ID, "api_requests"); l.Hard != 1200 || l.Soft != 800 {
		t.Fatalf("after apply: %+v", l)
	}
	if l, _ := svc.Limit(ctx, mixed.ID, "api_requests"); l.Hard != 1000 {
		t.Fatalf("mixed changed: %+v", l)
	}
	acts := auditActions(t, b, hot.ID)
	if len(acts["quota.limit_scaled"]) != 1 || !strings.Contains(acts["quota.limit_scaled"][0], `busy APIs`) || !strings.HasPrefix(acts["quota.limit_scaled"][0], "system ") {
		t.Fatalf("audit: %v", acts)
	}
	alerts, _, _ := svc.Alerts(ctx, quota.AlertFilter{TenantID: &hot.ID})
	if len(alerts) != 1 || alerts[0].Kind != quota.AlertScaled || alerts[0].HardLimit != 1200 {
		t.Fatalf("notified: %+v", alerts)
	}
	// Applied once: the streak starts again at the new limit.
	if again, err := svc.DryRun(ctx, r.ID); err != nil || len(again) != 0 {
		t.Fatalf("second dry run: %+v %v", again, err)
	}
	// Another plan's rule touches nobody here.
	ent := "enterprise"
	r2, err := svc.SaveRule(ctx, "a", quota.Rule{Name: "ent", Dimension: "api_requests", PlanKey: &ent, ThresholdPercent: 50, Days: 1, RaisePercent: 10, MaxHard: 1 << 40, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range must(svc.DryRun(ctx, r2.ID)) {
		if p.TenantID == hot.ID || p.TenantID == mixed.ID {
			t.Fatalf("plan scope ignored: %+v", p)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestParentPool(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	ts := tenant.NewService(b.db, dbtest.Logger(t))
	parent := b.newTenant(t, "enterprise")
	var kids []tenant.Tenant
	for i := range 2 {
		k, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: fmt.Sprintf("%s-k%d", parent.Slug, i), Name: fmt.Sprintf("Kid %d", i), PlanKey: "free", ParentSlug: parent.Slug})
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k)
	}
	// free seats default: 3 each, 6 held.
	if err := svc.SetPool(ctx, "a", parent.ID, "seats", ptr(int64(5))); validation.Fields(err)["cap"] == "" {
		t.Fatalf("pool below held: %v", err)
	}
	if err := svc.SetPool(ctx, "admin@example.com", parent.ID, "seats", ptr(int64(60))); err != nil {
		t.Fatal(err)
	}
	b.setLimit(t, kids[0].ID, "seats", 40, 40)
	_, err := svc.SetLimit(ctx, "a", kids[1].ID, "seats", 30, 30)
	if f := validation.Fields(err); !strings.Contains(f["hard"], parent.Name) || !strings.Contains(f["hard"], "at most 20") {
		t.Fatalf("pool refusal: %v", err)
	}
	if l, _ := svc.Limit(ctx, kids[1].ID, "seats"); l.Hard != 3 {
		t.Fatalf("refused change applied: %+v", l)
	}
	b.setLimit(t, kids[1].ID, "seats", 20, 20)
	pools, err := svc.Pools(ctx, parent.ID)
	if err != nil || len(pools) != 1 || pools[0].Allocated != 60 || pools[0].Cap != 60 {
		t.Fatalf("pools: %+v %v", pools, err)
	}
	// Lowering is always allowed; other dimensions are not pooled.
	b.setLimit(t, kids[1].ID, "seats", 10, 10)
	b.setLimit(t, kids[1].ID, "projects", 100, 100)
	if acts := auditActions(t, b, parent.ID); len(acts["quota.pool_changed"]) != 1 {
		t.Fatalf("audit: %v", acts)
	}
	if err := svc.SetPool(ctx, "a", parent.ID, "seats", nil); err != nil {
		t.Fatal(err)
	}
	b.setLimit(t, kids[1].ID, "seats", 500, 500)
	_ = errors.New
}

// A gauge never resets: each threshold fires at most once a calendar month, and goes back under.
func TestGaugeAlertsMonthly(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	t0 := time.Date(2030, 5, 20, 9, 0, 0, 0, time.UTC)
	svc, clk := b.clocked(t0)
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "storage_gb", 4, 10)
	if err := svc.SetThresholds(ctx, "a", nil, "storage_gb", []int{50}); err != nil {
		t.Fatal(err)
	}
	level := func(v int64, want ...string) {
		t.Helper()
		if err := svc.ReportUsage(ctx, tn.ID, []quota.Report{{Dimension: "storage_gb", Value: v}}); err != nil {
			t.Fatal(err)
		}
		got, err := svc.EvaluateAlerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, a := range got {
			if a.TenantID == tn.ID {
				kinds = append(kinds, fmt.Sprintf("%s%d", a.Kind, a.Threshold))
			}
		}
		if fmt.Sprint(kinds) != fmt.Sprint(want) && !(len(kinds) == 0 && len(want) == 0) {
			t.Fatalf("level %d: alerts %v, want %v", v, kinds, want)
		}
	}
	level(6, "crossed50")
	level(7)
	level(2, "resolved50")
	level(8) // already fired this month
	st, err := svc.AlertStates(ctx, tn.ID)
	if err != nil || fmt.Sprint(st["storage_gb"].Crossed) != "[]" || fmt.Sprint(st["storage_gb"].Thresholds) != "[50]" {
		t.Fatalf("state: %+v %v", st["storage_gb"], err)
	}
	clk.set(time.Date(2030, 6, 1, 0, 0, 1, 0, time.UTC))
	level(8, "crossed50")
	if st, _ := svc.AlertStates(ctx, tn.ID); fmt.Sprint(st["storage_gb"].Crossed) != "[50]" {
		t.Fatalf("state: %+v", st["storage_gb"])
	}
}
