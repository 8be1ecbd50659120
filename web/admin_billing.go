package web

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

var billingCrumb = layouts.Crumb{Label: "Billing", Href: "/admin/billing"}

// billingRoutes adds the Billing pages (invoices, plans and prices) and the tenant Billing tab's
// forms to the admin group.
func (s *Server) billingRoutes(g *echo.Group) {
	g.GET("/billing", s.billingList)
	g.POST("/billing/generate", s.billingGenerate)
	g.POST("/billing/issue-drafts", s.billingIssueDrafts)
	g.GET("/billing/plans", s.billingPlans)
	g.GET("/billing/plans/:key", s.billingPlans)
	g.POST("/billing/plans/:key", s.billingPlanSave)
	g.GET("/billing/invoices/:id", s.invoiceShow)
	g.GET("/billing/invoices/:id/pdf", s.invoicePDF)
	g.GET("/billing/invoices/:id/csv", s.invoiceCSV)
	g.POST("/billing/invoices/:id/issue", s.invoiceIssue)
	g.POST("/billing/invoices/:id/void", s.invoiceVoid)
	g.POST("/billing/invoices/:id/payments", s.invoicePay)
	g.POST("/tenants/:slug/billing/mode", s.tenantBillingMode)
	g.POST("/tenants/:slug/billing/account", s.tenantBillingAccount)
}

// billing is the billing service on the server's database (it holds no state of its own).
func (s *Server) billing() *billing.Service { return billing.NewService(s.db) }

func invoiceRow(inv billing.Invoice, payerSlug string) admin.InvoiceRow {
	return admin.InvoiceRow{ID: inv.ID, Number: inv.Number, Account: inv.AccountName, PayerSlug: payerSlug, Period: inv.Period(),
		Status: inv.Status, Total: billing.MoneyDisplay(inv.Total), Paid: billing.MoneyDisplay(inv.Paid), Balance: billing.MoneyDisplay(inv.Balance()),
		Due: inv.DueDate.Format(dateFormat), Currency: inv.Currency}
}

// invoiceRows turns invoices into rows, with the slug of each paying tenant for its link.
func (s *Server) invoiceRows(c echo.Context, invs []billing.Invoice) ([]admin.InvoiceRow, error) {
	ids := make([]int64, 0, len(invs))
	for _, inv := range invs {
		ids = append(ids, inv.TenantID)
	}
	slugs := map[int64]string{}
	if len(ids) > 0 {
		var ts []tenant.Tenant
		if err := s.db.App.WithContext(c.Request().Context()).Select("id", "slug").Where("id IN ?", ids).Find(&ts).Error; err != nil {
			return nil, err
		}
		for _, t := range ts {
			slugs[t.ID] = t.Slug
		}
	}
	rows := make([]admin.InvoiceRow, len(invs))
	for i, inv := range invs {
		rows[i] = invoiceRow(inv, slugs[inv.TenantID])
	}
	return rows, nil
}

// billingList is the Billing page: invoices with search, status and month filters and totals.
func (s *Server) billingList(c echo.Context) error {
	return s.renderBillingList(c, http.StatusOK, "", "")
}

func (s *Server) renderBillingList(c echo.Context, status int, month, monthErr string) error {
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	q := billing.ListQuery{Search: c.QueryParam("q"), Status: c.QueryParam("status"), Period: c.QueryParam("period"), Page: pageNo}
	q.Normalize()
	invs, totals, err := s.billing().List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	if month == "" {
		month = billing.PreviousMonth(time.Now()).Format("2006-01")
	}
	m := admin.BillingList{Query: admin.BillingQuery{Search: q.Search, Status: q.Status, Period: q.Period, Page: q.Page},
		Total: totals.Count, Pages: int((totals.Count + int64(q.PerPage) - 1) / int64(q.PerPage)), Statuses: billing.Statuses,
		CanWrite: me.CanWrite(), CSRF: csrfToken(c), Month: month, MonthError: monthErr,
		Totals: admin.BillingTotals{Invoiced: billing.MoneyDisplay(totals.Invoiced), Paid: billing.MoneyDisplay(totals.Paid),
			Outstanding: billing.MoneyDisplay(totals.Outstanding), Overdue: billing.MoneyDisplay(totals.Overdue)}}
	if m.Pages < 1 {
		m.Pages = 1
	}
	if q.Period != "" && m.CanWrite {
		_, drafts, err := s.billing().List(c.Request().Context(), billing.ListQuery{Period: q.Period, Status: billing.StatusDraft, PerPage: 1})
		if err != nil {
			return err
		}
		pm, _ := billing.ParseMonth(q.Period)
		m.Drafts, m.DraftsMonth = drafts.Count, pm.Format("January 2006")
	}
	if m.Rows, err = s.invoiceRows(c, invs); err != nil {
		return err
	}
	if isFragmentRequest(c) { // push the canonical address, without empty parameters
		c.Response().Header().Set("HX-Push-Url", m.Query.URL())
	}
	return s.render(c, status, page{Title: "Billing", Nav: "billing", Crumbs: []layouts.Crumb{{Label: "Billing"}},
		Content: admin.BillingPage(m), Fragment: admin.BillingResults(m)})
}

