package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
)

// apiTenant registers an active tenant for API tests.
func (b *testBundle) apiTenant(t *testing.T) tenant.Tenant {
	t.Helper()
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	slug := "api-" + hex.EncodeToString(r)
	tn, err := tenant.NewService(b.db, dbtest.Logger(t)).Create(context.Background(), "test",
		tenant.NewTenant{Slug: slug, Name: "API " + slug, PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

type apiErr struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// apiCall sends an API request with key (none when empty) and returns the response and body.
func (b *testBundle) apiCall(t *testing.T, method, path, key string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

// wantAPIError checks an API error answer: status, JSON content type, code, and a message.
func wantAPIError(t *testing.T, res *http.Response, body []byte, status int, code string) apiErr {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("status = %d, want %d\n%s", res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON\n%s", ct, body)
	}
	var e apiErr
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, body)
	}
	if e.Error.Code != code || e.Error.Message == "" || e.Error.RequestID == "" {
		t.Fatalf("error = %+v, want code %q with a message and a request id", e.Error, code)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: Bearer")
	}
	return e
}

func TestAPITenantEndpoint(t *testing.T) {
	b := setup(t)
	keys := apikeys.NewService(b.db)
	tn := b.apiTenant(t)
	issued, err := keys.Create(context.Background(), "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no key", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", "", nil)
		wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("not a bearer key", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", "", http.Header{"Authorization": {"Basic " + issued.FullKey}})
		wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("bad key", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey[:len(issued.FullKey)-1]+"x", nil)
		e := wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
		if strings.Contains(string(body), issued.FullKey[len(issued.FullKey)-10:]) {
			t.Fatalf("the error echoes the key: %s", body)
		}
		_ = e
	})
	t.Run("good key", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d\n%s", res.StatusCode, body)
		}
		var got struct {
			ID    int64  `json:"id"`
			Slug  string `json:"slug"`
			Name  string `json:"name"`
			State string `json:"state"`
			Plan  string `json:"plan"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err, string(body))
		}
		if got.ID != tn.ID || got.Slug != tn.Slug || got.Name != tn.Name || got.State != "active" || got.Plan != "free" {
			t.Fatalf("tenant = %+v, want %+v", got, tn)
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control = %q", res.Header.Get("Cache-Control"))
		}
	})
	t.Run("no session or CSRF involved", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
		for _, c := range res.Cookies() {
			t.Errorf("API answer sets cookie %s", c.Name)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d\n%s", res.StatusCode, body)
		}
	})
	t.Run("unknown address is a JSON 404 without asking for a key", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/nothing-here", "", nil)
		wantAPIError(t, res, body, http.StatusNotFound, "not_found")
	})
	t.Run("wrong method is a JSON 404", func(t *testing.T) {
		// echo answers 404 rather than 405 once a catch-all not-found route exists.
		res, body := b.apiCall(t, http.MethodDelete, "/api/v1/tenant", issued.FullKey, nil)
		wantAPIError(t, res, body, http.StatusNotFound, "not_found")
	})
}

func TestAPIAllowlistAndTenantState(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	keys := apikeys.NewService(b.db)
	tenants := tenant.NewService(b.db, dbtest.Logger(t))
	tn := b.apiTenant(t)
	issued, err := keys.Create(ctx, "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The test server's clients come from 127.0.0.1, which this list leaves out.
	if _, err := tenants.SetNetwork(ctx, "test", tn.Slug, tenant.Network{Allowlist: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	t.Run("outside the allowlist", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
		e := wantAPIError(t, res, body, http.StatusForbidden, "address_not_allowed")
		if !strings.Contains(e.Error.Message, "127.0.0.1") || !strings.Contains(e.Error.Message, "allowlist") {
			t.Fatalf("message does not say why: %q", e.Error.Message)
		}
	})
	t.Run("a forged X-Forwarded-For does not get in", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey,
			http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Real-Ip": {"10.1.2.3"}})
		wantAPIError(t, res, body, http.StatusForbidden, "address_not_allowed")
	})
	t.Run("a bad key from outside is 401, not 403", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey[:len(issued.FullKey)-2]+"AA", nil)
		wantAPIError(t, res, body, http.StatusUnauthorized, "unauthorized")
	})
	if _, err := tenants.SetNetwork(ctx, "test", tn.Slug, tenant.Network{Allowlist: "10.0.0.0/8, 127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Run("inside the allowlist", func(t *testing.T) {
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d\n%s", res.StatusCode, body)
		}
	})
	t.Run("suspended tenant", func(t *testing.T) {
		if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.tenants SET state = 'suspended' WHERE id = $1", tn.ID); err != nil {
			t.Fatal(err)
		}
		res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", issued.FullKey, nil)
		e := wantAPIError(t, res, body, http.StatusForbidden, "tenant_not_serving")
		if !strings.Contains(e.Error.Message, "suspended") {
			t.Fatalf("message does not say the tenant is suspended: %q", e.Error.Message)
		}
	})
}

func TestOpenAPIDocument(t *testing.T) {
	b := setup(t)
	tn := b.apiTenant(t)
	issued, err := apikeys.NewService(b.db).Create(context.Background(), "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, body := b.apiCall(t, http.MethodGet, "/api/v1/openapi.yaml", "", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string `yaml:"openapi"`
		Info    struct {
			Title   string `yaml:"title"`
			Version string `yaml:"version"`
		} `yaml:"info"`
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type   string `yaml:"type"`
				Scheme string `yaml:"scheme"`
			} `yaml:"securitySchemes"`
			Schemas map[string]struct {
				Properties map[string]struct {
					Properties map[string]struct {
						Enum []string `yaml:"enum"`
					} `yaml:"properties"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("openapi %q, info %+v", doc.OpenAPI, doc.Info)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/api/v1" {
		t.Fatalf("servers = %+v", doc.Servers)
	}
	if s := doc.Components.SecuritySchemes["apiKey"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Fatalf("security scheme = %+v", s)
	}
	for _, p := range []string{"/tenant", "/openapi.yaml"} {
		if doc.Paths[p]["get"] == nil {
			t.Errorf("GET %s is not documented", p)
		}
	}
	// Every documented operation is served (and nothing documented answers 404 or 405). Sent
	// without a body, operations that need one answer 400 with the JSON error instead of 200.
	for path, ops := range doc.Paths {
		for method := range ops {
			res, body := b.apiCall(t, strings.ToUpper(method), "/api/v1"+path, issued.FullKey, nil)
			if res.StatusCode == http.StatusBadRequest && method != "get" {
				wantAPIError(t, res, body, http.StatusBadRequest, "bad_request")
			} else if res.StatusCode != http.StatusOK {
				t.Errorf("%s %s documented but answers %d: %s", method, path, res.StatusCode, body)
			}
		}
	}
	// The error codes the server sends are the ones documented.
	codes := doc.Components.Schemas["Error"].Properties["error"].Properties["code"].Enum
	for _, c := range []string{"unauthorized", "key_revoked", "key_expired", "address_not_allowed", "tenant_not_serving", "not_found",
		"bad_request", "unknown_dimension", "dimension_required", "invalid_amount", "idempotency_key_required", "idempotency_key_reused", "invalid_report"} {
		if !slices.Contains(codes, c) {
			t.Errorf("error code %q is not documented (documented: %v)", c, codes)
		}
	}
}

// The platform admin's journey: create a key on the tenant's page, see it once, find it listed by
// its prefix, use it, revoke it, and the API refuses it.
func TestAdminAPIKeys(t *testing.T) {
	b := setup(t)
	tn := b.apiTenant(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/api-keys"

	res, body := c.get(tab)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("tab: %d", res.StatusCode)
	}
	doc := parse(t, body)
	if doc.Find(`[data-testid="tab-api-keys"][aria-current="page"]`).Length() != 1 {
		t.Fatal("the API keys tab is not the current tab")
	}
	if doc.Find(`[data-testid="api-key-form"]`).Length() != 1 || doc.Find(`[data-testid="api-key-row"]`).Length() != 0 {
		t.Fatal("a new tenant's tab should offer the form and list no keys")
	}
	token := c.token(tab)

	t.Run("field errors keep the input and create nothing", func(t *testing.T) {
		res, body := c.post(tab, url.Values{"_csrf": {token}, "name": {"  "}, "expires_on": {"2001-01-01"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("status = %d", res.StatusCode)
		}
		doc := parse(t, body)
		if doc.Find(`[data-testid="error-name"]`).Length() != 1 || doc.Find(`[data-testid="error-expires_on"]`).Length() != 1 {
			t.Fatalf("errors not at the fields:\n%s", doc.Find(`[data-testid="api-key-form"]`).Text())
		}
		if v, _ := doc.Find(`#f-expires_on`).Attr("value"); v != "2001-01-01" {
			t.Fatalf("expiry input not kept: %q", v)
		}
		res, body = c.post(tab, url.Values{"_csrf": {token}, "name": {"svc"}, "expires_on": {"next week"}})
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-expires_on"]`).Length() != 1 {
			t.Fatalf("bad date: status %d", res.StatusCode)
		}
		if v, _ := parse(t, body).Find(`#f-name`).Attr("value"); v != "svc" {
			t.Fatalf("name input not kept: %q", v)
		}
		if n := len(listKeys(t, b, tn.ID)); n != 0 {
			t.Fatalf("%d keys created by invalid input", n)
		}
	})

	res, body = c.post(tab, url.Values{"_csrf": {token}, "name": {"billing service"}, "expires_on": {"2099-12-31"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("create: status %d\n%s", res.StatusCode, body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the page with the key may be cached: Cache-Control %q", cc)
	}
	doc = parse(t, body)
	fullKey, _ := doc.Find(`[data-testid="issued-key"]`).Attr("value")
	m := regexp.MustCompile(`^(tnt_\d+_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$`).FindStringSubmatch(fullKey)
	if m == nil {
		t.Fatalf("no full key shown after creation: %q", fullKey)
	}
	prefix := m[1]
	if !strings.Contains(doc.Find(`[data-testid="issued-key-panel"]`).Text(), "only this once") {
		t.Fatal("no warning that the key is shown once")
	}

	res, body = c.get(tab)
	doc = parse(t, body)
	if strings.Contains(body, fullKey) || doc.Find(`[data-testid="issued-key"]`).Length() != 0 {
		t.Fatal("the full key is shown again")
	}
	rows := doc.Find(`[data-testid="api-key-row"]`)
	if rows.Length() != 1 || !strings.HasPrefix(rows.Find(`[data-testid="api-key-prefix"]`).Text(), prefix) ||
		rows.Find(`[data-testid="api-key-name"]`).Text() != "billing service" || rows.AttrOr("data-status", "") != "active" ||
		!strings.Contains(rows.Text(), admin.Email) || !strings.Contains(rows.Text(), "31 Dec 2099") {
		t.Fatalf("list row: %q", rows.Text())
	}

	if res, body := b.apiCall(t, http.MethodGet, "/api/v1/tenant", fullKey, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("the new key does not work: %d %s", res.StatusCode, body)
	}
	_, body = c.get(tab)
	if !strings.Contains(parse(t, body).Find(`[data-testid="api-key-row"]`).Text(), "UTC") ||
		strings.Contains(parse(t, body).Find(`[data-testid="api-key-row"] td:nth-child(4)`).Text(), "Never") {
		t.Fatal("last use not shown after the key was used")
	}

	revokeURL, ok := parse(t, body).Find(`[data-testid="api-key-row"] form`).Attr("action")
	if !ok {
		t.Fatal("no revoke form")
	}
	if _, ok := parse(t, body).Find(`[data-testid="api-key-row"] form`).Attr("onsubmit"); !ok {
		t.Fatal("revoking does not ask for confirmation")
	}
	res, _ = c.post(revokeURL, url.Values{"name": {"x"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke without CSRF token: %d, want 403", res.StatusCode)
	}
	res, _ = c.post(revokeURL, url.Values{"_csrf": {token}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tab {
		t.Fatalf("revoke: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	_, body = c.get(tab)
	doc = parse(t, body)
	if doc.Find(`[data-testid="api-key-row"]`).AttrOr("data-status", "") != "revoked" || doc.Find(`[data-testid="revoke-key"]`).Length() != 0 {
		t.Fatal("the key is not listed as revoked")
	}
	if !strings.Contains(body, "is revoked") {
		t.Fatal("no confirmation flash")
	}
	res, apiBody := b.apiCall(t, http.MethodGet, "/api/v1/tenant", fullKey, nil)
	wantAPIError(t, res, apiBody, http.StatusUnauthorized, "key_revoked")

	_, body = c.get("/admin/tenants/" + tn.Slug + "/audit")
	audit := parse(t, body).Find(`[data-testid="audit-row"]`).Text()
	if !strings.Contains(audit, "api_key.created") || !strings.Contains(audit, "api_key.revoked") || strings.Contains(body, fullKey[len(prefix)+1:]) {
		t.Fatalf("audit tab: %q", audit)
	}
	t.Run("unknown key id is 404", func(t *testing.T) {
		res, _ := c.post(tab+"/999999/revoke", url.Values{"_csrf": {token}})
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("status = %d", res.StatusCode)
		}
	})
}

func TestExecutiveSeesAPIKeysButCannotChangeThem(t *testing.T) {
	b := setup(t)
	tn := b.apiTenant(t)
	if _, err := apikeys.NewService(b.db).Create(context.Background(), "test", tn.ID, "svc", nil); err != nil {
		t.Fatal(err)
	}
	exec := b.user(t, identity.RoleExecutive)
	c := b.client(t)
	c.signIn(exec.Email)
	tab := "/admin/tenants/" + tn.Slug + "/api-keys"
	res, body := c.get(tab)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", res.StatusCode)
	}
	doc := parse(t, body)
	if doc.Find(`[data-testid="api-key-row"]`).Length() != 1 {
		t.Fatal("the executive does not see the key")
	}
	if doc.Find(`[data-testid="api-key-form"]`).Length() != 0 || doc.Find(`[data-testid="revoke-key"]`).Length() != 0 {
		t.Fatal("the executive is offered changes")
	}
	tok, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	res, _ = c.post(tab, url.Values{"_csrf": {tok}, "name": {"sneaky"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive create: %d, want 403", res.StatusCode)
	}
	if n := len(listKeys(t, b, tn.ID)); n != 1 {
		t.Fatalf("%d keys after the executive's attempt, want 1", n)
	}
}

func TestAPIKeysTabOfSuspendedTenant(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	tn := b.apiTenant(t)
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.tenants SET state = 'suspended' WHERE id = $1", tn.ID); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/api-keys"
	_, body := c.get(tab)
	doc := parse(t, body)
	if !strings.Contains(doc.Find(`[data-testid="api-keys-not-serving"]`).Text(), "suspended") || doc.Find(`[data-testid="api-key-form"]`).Length() != 0 {
		t.Fatal("a suspended tenant's tab should say so and offer no form")
	}
	tok, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	res, _ := c.post(tab, url.Values{"_csrf": {tok}, "name": {"svc"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create for a suspended tenant: %d, want a redirect with a message", res.StatusCode)
	}
	_, body = c.get(tab)
	if !strings.Contains(body, "No key was created") {
		t.Fatal("no message saying why")
	}
	if n := len(listKeys(t, b, tn.ID)); n != 0 {
		t.Fatalf("%d keys created for a suspended tenant", n)
	}
}

func listKeys(t *testing.T, b *testBundle, tenantID int64) []apikeys.Key {
	t.Helper()
	keys, err := apikeys.NewService(b.db).List(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
