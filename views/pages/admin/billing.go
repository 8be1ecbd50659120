package admin

import (
	"net/url"
	"strconv"

	"github.com/tenantry/tenantry/views/components"
)

// BillingQuery is the invoice list's search, filters and page, as they appear in the URL.
type BillingQuery struct {
	Search string
	Status string
	Period string // YYYY-MM
	Page   int
}

// URL is the list's address for this query.
func (q BillingQuery) URL() string {
	v := url.Values{}
	if q.Search != "" {
		v.Set("q", q.Search)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Period != "" {
		v.Set("period", q.Period)
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if enc := v.Encode(); enc != "" {
		return "/admin/billing?" + enc
	}
	return "/admin/billing"
}

// WithPage returns the address of another page of the same list.
func (q BillingQuery) WithPage(p int) string {
	q.Page = p
	return q.URL()
}

// InvoiceRow is one invoice in a list.
type InvoiceRow struct {
	ID        int64
	Number    string
	Account   string
	PayerSlug string
	Period    string
	Status    string
	Total     string
	Paid      string
	Balance   string
	Due       string
	Currency  string
}

// Href is the invoice's page.
func (r InvoiceRow) Href() string { return "/admin/billing/invoices/" + strconv.FormatInt(r.ID, 10) }

// BillingTotals are the sums of the invoices a query selects.
type BillingTotals struct {
	Invoiced    string
	Paid        string
	Outstanding string
	Overdue     string
}

// BillingList is the Billing page: the invoice list with its totals and the generate form.
type BillingList struct {
	Query    BillingQuery
	Rows     []InvoiceRow
	Total    int64
	Pages    int
	Totals   BillingTotals
	Statuses []string
	CanWrite bool
	CSRF     string
	// Drafts is how many invoices of the filtered month are drafts (0 without a month filter).
	Drafts      int64
	DraftsMonth string // the month in words
	// Month is the generate form's month (YYYY-MM), by default the previous one.
	Month      string
	MonthError string
}

// Filtered reports whether any filter is applied (to word the empty state).
func (m BillingList) Filtered() bool {
	return m.Query.Search != "" || m.Query.Status != "" || m.Query.Period != ""
}

// StatusOptions are the choices of the status filter.
func (m BillingList) StatusOptions() []components.Option {
	out := []components.Option{{Value: "", Label: "All statuses"}}
	for _, s := range m.Statuses {
		out = append(out, components.Option{Value: s, Label: s})
	}
	return out
}

// InvoiceLineView is one line item.
type InvoiceLineView struct {
	Description string
	Used        string
	Included    string
	Quantity    string
	UnitPrice   string
	Amount      string
}

// InvoiceSectionView is one tenant's part of an invoice.
type InvoiceSectionView struct {
	TenantName string
	TenantSlug string
	Plan       string
	Subtotal   string
	Lines      []InvoiceLineView
}

// PaymentView is one payment received.
type PaymentView struct {
	Amount    string
	PaidAt    string
	Reference string
	Source    string
	Actor     string
}

// PayForm is the "mark paid" form with the admin's input and field errors.
type PayForm struct {
	Amount    string
	PaidAt    string // YYYY-MM-DD
	Reference string
	// Key makes one rendering of the form one payment, however often it is submitted.
	Key    string
	Errors map[string]string
}

// InvoicePage is one invoice.
type InvoicePage struct {
	ID           int64
	Number       string
	Status       string
	Period       string
	PeriodRange  string
	IssueDate    string
	DueDate      string
	Currency     string
	AccountName  string
	AccountEmail string
	PayerName    string
	PayerSlug    string
	Total        string
	Paid         string
	Balance      string
	Sections     []InvoiceSectionView
	Payments     []PaymentView
	CanWrite     bool
	CSRF         string
	Pay          PayForm
	CanIssue     bool
	CanPay       bool
	CanVoid      bool
}

// URL is the invoice's page.
func (m InvoicePage) URL() string { return "/admin/billing/invoices/" + strconv.FormatInt(m.ID, 10) }

// PriceRow is one dimension's price of a plan.
type PriceRow struct {
	Dimension string
	Name      string
	Unit      string
	Kind      string
	Price     string // empty: not billed
	Included  string
}

// Basis says what usage of the dimension a month is billed on.
func (r PriceRow) Basis() string {
	if r.Kind == "gauge" {
		return "highest level in the month"
	}
	return "total used in the month"
}

// PlanPrices is one plan with its prices, shown in the table or edited in the form.
type PlanPrices struct {
	Key    string
	Name   string
	Base   string
	Rows   []PriceRow
	Errors map[string]string
}

// PlansPage is the Plans & prices page, or (with Edit set) one plan's price form.
type PlansPage struct {
	Plans    []PlanPrices
	Edit     *PlanPrices
	CanWrite bool
	CSRF     string
}

// AccountForm is a paying tenant's billing account form.
type AccountForm struct {
	Name     string
	Email    string
	Currency string
	Terms    string
	Errors   map[string]string
}

// BillingTab is the tenant page's Billing tab.
type BillingTab struct {
	Slug      string
	CSRF      string
	CanWrite  bool
	Root      bool
	Mode      string // the tenant's own choice: self, parent, or "" (none: billed to parent)
	ModeError string
	PaysSelf  bool
	PayerName string
	PayerSlug string
	Reason    string
	// Account is the payer's account (the form when the tenant pays for itself).
	Account  *AccountForm
	Invoices []InvoiceRow
}

// EffectiveMode is the radio button to check: the tenant's choice, or what applies without one.
func (m BillingTab) EffectiveMode() string {
	if m.Mode != "" {
		return m.Mode
	}
	if m.Root {
		return "self"
	}
	return "parent"
}
