package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
)

func TestFlagsAndSettingsAPI(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	other := b.apiTenant(t)
	issued, err := apikeys.NewService(b.db).Create(ctx, "test", tn.ID, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	set := settings.NewService(b.db.App, tenant.NewService(b.db, dbtest.Logger(t)))

	res, body := b.apiCall(t, http.MethodGet, "/api/v1/flags", issued.FullKey, nil)
	if res.StatusCode != 200 || res.Header.Get("ETag") == "" || res.Header.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("flags: %d %v", res.StatusCode, res.Header)
	}
	var flags map[string]bool
	if err := json.Unmarshal(body, &flags); err != nil || len(flags) != 3 || flags["sso"] {
		t.Fatalf("flags = %s (%v)", body, err)
	}
	etag := res.Header.Get("ETag")
	if res, _ := b.apiCall(t, http.MethodGet, "/api/v1/flags", issued.FullKey, http.Header{"If-None-Match": {etag}}); res.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged flags with If-None-Match: %d, want 304", res.StatusCode)
	}
	// A change for another tenant changes nothing here; one for this tenant changes the ETag.
	if _, err := set.Set(ctx, "test", &other, "flags.sso", "true", false); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.apiCall(t, http.MethodGet, "/api/v1/flags", issued.FullKey, http.Header{"If-None-Match": {etag}}); res.StatusCode != http.StatusNotModified {
		t.Fatalf("another tenant's change altered this tenant's flags: %d", res.StatusCode)
	}
	if _, err := set.Set(ctx, "test", &tn, "flags.sso", "true", false); err != nil {
		t.Fatal(err)
	}
	res, body = b.apiCall(t, http.MethodGet, "/api/v1/flags", issued.FullKey, http.Header{"If-None-Match": {etag}})
	if res.StatusCode != 200 || res.Header.Get("ETag") == etag {
		t.Fatalf("changed flags: %d etag %s", res.StatusCode, res.Header.Get("ETag"))
	}
	_ = json.Unmarshal(body, &flags)
	if !flags["sso"] {
		t.Fatalf("flags after the change = %s", body)
	}

	res, body = b.apiCall(t, http.MethodGet, "/api/v1/settings", issued.FullKey, nil)
	var all map[string]struct {
		Value  any    `json:"value"`
		Type   string `json:"type"`
		Source string `json:"source"`
	}
	secrets := 0
	for _, k := range settings.Catalogue {
		if k.Type == settings.Secret {
			secrets++
		}
	}
	if res.StatusCode != 200 || json.Unmarshal(body, &all) != nil || len(all) != len(settings.Catalogue)-secrets {
		t.Fatalf("settings (every key but the %d secrets): %d %s", secrets, res.StatusCode, body)
	}
	for _, k := range settings.Catalogue {
		if _, ok := all[k.Key]; ok && k.Type == settings.Secret {
			t.Errorf("secret %s listed by the API", k.Key)
		}
	}
	if v := all["security.password_min_length"]; v.Value != float64(10) || v.Type != "int" || v.Source != "default" {
		t.Fatalf("password_min_length = %+v", v)
	}
	if res, _ := b.apiCall(t, http.MethodGet, "/api/v1/settings", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("settings without a key: %d", res.StatusCode)
	}
}
