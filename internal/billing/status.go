package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/validation"
)

// Get returns an invoice with its sections, lines and payments.
func (s *Service) Get(ctx context.Context, id int64) (Invoice, error) {
	return get(s.db.WithContext(ctx), id, false)
}

func get(tx *gorm.DB, id int64, lock bool) (Invoice, error) {
	var inv Invoice
	q := tx
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Where("id = ?", id).Take(&inv).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		return inv, ErrNotFound
	} else if err != nil {
		return inv, err
	}
	if err := tx.Where("invoice_id = ?", id).Order("position").Find(&inv.Sections).Error; err != nil {
		return inv, err
	}
	ids := make([]int64, len(inv.Sections))
	for i, s := range inv.Sections {
		ids[i] = s.ID
	}
	var lines []Line
	if len(ids) > 0 {
		if err := tx.Where("section_id IN ?", ids).Order("section_id, position").Find(&lines).Error; err != nil {
			return inv, err
		}
	}
	for _, l := range lines {
		for i := range inv.Sections {
			if inv.Sections[i].ID == l.SectionID {
				inv.Sections[i].Lines = append(inv.Sections[i].Lines, l)
			}
		}
	}
	err := tx.Where("invoice_id = ?", id).Order("paid_at, id").Find(&inv.Payments).Error
	return inv, err
}

// ListQuery filters and pages the invoice list. Zero values: everything, newest first, page 1.
type ListQuery struct {
	Search   string // invoice number, account name, or the name or slug of a tenant on it
	Status   string
	Period   string // YYYY-MM
	TenantID int64  // invoices paid by or including this tenant
	Page     int
	PerPage  int
}

// Normalize clamps the query to valid values.
func (q *ListQuery) Normalize() {
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 100 {
		q.Search = q.Search[:100]
	}
	valid := false
	for _, st := range Statuses {
		valid = valid || st == q.Status
	}
	if !valid {
		q.Status = ""
	}
	if _, err := ParseMonth(q.Period); err != nil {
		q.Period = ""
	}
	if q.PerPage <= 0 || q.PerPage > 200 {
		q.PerPage = 25
	}
	if q.Page < 1 {
		q.Page = 1
	}
}

// Totals sums the amounts of the invoices a query selects (void invoices left out).
type Totals struct {
	Count       int64
	Invoiced    decimal.Decimal
	Paid        decimal.Decimal
	Outstanding decimal.Decimal
	Overdue     decimal.Decimal
}

// List returns one page of invoices matching q, newest period first, with the totals of all the
// invoices it matches.
func (s *Service) List(ctx context.Context, q ListQuery) ([]Invoice, Totals, error) {
	q.Normalize()
	base := s.db.WithContext(ctx).Table("tenantry.invoices AS i")
	if q.Search != "" {
		like := "%" + db.Contains(strings.ToLower(q.Search)) + "%"
		base = base.Where(`(lower(i.number) LIKE ? OR lower(i.account_name) LIKE ? OR EXISTS (SELECT 1 FROM tenantry.invoice_sections s
			WHERE s.invoice_id = i.id AND (lower(s.tenant_name) LIKE ? OR s.tenant_slug LIKE ?)))`, like, like, like, like)
	}
	if q.Status != "" {
		base = base.Where("i.status = ?", q.Status)
	}
	if q.Period != "" {
		m, _ := ParseMonth(q.Period)
		base = base.Where("i.period_start = ?", m)
	}
	if q.TenantID != 0 {
		base = base.Where("(i.tenant_id = ? OR EXISTS (SELECT 1 FROM tenantry.invoice_sections s WHERE s.invoice_id = i.id AND s.tenant_id = ?))", q.TenantID, q.TenantID)
	}
	var t struct {
		Count       int64
		Invoiced    decimal.Decimal
		Paid        decimal.Decimal
		Outstanding decimal.Decimal
		Overdue     decimal.Decimal
	}
	err := base.Session(&gorm.Session{}).Select(`count(*) AS count,
		COALESCE(sum(i.total) FILTER (WHERE i.status <> 'void'), 0) AS invoiced,
		COALESCE(sum(i.paid) FILTER (WHERE i.status <> 'void'), 0) AS paid,
		COALESCE(sum(i.total - i.paid) FILTER (WHERE i.status IN ('issued', 'overdue')), 0) AS outstanding,
		COALESCE(sum(i.total - i.paid) FILTER (WHERE i.status = 'overdue'), 0) AS overdue`).Scan(&t).Error
	if err != nil {
		return nil, Totals{}, err
	}
	var out []Invoice
	err = base.Session(&gorm.Session{}).Select("i.*").Order("i.period_start DESC, i.id DESC").
		Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Scan(&out).Error
	return out, Totals(t), err
}

