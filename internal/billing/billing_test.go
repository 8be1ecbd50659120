package billing_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var ctx = context.Background()

// addTenant inserts a tenant directly, created long before the billed months.
func addTenant(t *testing.T, d *db.DB, slug, plan string, parent int64, state string) int64 {
	t.Helper()
	var pid *int64
	if parent != 0 {
		pid = &parent
	}
	var id int64
	err := d.OwnerPool.QueryRow(ctx, `INSERT INTO tenantry.tenants (slug, name, plan_key, parent_id, state, created_at)
		VALUES ($1, $2, $3, $4, $5, '2024-01-01') RETURNING id`, slug, strings.ToUpper(slug[:1])+slug[1:], plan, pid, state).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// addUsage stores a daily rollup (and a matching hourly one, which billing must not count twice).
func addUsage(t *testing.T, d *db.DB, tenantID int64, dim, day string, total, peak int64) {
	t.Helper()
	for _, g := range []string{"day", "hour"} {
		_, err := d.OwnerPool.Exec(ctx, `INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
			VALUES ($1, $2, $3, $4::date, $5, $6, 1)`, tenantID, dim, g, day, total, peak)
		if err != nil {
			t.Fatal(err)
		}
	}
}

func setPrices(t *testing.T, s *billing.Service, plan, base string, unit, included map[string]string) {
	t.Helper()
	if err := s.SetPlanPrices(ctx, "test", plan, billing.PriceInput{Base: base, Unit: unit, Included: included}); err != nil {
		t.Fatal(err)
	}
}

// family is the three-level tree of the roll-up test:
//
//	holding (professional, root: pays)
//	├── alpha (starter, billed to parent)
//	│   └── alpha-one (starter, billed to parent)
//	└── beta (professional, pays for itself)
//	    └── beta-one (starter, no setting: follows beta)
type family struct {
	holding, alpha, alphaOne, beta, betaOne, late, purged int64
}

func seedFamily(t *testing.T, d *db.DB, s *billing.Service) family {
	t.Helper()
	setPrices(t, s, "professional", "299.00",
		map[string]string{"compute_vcpu_hours": "0.0125", "storage_gb": "0.10", "api_requests": "0.0001"},
		map[string]string{"compute_vcpu_hours": "1000", "storage_gb": "100", "api_requests": "0"})
	setPrices(t, s, "starter", "49",
		map[string]string{"compute_vcpu_hours": "0.015", "storage_gb": "0.2"},
		map[string]string{"compute_vcpu_hours": "100", "storage_gb": "10"})
	var f family
	f.holding = addTenant(t, d, "holding", "professional", 0, "active")
	f.alpha = addTenant(t, d, "alpha", "starter", f.holding, "active")
	f.alphaOne = addTenant(t, d, "alpha-one", "starter", f.alpha, "active")
	f.beta = addTenant(t, d, "beta", "professional", f.holding, "active")
	f.betaOne = addTenant(t, d, "beta-one", "starter", f.beta, "active")
	f.purged = addTenant(t, d, "gone", "starter", f.holding, "purged")
	addTenant(t, d, "pending", "starter", f.holding, "provisioning") // not serving yet: not billed
	f.late = addTenant(t, d, "late", "starter", f.holding, "active")
	if _, err := d.OwnerPool.Exec(ctx, "UPDATE tenantry.tenants SET created_at = '2025-11-03' WHERE id = $1", f.late); err != nil {
		t.Fatal(err)
	}
	for id, mode := range map[int64]string{f.alpha: billing.ModeParent, f.alphaOne: billing.ModeParent, f.beta: billing.ModeSelf} {
		if err := s.SetMode(ctx, "test", id, mode); err != nil {
			t.Fatal(err)
		}
	}
	// October 2025. holding: compute 600+700 = 1300 (300 over 1000 included), storage peak 150
	// (50 over 100), api 123,457 requests. alpha: compute 333 (233 over), storage 9 (none over).
	// alpha-one: compute 101 (1 over), storage 11 (1 over). beta and beta-one: nothing.
	addUsage(t, d, f.holding, "compute_vcpu_hours", "2025-10-01", 600, 600)
	addUsage(t, d, f.holding, "compute_vcpu_hours", "2025-10-31", 700, 700)
	addUsage(t, d, f.holding, "compute_vcpu_hours", "2025-11-01", 5000, 5000) // next month
	addUsage(t, d, f.holding, "compute_vcpu_hours", "2025-09-30", 5000, 5000) // previous month
	addUsage(t, d, f.holding, "storage_gb", "2025-10-05", 150, 150)
	addUsage(t, d, f.holding, "storage_gb", "2025-10-20", 120, 120)
	addUsage(t, d, f.holding, "api_requests", "2025-10-10", 123457, 900)
	addUsage(t, d, f.alpha, "compute_vcpu_hours", "2025-10-02", 333, 333)
	addUsage(t, d, f.alpha, "storage_gb", "2025-10-02", 9, 9)
	addUsage(t, d, f.alphaOne, "compute_vcpu_hours", "2025-10-03", 101, 101)
	addUsage(t, d, f.alphaOne, "storage_gb", "2025-10-03", 11, 11)
	addUsage(t, d, f.purged, "compute_vcpu_hours", "2025-10-03", 99999, 99999)
	return f
}

func invoiceOf(t *testing.T, s *billing.Service, tenantID int64, period string) billing.Invoice {
	t.Helper()
	list, _, err := s.List(ctx, billing.ListQuery{Period: period, PerPage: 200})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range list {
		if inv.TenantID == tenantID {
			full, err := s.Get(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			return full
		}
	}
	t.Fatalf("no invoice for tenant %d in %s (have %d)", tenantID, period, len(list))
	return billing.Invoice{}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// Totals computed by hand from the prices and usage in seedFamily; every amount is rounded to
// cents per line (half away from zero) and sections and totals add the rounded lines.
func TestInvoiceRollupThreeLevelTree(t *testing.T) {
	d := dbtest.NewDatabase(t)
	s := billing.NewService(d)
	f := seedFamily(t, d, s)

	res, err := s.Generate(ctx, "test", time.Date(2025, 10, 17, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 2 || res.Existing != 0 {
		t.Fatalf("generate = %+v, want 2 invoices (holding and beta)", res)
	}

	h := invoiceOf(t, s, f.holding, "2025-10")
	if h.Status != billing.StatusDraft || !h.PeriodStart.Equal(time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)) ||
		!h.PeriodEnd.Equal(time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)) || h.Currency != "USD" || !strings.HasPrefix(h.Number, "INV-") {
		t.Fatalf("holding invoice header = %+v", h)
	}
	type want struct {
		slug     string
		subtotal string
		lines    map[string]string // dimension ("" for base) -> amount
	}
	check := func(inv billing.Invoice, total string, sections []want) {
		t.Helper()
		if !inv.Total.Equal(dec(total)) {
			t.Errorf("%s total = %s, want %s", inv.Number, inv.Total, total)
		}
		if len(inv.Sections) != len(sections) {
			t.Fatalf("%s has %d sections, want %d", inv.Number, len(inv.Sections), len(sections))
		}
		for i, w := range sections {
			sec := inv.Sections[i]
			if sec.TenantSlug != w.slug || !sec.Subtotal.Equal(dec(w.subtotal)) {
				t.Errorf("section %d = %s subtotal %s, want %s subtotal %s", i, sec.TenantSlug, sec.Subtotal, w.slug, w.subtotal)
			}
			if len(sec.Lines) != len(w.lines) {
				t.Errorf("section %s has %d lines, want %d", sec.TenantSlug, len(sec.Lines), len(w.lines))
			}
			for _, l := range sec.Lines {
				if a, ok := w.lines[l.Dimension]; !ok || !l.Amount.Equal(dec(a)) {
					t.Errorf("section %s line %q = %s, want %s", sec.TenantSlug, l.Dimension, l.Amount, a)
				}
			}
		}
	}
	check(h, "421.82", []want{
		// 299.00 + 300 × 0.0125 = 3.75 + 50 × 0.10 = 5.00 + 123457 × 0.0001 = 12.3457 → 12.35
		{"holding", "320.10", map[string]string{"": "299.00", "compute_vcpu_hours": "3.75", "storage_gb": "5.00", "api_requests": "12.35"}},
		// 49.00 + 233 × 0.015 = 3.495 → 3.50 + 0 × 0.2
		{"alpha", "52.50", map[string]string{"": "49.00", "compute_vcpu_hours": "3.50", "storage_gb": "0.00"}},
		// 49.00 + 1 × 0.015 = 0.015 → 0.02 + 1 × 0.2 = 0.20
		{"alpha-one", "49.22", map[string]string{"": "49.00", "compute_vcpu_hours": "0.02", "storage_gb": "0.20"}},
	})
	storage := h.Sections[0].Lines[2]
	if storage.Dimension != "storage_gb" || storage.Used != 150 || storage.Included != 100 || storage.Quantity != 50 {
		t.Errorf("gauge line = %+v, want peak 150, 100 included, 50 billed", storage)
	}
	b := invoiceOf(t, s, f.beta, "2025-10")
	check(b, "348.00", []want{
		{"beta", "299.00", map[string]string{"": "299.00", "compute_vcpu_hours": "0.00", "storage_gb": "0.00", "api_requests": "0.00"}},
		{"beta-one", "49.00", map[string]string{"": "49.00", "compute_vcpu_hours": "0.00", "storage_gb": "0.00"}},
	})

	// Who pays, as the tenant page words it.
	p, err := s.Payer(ctx, f.alphaOne)
	if err != nil {
		t.Fatal(err)
	}
	if p.TenantID != f.holding || !p.Inherited || !strings.Contains(p.Reason, "billed to Holding") {
		t.Errorf("payer of alpha-one = %+v", p)
	}
	p, _ = s.Payer(ctx, f.betaOne)
	if p.TenantID != f.beta || p.Reason != "billed to Beta (inherited)" {
		t.Errorf("payer of beta-one = %+v", p)
	}
	p, _ = s.Payer(ctx, f.holding)
	if p.TenantID != f.holding || p.Inherited || p.Account == nil {
		t.Errorf("payer of holding = %+v", p)
	}

	// The CSV has one row per line item and its amounts add up to the total.
	var buf bytes.Buffer
	if err := billing.WriteCSV(&buf, h); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+4+3+3 {
		t.Fatalf("CSV has %d rows, want header + 10 lines", len(rows))
	}
	sum := decimal.Zero
	for _, r := range rows[1:] {
		sum = sum.Add(dec(r[13]))
	}
	if !sum.Equal(h.Total) || rows[1][2] != "holding" || rows[5][2] != "alpha" {
		t.Errorf("CSV amounts add to %s (total %s); rows %v", sum, h.Total, rows[1:3])
	}

	// The PDF is a PDF and, uncompressed, shows the number and the total.
	buf.Reset()
	if err := billing.WritePDF(&buf, h, billing.PDFOptions{Uncompressed: true}); err != nil {
		t.Fatal(err)
	}
	pdf := buf.String()
	if !strings.HasPrefix(pdf, "%PDF-") || !strings.Contains(pdf, "Invoice "+h.Number) || !strings.Contains(pdf, "421.82") ||
		!strings.Contains(pdf, "Alpha-one") || !strings.HasSuffix(strings.TrimSpace(pdf), "%%EOF") {
		t.Errorf("PDF does not look right (%d bytes, starts %q)", len(pdf), pdf[:min(20, len(pdf))])
	}
	buf.Reset()
	if err := billing.WritePDF(&buf, h, billing.PDFOptions{}); err != nil || !strings.HasPrefix(buf.String(), "%PDF-") {
		t.Errorf("compressed PDF: %v", err)
	}
}

// Running the job twice, or after a change of usage, leaves the month's invoices as they were.
func TestGenerateIsIdempotent(t *testing.T) {
	d := dbtest.NewDatabase(t)
	s := billing.NewService(d).WithClock(func() time.Time { return time.Date(2025, 11, 1, 0, 10, 0, 0, time.UTC) })
	f := seedFamily(t, d, s)
	first, err := s.Generate(ctx, "system:billing", billing.PreviousMonth(time.Date(2025, 11, 1, 0, 10, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	before := invoiceOf(t, s, f.holding, "2025-10")
	addUsage(t, d, f.alpha, "api_requests", "2025-10-15", 1_000_000, 1)
	second, err := s.Generate(ctx, "system:billing", time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if first.Created != 2 || second.Created != 0 || second.Existing != 2 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	after := invoiceOf(t, s, f.holding, "2025-10")
	if after.Number != before.Number || !after.Total.Equal(before.Total) {
		t.Fatalf("invoice changed: %s %s → %s %s", before.Number, before.Total, after.Number, after.Total)
	}
	var n int
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.invoices").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d invoices (%v), want 2", n, err)
	}
	// Concurrent runs (two nodes) also make one invoice per account.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.Generate(ctx, "system:billing", time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC))
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.invoices WHERE period_start = '2025-09-01'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d September invoices (%v), want 2", n, err)
	}
	// The monthly job is audited once per run that created something.
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.audit_events WHERE action = 'invoices.generated'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d generation events (%v), want 2", n, err)
	}

	// Issue all of October's drafts at once: both, then none; due dates from each account's terms.
	if _, err := s.SaveAccount(ctx, "test", f.beta, billing.AccountInput{Name: "Beta", Currency: "USD", Terms: "7"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.IssueAll(ctx, "test", time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 2 {
		t.Fatalf("issue all: %d %v", n, err)
	}
	if n, err := s.IssueAll(ctx, "test", time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 0 {
		t.Fatalf("issue all again: %d %v", n, err)
	}
	h, b := invoiceOf(t, s, f.holding, "2025-10"), invoiceOf(t, s, f.beta, "2025-10")
	if h.Status != billing.StatusIssued || h.DueDate.Format(time.DateOnly) != "2025-12-01" || b.DueDate.Format(time.DateOnly) != "2025-11-08" || h.IssuedAt == nil {
		t.Fatalf("after issue all: %s due %s, beta due %s", h.Status, h.DueDate.Format(time.DateOnly), b.DueDate.Format(time.DateOnly))
	}
	if n := invoiceOf(t, s, f.holding, "2025-09"); n.Status != billing.StatusDraft {
		t.Fatalf("September invoice touched: %s", n.Status)
	}
}

func TestIssuePayAndOverdue(t *testing.T) {
	d := dbtest.NewDatabase(t)
	day := time.Date(2025, 11, 2, 9, 0, 0, 0, time.UTC)
	s := billing.NewService(d).WithClock(func() time.Time { return day })
	f := seedFamily(t, d, s)
	if _, err := s.SaveAccount(ctx, "test", f.beta, billing.AccountInput{Name: "Beta Ltd", Email: "ap@beta.example", Currency: "eur", Terms: "14"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate(ctx, "test", time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	h := invoiceOf(t, s, f.holding, "2025-10")
	b := invoiceOf(t, s, f.beta, "2025-10")
	if b.Currency != "EUR" || b.AccountName != "Beta Ltd" {
		t.Fatalf("beta invoice account = %s %s", b.AccountName, b.Currency)
	}
	// A draft takes no payment.
	_, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "1.00", IdempotencyKey: "k0"})
	if !errors.Is(err, billing.ErrNotPayable) {
		t.Fatalf("payment on draft: %v", err)
	}
	for _, inv := range []billing.Invoice{h, b} {
		if _, err := s.Issue(ctx, "test", inv.ID); err != nil {
			t.Fatal(err)
		}
	}
	h, _ = s.Get(ctx, h.ID)
	if h.Status != billing.StatusIssued || h.IssueDate.Format(time.DateOnly) != "2025-11-02" || h.DueDate.Format(time.DateOnly) != "2025-12-02" {
		t.Fatalf("issued: %s %s %s", h.Status, h.IssueDate, h.DueDate)
	}
	if _, err := s.Issue(ctx, "test", h.ID); !errors.Is(err, billing.ErrBadTransition) {
		t.Fatalf("issue twice: %v", err)
	}
	// Bad amounts are refused at the field.
	for _, a := range []string{"", "-1", "0", "1.005", "1e3", "abc"} {
		_, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: a, IdempotencyKey: "bad"})
		if validation.Fields(err)["amount"] == "" {
			t.Errorf("amount %q: %v", a, err)
		}
	}
	// Partial payments accumulate; an overpayment is refused; the last one pays it off.
	r, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "400.00", IdempotencyKey: "p1", Reference: "wire 1"})
	if err != nil || r.Invoice.Status != billing.StatusIssued || !r.Invoice.Paid.Equal(dec("400")) {
		t.Fatalf("partial: %+v %v", r.Invoice, err)
	}
	if _, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "21.83", IdempotencyKey: "p2"}); !errors.Is(err, billing.ErrOverpayment) {
		t.Fatalf("overpay: %v", err)
	}
	r, err = s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "21.82", IdempotencyKey: "p2"})
	if err != nil || r.Invoice.Status != billing.StatusPaid || r.Replayed {
		t.Fatalf("full: %+v %v", r, err)
	}
	// The same key again is the same payment, even now that the invoice is paid.
	r, err = s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "400.00", IdempotencyKey: "p1", Reference: "wire 1"})
	if err != nil || !r.Replayed {
		t.Fatalf("replay: %+v %v", r, err)
	}
	if _, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: h.ID, Amount: "1.00", IdempotencyKey: "p1"}); !errors.Is(err, billing.ErrIdempotencyMismatch) {
		t.Fatalf("key reused: %v", err)
	}
	h, _ = s.Get(ctx, h.ID)
	if len(h.Payments) != 2 || !h.Paid.Equal(h.Total) {
		t.Fatalf("payments %d, paid %s of %s", len(h.Payments), h.Paid, h.Total)
	}
	// Another tenant's scope does not see the invoice.
	if _, err := s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: b.ID, TenantID: f.holding, Amount: "1", IdempotencyKey: "x"}); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}

	// Overdue: not on the due date, the day after it; paid invoices never.
	due := invoiceOf(t, s, f.beta, "2025-10").DueDate // 14 days after 2025-11-02
	onDue := s.WithClock(func() time.Time { return due.Add(23 * time.Hour) })
	if n, err := onDue.MarkOverdue(ctx); err != nil || n != 0 {
		t.Fatalf("on the due date: %d %v", n, err)
	}
	after := s.WithClock(func() time.Time { return due.AddDate(0, 0, 1).Add(time.Minute) })
	if n, err := after.MarkOverdue(ctx); err != nil || n != 1 {
		t.Fatalf("after the due date: %d %v", n, err)
	}
	if n, _ := after.MarkOverdue(ctx); n != 0 {
		t.Fatalf("second sweep moved %d", n)
	}
	b, _ = s.Get(ctx, b.ID)
	h, _ = s.Get(ctx, h.ID)
	if b.Status != billing.StatusOverdue || h.Status != billing.StatusPaid {
		t.Fatalf("beta %s, holding %s", b.Status, h.Status)
	}
	var n int
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.audit_events WHERE action = 'invoice.overdue' AND target = $1", "invoice:"+b.Number).Scan(&n); err != nil || n != 1 {
		t.Fatalf("overdue audit events: %d %v", n, err)
	}
	// An overdue invoice still takes its payment, and is then paid.
	r, err = s.RecordPayment(ctx, "test", billing.PaymentInput{InvoiceID: b.ID, TenantID: f.beta, Amount: "348", IdempotencyKey: "b1"})
	if err != nil || r.Invoice.Status != billing.StatusPaid {
		t.Fatalf("pay overdue: %+v %v", r.Invoice, err)
	}
	// The issue notice was queued for the account with an address.
	if err := d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.mail_outbox WHERE kind = 'billing.invoice_issued' AND to_addr = 'ap@beta.example'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("issue notices: %d %v", n, err)
	}
}

