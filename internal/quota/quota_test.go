package quota_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type testBundle struct {
	db  *db.DB
	svc *quota.Service
}

func setup(t testing.TB) (*quota.Service, *testBundle) {
	t.Helper()
	d := dbtest.Open(t)
	svc := quota.NewService(d)
	return svc, &testBundle{db: d, svc: svc}
}

// newTenant registers an active tenant on plan.
func (b *testBundle) newTenant(t testing.TB, plan string) tenant.Tenant {
	t.Helper()
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	slug := "q-" + hex.EncodeToString(r)
	tn, err := tenant.NewService(b.db, dbtest.Logger(t)).Create(context.Background(), "test",
		tenant.NewTenant{Slug: slug, Name: "Quota " + slug, PlanKey: plan})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (b *testBundle) setLimit(t testing.TB, tenantID int64, dim string, soft, hard int64) {
	t.Helper()
	if _, err := b.svc.SetLimit(context.Background(), "test", tenantID, dim, soft, hard); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) used(t testing.TB, tenantID int64, dim string) int64 {
	t.Helper()
	var used int64
	err := b.db.OwnerPool.QueryRow(context.Background(),
		"SELECT used FROM tenantry.quota_limits WHERE tenant_id = $1 AND dimension = $2", tenantID, dim).Scan(&used)
	if err != nil {
		t.Fatal(err)
	}
	return used
}

func key() string {
	r := make([]byte, 12)
	_, _ = rand.Read(r)
	return hex.EncodeToString(r)
}

func TestCatalogue(t *testing.T) {
	svc, _ := setup(t)
	dims, err := svc.Dimensions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, d := range dims {
		keys = append(keys, d.Key)
		if d.Name == "" || d.Unit == "" || d.Category == "" || (d.Kind != quota.Counter && d.Kind != quota.Gauge) {
			t.Errorf("incomplete dimension %+v", d)
		}
	}
	want := "compute_vcpu_hours storage_gb network_egress_gb api_requests seats projects"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("dimensions = %s, want %s", got, want)
	}
}

func TestLimitsFromPlan(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	free, ent := b.newTenant(t, "free"), b.newTenant(t, "enterprise")
	lf, err := svc.Limit(ctx, free.ID, "api_requests")
	if err != nil {
		t.Fatal(err)
	}
	le, err := svc.Limit(ctx, ent.ID, "api_requests")
	if err != nil {
		t.Fatal(err)
	}
	if !lf.Default || lf.Hard != 10000 || lf.Soft != 8000 || lf.Used != 0 || lf.State != quota.StateOK || le.Hard <= lf.Hard {
		t.Fatalf("free %+v, enterprise %+v", lf, le)
	}
	if day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1); !lf.ResetAt.Equal(day) {
		t.Fatalf("api_requests resets at %v, want %v", lf.ResetAt, day)
	}
	// The row a consume creates from the plan still counts as the plan's default.
	if _, err := svc.Consume(ctx, free.ID, "api_requests", 1, key()); err != nil {
		t.Fatal(err)
	}
	if lf, err = svc.Limit(ctx, free.ID, "api_requests"); err != nil || !lf.Default || lf.Used != 1 {
		t.Fatalf("after a consume: %+v %v", lf, err)
	}
	if _, err := svc.Limits(ctx, 999999999); !errors.Is(err, quota.ErrTenantNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
}

