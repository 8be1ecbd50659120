package quota_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
)

// leaser starts a Leaser on svc and closes it (returning its leases) at the end of the test.
func leaser(t testing.TB, svc *quota.Service, cfg quota.LeaseConfig) *quota.Leaser {
	t.Helper()
	cfg.Log = dbtest.Logger(t)
	lr := quota.NewLeaser(context.Background(), svc, cfg)
	t.Cleanup(func() { _ = lr.Close(context.Background()) })
	return lr
}

// ledger reads what the database says about a tenant's dimension: the counter, the units recorded
// as allowed, and the leases still open.
func (b *testBundle) ledger(t testing.TB, tenantID int64, dim string) (used, allowed, open int64) {
	t.Helper()
	ctx := context.Background()
	used = b.used(t, tenantID, dim)
	if err := b.db.OwnerPool.QueryRow(ctx, `SELECT COALESCE(sum(amount), 0) FROM tenantry.quota_consumptions
		WHERE tenant_id = $1 AND dimension = $2 AND allowed`, tenantID, dim).Scan(&allowed); err != nil {
		t.Fatal(err)
	}
	if err := b.db.OwnerPool.QueryRow(ctx, `SELECT count(*) FROM tenantry.quota_leases
		WHERE tenant_id = $1 AND dimension = $2 AND returned_at IS NULL`, tenantID, dim).Scan(&open); err != nil {
		t.Fatal(err)
	}
	return used, allowed, open
}

type consumer interface {
	Consume(ctx context.Context, tenantID int64, dimension string, amount int64, idempotencyKey string) (quota.Result, error)
}

type loadTarget struct {
	id      int64
	hard    int64
	granted atomic.Int64
}

// drive runs workers goroutines against the targets through the given nodes (round robin) until
// each has seen `denials` refusals on every target, and fails the test on any error or any answer over the limit.
func drive(t *testing.T, nodes []consumer, targets []*loadTarget, workers, denials int, dim string) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(w), 7))
			seen := make([]int, len(targets)) // refusals per target
			var open []int
			for {
				open = open[:0]
				for i, s := range seen {
					if s < denials {
						open = append(open, i)
					}
				}
				if len(open) == 0 {
					return
				}
				ti := open[rnd.IntN(len(open))]
				tg := targets[ti]
				n := seq.Add(1)
				amount := 1 + rnd.Int64N(5)
				r, err := nodes[int(n)%len(nodes)].Consume(ctx, tg.id, dim, amount, fmt.Sprintf("w%d-%d", w, n))
				if errors.Is(err, quota.ErrLeaseUnavailable) {
					continue // retryable; nothing consumed (a new key is fine: this one was never recorded)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					if g := tg.granted.Add(amount); g > tg.hard {
						t.Errorf("tenant %d granted %d, over the hard limit %d", tg.id, g, tg.hard)
					}
				} else {
					seen[ti]++
				}
			}
		}()
	}
	wg.Wait()
}

// TestLeaseConcurrencyNeverOverGrants: hundreds of goroutines on several limits, with leases
// forced on (threshold 0) and off. The units granted never exceed a limit, the allowance is used
// up (a refusal only when less than the amount asked is left), and once the leases are returned
// the counter equals the units granted and the allowed consumptions recorded.
func TestLeaseConcurrencyNeverOverGrants(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int
	}{{"leases-forced", 0}, {"leases-off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			svc, b := setup(t)
			lr := quota.NewLeaser(context.Background(), svc, quota.LeaseConfig{Threshold: tc.threshold, Log: dbtest.Logger(t)})
			var targets []*loadTarget
			for _, hard := range []int64{7, 150, 1000, 6000} {
				tn := b.newTenant(t, "free")
				b.setLimit(t, tn.ID, "compute_vcpu_hours", hard/2, hard)
				targets = append(targets, &loadTarget{id: tn.ID, hard: hard})
			}
			drive(t, []consumer{lr}, targets, 300, 3, "compute_vcpu_hours")
			if err := lr.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, tg := range targets {
				used, allowed, open := b.ledger(t, tg.id, "compute_vcpu_hours")
				g := tg.granted.Load()
				if g > tg.hard || used != g || allowed != g || open != 0 {
					t.Errorf("hard %d: granted %d, counter %d, recorded %d, open leases %d", tg.hard, g, used, allowed, open)
				}
				if tg.hard-g >= 5 {
					t.Errorf("hard %d: stopped at %d, with allowance left for the amounts refused", tg.hard, g)
				}
			}
			st := lr.Stats()
			t.Logf("acquired %d leases, %d flushes of %d records, %d direct consumes, %d retried",
				st.Acquired.Load(), st.Flushes.Load(), st.Records.Load(), st.Direct.Load(), st.Retried.Load())
			if leased := st.Acquired.Load() > 0; leased != (tc.threshold >= 0) {
				t.Fatalf("leases acquired: %d with threshold %d", st.Acquired.Load(), tc.threshold)
			}
		})
	}
}

