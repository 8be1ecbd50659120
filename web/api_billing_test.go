package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/tenant"
)

type apiPaymentAnswer struct {
	Payment struct {
		ID        int64  `json:"id"`
		Amount    string `json:"amount"`
		Reference string `json:"reference"`
	} `json:"payment"`
	Invoice struct {
		ID      int64  `json:"id"`
		Number  string `json:"number"`
		Status  string `json:"status"`
		Total   string `json:"total"`
		Paid    string `json:"paid"`
		Balance string `json:"balance"`
	} `json:"invoice"`
	Replayed bool `json:"replayed"`
}

// payingTenant is an active tenant with an API key and an issued invoice of 25.00 for last month.
func (b *testBundle) payingTenant(t *testing.T) (tenant.Tenant, string, billing.Invoice) {
	t.Helper()
	ctx := context.Background()
	tn := b.apiTenant(t)
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.tenants SET created_at = now() - interval '1 year' WHERE id = $1", tn.ID); err != nil {
		t.Fatal(err)
	}
	issued, err := apikeys.NewService(b.db).Create(ctx, "test", tn.ID, "billing", nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := billing.NewService(b.db)
	if _, err := svc.Generate(ctx, "test", billing.PreviousMonth(time.Now())); err != nil {
		t.Fatal(err)
	}
	list, _, err := svc.List(ctx, billing.ListQuery{TenantID: tn.ID})
	if err != nil || len(list) != 1 {
		t.Fatalf("invoices of %s: %d %v", tn.Slug, len(list), err)
	}
	inv, err := svc.Issue(ctx, "test", list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return tn, issued.FullKey, inv
}

func paymentJSON(amount any, key string) string {
	b, _ := json.Marshal(map[string]any{"amount": amount, "idempotency_key": key, "reference": "wire " + key})
	return string(b)
}

func TestAPIInvoicePayments(t *testing.T) {
	b := billingSetup(t)
	if err := billing.NewService(b.db).SetPlanPrices(context.Background(), "test", "free", billing.PriceInput{Base: "25.00"}); err != nil {
		t.Fatal(err)
	}
	_, key, inv := b.payingTenant(t)
	_, otherKey, otherInv := b.payingTenant(t)
	if inv.Total.String() != "25" || inv.Status != billing.StatusIssued {
		t.Fatalf("invoice: %s %s", inv.Total, inv.Status)
	}
	path := "/api/v1/invoices/" + strconv.FormatInt(inv.ID, 10) + "/payments"

	// Another tenant's key, a missing invoice and no key.
	res, body := b.apiPost(t, path, otherKey, paymentJSON("1.00", "x1"))
	wantAPIError(t, res, body, http.StatusNotFound, "not_found")
	res, body = b.apiPost(t, "/api/v1/invoices/999999/payments", key, paymentJSON("1.00", "x1"))
	wantAPIError(t, res, body, http.StatusNotFound, "not_found")
	res, body = b.apiPost(t, path, "", paymentJSON("1.00", "x1"))
	wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")

	// Bad input, each refused with its code and nothing recorded.
	for _, c := range []struct {
		body string
		code string
	}{
		{paymentJSON(12.5, "b1"), "invalid_amount"},    // a JSON number: money travels as a string
		{paymentJSON("1.005", "b2"), "invalid_amount"}, // more than 2 decimal places
		{paymentJSON("-1", "b3"), "invalid_amount"},
		{paymentJSON("0", "b4"), "invalid_amount"},
		{paymentJSON("1.00", ""), "idempotency_key_required"},
		{`{"amount": "1.00", "idempotency_key": "b5", "paid_at": "yesterday"}`, "invalid_paid_at"},
		{`{"amount": "1.00", "idempotency_key": "b6", "paid_at": "2999-01-01T00:00:00Z"}`, "invalid_paid_at"},
	} {
		res, body := b.apiPost(t, path, key, c.body)
		wantAPIError(t, res, body, http.StatusUnprocessableEntity, c.code)
	}
	res, body = b.apiPost(t, path, key, `{"amount": "1.00"`)
	wantAPIError(t, res, body, http.StatusBadRequest, "bad_request")

	// A partial payment, its retry, a reused key, an overpayment, then the rest.
	res, body = b.apiPost(t, path, key, paymentJSON("10.50", "p1"))
	var a apiPaymentAnswer
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &a) != nil || a.Invoice.Status != "issued" || a.Invoice.Balance != "14.50" || a.Payment.Amount != "10.50" {
		t.Fatalf("partial: %d %s", res.StatusCode, body)
	}
	res, body = b.apiPost(t, path, key, paymentJSON("10.50", "p1"))
	a = apiPaymentAnswer{}
	if res.StatusCode != http.StatusOK || res.Header.Get("Idempotent-Replayed") != "true" || json.Unmarshal(body, &a) != nil || !a.Replayed || a.Payment.Amount != "10.50" {
		t.Fatalf("replay: %d %s", res.StatusCode, body)
	}
	res, body = b.apiPost(t, path, key, paymentJSON("11.00", "p1"))
	wantAPIError(t, res, body, http.StatusUnprocessableEntity, "idempotency_key_reused")
	res, body = b.apiPost(t, path, key, paymentJSON("14.51", "p2"))
	wantAPIError(t, res, body, http.StatusUnprocessableEntity, "overpayment")
	res, body = b.apiPost(t, path, key, paymentJSON("14.50", "p3"))
	a = apiPaymentAnswer{}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &a) != nil || a.Invoice.Status != "paid" || a.Invoice.Paid != "25.00" || a.Invoice.Balance != "0.00" {
		t.Fatalf("full: %d %s", res.StatusCode, body)
	}
	res, body = b.apiPost(t, path, key, paymentJSON("1.00", "p4"))
	wantAPIError(t, res, body, http.StatusUnprocessableEntity, "invoice_not_payable")

	var n int
	var paid string
	if err := b.db.OwnerPool.QueryRow(context.Background(), "SELECT count(*), (SELECT paid::text FROM tenantry.invoices WHERE id = $1) FROM tenantry.invoice_payments WHERE invoice_id = $1", inv.ID).Scan(&n, &paid); err != nil {
		t.Fatal(err)
	}
	if n != 2 || paid != "25.00" {
		t.Fatalf("%d payments recorded, paid %s; want 2 and 25.00", n, paid)
	}
	// The other tenant's invoice is untouched and payable with its own key.
	res, body = b.apiPost(t, fmt.Sprintf("/api/v1/invoices/%d/payments", otherInv.ID), otherKey, paymentJSON("25", "o1"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("other tenant's own invoice: %d %s", res.StatusCode, body)
	}
}
