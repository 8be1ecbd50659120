package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

type consumeBody struct {
	Allowed   bool    `json:"allowed"`
	Warning   string  `json:"warning"`
	Dimension string  `json:"dimension"`
	Limit     int64   `json:"limit"`
	SoftLimit int64   `json:"soft_limit"`
	Used      int64   `json:"used"`
	Remaining int64   `json:"remaining"`
	ResetAt   *string `json:"reset_at"`
	Replayed  bool    `json:"replayed"`
}

// apiPost sends a JSON (or raw) body to path with key.
func (b *testBundle) apiPost(t testing.TB, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, out
}

// quotaTenant is an active tenant with an API key and the given limits on compute_vcpu_hours.
func (b *testBundle) quotaTenant(t *testing.T, soft, hard int64) (tenant.Tenant, string) {
	t.Helper()
	tn := b.apiTenant(t)
	issued, err := apikeys.NewService(b.db).Create(context.Background(), "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quota.NewService(b.db).SetLimit(context.Background(), "test", tn.ID, "compute_vcpu_hours", soft, hard); err != nil {
		t.Fatal(err)
	}
	return tn, issued.FullKey
}

func (b *testBundle) usedOf(t *testing.T, tenantID int64, dim string) int64 {
	t.Helper()
	var used int64
	err := b.db.OwnerPool.QueryRow(context.Background(),
		"SELECT COALESCE((SELECT used FROM tenantry.quota_limits WHERE tenant_id = $1 AND dimension = $2), 0)", tenantID, dim).Scan(&used)
	if err != nil {
		t.Fatal(err)
	}
	return used
}

func consumeJSON(dim string, amount any, key string) string {
	b, _ := json.Marshal(map[string]any{"dimension": dim, "amount": amount, "idempotency_key": key})
	return string(b)
}