// TestLeaseTwoNodesNeverOverGrant: two Leasers, each with its own connection pools as two server
// processes would have, serve the same tenants at once, past their limits.
func TestLeaseTwoNodesNeverOverGrant(t *testing.T) {
	svc, b := setup(t)
	other := quota.NewService(dbtest.Open(t))
	cfg := quota.LeaseConfig{Threshold: 0}
	n1, n2 := leaser(t, svc, cfg), leaser(t, other, cfg)
	var targets []*loadTarget
	for _, hard := range []int64{40, 700, 5000} {
		tn := b.newTenant(t, "free")
		b.setLimit(t, tn.ID, "compute_vcpu_hours", hard/2, hard)
		targets = append(targets, &loadTarget{id: tn.ID, hard: hard})
	}
	drive(t, []consumer{n1, n2}, targets, 200, 3, "compute_vcpu_hours")
	for _, lr := range []*quota.Leaser{n1, n2} {
		if err := lr.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range targets {
		used, allowed, open := b.ledger(t, tg.id, "compute_vcpu_hours")
		g := tg.granted.Load()
		if g > tg.hard || used != g || allowed != g || open != 0 {
			t.Errorf("hard %d: granted %d, counter %d, recorded %d, open leases %d", tg.hard, g, used, allowed, open)
		}
		if tg.hard-g >= 5 {
			t.Errorf("hard %d: stopped at %d, with allowance left for the amounts refused", tg.hard, g)
		}
	}
	if n1.Stats().Acquired.Load() == 0 || n2.Stats().Acquired.Load() == 0 {
		t.Fatalf("a node took no lease: %d and %d", n1.Stats().Acquired.Load(), n2.Stats().Acquired.Load())
	}
}

// TestLeaseIdempotency: one key sent by 50 goroutines at once consumes once and gets one answer;
// a key reused for another amount is refused; a key first used without leases is replayed.
func TestLeaseIdempotency(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	lr := leaser(t, svc, quota.LeaseConfig{Threshold: 0})
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "compute_vcpu_hours", 50, 100)
	// Warm the key so a lease is held, as on a hot node.
	if _, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 1, "warm"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]quota.Result, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 3, "same-key")
		}()
	}
	wg.Wait()
	fresh := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !r.Allowed || r.Used != results[0].Used {
			t.Fatalf("goroutine %d got %+v, goroutine 0 %+v", i, r, results[0])
		}
		if !r.Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d answers were not replays, want exactly 1", fresh)
	}
	if _, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 4, "same-key"); !errors.Is(err, quota.ErrIdempotencyMismatch) {
		t.Fatalf("same key, other amount: %v", err)
	}
	if _, err := svc.Consume(ctx, tn.ID, "compute_vcpu_hours", 2, "direct-first"); err != nil {
		t.Fatal(err)
	}
	if r, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 2, "direct-first"); err != nil || !r.Replayed {
		t.Fatalf("key recorded without a lease, retried with one: %+v %v", r, err)
	}
	if err := lr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if used, allowed, open := b.ledger(t, tn.ID, "compute_vcpu_hours"); used != 6 || allowed != 6 || open != 0 {
		t.Fatalf("counter %d, recorded %d, open leases %d; want 6 (1 + 3 + 2), 6, 0", used, allowed, open)
	}
}

// openLeases sums the tenant's open leases: how many, and their unspent part.
func (b *testBundle) openLeases(t testing.TB, tenantID int64) (n, unspent int64) {
	t.Helper()
	if err := b.db.OwnerPool.QueryRow(context.Background(), `SELECT count(*), COALESCE(sum(granted - consumed), 0)
		FROM tenantry.quota_leases WHERE tenant_id = $1 AND returned_at IS NULL`, tenantID).Scan(&n, &unspent); err != nil {
		t.Fatal(err)
	}
	return n, unspent
}

