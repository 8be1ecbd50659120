package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/tenant"
)

// BenchmarkSignupToPortal measures, per signup, the time from submitting the signup form to the
// new tenant's portal answering its admin: submit, read the link from the outbox, open it (which
// starts the provisioning run), poll the progress fragment every 50 ms as the page does every
// second, follow on to the portal and load its overview. Provisioning is worked by 2 River
// workers in the test process, as in `serve`. Reports p50 and p90 over the iterations. Run with
// `make bench`; results go in docs/benchmarks.md.
func BenchmarkSignupToPortal(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	provisioningWorkers(b, bundle.db)
	stamp := time.Now().UnixNano() % 1e9
	owner, err := tenant.NewService(bundle.db, dbtest.Logger(b)).Create(ctx, "bench", tenant.NewTenant{Slug: fmt.Sprintf("bench-reseller-%d", stamp), Name: "Bench Reseller", PlanKey: "starter"})
	if err != nil {
		b.Fatal(err)
	}
	br, err := signup.NewService(bundle.db, dbtest.Logger(b), nil, "").CreateBrand(ctx, "bench", signup.BrandInput{Slug: owner.Slug, DisplayName: "Bench Cloud",
		PrimaryColour: "#b45309", AccentColour: "#0f766e", PlanKey: "starter", Approval: signup.ApprovalAutomatic, TenantSlug: owner.Slug})
	if err != nil {
		b.Fatal(err)
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Every signup comes from 127.0.0.1 here; the per-address limit is not what is measured.
		if _, err := bundle.db.OwnerPool.Exec(ctx, "DELETE FROM tenantry.signup_attempts"); err != nil {
			b.Fatal(err)
		}
		c := bundle.client(b)
		slug := fmt.Sprintf("bench-%d-%d", stamp, i)
		email := "owner@" + slug + ".example"
		form := url.Values{"org_name": {"Bench " + slug}, "slug": {slug}, "email": {email}, "password": {password}, "_csrf": {c.token("/signup/" + br.Slug)}}
		b.StartTimer()
		start := time.Now()
		if res, body := c.post("/signup/"+br.Slug, form); res.StatusCode != http.StatusOK {
			b.Fatalf("submit: %d\n%s", res.StatusCode, body)
		}
		if res, body := c.get(verifyLink(b, bundle.db, email)); res.StatusCode != http.StatusSeeOther {
			b.Fatalf("verify: %d\n%s", res.StatusCode, body)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			res, _ := c.do(http.MethodGet, "/signup/progress", nil, http.Header{"Hx-Request": {"true"}})
			if res.Header.Get("HX-Redirect") != "" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("signup %s not done after 2 minutes", slug)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if res, body := c.get("/signup/continue"); res.StatusCode != http.StatusSeeOther {
			b.Fatalf("continue: %d\n%s", res.StatusCode, body)
		}
		if res, body := c.get("/t/" + slug); res.StatusCode != http.StatusOK {
			b.Fatalf("portal: %d\n%s", res.StatusCode, body)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	pct := func(p float64) time.Duration { return times[min(len(times)-1, int(float64(len(times))*p))] }
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.9).Milliseconds()), "p90-ms")
	b.ReportMetric(float64(times[0].Milliseconds()), "min-ms")
}
