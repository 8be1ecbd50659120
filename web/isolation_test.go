package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/isolation"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

func TestIsolationPage(t *testing.T) {
	b := setup(t)
	b.provisioningWorkers(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	var ids []int64
	for _, slug := range []string{"iso-web-a", "iso-web-b"} {
		form := url.Values{"name": {slug}, "slug": {slug}, "plan": {"free"}, "_csrf": {c.token("/admin/tenants/new")}}
		if res, _ := c.post("/admin/tenants", form); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("create %s: %d", slug, res.StatusCode)
		}
		b.awaitRun(t, slug, provisioning.StateDone)
		var id int64
		if err := b.db.AppPool.QueryRow(context.Background(), "SELECT id FROM tenants WHERE slug = $1", slug).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	res, _ := c.post("/admin/isolation/run", url.Values{"_csrf": {c.token("/admin/isolation")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("run: %d", res.StatusCode)
	}
	_, body := c.get("/admin/isolation")
	doc := parse(t, body)
	if doc.Find(`[data-testid="isolation-latest"][data-breach="false"]`).Length() != 1 {
		t.Fatalf("latest run not shown as sound:\n%s", body)
	}
	probes := doc.Find(`[data-testid="isolation-probe"]`)
	if probes.Length() < 8 || doc.Find(`[data-testid="isolation-probe"][data-passed="false"]`).Length() != 0 {
		t.Fatalf("probes: %d rows, %d failed", probes.Length(), doc.Find(`[data-passed="false"]`).Length())
	}
	if !strings.Contains(probes.Text(), "http: A's API key used as B's") {
		t.Fatal("the HTTP probe did not run")
	}
	// The probe's temporary key is revoked afterwards.
	for _, id := range ids {
		var live int
		q := "SELECT count(*) FROM " + db.TenantSchema(id) + ".api_keys WHERE revoked_at IS NULL"
		if err := b.db.OwnerPool.QueryRow(context.Background(), q).Scan(&live); err != nil || live != 0 {
			t.Fatalf("tenant %d has %d live keys after the probe (%v)", id, live, err)
		}
	}

	// A breach shows on the dashboard. Every tenant role is granted every other schema, so any
	// sampled pair crosses.
	grantAll := func(verb string) {
		t.Helper()
		_, err := b.db.OwnerPool.Exec(context.Background(), `DO $$ DECLARE a text; b text; BEGIN
			FOR a IN SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+$' LOOP
				FOR b IN SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+$' AND nspname <> a LOOP
					EXECUTE format('`+verb+`', b, a, b, a);
				END LOOP;
			END LOOP; END $$`)
		if err != nil {
			t.Fatal(err)
		}
	}
	grantAll("GRANT USAGE ON SCHEMA %I TO %I; GRANT SELECT ON %I.users TO %I")
	defer grantAll("REVOKE USAGE ON SCHEMA %I FROM %I; REVOKE SELECT ON %I.users FROM %I")
	c.post("/admin/isolation/run", url.Values{"_csrf": {c.token("/admin/isolation")}})
	_, body = c.get("/admin")
	if alert := parse(t, body).Find(`[data-testid="isolation-alert"]`).Text(); !strings.Contains(alert, "BREACH") {
		t.Fatalf("dashboard alert = %q", alert)
	}
}

// The portal-session probe passes across tenants and, to show it can fail, reports a session
// that does open a portal (its own tenant's).
func TestPortalSessionProbe(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ts := tenant.NewService(b.db, dbtest.Logger(t))
	var ids []int64
	for _, slug := range []string{"probe-a", "probe-b"} {
		tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: slug, Name: slug, PlanKey: "free"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tenantauth.NewService(b.db).CreateUser(ctx, tn.ID, "test", tenantauth.NewUser{Email: "boss@" + slug + ".example", Name: "Boss", Role: tenantauth.RoleAdmin, Password: password}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tn.ID)
	}
	srv, err := web.New(ctx, web.Config{DB: b.db, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var probe isolation.Probe
	for _, p := range srv.IsolationProbes() {
		if strings.Contains(p.Name, "portal session") {
			probe = p
		}
	}
	if err := probe.Try(ctx, ids[0], ids[1]); err != nil {
		t.Fatalf("across tenants: %v", err)
	}
	if err := probe.Try(ctx, ids[1], ids[1]); err == nil {
		t.Fatal("a session bound to the tenant itself opened its portal, yet the probe saw nothing: it cannot detect a leak")
	}
}

func TestTenantTrailOnAuditTab(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tn, err := tenant.NewService(b.db, dbtest.Logger(t)).Create(ctx, "test", tenant.NewTenant{Slug: "trail-co", Name: "Trail Co", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenantauth.NewService(b.db).CreateUser(ctx, tn.ID, "test", tenantauth.NewUser{Email: "x@trail.example", Name: "X", Role: tenantauth.RoleAdmin, Password: password}); err != nil {
		t.Fatal(err)
	}
	_, body := c.get("/admin/tenants/trail-co/audit")
	doc := parse(t, body)
	if doc.Find(`[data-testid="tenant-trail-row"]`).Length() < 1 || doc.Find(`[data-testid="tenant-trail"] [data-testid="chain-status"][data-ok="true"]`).Length() != 1 {
		t.Fatalf("tenant trail not shown as intact:\n%s", doc.Find(`[data-testid="tenant-trail"]`).Text())
	}
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE "+db.TenantSchema(tn.ID)+".audit_events SET actor = 'mallory'"); err != nil {
		t.Fatal(err)
	}
	_, body = c.do(http.MethodGet, "/admin/tenants/trail-co/audit/verify", nil, http.Header{"Hx-Request": {"true"}})
	if d := parse(t, body); d.Find(`[data-testid="chain-status"][data-ok="false"]`).Length() != 1 || !strings.Contains(d.Text(), "at event") {
		t.Fatalf("tampered tenant chain not reported: %s", body)
	}
}
