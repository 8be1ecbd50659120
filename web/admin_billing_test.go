package web_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/shopspring/decimal"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/web"
)

// billingSetup is setup on a database of its own: invoices cover every tenant of the database,
// so the other tests' tenants must not land on them.
func billingSetup(t *testing.T) *testBundle {
	t.Helper()
	d := dbtest.NewDatabase(t)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{db: d, ts: newTestServer(t, srv), users: identity.NewService(d.App)}
}

// billingTenant inserts a tenant registered long ago (no schema needed for billing).
func (b *testBundle) billingTenant(t *testing.T, slug, name, plan string, parent int64) int64 {
	t.Helper()
	var pid *int64
	if parent != 0 {
		pid = &parent
	}
	var id int64
	err := b.db.OwnerPool.QueryRow(context.Background(), `INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id, state, created_at)
		VALUES ($1, $2, $3, $4, 'active', now() - interval '1 year') RETURNING id`, slug, name, plan, pid).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *testBundle) dayUsage(t *testing.T, tenantID int64, dim string, day time.Time, total int64) {
	t.Helper()
	_, err := b.db.OwnerPool.Exec(context.Background(), `INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
		VALUES ($1, $2, 'day', $3, $4, $4, 1)`, tenantID, dim, day, total)
	if err != nil {
		t.Fatal(err)
	}
}

