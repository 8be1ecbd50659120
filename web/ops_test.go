package web_test

import (
	"context"
	"encoding/csv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/web"
)

func TestHealthAndMetrics(t *testing.T) {
	b := setup(t)
	c := b.client(t)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/static/css/app.css": 200, "/static/js/htmx.min.js": 200} {
		if res, _ := c.get(path); res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
	}
	c.get("/login")
	res, body := c.get("/metrics")
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	for _, want := range []string{
		`tenantry_http_requests_total{method="GET",route="/login",status="200"}`,
		`tenantry_http_request_duration_seconds_bucket{method="GET",route="/login"`,
		`tenantry_db_pool_connections{pool="app",state="idle"}`,
		`tenantry_db_pool_max_connections{pool="owner"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestNotFoundInsideLayout(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	for _, path := range []string{"/admin/tenants/no-such-tenant", "/admin/tenants/no-such-tenant/audit", "/admin/nothing-here"} {
		res, body := c.get(path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
			continue
		}
		doc := parse(t, body)
		if doc.Find(`[data-testid="error-page"][data-status="404"]`).Length() != 1 || doc.Find(`[data-testid="current-user"]`).Length() != 1 {
			t.Errorf("GET %s: 404 page not rendered inside the signed-in layout", path)
		}
		if id := doc.Find(`[data-testid="request-id"]`).Text(); id == "" || id != res.Header.Get("X-Request-Id") {
			t.Errorf("GET %s: request id %q not shown (header %q)", path, id, res.Header.Get("X-Request-Id"))
		}
	}
}

// proxy is a TCP forwarder to PostgreSQL that a test can cut and restore, to play a database outage.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.up("127.0.0.1:0")
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// With the database gone, the process keeps serving: /healthz 200, /readyz 503, pages show a
// 503 error page; when the database returns, everything recovers without a restart.
func TestDatabaseOutageAndRecovery(t *testing.T) {
	direct, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, direct.Host)
	via := *direct
	via.Host = p.addr
	d, err := db.Open(context.Background(), via.String(), "", dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b := &testBundle{db: d, ts: ts, users: identity.NewService(d.App)}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)

	p.down()
	if res, _ := c.get("/healthz"); res.StatusCode != 200 {
		t.Fatalf("healthz during outage: %d", res.StatusCode)
	}
	if res, _ := c.get("/readyz"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during outage: %d, want 503", res.StatusCode)
	}
	res, body := c.get("/admin/tenants")
	if res.StatusCode != http.StatusServiceUnavailable || parse(t, body).Find(`[data-testid="error-page"]`).Length() != 1 {
		t.Fatalf("page during outage: %d\n%s", res.StatusCode, body)
	}
	if strings.Contains(body, "connect") || strings.Contains(body, "dial") {
		t.Fatalf("error page leaks internal detail:\n%s", body)
	}

	p.up(p.addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, _ := c.get("/readyz")
		if res.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not recover: %d", res.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res, _ := c.get("/admin/tenants"); res.StatusCode != 200 {
		t.Fatalf("page after recovery: %d", res.StatusCode)
	}
}

func TestAuditExportAndVerify(t *testing.T) {
	b := setup(t)
	b.provisioningWorkers(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	form := url.Values{"name": {"Export Co"}, "slug": {"export-co"}, "plan": {"free"}, "_csrf": {c.token("/admin/tenants/new")}}
	if res, _ := c.post("/admin/tenants", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	b.awaitRun(t, "export-co", provisioning.StateDone) // creation provisions in the background

	res, body := c.get("/admin/tenants/export-co/audit.csv")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(res.Header.Get("Content-Disposition"), "tenantry-audit-export-co-") {
		t.Fatalf("tenant export: %d %v", res.StatusCode, res.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[0][4] != "action" || rows[1][4] != "tenant.created" || rows[2][4] != "provisioning.started" ||
		rows[3][4] != "tenant.activated" || rows[4][4] != "provisioning.completed" || rows[1][5] != "export-co" {
		t.Fatalf("tenant export rows = %v", rows)
	}
	// The creation came over HTTP: it names its request and the client's address.
	if rows[0][7] != "request_id" || rows[1][7] == "" || rows[1][8] != "127.0.0.1" {
		t.Fatalf("origin of the creation = %q from %q", rows[1][7], rows[1][8])
	}
	_, all := c.get("/admin/audit.csv?q=export-co")
	if n := strings.Count(all, "\n"); n != 5 {
		t.Fatalf("platform export filtered by search has %d lines, want 5:\n%s", n, all)
	}

	_, page := c.get("/admin/audit/verify")
	if doc := parse(t, page); doc.Find(`[data-testid="chain-status"][data-ok="true"]`).Length() != 1 {
		t.Fatalf("verify: %s", page)
	}
	if err := b.db.Owner.Exec("UPDATE tenantry.audit_events SET target = 'forged' WHERE target = 'export-co' AND action = 'tenant.created'").Error; err != nil {
		t.Fatal(err)
	}
	_, page = c.do(http.MethodGet, "/admin/audit/verify", nil, http.Header{"Hx-Request": {"true"}})
	doc := parse(t, page)
	if doc.Find(`[data-testid="chain-status"][data-ok="false"]`).Length() != 1 || !strings.Contains(doc.Text(), "broken") {
		t.Fatalf("tampered chain not reported:\n%s", page)
	}
	if doc.Find("html").Length() != 0 && doc.Find(`[data-testid="current-user"]`).Length() != 0 {
		t.Fatal("htmx re-check returned the whole page instead of the status fragment")
	}
	// Put it back so the rest of the package's tests see an intact chain.
	if err := b.db.Owner.Exec("UPDATE tenantry.audit_events SET target = 'export-co' WHERE target = 'forged'").Error; err != nil {
		t.Fatal(err)
	}
}