// TestLeaseCrashReconciled: a node that dies holding a lease (its Leaser stopped without Close)
// leaves the chunk counted; the reconciler takes it back once past expires_at + grace, refunding
// exactly the unspent part, so the counter equals what was granted again.
func TestLeaseCrashReconciled(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "compute_vcpu_hours", 500, 1000)
	crashCtx, crash := context.WithCancel(ctx)
	const ttl = 2 * time.Second
	lr := quota.NewLeaser(crashCtx, svc, quota.LeaseConfig{Threshold: 0, TTL: ttl, Log: dbtest.Logger(t)})
	var granted int64
	for i := range 20 {
		r, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 2, fmt.Sprintf("c%d", i))
		if err != nil || !r.Allowed {
			t.Fatalf("consume %d: %+v %v", i, r, err)
		}
		granted += 2
	}
	crash() // no Close: the lease stays open, as after kill -9
	crashedAt := time.Now()
	open, unspent := b.openLeases(t, tn.ID)
	used, allowed, _ := b.ledger(t, tn.ID, "compute_vcpu_hours")
	if open == 0 || unspent <= 0 || allowed != granted || used != granted+unspent {
		t.Fatalf("after the crash: %d open leases holding %d unspent; counter %d, recorded %d; granted %d", open, unspent, used, allowed, granted)
	}
	// Not yet past expires_at + grace: left alone.
	if _, err := svc.ReconcileLeases(ctx, quota.DefaultLeaseGrace); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.openLeases(t, tn.ID); n != open && time.Since(crashedAt) < quota.DefaultLeaseGrace {
		t.Fatalf("reconciled %d leases before their time", open-n)
	}
	time.Sleep(ttl + quota.DefaultLeaseGrace + 100*time.Millisecond - time.Since(crashedAt))
	if _, err := svc.ReconcileLeases(ctx, quota.DefaultLeaseGrace); err != nil {
		t.Fatal(err)
	}
	var refunded, reconciled int64
	if err := b.db.OwnerPool.QueryRow(ctx, `SELECT COALESCE(sum(refunded), 0), count(*) FROM tenantry.quota_leases
		WHERE tenant_id = $1 AND reconciled`, tn.ID).Scan(&refunded, &reconciled); err != nil {
		t.Fatal(err)
	}
	n, _ := b.openLeases(t, tn.ID)
	used, allowed, _ = b.ledger(t, tn.ID, "compute_vcpu_hours")
	if n != 0 || reconciled != open || refunded != unspent || used != granted || allowed != granted {
		t.Fatalf("after reconciling: %d open, %d reconciled refunding %d (want %d); counter %d, recorded %d; granted %d",
			n, reconciled, refunded, unspent, used, allowed, granted)
	}
	// Reconciling again changes nothing.
	if _, err := svc.ReconcileLeases(ctx, quota.DefaultLeaseGrace); err != nil || b.used(t, tn.ID, "compute_vcpu_hours") != granted {
		t.Fatalf("second reconcile: %v", err)
	}
	// Pruning forgets returned leases from before the cut-off and never an open one.
	if _, err := b.db.OwnerPool.Exec(ctx, `UPDATE tenantry.quota_leases SET returned_at = now() - interval '2 days'
		WHERE tenant_id = $1 AND returned_at IS NOT NULL`, tn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PruneLeases(ctx, time.Now().Add(-quota.LeaseRetention)); err != nil {
		t.Fatal(err)
	}
	var left int64
	if err := b.db.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.quota_leases WHERE tenant_id = $1", tn.ID).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d leases left after pruning (%v)", left, err)
	}
}

// TestLeaseReturnedUnderANodeIsNeverGranted: when a live node's lease is taken back (the
// reconciler thought it abandoned), the node's next records are refused by the database and the
// consume is retried on a fresh lease: granted once, counted once.
func TestLeaseReturnedUnderANodeIsNeverGranted(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "compute_vcpu_hours", 500, 1000)
	lr := leaser(t, svc, quota.LeaseConfig{Threshold: 0, TTL: time.Minute})
	if r, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 5, "first"); err != nil || !r.Allowed {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_leases SET expires_at = now() - interval '1 hour' WHERE tenant_id = $1", tn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ReconcileLeases(ctx, quota.DefaultLeaseGrace); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.openLeases(t, tn.ID); n != 0 {
		t.Fatalf("%d leases still open after reconciling", n)
	}
	r, err := lr.Consume(ctx, tn.ID, "compute_vcpu_hours", 7, "second")
	if err != nil || !r.Allowed {
		t.Fatalf("%+v %v", r, err)
	}
	if lr.Stats().Retried.Load() == 0 {
		t.Fatal("the record against the reconciled lease was not refused")
	}
	if err := lr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if used, allowed, open := b.ledger(t, tn.ID, "compute_vcpu_hours"); used != 12 || allowed != 12 || open != 0 {
		t.Fatalf("counter %d, recorded %d, open %d; want 12, 12, 0", used, allowed, open)
	}
}