func TestConsumeSoftAndHard(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "compute_vcpu_hours", 5, 10)

	steps := []struct {
		amount          int64
		allowed, soft   bool
		used, remaining int64
		state           string
	}{
		{4, true, false, 4, 6, quota.StateOK},
		{1, true, false, 5, 5, quota.StateOK}, // at the soft limit is not over it
		{2, true, true, 7, 3, quota.StateSoft},
		{4, false, false, 7, 3, quota.StateSoft}, // 11 > 10: refused, nothing consumed
		{3, true, true, 10, 0, quota.StateBlocked},
		{1, false, false, 10, 0, quota.StateBlocked},
	}
	for i, st := range steps {
		r, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", st.amount, key())
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed != st.allowed || r.SoftExceeded != st.soft || r.Used != st.used || r.Remaining != st.remaining || r.Limit != 10 || r.Soft != 5 {
			t.Fatalf("step %d (%d): %+v, want %+v", i, st.amount, r, st)
		}
		if r.ResetAt.IsZero() || r.ResetAt.Day() != 1 {
			t.Fatalf("monthly dimension resets at %v", r.ResetAt)
		}
		l, err := svc.Limit(ctx, tn.ID, "compute_vcpu_hours")
		if err != nil {
			t.Fatal(err)
		}
		if l.State != st.state || l.Used != st.used || l.Default {
			t.Fatalf("step %d: limit %+v, want state %s", i, l, st.state)
		}
	}
	if got := b.used(t, tn.ID, "compute_vcpu_hours"); got != 10 {
		t.Fatalf("used = %d", got)
	}
	var events, sum int64
	if err := b.db.OwnerPool.QueryRow(ctx, "SELECT count(*), COALESCE(sum(value), 0) FROM tenantry.usage_events WHERE tenant_id = $1", tn.ID).Scan(&events, &sum); err != nil {
		t.Fatal(err)
	}
	if events != 4 || sum != 10 {
		t.Fatalf("usage events: %d summing %d, want 4 granted consumes summing 10", events, sum)
	}
}

func TestConsumeBadInput(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	for _, tc := range []struct {
		name   string
		dim    string
		amount int64
		key    string
		want   error
	}{
		{"unknown dimension", "bananas", 1, key(), quota.ErrUnknownDimension},
		{"zero", "api_requests", 0, key(), quota.ErrBadAmount},
		{"negative", "api_requests", -5, key(), quota.ErrBadAmount},
		{"huge", "api_requests", quota.MaxAmount + 1, key(), quota.ErrBadAmount},
		{"no key", "api_requests", 1, "", quota.ErrBadIdempotencyKey},
		{"long key", "api_requests", 1, strings.Repeat("k", 256), quota.ErrBadIdempotencyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Consume(ctx, tn.ID, tc.dim, tc.amount, tc.key); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := svc.Consume(ctx, 999999999, "api_requests", 1, key()); !errors.Is(err, quota.ErrTenantNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	var rows int64
	if err := b.db.OwnerPool.QueryRow(ctx, "SELECT (SELECT count(*) FROM tenantry.quota_consumptions WHERE tenant_id = $1) + (SELECT count(*) FROM tenantry.usage_events WHERE tenant_id = $1)", tn.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("bad input left %d rows behind", rows)
	}
}

func TestIdempotency(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "network_egress_gb", 50, 100)

	t.Run("sequential", func(t *testing.T) {
		k := key()
		first, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 7, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 1, key()); err != nil { // moves used on
			t.Fatal(err)
		}
		again, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 7, k)
		if err != nil {
			t.Fatal(err)
		}
		if first.Replayed || !again.Replayed {
			t.Fatalf("replayed flags: first %v, again %v", first.Replayed, again.Replayed)
		}
		again.Replayed = false
		if again != first {
			t.Fatalf("second answer %+v, first %+v", again, first)
		}
		if got := b.used(t, tn.ID, "network_egress_gb"); got != 8 {
			t.Fatalf("used = %d, want 8 (7 once, then 1)", got)
		}
	})
	t.Run("same key, other request", func(t *testing.T) {
		k := key()
		if _, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 2, k); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 3, k); !errors.Is(err, quota.ErrIdempotencyMismatch) {
			t.Fatalf("other amount: %v", err)
		}
		if _, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 2, k); !errors.Is(err, quota.ErrIdempotencyMismatch) {
			t.Fatalf("other dimension: %v", err)
		}
		if got := b.used(t, tn.ID, "network_egress_gb"); got != 10 {
			t.Fatalf("used = %d, want 10", got)
		}
	})
	t.Run("a denial is replayed as a denial", func(t *testing.T) {
		k := key()
		r, err := svc.Consume(ctx, tn.ID, "network_egress_gb", 95, k)
		if err != nil || r.Allowed {
			t.Fatalf("%+v %v", r, err)
		}
		r, err = svc.Consume(ctx, tn.ID, "network_egress_gb", 95, k)
		if err != nil || r.Allowed || !r.Replayed {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		before := b.used(t, tn.ID, "network_egress_gb")
		k := key()
		var wg sync.WaitGroup
		results := make([]quota.Result, 50)
		errs := make([]error, 50)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = svc.Consume(ctx, tn.ID, "network_egress_gb", 3, k)
			}()
		}
		wg.Wait()
		fresh := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !r.Allowed || r.Used != before+3 {
				t.Fatalf("answer %d: %+v", i, r)
			}
			if !r.Replayed {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d answers were not replays, want exactly 1", fresh)
		}
		if got := b.used(t, tn.ID, "network_egress_gb"); got != before+3 {
			t.Fatalf("used = %d, want %d: consumed more than once", got, before+3)
		}
	})
}

