package web_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/identity"
)

// BenchmarkTenantListPage measures the tenant list page (50 rows, with a search term) over real
// HTTP on a 10,000-tenant registry, under 32 concurrent clients, and reports p50/p99 latency.
// Run with `make bench`; results go in docs/benchmarks.md.
func BenchmarkTenantListPage(b *testing.B) {
	bundle := setup(b)
	if err := bundle.db.OwnerPool.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	_, err := bundle.db.OwnerPool.Exec(context.Background(), `
		INSERT INTO tenantry.tenants (slug, name, plan_key, state)
		SELECT 'bench-' || g,
		       (ARRAY['Northwind','Contoso','Fabrikam','Globex','Initech','Umbrella','Acme','Wayne','Stark','Tyrell'])[1 + g % 10]
		         || ' ' || (ARRAY['Logistics','Health','Retail','Labs','Capital','Foods','Energy','Media'])[1 + g % 8] || ' ' || g,
		       (ARRAY['free','starter','professional','enterprise'])[1 + g % 4],
		       (ARRAY['active','active','active','notice','suspended'])[1 + g % 5]
		FROM generate_series(1, 10000) g
		ON CONFLICT (slug) DO NOTHING`)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bundle.db.OwnerPool.Exec(context.Background(), "ANALYZE tenantry.tenants"); err != nil {
		b.Fatal(err)
	}
	u, err := bundle.users.Create(context.Background(), "bench", identity.NewUser{Email: fmt.Sprintf("bench%d@example.com", time.Now().UnixNano()), Name: "Bench", Role: identity.RoleAdmin, Password: password})
	if err != nil {
		b.Fatal(err)
	}
	c := bundle.client(b)
	c.signIn(u.Email)
	cookies := c.http.Jar
	for _, tc := range []struct {
		name    string
		path    string
		hx      bool
		clients int
	}{
		// A broad term: 1,250 of the 10,000 tenants match, so the page is full and counted.
		{"broad-search/full-page/32-clients", "/admin/tenants?q=logistics", false, 32},
		{"broad-search/htmx-fragment/32-clients", "/admin/tenants?q=logistics", true, 32},
		// A narrow term, as when looking a customer up: a handful of matches.
		{"narrow-search/full-page/32-clients", "/admin/tenants?q=4242", false, 32},
		{"narrow-search/htmx-fragment/32-clients", "/admin/tenants?q=4242", true, 32},
		// One client: the latency of a request alone, without queueing.
		{"broad-search/full-page/1-client", "/admin/tenants?q=logistics", false, 1},
		{"narrow-search/full-page/1-client", "/admin/tenants?q=4242", false, 1},
	} {
		path, hx, clients := tc.path, tc.hx, tc.clients
		b.Run(tc.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			httpc := &http.Client{Jar: cookies, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			work := make(chan struct{}, b.N)
			for i := 0; i < b.N; i++ {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					local := make([]time.Duration, 0, b.N/clients+1)
					for range work {
						req, _ := http.NewRequest(http.MethodGet, bundle.ts.URL+path, nil)
						if hx {
							req.Header.Set("HX-Request", "true")
						}
						start := time.Now()
						res, err := httpc.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						var buf [32 << 10]byte
						for {
							if _, err := res.Body.Read(buf[:]); err != nil {
								break
							}
						}
						res.Body.Close()
						local = append(local, time.Since(start))
						if res.StatusCode != 200 {
							b.Errorf("status %d", res.StatusCode)
							return
						}
					}
					mu.Lock()
					lat = append(lat, local...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