// billingGenerate produces the chosen month's invoices now (the monthly job's code path).
func (s *Server) billingGenerate(c echo.Context) error {
	raw := strings.TrimSpace(c.FormValue("month"))
	month, err := billing.ParseMonth(raw)
	switch {
	case err != nil:
		return s.renderBillingList(c, http.StatusUnprocessableEntity, raw, "Choose a month, such as "+billing.PreviousMonth(time.Now()).Format("2006-01")+".")
	case !month.Before(billing.MonthStart(time.Now())):
		return s.renderBillingList(c, http.StatusUnprocessableEntity, raw, "Only a month that has ended can be billed; the latest is "+billing.PreviousMonth(time.Now()).Format("January 2006")+".")
	}
	u, _ := currentUser(c)
	res, err := s.billing().Generate(c.Request().Context(), u.Email, month)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%s: %d %s generated", month.Format("January 2006"), res.Created, billingPlural(res.Created, "invoice", "invoices"))
	if res.Existing > 0 {
		msg += fmt.Sprintf(", %d already existed and were left as they were", res.Existing)
	}
	s.flash(c, "success", msg+".")
	return redirect(c, "/admin/billing?period="+month.Format("2006-01"))
}

// billingIssueDrafts issues every draft of one month.
func (s *Server) billingIssueDrafts(c echo.Context) error {
	month, err := billing.ParseMonth(c.FormValue("month"))
	if err != nil {
		s.flash(c, "error", "Nothing issued: choose a month first (filter the list by month).")
		return redirect(c, "/admin/billing")
	}
	u, _ := currentUser(c)
	n, err := s.billing().IssueAll(c.Request().Context(), u.Email, month)
	if err != nil {
		return err
	}
	s.flash(c, "success", fmt.Sprintf("%s: %d %s issued.", month.Format("January 2006"), n, billingPlural(n, "invoice", "invoices")))
	return redirect(c, "/admin/billing?period="+month.Format("2006-01"))
}

func billingPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// loadInvoice reads the invoice named by :id.
func (s *Server) loadInvoice(c echo.Context) (billing.Invoice, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return billing.Invoice{}, echo.ErrNotFound
	}
	inv, err := s.billing().Get(c.Request().Context(), id)
	if billing.IsNotFound(err) {
		return inv, echo.ErrNotFound
	}
	return inv, err
}

func (s *Server) invoiceShow(c echo.Context) error {
	inv, err := s.loadInvoice(c)
	if err != nil {
		return err
	}
	return s.renderInvoice(c, http.StatusOK, inv, nil)
}