// Issue moves a draft to issued: the issue date is today and the due date today plus the
// account's payment terms. An invoice of nothing is paid at once. The account's e-mail, when
// set, is sent a notice (queued in the same transaction).
func (s *Service) Issue(ctx context.Context, actor string, id int64) (Invoice, error) {
	var inv Invoice
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if inv, err = get(tx, id, true); err != nil {
			return err
		}
		if inv.Status != StatusDraft {
			return fmt.Errorf("%w: only a draft can be issued, and %s is %s", ErrBadTransition, inv.Number, inv.Status)
		}
		var terms int
		if err := tx.Raw("SELECT payment_terms_days FROM tenantry.billing_accounts WHERE id = ?", inv.AccountID).Scan(&terms).Error; err != nil {
			return err
		}
		now := s.now().UTC()
		inv.IssueDate, inv.DueDate = s.today(), s.today().AddDate(0, 0, terms)
		inv.Status, inv.IssuedAt = StatusIssued, &now
		if inv.Total.IsZero() {
			inv.Status, inv.PaidAt = StatusPaid, &now
		}
		if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(map[string]any{"status": inv.Status, "issue_date": inv.IssueDate,
			"due_date": inv.DueDate, "issued_at": now, "paid_at": inv.PaidAt, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := issueNotice(tx, inv); err != nil {
			return err
		}
		tid := inv.TenantID
		return record(tx, actor, "invoice.issued", "invoice:"+inv.Number, &tid, map[string]any{
			"status": inv.Status, "issue_date": inv.IssueDate.Format(time.DateOnly), "due_date": inv.DueDate.Format(time.DateOnly), "total": Money(inv.Total)})
	})
	return inv, err
}

// issueNotice queues the "invoice issued" e-mail to the account's address, when it has one.
func issueNotice(tx *gorm.DB, inv Invoice) error {
	if inv.AccountEmail == "" {
		return nil
	}
	tid := inv.TenantID
	_, err := mail.Enqueue(tx, mail.Message{TenantID: &tid, Kind: "billing.invoice_issued", DedupKey: "invoice-issued-" + strconv.FormatInt(inv.ID, 10),
		To: inv.AccountEmail, Subject: fmt.Sprintf("Invoice %s for %s", inv.Number, inv.Period()),
		Text: fmt.Sprintf("Hello %s,\n\ninvoice %s for %s is issued: %s %s, due on %s.\n", inv.AccountName, inv.Number, inv.Period(),
			Money(inv.Total), inv.Currency, inv.DueDate.Format("2 January 2006"))})
	if err != nil && !errors.Is(err, validation.ErrInvalid) { // a bad stored address must not block issuing
		return err
	}
	return nil
}

// IssueAll issues every draft of the month that starts at month, as Issue does one by one, in
// one transaction with one UPDATE, and returns how many it issued. One audit event lists them.
func (s *Service) IssueAll(ctx context.Context, actor string, month time.Time) (int, error) {
	start := MonthStart(month)
	now := s.now().UTC()
	today := s.today()
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var issued []Invoice
		err := tx.Raw(`UPDATE tenantry.invoices i
			   SET status = CASE WHEN i.total = 0 THEN 'paid' ELSE 'issued' END,
			       issue_date = ?::date, due_date = ?::date + a.payment_terms_days,
			       issued_at = ?, paid_at = CASE WHEN i.total = 0 THEN ?::timestamptz END, updated_at = ?
			  FROM tenantry.billing_accounts a
			 WHERE a.id = i.account_id AND i.status = 'draft' AND i.period_start = ?
			RETURNING i.*`, today, today, now, now, now, start).Scan(&issued).Error
		if err != nil {
			return err
		}
		n = len(issued)
		if n == 0 {
			return nil
		}
		numbers := make([]string, n)
		for i, inv := range issued {
			numbers[i] = inv.Number
			if err := issueNotice(tx, inv); err != nil {
				return err
			}
		}
		sort.Strings(numbers)
		return record(tx, actor, "invoices.issued", "period:"+start.Format("2006-01"), nil, map[string]any{
			"count": n, "issue_date": today.Format(time.DateOnly), "first": numbers[0], "last": numbers[n-1]})
	})
	return n, err
}

// Void cancels an invoice that has received no payment.
func (s *Service) Void(ctx context.Context, actor string, id int64) (Invoice, error) {
	var inv Invoice
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if inv, err = get(tx, id, true); err != nil {
			return err
		}
		if inv.Status == StatusVoid || inv.Status == StatusPaid || !inv.Paid.IsZero() {
			return fmt.Errorf("%w: %s is %s and has %s paid; only an unpaid invoice can be voided", ErrBadTransition, inv.Number, inv.Status, Money(inv.Paid))
		}
		before := inv.Status
		now := s.now().UTC()
		inv.Status, inv.VoidedAt = StatusVoid, &now
		if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(map[string]any{"status": StatusVoid, "voided_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		tid := inv.TenantID
		return record(tx, actor, "invoice.voided", "invoice:"+inv.Number, &tid, map[string]any{"before": before})
	})
	return inv, err
}

// PaymentInput is a payment to record.
type PaymentInput struct {
	InvoiceID int64
	// TenantID, when not zero, limits the payment to invoices paid by that tenant (the API key's):
	// another tenant's invoice is ErrNotFound.
	TenantID       int64
	Amount         string
	PaidAt         time.Time // zero: now
	Reference      string
	IdempotencyKey string
	Source         string // admin or api
}