func TestAPIQuotaConsume(t *testing.T) {
	b := setup(t)
	tn, key := b.quotaTenant(t, 5, 10)

	consume := func(t *testing.T, amount int64, idem string) (*http.Response, consumeBody) {
		t.Helper()
		res, body := b.apiPost(t, "/api/v1/quota/consume", key, consumeJSON("compute_vcpu_hours", amount, idem))
		var got consumeBody
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("status %d, body not JSON: %s", res.StatusCode, body)
		}
		return res, got
	}
	t.Run("allowed", func(t *testing.T) {
		res, got := consume(t, 4, "op-1")
		if res.StatusCode != http.StatusOK || !got.Allowed || got.Warning != "" || got.Used != 4 || got.Remaining != 6 || got.Limit != 10 || got.SoftLimit != 5 || got.ResetAt == nil {
			t.Fatalf("status %d, %+v", res.StatusCode, got)
		}
		if res.Header.Get("RateLimit-Limit") != "10" || res.Header.Get("RateLimit-Remaining") != "6" {
			t.Fatalf("headers %v", res.Header)
		}
		if secs, err := strconv.Atoi(res.Header.Get("RateLimit-Reset")); err != nil || secs <= 0 || secs > 31*24*3600 {
			t.Fatalf("RateLimit-Reset = %q", res.Header.Get("RateLimit-Reset"))
		}
	})
	t.Run("retry with the same key consumes nothing", func(t *testing.T) {
		res, got := consume(t, 4, "op-1")
		if res.StatusCode != http.StatusOK || !got.Allowed || got.Used != 4 || !got.Replayed || res.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("status %d, %+v", res.StatusCode, got)
		}
		if u := b.usedOf(t, tn.ID, "compute_vcpu_hours"); u != 4 {
			t.Fatalf("used = %d", u)
		}
	})
	t.Run("allowed with a soft-limit warning", func(t *testing.T) {
		res, got := consume(t, 3, "op-2")
		if res.StatusCode != http.StatusOK || !got.Allowed || got.Warning != "soft_limit" || got.Used != 7 {
			t.Fatalf("status %d, %+v", res.StatusCode, got)
		}
	})
	t.Run("over the hard limit is 429 with the same body and headers", func(t *testing.T) {
		res, got := consume(t, 4, "op-3")
		if res.StatusCode != http.StatusTooManyRequests || got.Allowed || got.Used != 7 || got.Remaining != 3 || got.Limit != 10 || got.ResetAt == nil {
			t.Fatalf("status %d, %+v", res.StatusCode, got)
		}
		if res.Header.Get("RateLimit-Limit") != "10" || res.Header.Get("RateLimit-Remaining") != "3" || res.Header.Get("RateLimit-Reset") == "" || res.Header.Get("Retry-After") == "" {
			t.Fatalf("headers %v", res.Header)
		}
		if u := b.usedOf(t, tn.ID, "compute_vcpu_hours"); u != 7 {
			t.Fatalf("used = %d after a denial", u)
		}
	})
	t.Run("bad input is a 4xx and consumes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"malformed JSON", `{"dimension": "compute_vcpu_hours", "amount": 1,`, http.StatusBadRequest, "bad_request"},
			{"no body", ``, http.StatusBadRequest, "bad_request"},
			{"wrong type", `{"dimension": 7, "amount": 1, "idempotency_key": "x1"}`, http.StatusBadRequest, "bad_request"},
			{"array", `[1, 2]`, http.StatusBadRequest, "bad_request"},
			{"unknown dimension", consumeJSON("bananas", 1, "x2"), http.StatusUnprocessableEntity, "unknown_dimension"},
			{"no dimension", consumeJSON("", 1, "x3"), http.StatusUnprocessableEntity, "dimension_required"},
			{"zero", consumeJSON("compute_vcpu_hours", 0, "x4"), http.StatusUnprocessableEntity, "invalid_amount"},
			{"negative", consumeJSON("compute_vcpu_hours", -3, "x5"), http.StatusUnprocessableEntity, "invalid_amount"},
			{"fraction", consumeJSON("compute_vcpu_hours", 1.5, "x6"), http.StatusUnprocessableEntity, "invalid_amount"},
			{"huge", consumeJSON("compute_vcpu_hours", int64(quota.MaxAmount)+1, "x7"), http.StatusUnprocessableEntity, "invalid_amount"},
			{"enormous", `{"dimension": "compute_vcpu_hours", "amount": 1e300, "idempotency_key": "x8"}`, http.StatusUnprocessableEntity, "invalid_amount"},
			{"amount as a string", `{"dimension": "compute_vcpu_hours", "amount": "1", "idempotency_key": "x9"}`, http.StatusBadRequest, "bad_request"},
			{"no amount", `{"dimension": "compute_vcpu_hours", "idempotency_key": "x10"}`, http.StatusUnprocessableEntity, "invalid_amount"},
			{"no idempotency key", consumeJSON("compute_vcpu_hours", 1, ""), http.StatusUnprocessableEntity, "idempotency_key_required"},
			{"long idempotency key", consumeJSON("compute_vcpu_hours", 1, strings.Repeat("k", 256)), http.StatusUnprocessableEntity, "idempotency_key_required"},
			{"key reused for another amount", consumeJSON("compute_vcpu_hours", 2, "op-1"), http.StatusUnprocessableEntity, "idempotency_key_reused"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, body := b.apiPost(t, "/api/v1/quota/consume", key, tc.body)
				wantAPIError(t, res, body, tc.status, tc.code)
			})
		}
		if u := b.usedOf(t, tn.ID, "compute_vcpu_hours"); u != 7 {
			t.Fatalf("used = %d after bad input", u)
		}
		var n int64
		if err := b.db.OwnerPool.QueryRow(context.Background(), "SELECT count(*) FROM tenantry.quota_consumptions WHERE tenant_id = $1", tn.ID).Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d idempotency records (want 3: op-1, op-2, op-3), %v", n, err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		res, body := b.apiPost(t, "/api/v1/quota/consume", "", consumeJSON("compute_vcpu_hours", 1, "n1"))
		wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("another tenant's key consumes its own tenant's quota, never this one's", func(t *testing.T) {
		other, otherKey := b.quotaTenant(t, 1, 2)
		// Even with this tenant's idempotency key, the other key acts for its own tenant only.
		res, body := b.apiPost(t, "/api/v1/quota/consume", otherKey, consumeJSON("compute_vcpu_hours", 2, "op-1"))
		var got consumeBody
		_ = json.Unmarshal(body, &got)
		if res.StatusCode != http.StatusOK || got.Limit != 2 || got.Used != 2 || got.Replayed {
			t.Fatalf("status %d, %s", res.StatusCode, body)
		}
		if u := b.usedOf(t, tn.ID, "compute_vcpu_hours"); u != 7 {
			t.Fatalf("this tenant's used = %d", u)
		}
		if u := b.usedOf(t, other.ID, "compute_vcpu_hours"); u != 2 {
			t.Fatalf("other tenant's used = %d", u)
		}
		// A key naming this tenant's id but carrying the other's secret is refused outright.
		forged := strings.Replace(otherKey, fmt.Sprintf("tnt_%d_", other.ID), fmt.Sprintf("tnt_%d_", tn.ID), 1)
		res, body = b.apiPost(t, "/api/v1/quota/consume", forged, consumeJSON("compute_vcpu_hours", 1, "f1"))
		wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
		if u := b.usedOf(t, tn.ID, "compute_vcpu_hours"); u != 7 {
			t.Fatalf("this tenant's used = %d after a forged key", u)
		}
	})
}