func (s *Server) renderInvoice(c echo.Context, status int, inv billing.Invoice, pay *admin.PayForm) error {
	me, _ := currentUser(c)
	var payer tenant.Tenant
	if err := s.db.App.WithContext(c.Request().Context()).Select("id", "slug", "name").Where("id = ?", inv.TenantID).Take(&payer).Error; err != nil {
		return err
	}
	m := admin.InvoicePage{ID: inv.ID, Number: inv.Number, Status: inv.Status, Period: inv.Period(),
		PeriodRange: inv.PeriodStart.Format(dateFormat) + " – " + inv.PeriodEnd.AddDate(0, 0, -1).Format(dateFormat),
		IssueDate:   inv.IssueDate.Format(dateFormat), DueDate: inv.DueDate.Format(dateFormat), Currency: inv.Currency,
		AccountName: inv.AccountName, AccountEmail: inv.AccountEmail, PayerName: payer.Name, PayerSlug: payer.Slug,
		Total: billing.Money(inv.Total), Paid: billing.Money(inv.Paid), Balance: billing.Money(inv.Balance()),
		CanWrite: me.CanWrite(), CSRF: csrfToken(c),
		CanIssue: inv.Status == billing.StatusDraft,
		CanPay:   inv.Status == billing.StatusIssued || inv.Status == billing.StatusOverdue,
		CanVoid:  inv.Status != billing.StatusVoid && inv.Status != billing.StatusPaid && inv.Paid.IsZero()}
	if inv.Status == billing.StatusDraft {
		m.IssueDate, m.DueDate = "not issued yet", "set when issued"
	}
	for _, sec := range inv.Sections {
		v := admin.InvoiceSectionView{TenantName: sec.TenantName, TenantSlug: sec.TenantSlug, Plan: sec.PlanName, Subtotal: billing.Money(sec.Subtotal)}
		for _, l := range sec.Lines {
			lv := admin.InvoiceLineView{Description: l.Description, Quantity: strconv.FormatInt(l.Quantity, 10),
				UnitPrice: billing.Price(l.UnitPrice), Amount: billing.Money(l.Amount)}
			if l.Kind == "usage" {
				lv.Used = groupDigits(l.Used) + " " + l.Unit
				lv.Included = groupDigits(l.Included)
				lv.Quantity = groupDigits(l.Quantity)
			}
			v.Lines = append(v.Lines, lv)
		}
		m.Sections = append(m.Sections, v)
	}
	for _, p := range inv.Payments {
		m.Payments = append(m.Payments, admin.PaymentView{Amount: billing.Money(p.Amount), PaidAt: p.PaidAt.UTC().Format(dateFormat),
			Reference: p.Reference, Source: p.Source, Actor: p.Actor})
	}
	if pay != nil {
		m.Pay = *pay
	} else {
		m.Pay = admin.PayForm{Amount: billing.Money(inv.Balance()), PaidAt: time.Now().UTC().Format(time.DateOnly), Key: newPaymentKey()}
	}
	return s.render(c, status, page{Title: "Invoice " + inv.Number, Nav: "billing",
		Crumbs: []layouts.Crumb{billingCrumb, {Label: inv.Number}}, Content: admin.InvoiceDetailPage(m)})
}

// paymentTime is when a payment made on day d is recorded: midday UTC, so the date reads the same
// in nearby time zones, or now when midday has not come yet.
func paymentTime(d time.Time) time.Time {
	t, now := d.Add(12*time.Hour), time.Now().UTC()
	if t.After(now) && !d.After(now) {
		return now
	}
	return t
}

// newPaymentKey makes the idempotency key of one rendering of the payment form.
func newPaymentKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + groupDigits(-n)
	}
	var b strings.Builder
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (s *Server) invoicePDF(c echo.Context) error {
	inv, err := s.loadInvoice(c)
	if err != nil {
		return err
	}
	var buf bytes.Buffer // the whole document first: a failed render must not leave half a PDF behind a 200
	if err := billing.WritePDF(&buf, inv, billing.PDFOptions{Uncompressed: c.QueryParam("uncompressed") == "1"}); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+inv.Number+`.pdf"`)
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/pdf", buf.Bytes())
}