// PaymentResult is the recorded payment and the invoice after it.
type PaymentResult struct {
	Payment  Payment
	Invoice  Invoice
	Replayed bool // the idempotency key was seen before: nothing new was recorded
}

// RecordPayment records money received against an issued or overdue invoice, in one
// transaction with the invoice row locked: payments accumulate, the invoice is paid when they
// reach its total, and a payment above the balance is refused. A retry with the same idempotency
// key returns the first payment (Replayed) whatever the invoice's status is now; the same key with
// a different amount or reference is ErrIdempotencyMismatch. Field errors: amount, paid_at,
// reference, idempotency_key.
func (s *Service) RecordPayment(ctx context.Context, actor string, in PaymentInput) (PaymentResult, error) {
	var res PaymentResult
	errs := validation.Errors{}
	amount, msg := ParseDecimal(in.Amount, 2)
	if msg != "" {
		errs.Add("amount", msg)
	} else if amount.IsZero() {
		errs.Add("amount", "The amount must be more than zero.")
	}
	now := s.now().UTC()
	if in.PaidAt.IsZero() {
		in.PaidAt = now
	}
	if in.PaidAt.After(now.Add(5 * time.Minute)) {
		errs.Add("paid_at", "The payment date cannot be in the future.")
	}
	in.Reference = strings.TrimSpace(in.Reference)
	if len(in.Reference) > 200 {
		errs.Add("reference", "Keep the reference to 200 characters.")
	}
	if in.IdempotencyKey == "" || len(in.IdempotencyKey) > 255 {
		errs.Add("idempotency_key", "Give an idempotency key of 1 to 255 characters, unique per payment.")
	}
	if err := errs.Err(); err != nil {
		return res, err
	}
	if in.Source == "" {
		in.Source = "admin"
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var inv Invoice
		q := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", in.InvoiceID)
		if in.TenantID != 0 {
			q = q.Where("tenant_id = ?", in.TenantID)
		}
		if err := q.Take(&inv).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var prior Payment
		err := tx.Where("invoice_id = ? AND idempotency_key = ?", inv.ID, in.IdempotencyKey).Take(&prior).Error
		if err == nil {
			if !prior.Amount.Equal(amount) || prior.Reference != in.Reference {
				return ErrIdempotencyMismatch
			}
			res.Payment, res.Replayed = prior, true
			res.Invoice = inv
			return nil
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		if inv.Status != StatusIssued && inv.Status != StatusOverdue {
			return fmt.Errorf("%w: %s is %s", ErrNotPayable, inv.Number, inv.Status)
		}
		if amount.GreaterThan(inv.Balance()) {
			return fmt.Errorf("%w: %s is more than the balance of %s", ErrOverpayment, Money(amount), Money(inv.Balance()))
		}
		p := Payment{InvoiceID: inv.ID, Amount: amount, PaidAt: in.PaidAt.UTC(), Reference: in.Reference,
			IdempotencyKey: in.IdempotencyKey, Source: in.Source, Actor: actor}
		if err := tx.Create(&p).Error; err != nil {
			return err
		}
		before := inv.Status
		inv.Paid = inv.Paid.Add(amount)
		upd := map[string]any{"paid": inv.Paid, "updated_at": now}
		if inv.Paid.Equal(inv.Total) {
			inv.Status, inv.PaidAt = StatusPaid, &p.PaidAt
			upd["status"], upd["paid_at"] = StatusPaid, p.PaidAt
		}
		if err := tx.Model(&Invoice{}).Where("id = ?", inv.ID).Updates(upd).Error; err != nil {
			return err
		}
		res.Payment, res.Invoice = p, inv
		tid := inv.TenantID
		return record(tx, actor, "invoice.payment_recorded", "invoice:"+inv.Number, &tid, map[string]any{
			"amount": Money(amount), "paid_at": p.PaidAt.Format(time.RFC3339), "reference": p.Reference, "source": p.Source,
			"paid_total": Money(inv.Paid), "status_before": before, "status_after": inv.Status})
	})
	return res, err
}

// MarkOverdue moves every issued invoice whose due date has passed (due before today, UTC) to
// overdue, auditing each, and returns how many it moved.
func (s *Service) MarkOverdue(ctx context.Context) (int, error) {
	today := s.today()
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var due []Invoice
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}).
			Where("status = ? AND due_date < ?", StatusIssued, today).Order("id").Find(&due).Error; err != nil {
			return err
		}
		for _, inv := range due {
			if err := tx.Model(&Invoice{}).Where("id = ?", inv.ID).Updates(map[string]any{"status": StatusOverdue, "updated_at": s.now().UTC()}).Error; err != nil {
				return err
			}
			tid := inv.TenantID
			if err := record(tx, "system:billing", "invoice.overdue", "invoice:"+inv.Number, &tid, map[string]any{
				"due_date": inv.DueDate.Format(time.DateOnly), "balance": Money(inv.Balance())}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