// TestConcurrentConsumeIsExact: 200 goroutines consume random amounts from several tenants'
// limits at once, far past the limits. Whatever the interleaving, the units granted never exceed
// the hard limit, and used equals exactly what was granted.
func TestConcurrentConsumeIsExact(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	type target struct {
		tenantID int64
		dim      string
		hard     int64
		granted  atomic.Int64
	}
	var targets []*target
	for i, hard := range []int64{1, 97, 500, 2000} {
		tn := b.newTenant(t, "starter")
		for _, dim := range []string{"api_requests", "compute_vcpu_hours"} {
			b.setLimit(t, tn.ID, dim, hard/2, hard+int64(i))
			targets = append(targets, &target{tenantID: tn.ID, dim: dim, hard: hard + int64(i)})
		}
	}
	const workers, perWorker = 200, 40
	var wg sync.WaitGroup
	var denied atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(w), 42))
			for i := range perWorker {
				tg := targets[rng.IntN(len(targets))]
				n := 1 + rng.Int64N(25)
				r, err := svc.Consume(ctx, tg.tenantID, tg.dim, n, fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					tg.granted.Add(n)
					if r.Used > tg.hard {
						t.Errorf("granted up to %d over hard limit %d", r.Used, tg.hard)
					}
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if denied.Load() == 0 {
		t.Fatal("no consume was denied: the test did not reach the limits")
	}
	for _, tg := range targets {
		used := b.used(t, tg.tenantID, tg.dim)
		if g := tg.granted.Load(); used != g || g > tg.hard {
			t.Errorf("tenant %d %s: used %d, granted %d, hard %d", tg.tenantID, tg.dim, used, g, tg.hard)
		}
	}
}

func TestPeriodReset(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "api_requests", 5, 10)
	if r, err := svc.Consume(ctx, tn.ID, "api_requests", 10, key()); err != nil || !r.Allowed {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := svc.Consume(ctx, tn.ID, "api_requests", 1, key()); err != nil || r.Allowed {
		t.Fatalf("over the limit: %+v %v", r, err)
	}
	// The counter's period began yesterday: the next consume starts today's period from 0.
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_limits SET period_start = period_start - interval '1 day' WHERE tenant_id = $1 AND dimension = 'api_requests'", tn.ID); err != nil {
		t.Fatal(err)
	}
	l, err := svc.Limit(ctx, tn.ID, "api_requests")
	if err != nil || l.Used != 0 || l.State != quota.StateOK {
		t.Fatalf("after the period ended, Limits shows %+v %v", l, err)
	}
	r, err := svc.Consume(ctx, tn.ID, "api_requests", 3, key())
	if err != nil || !r.Allowed || r.Used != 3 {
		t.Fatalf("first consume of the new period: %+v %v", r, err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if !r.ResetAt.Equal(today.AddDate(0, 0, 1)) {
		t.Fatalf("reset at %v", r.ResetAt)
	}
	// A gauge never resets.
	b.setLimit(t, tn.ID, "projects", 2, 3)
	if r, err := svc.Consume(ctx, tn.ID, "projects", 3, key()); err != nil || !r.Allowed || !r.ResetAt.IsZero() {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_limits SET period_start = period_start - interval '400 days' WHERE tenant_id = $1 AND dimension = 'projects'", tn.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := svc.Consume(ctx, tn.ID, "projects", 1, key()); err != nil || r.Allowed || r.Used != 3 {
		t.Fatalf("gauge reset: %+v %v", r, err)
	}
}

// TestPeriodResetConcurrent: many consumes race at the moment the period turns; the reset
// happens once, in the guarded statement, and the new period is exact.
func TestPeriodResetConcurrent(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "api_requests", 50, 100)
	if _, err := svc.Consume(ctx, tn.ID, "api_requests", 100, key()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_limits SET period_start = period_start - interval '1 day' WHERE tenant_id = $1 AND dimension = 'api_requests'", tn.ID); err != nil {
		t.Fatal(err)
	}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := svc.Consume(ctx, tn.ID, "api_requests", 3, key())
			if err != nil {
				t.Error(err)
			} else if r.Allowed {
				granted.Add(3)
			}
		}()
	}
	wg.Wait()
	if g, used := granted.Load(), b.used(t, tn.ID, "api_requests"); g != 99 || used != 99 {
		t.Fatalf("granted %d, used %d; want 99 (33 of 60 consumes of 3 within 100)", g, used)
	}
}

