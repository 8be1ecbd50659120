package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/validation"
)

// billingAPIRoutes adds the billing endpoints to the API group.
func (s *Server) billingAPIRoutes(g *echo.Group) {
	g.POST("/invoices/:id/payments", s.apiInvoicePayment, s.requireAPIKey)
}

// apiPaymentRequest is the body of POST /api/v1/invoices/{id}/payments. Amount is a string so
// that no float ever carries money; paid_at is RFC 3339 or a date (YYYY-MM-DD), now when absent.
type apiPaymentRequest struct {
	Amount         json.RawMessage `json:"amount"`
	PaidAt         string          `json:"paid_at"`
	Reference      string          `json:"reference"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// apiInvoice is an invoice's state as the payment API answers it.
type apiInvoice struct {
	ID       int64  `json:"id"`
	Number   string `json:"number"`
	Status   string `json:"status"`
	Currency string `json:"currency"`
	Total    string `json:"total"`
	Paid     string `json:"paid"`
	Balance  string `json:"balance"`
	DueDate  string `json:"due_date"`
}

type apiPayment struct {
	ID        int64     `json:"id"`
	Amount    string    `json:"amount"`
	PaidAt    time.Time `json:"paid_at"`
	Reference string    `json:"reference"`
}

type apiPaymentResult struct {
	Payment  apiPayment `json:"payment"`
	Invoice  apiInvoice `json:"invoice"`
	Replayed bool       `json:"replayed,omitempty"`
}

// apiInvoicePayment records a payment against an invoice the key's tenant pays: 201 with the
// payment and the invoice after it, 200 when the idempotency key was seen before (nothing new
// recorded). Another tenant's invoice, or one that does not exist, is 404.
func (s *Server) apiInvoicePayment(c echo.Context) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	var in apiPaymentRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "No such invoice."}
	}
	var amount string
	if len(in.Amount) == 0 || string(in.Amount) == "null" {
		return invalid("invalid_amount", `Give the amount as a decimal string, such as "125.50".`)
	}
	if err := json.Unmarshal(in.Amount, &amount); err != nil {
		return invalid("invalid_amount", `Give the amount as a decimal string, such as "125.50" (a string, so that no floating point touches money).`)
	}
	var paidAt time.Time
	if s := strings.TrimSpace(in.PaidAt); s != "" {
		if paidAt, err = time.Parse(time.RFC3339, s); err != nil {
			d, derr := time.Parse(time.DateOnly, s)
			if derr != nil {
				return invalid("invalid_paid_at", `Give paid_at as an RFC 3339 time ("2026-11-20T14:00:00Z") or a date ("2026-11-20").`)
			}
			paidAt = paymentTime(d)
		}
	}
	res, err := s.billing().RecordPayment(c.Request().Context(), "api:"+p.Tenant.Slug, billing.PaymentInput{
		InvoiceID: id, TenantID: p.Tenant.ID, Amount: amount, PaidAt: paidAt, Reference: in.Reference,
		IdempotencyKey: in.IdempotencyKey, Source: "api"})
	if err != nil {
		return billingAPIError(err)
	}
	inv := res.Invoice
	out := apiPaymentResult{Replayed: res.Replayed,
		Payment: apiPayment{ID: res.Payment.ID, Amount: billing.Money(res.Payment.Amount), PaidAt: res.Payment.PaidAt.UTC(), Reference: res.Payment.Reference},
		Invoice: apiInvoice{ID: inv.ID, Number: inv.Number, Status: inv.Status, Currency: inv.Currency, Total: billing.Money(inv.Total),
			Paid: billing.Money(inv.Paid), Balance: billing.Money(inv.Balance()), DueDate: inv.DueDate.Format(time.DateOnly)}}
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
		return c.JSON(http.StatusOK, out)
	}
	return c.JSON(http.StatusCreated, out)
}

// billingAPIError turns the billing package's errors into the API's.
func billingAPIError(err error) error {
	if f := validation.Fields(err); f != nil {
		switch {
		case f["amount"] != "":
			return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_amount", Err: err,
				Message: f["amount"] + ` Give a decimal string with at most 2 decimal places, such as "125.50".`}
		case f["idempotency_key"] != "":
			return &apiError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_required", Err: err, Message: f["idempotency_key"]}
		case f["paid_at"] != "":
			return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_paid_at", Err: err, Message: f["paid_at"]}
		case f["reference"] != "":
			return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_reference", Err: err, Message: f["reference"]}
		}
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid", Err: err, Message: err.Error()}
	}
	switch {
	case errors.Is(err, billing.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Err: err, Message: "No such invoice for this tenant."}
	case errors.Is(err, billing.ErrOverpayment):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "overpayment", Err: err,
			Message: "The amount is more than the invoice's balance; nothing was recorded. Pay at most the balance."}
	case errors.Is(err, billing.ErrNotPayable):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invoice_not_payable", Err: err,
			Message: "The invoice takes no payments in its status (only issued and overdue invoices do)."}
	case errors.Is(err, billing.ErrIdempotencyMismatch):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Err: err,
			Message: "This idempotency_key was already used for a payment with a different amount or reference. Use a new key for a new payment."}
	}
	return err
}
