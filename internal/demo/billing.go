package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/db"
)

// demoPrices are the demo plans' prices: base per month, then per dimension the unit price and
// the units included in the base price.
var demoPrices = map[string]struct {
	base     string
	unit     map[string]string
	included map[string]string
}{
	"free": {base: "0"},
	"starter": {base: "49.00",
		unit:     map[string]string{"compute_vcpu_hours": "0.045", "storage_gb": "0.12", "network_egress_gb": "0.09", "api_requests": "0.0003", "seats": "8.00"},
		included: map[string]string{"compute_vcpu_hours": "200", "storage_gb": "50", "network_egress_gb": "100", "api_requests": "100000", "seats": "5"}},
	"professional": {base: "299.00",
		unit:     map[string]string{"compute_vcpu_hours": "0.04", "storage_gb": "0.10", "network_egress_gb": "0.08", "api_requests": "0.0002", "seats": "7.50"},
		included: map[string]string{"compute_vcpu_hours": "2000", "storage_gb": "500", "network_egress_gb": "1000", "api_requests": "1000000", "seats": "25"}},
	"enterprise": {base: "1499.00",
		unit:     map[string]string{"compute_vcpu_hours": "0.035", "storage_gb": "0.085", "network_egress_gb": "0.07", "api_requests": "0.0001", "seats": "6.00"},
		included: map[string]string{"compute_vcpu_hours": "20000", "storage_gb": "5000", "network_egress_gb": "10000", "api_requests": "10000000", "seats": "250"}},
}

// demoBillingModes: a few tenants pay for themselves; one is explicitly billed to its parent.
var demoBillingModes = map[string]string{
	"acme-labs":            billing.ModeSelf,
	"northwind-foods":      billing.ModeSelf,
	"copperleaf-realty":    billing.ModeSelf,
	"acme-americas-retail": billing.ModeParent,
}

// seedBilling prices the plans, gives every tenant usage in the last two months (daily rollups,
// where it has none yet), and bills both months: the older one issued a month ago (mostly paid,
// some overdue), the last one issued now with a few payments and a couple of drafts left. It does
// nothing when any invoice exists, so seeding twice changes nothing.
func seedBilling(ctx context.Context, d *db.DB, ids map[string]int64) error {
	var n int64
	if err := d.App.WithContext(ctx).Raw("SELECT count(*) FROM tenantry.invoices").Scan(&n).Error; err != nil || n > 0 {
		return err
	}
	svc := billing.NewService(d)
	for plan, p := range demoPrices {
		if err := svc.SetPlanPrices(ctx, "system:seed", plan, billing.PriceInput{Base: p.base, Unit: p.unit, Included: p.included}); err != nil {
			return fmt.Errorf("demo: prices of %s: %w", plan, err)
		}
	}
	for slug, mode := range demoBillingModes {
		if err := svc.SetMode(ctx, "system:seed", ids[slug], mode); err != nil {
			return fmt.Errorf("demo: billing mode of %s: %w", slug, err)
		}
	}
	if _, err := svc.SaveAccount(ctx, "system:seed", ids["acme-holdings"], billing.AccountInput{
		Name: "Acme Holdings Inc. — Accounts Payable", Email: "ap@acme-holdings.example", Currency: "USD", Terms: "30"}); err != nil {
		return err
	}
	last := billing.PreviousMonth(time.Now())
	months := []time.Time{last.AddDate(0, -1, 0), last}
	scale := map[string]int64{"free": 1, "starter": 4, "professional": 30, "enterprise": 250}
	for mi, month := range months {
		for i, t := range tenants {
			if t.state == "purged" {
				continue
			}
			// Deterministic, varied usage: some tenants stay within their included units, others go past.
			f := int64((i*37+mi*11)%23 + 4) // 4..26
			k := scale[t.plan]
			usage := map[string][2]int64{ // dimension -> per-day total, peak
				"compute_vcpu_hours": {k * f * 4, k * f},
				"network_egress_gb":  {k * f * 2, k * f},
				"api_requests":       {k * f * 6000, k * f * 500},
				"storage_gb":         {k * f * 3, k * f * 3},
				"seats":              {k * f / 4, k * f / 4},
			}
			for day := 1; day <= 28; day += 9 {
				at := month.AddDate(0, 0, day-1)
				for dim, v := range usage {
					err := d.App.WithContext(ctx).Exec(`INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
						VALUES (?, ?, 'day', ?, ?, ?, 24) ON CONFLICT DO NOTHING`, ids[t.slug], dim, at, v[0], v[1]).Error
					if err != nil {
						return fmt.Errorf("demo: usage: %w", err)
					}
				}
			}
		}
	}
	// The older month: issued on the first of last month, so its due dates have passed.
	older := svc.WithClock(func() time.Time { return last.Add(9 * time.Hour) })
	if _, err := older.Generate(ctx, "system:seed", months[0]); err != nil {
		return err
	}
	invs, _, err := svc.List(ctx, billing.ListQuery{Period: months[0].Format("2006-01"), PerPage: 200})
	if err != nil {
		return err
	}
	for i, inv := range invs {
		if _, err := older.Issue(ctx, "system:seed", inv.ID); err != nil {
			return err
		}
		if i%5 == 4 || inv.Total.IsZero() { // every fifth stays unpaid and becomes overdue
			continue
		}
		if _, err := svc.RecordPayment(ctx, "system:seed", billing.PaymentInput{InvoiceID: inv.ID, Amount: billing.Money(inv.Total),
			PaidAt: last.AddDate(0, 0, 12+i%10).Add(10 * time.Hour), Reference: fmt.Sprintf("WIRE-%05d", 41000+i),
			IdempotencyKey: "demo-" + inv.Number, Source: "admin"}); err != nil {
			return err
		}
	}
	if _, err := svc.MarkOverdue(ctx); err != nil {
		return err
	}
	// The last month: issued today, a few paid or partly paid, two left as drafts.
	if _, err := svc.Generate(ctx, "system:seed", last); err != nil {
		return err
	}
	invs, _, err = svc.List(ctx, billing.ListQuery{Period: last.Format("2006-01"), PerPage: 200})
	if err != nil {
		return err
	}
	for i, inv := range invs {
		if i < 2 {
			continue // drafts to review
		}
		if _, err := svc.Issue(ctx, "system:seed", inv.ID); err != nil {
			return err
		}
		var amount string
		switch {
		case inv.Total.IsZero():
			continue
		case i%4 == 0:
			amount = billing.Money(inv.Total)
		case i%7 == 1:
			amount = billing.Money(inv.Total.Div(decimal.NewFromInt(2)).Round(2)) // half now
		default:
			continue
		}
		if _, err := svc.RecordPayment(ctx, "system:seed", billing.PaymentInput{InvoiceID: inv.ID, Amount: amount,
			Reference: fmt.Sprintf("WIRE-%05d", 42000+i), IdempotencyKey: "demo-" + inv.Number, Source: "admin"}); err != nil {
			return err
		}
	}
	return nil
}
