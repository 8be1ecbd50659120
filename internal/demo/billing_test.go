package demo_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/tenant"
)

// The demo seed bills the last two months so the Billing page is not empty: Acme Holdings'
// invoice carries its subtree except Acme Labs, which pays for itself; seeding again adds nothing.
func TestSeedBilling(t *testing.T) {
	d := dbtest.NewDatabase(t)
	ctx := context.Background()
	for range 2 {
		if _, err := demo.Seed(ctx, d, false, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	svc := billing.NewService(d)
	last := billing.PreviousMonth(time.Now())
	invs, totals, err := svc.List(ctx, billing.ListQuery{Period: last.Format("2006-01"), PerPage: 200})
	if err != nil {
		t.Fatal(err)
	}
	older, olderTotals, err := svc.List(ctx, billing.ListQuery{Period: last.AddDate(0, -1, 0).Format("2006-01"), PerPage: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) == 0 || len(invs) != len(older) || totals.Invoiced.IsZero() || olderTotals.Overdue.IsZero() {
		t.Fatalf("last month %d invoices (%+v), the one before %d (%+v)", len(invs), totals, len(older), olderTotals)
	}
	statuses := map[string]int{}
	for _, inv := range append(invs, older...) {
		statuses[inv.Status]++
	}
	for _, st := range []string{billing.StatusDraft, billing.StatusIssued, billing.StatusPaid, billing.StatusOverdue} {
		if statuses[st] == 0 {
			t.Errorf("no %s invoice in the demo (%v)", st, statuses)
		}
	}
	ts := tenant.NewService(d, dbtest.Logger(t))
	holdings, _ := ts.Get(ctx, "acme-holdings")
	europe, _ := ts.Get(ctx, "acme-europe")
	p, err := svc.Payer(ctx, europe.ID)
	if err != nil || p.TenantID != holdings.ID || p.Reason != "billed to Acme Holdings (inherited)" {
		t.Fatalf("payer of acme-europe: %+v %v", p, err)
	}
	for _, inv := range invs {
		if inv.TenantID != holdings.ID {
			continue
		}
		full, err := svc.Get(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		var slugs []string
		for _, s := range full.Sections {
			slugs = append(slugs, s.TenantSlug)
		}
		if len(slugs) != 4 || slugs[0] != "acme-holdings" {
			t.Fatalf("Acme Holdings' invoice sections: %v", slugs)
		}
		return
	}
	t.Fatal("no invoice for Acme Holdings")
}