func TestPricesAndModesValidation(t *testing.T) {
	d := dbtest.Open(t)
	s := billing.NewService(d)
	err := s.SetPlanPrices(ctx, "test", "starter", billing.PriceInput{Base: "49.001",
		Unit:     map[string]string{"compute_vcpu_hours": "-1", "storage_gb": "0.12345", "seats": "abc", "projects": "2"},
		Included: map[string]string{"projects": "1.5"}})
	f := validation.Fields(err)
	for _, field := range []string{"base", "price_compute_vcpu_hours", "price_storage_gb", "price_seats", "included_projects"} {
		if f[field] == "" {
			t.Errorf("no error at %s: %v", field, err)
		}
	}
	pr, _ := s.Pricing(ctx)
	for _, p := range pr {
		if p.Key == "starter" && (len(p.Prices) != 0 || !p.Base.Equal(dec("49"))) {
			t.Fatalf("refused input changed the plan: %+v", p)
		}
	}
	root := addTenant(t, d, "vroot", "starter", 0, "active")
	if err := s.SetMode(ctx, "test", root, billing.ModeParent); validation.Fields(err)["mode"] == "" {
		t.Fatalf("root billed to parent: %v", err)
	}
	child := addTenant(t, d, "vchild", "starter", root, "active")
	if _, err := s.SaveAccount(ctx, "test", child, billing.AccountInput{Name: "X", Currency: "USD", Terms: "30"}); validation.Fields(err)["name"] == "" {
		t.Fatalf("account for a tenant billed to its parent: %v", err)
	}
	_, err = s.SaveAccount(ctx, "test", root, billing.AccountInput{Name: " ", Email: "nope", Currency: "dollars", Terms: "400"})
	f = validation.Fields(err)
	for _, field := range []string{"name", "email", "currency", "terms"} {
		if f[field] == "" {
			t.Errorf("no error at %s: %v", field, err)
		}
	}
}

