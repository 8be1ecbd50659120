package quota_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/quota"
)

// BenchmarkLeaserConsume measures Leaser.Consume alone (no HTTP, no API-key check) with 64
// concurrent callers, leases forced on (threshold 0), for one hot tenant and for 200 tenants.
// After each run the leases are returned and every tenant's counter must equal the units granted
// and the allowed consumptions recorded, never over the hard limit.
func BenchmarkLeaserConsume(b *testing.B) {
	svc, bundle := setup(b)
	ctx := context.Background()
	const hard = 50_000_000
	newIDs := func(n int) []int64 {
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = bundle.newTenant(b, "enterprise").ID
			bundle.setLimit(b, ids[i], "api_requests", hard/2, hard)
		}
		return ids
	}
	for _, tc := range []struct {
		name string
		ids  []int64
	}{
		{"one-hot-tenant/64-callers", newIDs(1)},
		{"200-tenants/64-callers", newIDs(200)},
	} {
		ids := tc.ids
		granted := make([]atomic.Int64, len(ids))
		b.Run(tc.name, func(b *testing.B) {
			flushers, _ := strconv.Atoi(os.Getenv("TENANTRY_BENCH_FLUSHERS")) // 0: the default
			lr := quota.NewLeaser(ctx, svc, quota.LeaseConfig{Threshold: 0, Flushers: flushers, Log: dbtest.Logger(b)})
			var seq atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			run := time.Now().UnixNano()
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var local []time.Duration
					for range work {
						n := seq.Add(1)
						i := int(n) % len(ids)
						amount := 1 + n%5
						t0 := time.Now()
						r, err := lr.Consume(ctx, ids[i], "api_requests", amount, fmt.Sprintf("l%d-%d", run, n))
						if err != nil {
							b.Error(err)
							return
						}
						local = append(local, time.Since(t0))
						if r.Allowed {
							granted[i].Add(amount)
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
			if err := lr.Close(ctx); err != nil {
				b.Fatal(err)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				st := lr.Stats()
				if f := st.Flushes.Load(); f > 0 {
					b.ReportMetric(float64(st.Records.Load())/float64(f), "records/flush")
					b.ReportMetric(float64(st.FlushTime.Load())/float64(f)/1e6, "flush-ms")
				}
			}
			for i, id := range ids {
				used, allowed, open := bundle.ledger(b, id, "api_requests")
				if g := granted[i].Load(); used != g || allowed != g || open != 0 || used > hard {
					b.Fatalf("tenant %d: counter %d, recorded %d, granted %d, open leases %d", id, used, allowed, g, open)
				}
			}
		})
	}
}
