package web_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/web"
)

// withKeys starts a server with tenant encryption, as serve does.
func withKeys(t *testing.T) *testBundle {
	t.Helper()
	d := dbtest.Open(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t), Keys: keys.NewService(d.App, master)})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{db: d, users: identity.NewService(d.App), srv: srv}
	b.ts = newTestServer(t, srv)
	return b
}

func TestSecurityTab(t *testing.T) {
	b := withKeys(t)
	b.provisioningWorkers(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	form := url.Values{"name": {"Secure Co"}, "slug": {"secure-co"}, "plan": {"free"}, "_csrf": {c.token("/admin/tenants/new")}}
	if res, _ := c.post("/admin/tenants", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	b.awaitRun(t, "secure-co", provisioning.StateDone) // the keyset is made by the provisioning run
	_, body := c.get("/admin/tenants/secure-co/security")
	doc := parse(t, body)
	if doc.Find(`[data-testid="primary-key-id"]`).Text() == "" {
		t.Fatalf("no key status for a new tenant:\n%s", body)
	}
	if doc.Find(`[data-testid="credentials-empty"]`).Length() != 1 {
		t.Fatal("empty state for credentials missing")
	}

	// Network: a bad entry is reported at its field and nothing changes.
	tok := c.token("/admin/tenants/secure-co/security")
	res, body := c.post("/admin/tenants/secure-co/network", url.Values{"ip_allowlist": {"10.0.0.1/8"}, "hostname": {""}, "_csrf": {tok}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(parse(t, body).Find(`[data-testid="error-ip_allowlist"]`).Text(), "host bits") {
		t.Fatalf("bad allowlist: %d", res.StatusCode)
	}
	if got := parse(t, body).Find("#f-ip_allowlist").Text(); got != "10.0.0.1/8" {
		t.Fatalf("input not kept: %q", got)
	}
	res, _ = c.post("/admin/tenants/secure-co/network", url.Values{"ip_allowlist": {"203.0.113.0/24"}, "hostname": {"secure.example.com"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save network: %d", res.StatusCode)
	}

	// Credentials: write-only, encrypted.
	res, _ = c.post("/admin/tenants/secure-co/credentials", url.Values{"name": {"smtp.password"}, "value": {"hunter2-hunter2"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("set credential: %d", res.StatusCode)
	}
	_, body = c.get("/admin/tenants/secure-co/security")
	if strings.Contains(body, "hunter2") {
		t.Fatal("the page shows a credential's value")
	}
	if parse(t, body).Find(`[data-testid="credential"]`).Length() != 1 {
		t.Fatal("credential not listed")
	}
	var id int64
	_ = b.db.AppPool.QueryRow(context.Background(), "SELECT id FROM tenants WHERE slug = 'secure-co'").Scan(&id)
	var ct []byte
	if err := b.db.OwnerPool.QueryRow(context.Background(), "SELECT ciphertext FROM "+db.TenantSchema(id)+".credentials").Scan(&ct); err != nil || strings.Contains(string(ct), "hunter2") {
		t.Fatalf("stored credential: %v (in clear: %v)", err, strings.Contains(string(ct), "hunter2"))
	}

	// Rotation shows its progress and the poll answers with the fragment.
	res, _ = c.post("/admin/tenants/secure-co/keys/rotate", url.Values{"_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", res.StatusCode)
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/secure-co/keys/rotation", nil, http.Header{"Hx-Request": {"true"}})
	if d := parse(t, body); d.Find(`[data-testid="rotation"]`).Length() != 1 || d.Find(`[data-testid="current-user"]`).Length() != 0 {
		t.Fatalf("rotation poll:\n%s", body)
	}
}