// TestLeasePeriodRollover: a lease outstanding when its period ends takes no more records (they
// go to a lease of the new period), and returning it refunds nothing into the new period.
func TestLeasePeriodRollover(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	tn := b.newTenant(t, "free")
	b.setLimit(t, tn.ID, "api_requests", 500, 1000) // resets daily
	lr := leaser(t, svc, quota.LeaseConfig{Threshold: 0, TTL: time.Minute})
	if r, err := lr.Consume(ctx, tn.ID, "api_requests", 10, "yesterday"); err != nil || !r.Allowed {
		t.Fatalf("%+v %v", r, err)
	}
	// Make it as if that lease and the counter were from yesterday, and the day has ended.
	for _, q := range []string{
		`UPDATE tenantry.quota_leases SET period_start = period_start - interval '1 day', period_end = period_start WHERE tenant_id = $1`,
		`UPDATE tenantry.quota_limits SET period_start = period_start - interval '1 day' WHERE tenant_id = $1 AND dimension = 'api_requests'`,
		`UPDATE tenantry.quota_consumptions SET period_start = period_start - interval '1 day' WHERE tenant_id = $1`,
	} {
		if _, err := b.db.OwnerPool.Exec(ctx, q, tn.ID); err != nil {
			t.Fatal(err)
		}
	}
	r, err := lr.Consume(ctx, tn.ID, "api_requests", 5, "today")
	if err != nil || !r.Allowed || r.Used != 5 {
		t.Fatalf("first consume of the new period: %+v %v", r, err)
	}
	if err := lr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var oldRefund, today int64
	if err := b.db.OwnerPool.QueryRow(ctx, `SELECT refunded FROM tenantry.quota_leases WHERE tenant_id = $1 AND period_end <= now()`, tn.ID).Scan(&oldRefund); err != nil {
		t.Fatal(err)
	}
	if err := b.db.OwnerPool.QueryRow(ctx, `SELECT COALESCE(sum(amount), 0) FROM tenantry.quota_consumptions
		WHERE tenant_id = $1 AND allowed AND period_start = date_trunc('day', now(), 'UTC')`, tn.ID).Scan(&today); err != nil {
		t.Fatal(err)
	}
	if used := b.used(t, tn.ID, "api_requests"); used != 5 || today != 5 || oldRefund != 0 {
		t.Fatalf("counter %d, recorded today %d, refunded by yesterday's lease %d; want 5, 5, 0", used, today, oldRefund)
	}
}

// TestLeaseNeverExceedsDirectConsume: with a grant and burst capacity, a tenant consumed through
// leases gets exactly what one consumed through Service.Consume gets. Leases cover the hard limit
// plus active grants; the burst allowance is only ever consumed by Service.Consume, which opens the
// burst window itself.
func TestLeaseNeverExceedsDirectConsume(t *testing.T) {
	svc, b := setup(t)
	ctx := context.Background()
	lr := leaser(t, svc, quota.LeaseConfig{Threshold: 0})
	pct := 10
	var got [2]int64
	var leasedMax int64
	for i, c := range []consumer{svc, lr} {
		tn := b.newTenant(t, "free")
		if _, err := svc.Change(ctx, "test", tn.ID, "compute_vcpu_hours", quota.LimitChange{Soft: 50, Hard: 100, BurstPercent: &pct}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddGrant(ctx, "test", tn.ID, quota.NewGrant{Dimension: "compute_vcpu_hours", Amount: 50,
			EndsAt: time.Now().Add(time.Hour), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		for n := 0; ; n++ {
			r, err := c.Consume(ctx, tn.ID, "compute_vcpu_hours", 3, fmt.Sprintf("k%d", n))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Allowed {
				break
			}
			got[i] += 3
		}
		if i == 1 {
			if err := lr.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.db.OwnerPool.QueryRow(ctx, `SELECT COALESCE(max(granted), 0) FROM tenantry.quota_leases WHERE tenant_id = $1`, tn.ID).Scan(&leasedMax); err != nil {
				t.Fatal(err)
			}
			if used, allowed, _ := b.ledger(t, tn.ID, "compute_vcpu_hours"); used != got[1] || allowed != got[1] {
				t.Fatalf("through leases: counter %d, recorded %d, granted %d", used, allowed, got[1])
			}
		}
	}
	// 100 hard + 50 granted + 10 burst = 160: 53 consumes of 3.
	if got[0] != 159 || got[1] != got[0] || leasedMax == 0 {
		t.Fatalf("granted directly %d, through leases %d (largest lease %d); want 159 both", got[0], got[1], leasedMax)
	}
}
