package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/quota"
)

// maxAPIBody bounds the JSON bodies the quota API reads (a full usage batch fits easily).
const maxAPIBody = 1 << 20

// apiConsumeRequest is the body of POST /api/v1/quota/consume. Amount is kept raw so that
// fractions and out-of-range numbers are refused rather than rounded (see wholeNumber).
type apiConsumeRequest struct {
	Dimension      string          `json:"dimension"`
	Amount         json.RawMessage `json:"amount"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// wholeNumber reads a raw JSON value that must be an integer. ok is false for a missing or null
// value; a string is a 400 (wrong type), a fraction or out-of-range number an error for the caller.
func wholeNumber(raw json.RawMessage, field string) (n int64, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if raw[0] < '0' || raw[0] > '9' {
		if raw[0] != '-' {
			return 0, false, &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf("The field %q must be a number.", field)}
		}
	}
	n, err = strconv.ParseInt(string(raw), 10, 64)
	return n, true, err
}

// apiConsumeBody is the answer to a consume, the same for 200 and 429.
type apiConsumeBody struct {
	Allowed   bool       `json:"allowed"`
	Warning   string     `json:"warning,omitempty"`
	Dimension string     `json:"dimension"`
	Limit     int64      `json:"limit"`
	SoftLimit int64      `json:"soft_limit"`
	Used      int64      `json:"used"`
	Remaining int64      `json:"remaining"`
	ResetAt   *time.Time `json:"reset_at"`
	Replayed  bool       `json:"replayed,omitempty"`
}

// apiQuotaConsume checks and consumes quota for the key's tenant: 200 when granted (with
// warning "soft_limit" when now over the soft limit), 429 when the hard limit would be exceeded.
// Both carry RateLimit-* headers; bad input is refused before anything is consumed.
func (s *Server) apiQuotaConsume(c echo.Context) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	var in apiConsumeRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	in.Dimension = strings.TrimSpace(in.Dimension)
	switch {
	case in.Dimension == "":
		return invalid("dimension_required", "Give the dimension to consume, such as \"api_requests\".")
	case in.IdempotencyKey == "":
		return invalid("idempotency_key_required", "Give an idempotency_key: a unique string per operation, reused only when retrying it.")
	}
	amount, given, err := wholeNumber(in.Amount, "amount")
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	if !given || err != nil || amount < 1 || amount > quota.MaxAmount {
		return invalid("invalid_amount", fmt.Sprintf("The amount must be a whole number from 1 to %d.", quota.MaxAmount))
	}
	consume := s.quotas.Consume
	if s.leaser != nil {
		consume = s.leaser.Consume // hot tenant-dimensions from per-node leases
	}
	r, err := consume(c.Request().Context(), p.Tenant.ID, in.Dimension, amount, in.IdempotencyKey)
	if errors.Is(err, quota.ErrLeaseUnavailable) {
		c.Response().Header().Set("Retry-After", "1")
	}
	if err != nil {
		return quotaAPIError(err)
	}
	body := apiConsumeBody{Allowed: r.Allowed, Dimension: r.Dimension, Limit: r.Limit, SoftLimit: r.Soft,
		Used: r.Used, Remaining: r.Remaining, Replayed: r.Replayed}
	if r.SoftExceeded {
		body.Warning = "soft_limit"
	}
	if !r.ResetAt.IsZero() {
		at := r.ResetAt.UTC()
		body.ResetAt = &at
	}
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.FormatInt(r.Limit, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(r.Remaining, 10))
	if !r.ResetAt.IsZero() {
		secs := strconv.FormatInt(max(0, int64(time.Until(r.ResetAt).Seconds()+0.999)), 10)
		h.Set("RateLimit-Reset", secs)
		if !r.Allowed {
			h.Set("Retry-After", secs)
		}
	}
	if r.Replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	status := http.StatusOK
	if !r.Allowed {
		status = http.StatusTooManyRequests
	}
	return c.JSON(status, body)
}

// apiUsageRequest is the body of POST /api/v1/usage.
type apiUsageRequest struct {
	Reports []struct {
		Dimension string          `json:"dimension"`
		Value     json.RawMessage `json:"value"`
		At        *time.Time      `json:"at"`
	} `json:"reports"`
}

// apiUsage records a batch of usage reports (gauge levels, counter amounts) for the key's tenant.
func (s *Server) apiUsage(c echo.Context) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	var in apiUsageRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.Reports) == 0 || len(in.Reports) > quota.MaxReports {
		return invalid("invalid_report", fmt.Sprintf("Send between 1 and %d reports.", quota.MaxReports))
	}
	reports := make([]quota.Report, len(in.Reports))
	for i, r := range in.Reports {
		v, given, err := wholeNumber(r.Value, "value")
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		if !given || err != nil || v < 0 {
			return invalid("invalid_amount", fmt.Sprintf("Report %d: the value must be a whole number of zero or more.", i+1))
		}
		reports[i] = quota.Report{Dimension: strings.TrimSpace(r.Dimension), Value: v}
		if r.At != nil {
			reports[i].At = *r.At
		}
	}
	if err := s.quotas.ReportUsage(c.Request().Context(), p.Tenant.ID, reports); err != nil {
		return quotaAPIError(err)
	}
	return c.JSON(http.StatusOK, map[string]int{"accepted": len(reports)})
}

// apiQuotaDimension is one dimension in GET /api/v1/quota.
type apiQuotaDimension struct {
	Dimension string     `json:"dimension"`
	Name      string     `json:"name"`
	Unit      string     `json:"unit"`
	Kind      string     `json:"kind"`
	Category  string     `json:"category"`
	Reset     string     `json:"reset_period"`
	SoftLimit int64      `json:"soft_limit"`
	Limit     int64      `json:"limit"`
	Used      int64      `json:"used"`
	Remaining int64      `json:"remaining"`
	State     string     `json:"state"`
	ResetAt   *time.Time `json:"reset_at"`
	apiQuotaExtras
}

// apiQuota answers with the key's tenant's limits, usage and state on every dimension.
func (s *Server) apiQuota(c echo.Context) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	limits, err := s.quotas.Limits(c.Request().Context(), p.Tenant.ID)
	if err != nil {
		return quotaAPIError(err)
	}
	extras, err := s.quotaExtras(c.Request().Context(), p.Tenant.ID)
	if err != nil {
		return err
	}
	out := struct {
		Dimensions []apiQuotaDimension `json:"dimensions"`
	}{Dimensions: make([]apiQuotaDimension, 0, len(limits))}
	for _, l := range limits {
		d := apiQuotaDimension{Dimension: l.Dimension.Key, Name: l.Dimension.Name, Unit: l.Dimension.Unit, Kind: l.Dimension.Kind,
			Category: l.Dimension.Category, Reset: l.Dimension.ResetPeriod, SoftLimit: l.Soft, Limit: l.Hard, Used: l.Used,
			Remaining: l.Remaining, State: l.State, apiQuotaExtras: extras(l)}
		if !l.ResetAt.IsZero() {
			at := l.ResetAt.UTC()
			d.ResetAt = &at
		}
		out.Dimensions = append(out.Dimensions, d)
	}
	return c.JSON(http.StatusOK, out)
}

// decodeJSON reads the request's JSON body into v: a body that is missing, not JSON, or of the
// wrong shape is a 400 bad_request.
func decodeJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: "Send the body as JSON (Content-Type: application/json)."}
	}
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, maxAPIBody))
	if err := dec.Decode(v); err != nil {
		msg := "The body is not valid JSON for this endpoint."
		if errors.Is(err, io.EOF) {
			msg = "The request has no body; send a JSON object."
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			msg = fmt.Sprintf("The field %q has the wrong type.", te.Field)
		}
		return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: msg, Err: err}
	}
	if dec.More() {
		return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: "Send one JSON object."}
	}
	return nil
}

func invalid(code, msg string) error {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: code, Message: msg}
}

// quotaAPIError turns the quota package's errors into the API's.
func quotaAPIError(err error) error {
	switch {
	case errors.Is(err, quota.ErrUnknownDimension):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "unknown_dimension", Err: err,
			Message: "No such dimension. GET /api/v1/quota lists the dimensions."}
	case errors.Is(err, quota.ErrBadAmount):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_amount", Err: err,
			Message: fmt.Sprintf("The amount must be a whole number from 1 to %d (report values from 0).", quota.MaxAmount)}
	case errors.Is(err, quota.ErrBadIdempotencyKey):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_required", Err: err,
			Message: "Give an idempotency_key of 1 to 255 characters."}
	case errors.Is(err, quota.ErrIdempotencyMismatch):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Err: err,
			Message: "This idempotency_key was already used for a different dimension or amount. Use a new key for a new operation."}
	case errors.Is(err, quota.ErrLeaseUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "quota_retry", Err: err,
			Message: "The consumption could not be recorded right now and nothing was consumed. Retry with the same idempotency_key."}
	case errors.Is(err, quota.ErrBadReport):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_report", Err: err,
			Message: fmt.Sprintf("Send between 1 and %d reports, none dated more than 5 minutes ahead.", quota.MaxReports)}
	}
	return err
}

// UseQuotaLeases makes the server answer the consumes of hot tenant-dimensions from per-node
// leases (quota.Leaser). Call it before serving; ReturnQuotaLeases gives them back on shutdown.
func (s *Server) UseQuotaLeases(cfg quota.LeaseConfig) {
	s.leaser = quota.NewLeaser(context.Background(), s.quotas, cfg)
}

// ReturnQuotaLeases returns the quota leases this server holds (call it on shutdown, after the
// HTTP server has stopped taking requests). Without leases it does nothing.
func (s *Server) ReturnQuotaLeases(ctx context.Context) error {
	if s.leaser == nil {
		return nil
	}
	return s.leaser.Close(ctx)
}
