package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
)

// BenchmarkFlagsAPI measures GET /api/v1/flags over real HTTP with 64 concurrent clients of one
// tenant: half of them poll with the ETag of their last answer (304), as the API invites, half
// without (200). It reports requests/s and p50/p99.
func BenchmarkFlagsAPI(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	tn, err := tenant.NewService(bundle.db, dbtest.Logger(b)).Create(ctx, "bench",
		tenant.NewTenant{Slug: fmt.Sprintf("flags-bench-%d", time.Now().UnixNano()%1e9), Name: "Flags bench", PlanKey: "enterprise"})
	if err != nil {
		b.Fatal(err)
	}
	k, err := apikeys.NewService(bundle.db).Create(ctx, "bench", tn.ID, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	const clients = 64
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(poll bool) {
			defer wg.Done()
			etag := ""
			local := make([]time.Duration, 0, b.N/clients+1)
			for range work {
				req, _ := http.NewRequest(http.MethodGet, bundle.ts.URL+"/api/v1/flags", nil)
				req.Header.Set("Authorization", "Bearer "+k.FullKey)
				if poll && etag != "" {
					req.Header.Set("If-None-Match", etag)
				}
				t0 := time.Now()
				res, err := httpc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				local = append(local, time.Since(t0))
				if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNotModified {
					b.Errorf("status %d", res.StatusCode)
					return
				}
				etag = res.Header.Get("ETag")
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(w%2 == 0)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