func TestAPIQuotaAndUsage(t *testing.T) {
	b := setup(t)
	tn, key := b.quotaTenant(t, 5, 10)
	res, body := b.apiPost(t, "/api/v1/usage", key,
		`{"reports": [{"dimension": "storage_gb", "value": 4, "at": "2026-01-02T03:04:05Z"}, {"dimension": "network_egress_gb", "value": 2}]}`)
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"accepted":2`)) {
		t.Fatalf("usage: %d %s", res.StatusCode, body)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty batch", `{"reports": []}`, http.StatusUnprocessableEntity, "invalid_report"},
		{"unknown dimension", `{"reports": [{"dimension": "x", "value": 1}]}`, http.StatusUnprocessableEntity, "unknown_dimension"},
		{"negative", `{"reports": [{"dimension": "storage_gb", "value": -1}]}`, http.StatusUnprocessableEntity, "invalid_amount"},
		{"bad time", `{"reports": [{"dimension": "storage_gb", "value": 1, "at": "yesterday"}]}`, http.StatusBadRequest, "bad_request"},
		{"malformed", `{"reports": `, http.StatusBadRequest, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := b.apiPost(t, "/api/v1/usage", key, tc.body)
			wantAPIError(t, res, body, tc.status, tc.code)
		})
	}
	if _, body := b.apiPost(t, "/api/v1/quota/consume", key, consumeJSON("compute_vcpu_hours", 6, "q1")); !bytes.Contains(body, []byte(`"allowed":true`)) {
		t.Fatalf("consume: %s", body)
	}
	res, body = b.apiCall(t, http.MethodGet, "/api/v1/quota", key, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("quota: %d %s", res.StatusCode, body)
	}
	var got struct {
		Dimensions []struct {
			Dimension string  `json:"dimension"`
			Kind      string  `json:"kind"`
			SoftLimit int64   `json:"soft_limit"`
			Limit     int64   `json:"limit"`
			Used      int64   `json:"used"`
			Remaining int64   `json:"remaining"`
			State     string  `json:"state"`
			ResetAt   *string `json:"reset_at"`
		} `json:"dimensions"`
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.Dimensions) != 6 {
		t.Fatalf("quota: %v %s", err, body)
	}
	by := map[string]string{}
	for _, d := range got.Dimensions {
		by[d.Dimension] = fmt.Sprintf("%s %d/%d/%d %d %s reset:%v", d.Kind, d.Used, d.SoftLimit, d.Limit, d.Remaining, d.State, d.ResetAt != nil)
	}
	for dim, want := range map[string]string{
		"compute_vcpu_hours": "counter 6/5/10 4 soft reset:true",
		"storage_gb":         "gauge 4/4/5 1 ok reset:false",
		"network_egress_gb":  "counter 0/8/10 10 ok reset:true", // reported counters do not consume
		"api_requests":       "counter 0/8000/10000 10000 ok reset:true",
	} {
		if by[dim] != want {
			t.Errorf("%s: %s, want %s", dim, by[dim], want)
		}
	}
	_ = tn
}