func (s *Server) invoiceCSV(c echo.Context) error {
	inv, err := s.loadInvoice(c)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := billing.WriteCSV(&buf, inv); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+inv.Number+`.csv"`)
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// invoiceAction runs a status change and answers with a flash: its message, or why it was refused.
func (s *Server) invoiceAction(c echo.Context, do func(actor string, id int64) (billing.Invoice, error), done string) error {
	inv, err := s.loadInvoice(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	_, err = do(u.Email, inv.ID)
	switch {
	case errors.Is(err, billing.ErrBadTransition):
		s.flash(c, "error", "Nothing changed: "+strings.TrimPrefix(err.Error(), billing.ErrBadTransition.Error()+": ")+".")
	case err != nil:
		return err
	default:
		s.flash(c, "success", fmt.Sprintf(done, inv.Number))
	}
	return redirect(c, "/admin/billing/invoices/"+strconv.FormatInt(inv.ID, 10))
}

func (s *Server) invoiceIssue(c echo.Context) error {
	return s.invoiceAction(c, func(actor string, id int64) (billing.Invoice, error) {
		return s.billing().Issue(c.Request().Context(), actor, id)
	}, "Invoice %s issued.")
}

func (s *Server) invoiceVoid(c echo.Context) error {
	return s.invoiceAction(c, func(actor string, id int64) (billing.Invoice, error) {
		return s.billing().Void(c.Request().Context(), actor, id)
	}, "Invoice %s voided.")
}

// invoicePay records a payment an admin received ("mark paid" with amount, date and reference).
func (s *Server) invoicePay(c echo.Context) error {
	inv, err := s.loadInvoice(c)
	if err != nil {
		return err
	}
	form := admin.PayForm{Amount: strings.TrimSpace(c.FormValue("amount")), PaidAt: strings.TrimSpace(c.FormValue("paid_at")),
		Reference: strings.TrimSpace(c.FormValue("reference")), Key: c.FormValue("payment_key"), Errors: map[string]string{}}
	// The form carries a key made when it was rendered: a double submit records one payment.
	in := billing.PaymentInput{InvoiceID: inv.ID, Amount: form.Amount, Reference: form.Reference, Source: "admin",
		IdempotencyKey: "admin-" + form.Key}
	if form.Key == "" || len(form.Key) > 64 {
		form.Key = newPaymentKey()
		form.Errors["amount"] = "The form was incomplete; check the values and submit it again."
	}
	if d, perr := time.Parse(time.DateOnly, form.PaidAt); perr != nil {
		form.Errors["paid_at"] = "Enter the date the money arrived."
	} else {
		in.PaidAt = paymentTime(d)
	}
	if len(form.Errors) == 0 {
		u, _ := currentUser(c)
		_, err = s.billing().RecordPayment(c.Request().Context(), u.Email, in)
		switch {
		case validation.Fields(err) != nil:
			form.Errors = validation.Fields(err)
		case errors.Is(err, billing.ErrOverpayment):
			form.Errors["amount"] = "This is more than the balance of " + billing.Money(inv.Balance()) + "; record at most the balance."
		case errors.Is(err, billing.ErrNotPayable):
			form.Errors["amount"] = "This invoice is " + inv.Status + " and takes no payments."
		case errors.Is(err, billing.ErrIdempotencyMismatch):
			form.Errors["amount"] = "This form was already submitted with other values; reload the page."
		case err != nil:
			return err
		}
	}
	if len(form.Errors) > 0 {
		return s.renderInvoice(c, http.StatusUnprocessableEntity, inv, &form)
	}
	s.flash(c, "success", "Payment of "+form.Amount+" "+inv.Currency+" recorded on "+inv.Number+".")
	return redirect(c, "/admin/billing/invoices/"+strconv.FormatInt(inv.ID, 10))
}

// billingPlans shows every plan's prices; with :key, that plan's form too.
func (s *Server) billingPlans(c echo.Context) error {
	return s.renderPlans(c, http.StatusOK, c.Param("key"), nil)
}

func (s *Server) renderPlans(c echo.Context, status int, editKey string, edit *admin.PlanPrices) error {
	ctx := c.Request().Context()
	plans, err := s.billing().Pricing(ctx)
	if err != nil {
		return err
	}
	dims, err := s.billing().Dimensions(ctx)
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	m := admin.PlansPage{CanWrite: me.CanWrite(), CSRF: csrfToken(c)}
	for _, p := range plans {
		v := admin.PlanPrices{Key: p.Key, Name: p.Name, Base: billing.Money(p.Base)}
		for _, d := range dims {
			r := admin.PriceRow{Dimension: d.Key, Name: d.Name, Unit: d.Unit, Kind: d.Kind, Included: "0"}
			if up, ok := p.Prices[d.Key]; ok {
				r.Price, r.Included = billing.Price(up.UnitPrice), strconv.FormatInt(up.IncludedUnits, 10)
			}
			v.Rows = append(v.Rows, r)
		}
		m.Plans = append(m.Plans, v)
		if p.Key == editKey && m.CanWrite {
			v := v
			if edit != nil {
				v.Base, v.Rows, v.Errors = edit.Base, edit.Rows, edit.Errors
			}
			m.Edit = &v
		}
	}
	if editKey != "" && m.Edit == nil && m.CanWrite {
		return echo.ErrNotFound
	}
	crumbs := []layouts.Crumb{billingCrumb, {Label: "Plans & prices", Href: "/admin/billing/plans"}}
	if m.Edit != nil {
		crumbs = append(crumbs, layouts.Crumb{Label: m.Edit.Name})
	}
	return s.render(c, status, page{Title: "Plans & prices", Nav: "billing", Crumbs: crumbs, Content: admin.PlansPricesPage(m)})
}

// billingPlanSave validates and saves one plan's prices; on errors the form comes back with the
// input kept and each message at its field, and nothing is saved.
func (s *Server) billingPlanSave(c echo.Context) error {
	ctx := c.Request().Context()
	key := c.Param("key")
	dims, err := s.billing().Dimensions(ctx)
	if err != nil {
		return err
	}
	in := billing.PriceInput{Base: c.FormValue("base"), Unit: map[string]string{}, Included: map[string]string{}}
	edit := admin.PlanPrices{Key: key, Base: strings.TrimSpace(in.Base)}
	for _, d := range dims {
		in.Unit[d.Key] = strings.TrimSpace(c.FormValue("price_" + d.Key))
		in.Included[d.Key] = strings.TrimSpace(c.FormValue("included_" + d.Key))
		edit.Rows = append(edit.Rows, admin.PriceRow{Dimension: d.Key, Name: d.Name, Unit: d.Unit, Kind: d.Kind,
			Price: in.Unit[d.Key], Included: in.Included[d.Key]})
	}
	u, _ := currentUser(c)
	err = s.billing().SetPlanPrices(ctx, u.Email, key, in)
	if fields := validation.Fields(err); fields != nil {
		edit.Errors = fields
		return s.renderPlans(c, http.StatusUnprocessableEntity, key, &edit)
	}
	if billing.IsNotFound(err) {
		return echo.ErrNotFound
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Prices saved. Invoices generated from now on use them.")
	return redirect(c, "/admin/billing/plans")
}

// billingTab loads the tenant page's Billing tab.
func (s *Server) billingTab(c echo.Context, t tenant.Tenant) (admin.BillingTab, error) {
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	p, err := s.billing().Payer(ctx, t.ID)
	if err != nil {
		return admin.BillingTab{}, err
	}
	m := admin.BillingTab{Slug: t.Slug, CSRF: csrfToken(c), CanWrite: me.CanWrite(), Root: p.Root, Mode: p.Mode,
		PaysSelf: !p.Inherited, PayerName: p.Name, PayerSlug: p.Slug, Reason: p.Reason}
	if p.Account != nil {
		m.Account = &admin.AccountForm{Name: p.Account.Name, Email: p.Account.Email, Currency: p.Account.Currency,
			Terms: strconv.Itoa(p.Account.PaymentTermsDays)}
	} else if !p.Inherited {
		// A paying tenant without an account yet: the form starts from the defaults it will get.
		m.Account = &admin.AccountForm{Name: t.Name, Currency: "USD", Terms: "30"}
	}
	invs, _, err := s.billing().List(ctx, billing.ListQuery{TenantID: t.ID, PerPage: 24})
	if err != nil {
		return m, err
	}
	m.Invoices, err = s.invoiceRows(c, invs)
	return m, err
}

func (s *Server) tenantBillingMode(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	err = s.billing().SetMode(c.Request().Context(), u.Email, t.ID, c.FormValue("mode"))
	if fields := validation.Fields(err); fields != nil {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "billing", func(m *admin.TenantDetail) { m.Billing.ModeError = fields["mode"] })
	}
	if err != nil {
		return err
	}
	p, err := s.billing().Payer(c.Request().Context(), t.ID)
	if err != nil {
		return err
	}
	if p.Inherited {
		s.flash(c, "success", t.Name+" is now "+p.Reason+".")
	} else {
		s.flash(c, "success", t.Name+" now pays for itself.")
	}
	return redirect(c, "/admin/tenants/"+t.Slug+"/billing")
}

func (s *Server) tenantBillingAccount(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	in := billing.AccountInput{Name: c.FormValue("name"), Email: c.FormValue("email"), Currency: c.FormValue("currency"), Terms: c.FormValue("terms")}
	u, _ := currentUser(c)
	_, err = s.billing().SaveAccount(c.Request().Context(), u.Email, t.ID, in)
	if fields := validation.Fields(err); fields != nil {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "billing", func(m *admin.TenantDetail) {
			m.Billing.Account = &admin.AccountForm{Name: in.Name, Email: in.Email, Currency: in.Currency, Terms: in.Terms, Errors: fields}
		})
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Billing account saved.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/billing")
}
