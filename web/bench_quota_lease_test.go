package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/web"
)

// BenchmarkConsumeAPILeased is BenchmarkConsumeAPI with the server answering hot tenants from
// per-node quota leases (web.Server.UseQuotaLeases): POST /api/v1/quota/consume over real HTTP,
// 64 concurrent clients, API-key authentication on every request, for one hot tenant and for many
// (TENANTRY_BENCH_TENANTS, default 200), with the default hotness threshold (100 consumes/s per
// tenant on the node) and with leases forced for every tenant (threshold 0). After each run the
// server returns its leases and every tenant's counter must equal the units granted (and the
// allowed consumptions recorded), never over the hard limit, with no lease left open.
func BenchmarkConsumeAPILeased(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	many := 200
	if n, err := strconv.Atoi(os.Getenv("TENANTRY_BENCH_TENANTS")); err == nil && n > 0 {
		many = n
	}
	tenants := tenant.NewService(bundle.db, dbtest.Logger(b))
	keySvc := apikeys.NewService(bundle.db)
	quotas := quota.NewService(bundle.db)
	type target struct {
		id      int64
		key     string
		granted atomic.Int64
	}
	const hard = 50_000_000
	newTarget := func(i int) *target {
		tn, err := tenants.Create(ctx, "bench", tenant.NewTenant{Slug: fmt.Sprintf("ql-%d-%d", time.Now().UnixNano()%1e9, i), Name: fmt.Sprintf("Lease bench %d", i), PlanKey: "enterprise"})
		if err != nil {
			b.Fatal(err)
		}
		k, err := keySvc.Create(ctx, "bench", tn.ID, "bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := quotas.SetLimit(ctx, "bench", tn.ID, "api_requests", hard/2, hard); err != nil {
			b.Fatal(err)
		}
		return &target{id: tn.ID, key: k.FullKey}
	}
	hot := []*target{newTarget(0)}
	var spread []*target
	for i := range many {
		spread = append(spread, newTarget(i+1))
	}
	const clients = 64
	for _, tc := range []struct {
		name      string
		threshold int
		targets   []*target
	}{
		{"threshold-100/one-hot-tenant/64-clients", 100, hot},
		{fmt.Sprintf("threshold-100/%d-tenants/64-clients", many), 100, spread},
		{fmt.Sprintf("threshold-0/%d-tenants/64-clients", many), 0, spread},
	} {
		targets := tc.targets
		b.Run(tc.name, func(b *testing.B) {
			srv, err := web.New(ctx, web.Config{DB: bundle.db, Log: dbtest.Logger(b)})
			if err != nil {
				b.Fatal(err)
			}
			srv.UseQuotaLeases(quota.LeaseConfig{Threshold: tc.threshold, Log: dbtest.Logger(b)})
			ts := newTestServer(b, srv)
			httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
			run := time.Now().UnixNano()
			// Warm the new server's API-key cache with one consume per tenant, untimed, as
			// BenchmarkConsumeAPI's server is warm from its earlier rounds.
			for i, tg := range targets {
				body := fmt.Sprintf(`{"dimension":"api_requests","amount":1,"idempotency_key":"warm%d-%d"}`, run, i)
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/quota/consume", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tg.key)
				res, err := httpc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("warm-up consume: status %d", res.StatusCode)
				}
				tg.granted.Add(1)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var seq, denied, failed atomic.Int64
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					local := make([]time.Duration, 0, b.N/clients+1)
					for range work {
						n := seq.Add(1)
						tg := targets[int(n)%len(targets)]
						amount := 1 + n%5
						body := fmt.Sprintf(`{"dimension":"api_requests","amount":%d,"idempotency_key":"l%d-%d-%d"}`, amount, run, w, n)
						req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/quota/consume", strings.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+tg.key)
						t0 := time.Now()
						res, err := httpc.Do(req)
						if err != nil {
							failed.Add(1)
							continue
						}
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						local = append(local, time.Since(t0))
						switch res.StatusCode {
						case http.StatusOK:
							tg.granted.Add(amount)
						case http.StatusTooManyRequests:
							denied.Add(1)
						default:
							failed.Add(1)
						}
					}
					mu.Lock()
					lat = append(lat, local...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err := srv.ReturnQuotaLeases(ctx); err != nil {
				b.Fatal(err)
			}
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d requests failed", f)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(denied.Load()), "denied")
			}
			// Exactness after the run (cumulative over the b.N rounds): used == granted == recorded,
			// never over hard, no lease left open.
			for _, tg := range targets {
				var used, limit, allowed, open int64
				if err := bundle.db.OwnerPool.QueryRow(ctx, `SELECT used, hard_limit,
					(SELECT COALESCE(sum(amount), 0) FROM tenantry.quota_consumptions c WHERE c.tenant_id = q.tenant_id AND c.dimension = q.dimension AND c.allowed),
					(SELECT count(*) FROM tenantry.quota_leases l WHERE l.tenant_id = q.tenant_id AND l.dimension = q.dimension AND l.returned_at IS NULL)
					FROM tenantry.quota_limits q WHERE tenant_id = $1 AND dimension = 'api_requests'`, tg.id).Scan(&used, &limit, &allowed, &open); err != nil {
					b.Fatal(err)
				}
				if g := tg.granted.Load(); used != g || allowed != g || used > limit || open != 0 {
					b.Fatalf("tenant %d: used %d, recorded %d, granted %d, hard limit %d, open leases %d", tg.id, used, allowed, g, limit, open)
				}
			}
		})
	}
}
