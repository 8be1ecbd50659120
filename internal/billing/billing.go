// Package billing owns consolidated billing: per-unit prices per plan and quota dimension,
// billing accounts, who pays for each tenant (itself, or billed to its parent, inherited down
// the tree), the monthly invoices with one section per tenant billed to the paying account, and
// their payments and status (draft, issued, paid, overdue, void).
//
// Money is exact: shopspring/decimal in Go and numeric in PostgreSQL, never float. Unit prices
// have up to 4 decimal places; every line amount is rounded to cents (half away from zero) and
// totals are sums of the rounded lines, so the invoice adds up as printed.
package billing

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/validation"
)

// Errors callers tell apart.
var (
	ErrNotFound            = errors.New("billing: not found")
	ErrNotPayable          = errors.New("billing: the invoice does not accept payments in its status")
	ErrOverpayment         = errors.New("billing: the payment is more than the balance")
	ErrIdempotencyMismatch = errors.New("billing: idempotency key reused for a different payment")
	ErrBadTransition       = errors.New("billing: the invoice's status does not allow this")
)

// Statuses of an invoice.
const (
	StatusDraft   = "draft"
	StatusIssued  = "issued"
	StatusPaid    = "paid"
	StatusOverdue = "overdue"
	StatusVoid    = "void"
)

// Statuses lists every status, in the order of an invoice's life.
var Statuses = []string{StatusDraft, StatusIssued, StatusOverdue, StatusPaid, StatusVoid}

// Billing modes a tenant may choose.
const (
	ModeSelf   = "self"   // pays for itself, with its own billing account
	ModeParent = "parent" // billed to the account that pays for its parent
)

// Service reads and changes billing data.
type Service struct {
	db  *gorm.DB // app pool
	now func() time.Time
}

// NewService returns a Service on d.
func NewService(d *db.DB) *Service { return &Service{db: d.App, now: time.Now} }

// WithClock returns a copy of s that reads the time from now (tests of overdue and months).
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

func (s *Service) today() time.Time {
	t := s.now().UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// MonthStart is the first day (00:00 UTC) of t's month.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PreviousMonth is the first day of the month before t's.
func PreviousMonth(t time.Time) time.Time { return MonthStart(t).AddDate(0, -1, 0) }

// ParseMonth reads "2026-10" as the first day of that month.
func ParseMonth(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("billing: month %q is not YYYY-MM", s)
	}
	return t, nil
}

// Money formats an amount with exactly 2 decimal places.
func Money(d decimal.Decimal) string { return d.StringFixed(2) }

// MoneyDisplay formats an amount for people: two decimal places and thousands separators
// (683,373.34). Forms, CSV and the API keep Money's plain form.
func MoneyDisplay(d decimal.Decimal) string {
	whole, frac, _ := strings.Cut(Money(d.Abs()), ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil { // beyond int64: leave it plain
		return Money(d)
	}
	out := thousands(n) + "." + frac
	if d.IsNegative() {
		out = "-" + out
	}
	return out
}

// Price formats a unit price with at least 2 and at most 4 decimal places.
func Price(d decimal.Decimal) string {
	s := d.StringFixed(4)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	return s
}

var decimalPattern = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]+)?$`)

// maxAmount bounds any price or payment (numeric(18,2) fits far more).
var maxAmount = decimal.New(1, 12)

// ParseDecimal reads a non-negative decimal with at most places decimal places, written plainly
// ("12", "0.0125"; no signs, exponents or thousands separators). The message says what is wrong.
func ParseDecimal(s string, places int32) (decimal.Decimal, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return decimal.Zero, "Enter an amount, such as 12.50."
	}
	if strings.HasPrefix(s, "-") {
		return decimal.Zero, "The amount cannot be negative."
	}
	if !decimalPattern.MatchString(s) {
		return decimal.Zero, "Enter a plain decimal number, such as 12.50 (digits and one dot)."
	}
	if _, frac, ok := strings.Cut(s, "."); ok && int32(len(frac)) > places {
		return decimal.Zero, fmt.Sprintf("Use at most %d decimal places.", places)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero, "Enter a plain decimal number, such as 12.50."
	}
	if d.GreaterThanOrEqual(maxAmount) {
		return decimal.Zero, "The amount is too large."
	}
	return d, ""
}

// parseCount reads a whole number of zero or more.
func parseCount(s string) (int64, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, ""
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1_000_000_000_000 {
		return 0, "Enter a whole number of zero or more."
	}
	return n, ""
}

func record(tx *gorm.DB, actor, action, target string, tenantID *int64, detail map[string]any) error {
	return audit.Record(tx, audit.Event{TenantID: tenantID, Actor: actor, Action: action, Target: target, Detail: audit.Detail(detail)})
}

// invalid builds a one-field validation error.
func invalid(field, msg string) error { return validation.Errors{field: msg}.Err() }