func countRows(t *testing.T, b *testBundle, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := b.db.OwnerPool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The admin's journey: empty Billing page, prices refused then saved, a month billed with the
// button, the invoice found, issued, paid in part and in full, downloaded as PDF and CSV; the
// tenant's Billing tab says who pays and why and changes it.
func TestAdminBilling(t *testing.T) {
	b := billingSetup(t)
	c := b.client(t)
	c.signIn(b.user(t, identity.RoleAdmin).Email)

	res, body := c.get("/admin/billing")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("billing page: %d", res.StatusCode)
	}
	doc := parse(t, body)
	if doc.Find(`[data-testid="empty-state"]`).Length() != 1 || !strings.Contains(doc.Find(`[data-testid="empty-state"]`).Text(), "No invoices yet") {
		t.Fatalf("no empty state:\n%s", body)
	}
	if doc.Find(`nav a[href="/admin/billing"][aria-current="page"]`).Length() == 0 {
		t.Errorf("Billing is not the current nav item")
	}
	if got := doc.Find(`[data-testid="totals-invoiced"]`).Text(); got != "0.00" {
		t.Errorf("invoiced total on an empty page = %q", got)
	}

	// Prices: bad input is refused at each field and changes nothing.
	tok := c.token("/admin/billing/plans/starter")
	bad := url.Values{"_csrf": {tok}, "base": {"49.001"}, "price_compute_vcpu_hours": {"-2"}, "price_storage_gb": {"0.12345"},
		"price_seats": {"1"}, "included_seats": {"x"}, "price_api_requests": {"1e3"}}
	res, body = c.post("/admin/billing/plans/starter", bad)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad prices: %d", res.StatusCode)
	}
	doc = parse(t, body)
	for _, f := range []string{"base", "price_compute_vcpu_hours", "price_storage_gb", "included_seats", "price_api_requests"} {
		if doc.Find(`[data-testid="error-`+f+`"]`).Length() != 1 {
			t.Errorf("no error at %s", f)
		}
	}
	if v, _ := doc.Find(`input[name="price_storage_gb"]`).Attr("value"); v != "0.12345" {
		t.Errorf("input not kept: %q", v)
	}
	if n := countRows(t, b, "SELECT count(*) FROM tenantry.plan_prices"); n != 0 {
		t.Fatalf("refused prices saved %d rows", n)
	}
	good := url.Values{"_csrf": {tok}, "base": {"49.00"}, "price_compute_vcpu_hours": {"0.015"}, "included_compute_vcpu_hours": {"100"},
		"price_storage_gb": {"0.2"}, "included_storage_gb": {"10"}}
	if res, body = c.post("/admin/billing/plans/starter", good); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("good prices: %d\n%s", res.StatusCode, body)
	}
	if n := countRows(t, b, "SELECT count(*) FROM tenantry.audit_events WHERE action = 'plan.prices_changed' AND target = 'plan:starter'"); n != 1 {
		t.Errorf("price change audited %d times", n)
	}
	_, body = c.get("/admin/billing/plans")
	if got := parse(t, body).Find(`[data-plan="starter"] [data-dimension="compute_vcpu_hours"] [data-testid="unit-price"]`).Text(); strings.TrimSpace(got) != "0.015" {
		t.Errorf("plans page shows %q", got)
	}

	// A family: Root pays; Child is billed to it by inheritance.
	root := b.billingTenant(t, "acme-root", "Acme Root", "starter", 0)
	child := b.billingTenant(t, "acme-child", "Acme Child", "starter", root)
	last := billing.PreviousMonth(time.Now())
	b.dayUsage(t, root, "compute_vcpu_hours", last.AddDate(0, 0, 2), 300)  // 200 over: 3.00
	b.dayUsage(t, child, "compute_vcpu_hours", last.AddDate(0, 0, 3), 133) // 33 over: 0.495 → 0.50
	b.dayUsage(t, child, "storage_gb", last.AddDate(0, 0, 3), 12)          // 2 over: 0.40

	_, body = c.get("/admin/tenants/acme-child/billing")
	if got := parse(t, body).Find(`[data-testid="billing-reason"]`).Text(); !strings.Contains(strings.Join(strings.Fields(got), " "), "Billed to Acme Root (inherited)") {
		t.Errorf("child's billing tab says %q", got)
	}
	// A top-level tenant cannot be billed to a parent.
	tok = c.token("/admin/tenants/acme-root/billing")
	res, body = c.post("/admin/tenants/acme-root/billing/mode", url.Values{"_csrf": {tok}, "mode": {"parent"}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-mode"]`).Length() != 1 {
		t.Fatalf("root billed to parent: %d", res.StatusCode)
	}

	// Generating a month that has not ended is refused at the field; last month works.
	tok = c.token("/admin/billing")
	res, body = c.post("/admin/billing/generate", url.Values{"_csrf": {tok}, "month": {time.Now().Format("2006-01")}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-month"]`).Length() != 1 {
		t.Fatalf("current month: %d", res.StatusCode)
	}
	res, _ = c.post("/admin/billing/generate", url.Values{"_csrf": {tok}, "month": {last.Format("2006-01")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("generate: %d", res.StatusCode)
	}
	res, _ = c.post("/admin/billing/generate", url.Values{"_csrf": {tok}, "month": {last.Format("2006-01")}})
	if res.StatusCode != http.StatusSeeOther || countRows(t, b, "SELECT count(*) FROM tenantry.invoices") != 1 {
		t.Fatalf("second generate: %d, %d invoices", res.StatusCode, countRows(t, b, "SELECT count(*) FROM tenantry.invoices"))
	}

	// Filtered to the month, the list offers to issue its drafts.
	_, body = c.get("/admin/billing?period=" + last.Format("2006-01"))
	if got := parse(t, body).Find(`[data-testid="drafts-count"]`).Text(); got != "1" {
		t.Fatalf("drafts offered: %q", got)
	}
	// The list finds it by a tenant on it; a filter with no match says so.
	_, body = c.get("/admin/billing?q=acme-child")
	doc = parse(t, body)
	rows := doc.Find(`[data-testid="invoice-row"]`)
	if rows.Length() != 1 || doc.Find(`[data-testid="totals-invoiced"]`).Text() != "101.90" {
		t.Fatalf("search: %d rows, invoiced %q", rows.Length(), doc.Find(`[data-testid="totals-invoiced"]`).Text())
	}
	_, body = c.get("/admin/billing?status=paid")
	if !strings.Contains(parse(t, body).Find(`[data-testid="empty-state"]`).Text(), "No invoices match") {
		t.Errorf("no filtered empty state")
	}
	href, _ := rows.Find("a").First().Attr("href")

	// The invoice: sections with subtotals, issued, an overpayment refused, then paid in two parts.
	_, body = c.get(href)
	doc = parse(t, body)
	subtotals := doc.Find(`[data-testid="section-subtotal"]`).Map(func(_ int, s *goquery.Selection) string { return s.Text() })
	if strings.Join(subtotals, " ") != "52.00 49.90" || doc.Find(`[data-testid="invoice-total"]`).Text() != "101.90" {
		t.Fatalf("subtotals %v, total %q", subtotals, doc.Find(`[data-testid="invoice-total"]`).Text())
	}
	tok = c.token(href)
	if res, _ = c.post(href+"/issue", url.Values{"_csrf": {tok}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("issue: %d", res.StatusCode)
	}
	_, body = c.get(href)
	doc = parse(t, body)
	key, _ := doc.Find(`input[name="payment_key"]`).Attr("value")
	if doc.Find(`[data-testid="invoice-status"]`).First().Text() != "issued" || key == "" {
		t.Fatalf("after issue: status %q, key %q", doc.Find(`[data-testid="invoice-status"]`).First().Text(), key)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	res, body = c.post(href+"/payments", url.Values{"_csrf": {tok}, "payment_key": {key}, "amount": {"101.91"}, "paid_at": {today}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(parse(t, body).Find(`[data-testid="error-amount"]`).Text(), "more than the balance") {
		t.Fatalf("overpayment: %d", res.StatusCode)
	}
	if res, _ = c.post(href+"/payments", url.Values{"_csrf": {tok}, "payment_key": {key}, "amount": {"100"}, "paid_at": {today}, "reference": {"wire 1"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("partial payment: %d", res.StatusCode)
	}
	// The same form submitted twice is one payment.
	c.post(href+"/payments", url.Values{"_csrf": {tok}, "payment_key": {key}, "amount": {"100"}, "paid_at": {today}, "reference": {"wire 1"}})
	_, body = c.get(href)
	doc = parse(t, body)
	key2, _ := doc.Find(`input[name="payment_key"]`).Attr("value")
	if doc.Find(`[data-testid="payment"]`).Length() != 1 || doc.Find(`[data-testid="invoice-balance"]`).Text() != "1.90" {
		t.Fatalf("after partial: %d payments, balance %q", doc.Find(`[data-testid="payment"]`).Length(), doc.Find(`[data-testid="invoice-balance"]`).Text())
	}
	if res, _ = c.post(href+"/payments", url.Values{"_csrf": {tok}, "payment_key": {key2}, "amount": {"1.90"}, "paid_at": {today}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("final payment: %d", res.StatusCode)
	}
	_, body = c.get(href)
	if got := parse(t, body).Find(`[data-testid="invoice-status"]`).First().Text(); got != "paid" {
		t.Fatalf("status after full payment = %q", got)
	}

	// Downloads.
	res, pdf := c.get(href + "/pdf?uncompressed=1")
	number := strings.TrimPrefix(parse(t, body).Find(`[data-testid="invoice-number"]`).Text(), "Invoice ")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(pdf, "%PDF-") ||
		!strings.Contains(pdf, number) || !strings.Contains(res.Header.Get("Content-Disposition"), number+".pdf") {
		t.Fatalf("PDF: %d %q, has number %v", res.StatusCode, res.Header.Get("Content-Type"), strings.Contains(pdf, number))
	}
	res, csvBody := c.get(href + "/csv")
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("CSV: %d %v", res.StatusCode, err)
	}
	sum := decimal.Zero
	for _, r := range recs[1:] {
		sum = sum.Add(decimal.RequireFromString(r[13]))
	}
	if len(recs) != 1+3+3 || sum.String() != "101.9" || recs[4][2] != "acme-child" {
		t.Fatalf("CSV: %d rows, amounts add to %s", len(recs), sum)
	}

	// The child now pays for itself: audited, and its tab says so.
	tok = c.token("/admin/tenants/acme-child/billing")
	if res, _ = c.post("/admin/tenants/acme-child/billing/mode", url.Values{"_csrf": {tok}, "mode": {"self"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("mode self: %d", res.StatusCode)
	}
	_, body = c.get("/admin/tenants/acme-child/billing")
	doc = parse(t, body)
	if got := doc.Find(`[data-testid="billing-reason"]`).Text(); !strings.Contains(got, "pays for itself") || doc.Find(`[data-testid="billing-account-form"]`).Length() != 1 {
		t.Errorf("after self: %q", got)
	}
	if doc.Find(`[data-testid="invoice-row"]`).Length() != 1 {
		t.Errorf("the child's tab does not list the invoice it is on")
	}
	res, body = c.post("/admin/tenants/acme-child/billing/account", url.Values{"_csrf": {tok}, "name": {""}, "email": {"x"}, "currency": {"us"}, "terms": {"-1"}})
	doc = parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid^="error-"]`).Length() != 4 {
		t.Errorf("bad account: %d, %d errors", res.StatusCode, doc.Find(`[data-testid^="error-"]`).Length())
	}
	if n := countRows(t, b, "SELECT count(*) FROM tenantry.audit_events WHERE action = 'tenant.billing_mode_changed' AND tenant_id = $1", child); n != 1 {
		t.Errorf("mode change audited %d times", n)
	}

	// An executive reads but cannot act.
	e := b.client(t)
	e.signIn(b.user(t, identity.RoleExecutive).Email)
	_, body = e.get("/admin/billing")
	if parse(t, body).Find(`[data-testid="billing-generate"]`).Length() != 0 {
		t.Errorf("executive sees the generate form")
	}
	_, body = e.get(href)
	if doc = parse(t, body); doc.Find(`[data-testid="pay-form"], [data-testid="invoice-void"]`).Length() != 0 || doc.Find(`[data-testid="invoice-pdf"]`).Length() != 1 {
		t.Errorf("executive's invoice page offers actions or lacks the download")
	}
	_, body = e.get("/admin/tenants/acme-root/billing")
	if doc = parse(t, body); doc.Find(`[data-testid="billing-mode-form"], [data-testid="billing-account-save"]`).Length() != 0 || doc.Find(`[data-testid="billing-reason"]`).Length() != 1 {
		t.Errorf("executive's billing tab offers changes")
	}
	tok = e.token("/admin/billing")
	if res, _ = e.post("/admin/billing/generate", url.Values{"_csrf": {tok}, "month": {last.Format("2006-01")}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("executive generate: %d", res.StatusCode)
	}
}