// The River workers: the monthly job bills the month before the one it runs in, on the 1st at
// 00:10 UTC; the overdue worker moves issued invoices past their due date.
func TestJobs(t *testing.T) {
	var sched billing.MonthlySchedule
	for in, want := range map[string]string{
		"2025-11-15T13:00:00Z": "2025-12-01T00:10:00Z",
		"2025-12-01T00:10:00Z": "2026-01-01T00:10:00Z",
		"2025-12-31T23:59:59Z": "2026-01-01T00:10:00Z",
	} {
		at, _ := time.Parse(time.RFC3339, in)
		if got := sched.Next(at).Format(time.RFC3339); got != want {
			t.Errorf("Next(%s) = %s, want %s", in, got, want)
		}
	}
	d := dbtest.NewDatabase(t)
	run := time.Date(2025, 11, 1, 0, 10, 0, 0, time.UTC)
	s := billing.NewService(d).WithClock(func() time.Time { return run })
	f := seedFamily(t, d, s)
	w := &billing.InvoiceWorker{Service: s}
	for range 2 {
		if err := w.Work(ctx, &river.Job[billing.InvoiceArgs]{}); err != nil {
			t.Fatal(err)
		}
	}
	h := invoiceOf(t, s, f.holding, "2025-10")
	if !h.Total.Equal(dec("421.82")) {
		t.Fatalf("October invoice total %s", h.Total)
	}
	if _, err := s.Issue(ctx, "test", h.ID); err != nil {
		t.Fatal(err)
	}
	late := &billing.OverdueWorker{Service: s.WithClock(func() time.Time { return run.AddDate(0, 0, 31) })}
	if err := late.Work(ctx, &river.Job[billing.OverdueArgs]{}); err != nil {
		t.Fatal(err)
	}
	if h, _ = s.Get(ctx, h.ID); h.Status != billing.StatusOverdue {
		t.Fatalf("status after the due date: %s", h.Status)
	}
}

func TestMoneyDisplay(t *testing.T) {
	for in, want := range map[string]string{"0": "0.00", "3.5": "3.50", "999.999": "1,000.00", "683373.34": "683,373.34", "-1234567.8": "-1,234,567.80"} {
		if got := billing.MoneyDisplay(decimal.RequireFromString(in)); got != want {
			t.Errorf("MoneyDisplay(%s) = %q, want %q", in, got, want)
		}
	}
}