func TestSetLimit(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	for _, tc := range []struct {
		name       string
		soft, hard int64
		field      string
	}{
		{"negative soft", -1, 10, "soft"},
		{"negative hard", 0, -1, "hard"},
		{"soft above hard", 11, 10, "soft"},
		{"huge", 1, quota.MaxLimit + 1, "hard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.SetLimit(ctx, "admin@example.com", tn.ID, "storage_gb", tc.soft, tc.hard)
			if !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)[tc.field] == "" {
				t.Fatalf("err = %v, want a message at %s", err, tc.field)
			}
		})
	}
	if _, err := svc.SetLimit(ctx, "a", tn.ID, "bananas", 1, 2); !errors.Is(err, quota.ErrUnknownDimension) {
		t.Fatalf("unknown dimension: %v", err)
	}
	if _, err := svc.SetLimit(ctx, "a", 999999999, "storage_gb", 1, 2); !errors.Is(err, quota.ErrTenantNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	l, err := svc.SetLimit(ctx, "admin@example.com", tn.ID, "storage_gb", 7, 7)
	if err != nil || l.Soft != 7 || l.Hard != 7 || l.Default {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := svc.SetLimit(ctx, "admin@example.com", tn.ID, "storage_gb", 0, 20); err != nil {
		t.Fatal(err)
	}
	events, _, err := audit.List(ctx, b.db.App, audit.Query{TenantID: &tn.ID, Page: 1, PerPage: 50})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, e := range events {
		if e.Action == "quota.limit_changed" {
			details = append(details, e.Actor+" "+e.Target+" "+string(e.Detail))
		}
	}
	if len(details) != 2 {
		t.Fatalf("audit: %v", details)
	}
	// Newest first: 7/7 -> 0/20, then the plan default 4/5 -> 7/7.
	for i, want := range []string{`"after": {"hard": 20, "soft": 0}, "before": {"hard": 7, "soft": 7}`, `"after": {"hard": 7, "soft": 7}, "before": {"hard": 5, "soft": 4}`} {
		if !strings.Contains(details[i], want) || !strings.Contains(details[i], "admin@example.com "+tn.Slug) || !strings.Contains(details[i], "storage_gb") {
			t.Errorf("audit %d: %s, want %s", i, details[i], want)
		}
	}
}

func TestReportUsage(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	now := time.Now().UTC()
	err := svc.ReportUsage(ctx, tn.ID, []quota.Report{
		{Dimension: "storage_gb", Value: 3, At: now.Add(-time.Minute)},
		{Dimension: "network_egress_gb", Value: 2, At: now},
		{Dimension: "storage_gb", Value: 9, At: now.Add(-2 * time.Minute)}, // late: older than the level above
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := svc.Limit(ctx, tn.ID, "storage_gb")
	eg, _ := svc.Limit(ctx, tn.ID, "network_egress_gb")
	if st.Used != 3 || st.State != quota.StateOK || eg.Used != 0 {
		t.Fatalf("storage %+v, egress %+v", st, eg)
	}
	if err := svc.ReportUsage(ctx, tn.ID, []quota.Report{{Dimension: "storage_gb", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	if st, _ = svc.Limit(ctx, tn.ID, "storage_gb"); st.Used != 5 || st.State != quota.StateBlocked {
		t.Fatalf("storage %+v", st)
	}
	var n int64
	if err := b.db.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.usage_events WHERE tenant_id = $1", tn.ID).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d events, %v", n, err)
	}
	for _, tc := range []struct {
		name string
		in   []quota.Report
		want error
	}{
		{"empty", nil, quota.ErrBadReport},
		{"unknown", []quota.Report{{Dimension: "storage_gb", Value: 1}, {Dimension: "x", Value: 1}}, quota.ErrUnknownDimension},
		{"negative", []quota.Report{{Dimension: "storage_gb", Value: -1}}, quota.ErrBadAmount},
		{"future", []quota.Report{{Dimension: "storage_gb", Value: 1, At: now.Add(time.Hour)}}, quota.ErrBadReport},
		{"too many", make([]quota.Report, quota.MaxReports+1), quota.ErrBadReport},
	} {
		if err := svc.ReportUsage(ctx, tn.ID, tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := b.db.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.usage_events WHERE tenant_id = $1", tn.ID).Scan(&n); err != nil || n != 4 {
		t.Fatalf("refused batches recorded events: %d, %v", n, err)
	}
}

// TestRowLevelSecurity: in a tenant's own context (its role and app.tenant_id), the quota tables
// show only that tenant's rows.
func TestRowLevelSecurity(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	a, other := b.newTenant(t, "free"), b.newTenant(t, "free")
	for _, tn := range []tenant.Tenant{a, other} {
		if _, err := svc.Consume(ctx, tn.ID, "api_requests", 1, "k-"+tn.Slug); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"quota_limits", "quota_consumptions", "usage_events"} {
		var ids []int64
		err := b.db.InTenant(ctx, a.ID, func(tx *gorm.DB) error {
			return tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).
				Raw("SELECT DISTINCT tenant_id FROM tenantry." + table).Scan(&ids).Error
		})
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if len(ids) != 1 || ids[0] != a.ID {
			t.Errorf("%s: tenant %d sees rows of tenants %v", table, a.ID, ids)
		}
		var n int64
		if err := b.db.AppPool.QueryRow(ctx, "SELECT count(DISTINCT tenant_id) FROM tenantry."+table+" WHERE tenant_id IN ($1, $2)", a.ID, other.ID).Scan(&n); err != nil || n != 2 {
			t.Errorf("%s: the platform sees %d tenants, %v", table, n, err)
		}
	}
	// The tenant role may not change its own counter.
	err := b.db.InTenant(ctx, a.ID, func(tx *gorm.DB) error {
		return tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).
			Exec("UPDATE tenantry.quota_limits SET used = 0").Error
	})
	if err == nil {
		t.Fatal("a tenant role could update its quota counter")
	}
}

// TestDenialReportsCommittedUsage: a consume that waited for the row while another transaction
// used it up is denied against the committed value, and answers with that value, not the older
// one its statement began with.
func TestDenialReportsCommittedUsage(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "compute_vcpu_hours", 5, 10)
	if _, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 5, key()); err != nil {
		t.Fatal(err)
	}
	tx, err := b.db.OwnerPool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE tenantry.quota_limits SET used = 10 WHERE tenant_id = $1 AND dimension = 'compute_vcpu_hours'", tn.ID); err != nil {
		t.Fatal(err)
	}
	k := key()
	done := make(chan quota.Result)
	go func() {
		r, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 1, k)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(300 * time.Millisecond) // the consume is now waiting for the row lock
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.Allowed || r.Used != 10 || r.Remaining != 0 {
		t.Fatalf("denial answered %+v, want used 10, remaining 0", r)
	}
	if again, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 1, k); err != nil || again.Used != 10 || !again.Replayed {
		t.Fatalf("replay %+v %v", again, err)
	}
}
