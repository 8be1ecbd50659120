package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

// The Quotas tab's grants, burst, alert and pool forms: bad input comes back at the fields with
// nothing saved; good input is saved, shown and audited; the usage chart renders from the local
// echarts with no other script host.
func TestQuotaDynamicsForms(t *testing.T) {
	b := setup(t)
	tn, key := b.quotaTenant(t, 50, 100)
	ctx := context.Background()
	quotas := quota.NewService(b.db)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/quotas"
	token := c.token(tab)

	// Usage, rolled up, so the chart has data.
	if _, err := quotas.Consume(ctx, tn.ID, "compute_vcpu_hours", 60, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := quotas.RollUp(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	res, body := c.get(tab + "?dimension=compute_vcpu_hours")
	doc := parse(t, body)
	if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="quota-chart"][data-dimension="compute_vcpu_hours"]`).Length() != 1 ||
		doc.Find(`script[src="/static/js/echarts.min.js"]`).Length() != 1 || !strings.Contains(body, "echarts.init(") {
		t.Fatalf("chart: %d", res.StatusCode)
	}
	if strings.Contains(body, "go-echarts.github.io") || strings.Contains(body, "cdn.") || strings.Contains(body, `src="http`) {
		t.Fatal("a script from another host")
	}
	res, body = c.do(http.MethodGet, "/admin/tenants/"+tn.Slug+"/quotas-chart?dimension=compute_vcpu_hours&granularity=day", nil, http.Header{"HX-Request": {"true"}})
	if res.StatusCode != http.StatusOK || strings.Contains(body, "<html") || parse(t, body).Find(`[data-granularity="day"][hx-trigger="every 30s"]`).Length() != 1 ||
		!strings.Contains(body, `"data":[`) {
		t.Fatalf("chart fragment: %d\n%s", res.StatusCode, body)
	}
	if res, body := c.get("/admin/quotas/chart?dimension=storage_gb"); res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="quota-chart"]`).Length() != 1 {
		t.Fatalf("platform chart: %d", res.StatusCode)
	}
	if _, body := c.get("/admin/quotas"); parse(t, body).Find(`[data-testid="quota-chart-section"]`).Length() != 1 {
		t.Fatal("no chart on the platform Quotas page")
	}

	t.Run("grants", func(t *testing.T) {
		res, body := c.post(tab+"/grants", url.Values{"_csrf": {token}, "dimension": {"compute_vcpu_hours"}, "amount": {"0"}, "ends_at": {"2001-01-01T00:00"}, "reason": {""}})
		doc := parse(t, body)
		if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-amount"]`).Length() != 1 || doc.Find(`[data-testid="error-reason"]`).Length() != 1 {
			t.Fatalf("bad grant: %d", res.StatusCode)
		}
		if gs, _ := quotas.Grants(ctx, tn.ID, 10); len(gs) != 0 {
			t.Fatal("a bad grant was saved")
		}
		ends := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04")
		res, _ = c.post(tab+"/grants", url.Values{"_csrf": {token}, "dimension": {"compute_vcpu_hours"}, "amount": {"40"}, "ends_at": {ends}, "reason": {"Launch week"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("grant: %d", res.StatusCode)
		}
		_, body = c.get(tab)
		doc = parse(t, body)
		if doc.Find(`[data-testid="grant-row"][data-state="active"]`).Length() != 1 ||
			!strings.Contains(doc.Find(`[data-dimension="compute_vcpu_hours"] [data-testid="quota-grants"]`).Text(), "+40 granted") {
			t.Fatalf("grant not shown:\n%s", doc.Find(`#quota-grants`).Text())
		}
		if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Effective != 140 {
			t.Fatalf("effective %d", l.Effective)
		}
		// The API shows it, with the burst and alert state.
		res, raw := b.apiCall(t, http.MethodGet, "/api/v1/quota", key, nil)
		var out struct {
			Dimensions []struct {
				Dimension      string `json:"dimension"`
				EffectiveLimit int64  `json:"effective_limit"`
				Grants         []struct {
					Amount int64  `json:"amount"`
					Reason string `json:"reason"`
					State  string `json:"state"`
				} `json:"grants"`
				Burst struct {
					State string `json:"state"`
				} `json:"burst"`
				Alerts struct {
					Thresholds []int `json:"thresholds"`
					Crossed    []int `json:"crossed"`
				} `json:"alerts"`
			} `json:"dimensions"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("api: %d %v", res.StatusCode, err)
		}
		found := false
		for _, d := range out.Dimensions {
			if d.Dimension == "compute_vcpu_hours" {
				found = d.EffectiveLimit == 140 && len(d.Grants) == 1 && d.Grants[0].Amount == 40 && d.Grants[0].State == "active" &&
					d.Burst.State == "off" && fmt.Sprint(d.Alerts.Thresholds) == "[50 75 90 100]" && d.Alerts.Crossed != nil
			}
		}
		if !found {
			t.Fatalf("api body: %s", raw)
		}
		gs, _ := quotas.Grants(ctx, tn.ID, 10)
		if res, _ := c.post(fmt.Sprintf("%s/grants/%d/revoke", tab, gs[0].ID), url.Values{"_csrf": {token}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke: %d", res.StatusCode)
		}
		if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Effective != 100 {
			t.Fatalf("after revoke: %d", l.Effective)
		}
	})

	t.Run("burst in the inline edit", func(t *testing.T) {
		hx := http.Header{"HX-Request": {"true"}}
		action := tab + "/compute_vcpu_hours"
		res, body := c.do(http.MethodPost, action, url.Values{"_csrf": {token}, "soft": {"50"}, "hard": {"100"}, "burst_percent": {"150"}, "burst_window": {"1h"}}, hx)
		if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="error-burst_percent"]`).Length() != 1 {
			t.Fatalf("bad burst: %d\n%s", res.StatusCode, body)
		}
		res, body = c.do(http.MethodPost, action, url.Values{"_csrf": {token}, "soft": {"50"}, "hard": {"100"}, "burst_percent": {"20"}, "burst_window": {"soon"}}, hx)
		if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="error-burst_window"]`).Length() != 1 {
			t.Fatalf("bad window: %d", res.StatusCode)
		}
		if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Burst.Percent != 0 {
			t.Fatal("bad burst saved")
		}
		res, body = c.do(http.MethodPost, action, url.Values{"_csrf": {token}, "soft": {"50"}, "hard": {"100"}, "burst_percent": {"20"}, "burst_window": {"30m"}}, hx)
		if res.StatusCode != http.StatusOK || !strings.Contains(parse(t, body).Find(`[data-testid="quota-burst"]`).Text(), "+20% for 30m") {
			t.Fatalf("burst: %d\n%s", res.StatusCode, body)
		}
		if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Burst.Percent != 20 || l.Burst.Window != 30*time.Minute {
			t.Fatalf("burst saved: %+v", l.Burst)
		}
	})

	t.Run("alert thresholds, webhook, history and the bell", func(t *testing.T) {
		res, body := c.post(tab+"/thresholds", url.Values{"_csrf": {token}, "thresholds": {"50, lots"}})
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-thresholds"]`).Length() != 1 {
			t.Fatalf("bad thresholds: %d", res.StatusCode)
		}
		if res, _ := c.post(tab+"/thresholds", url.Values{"_csrf": {token}, "thresholds": {"55"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("thresholds: %d", res.StatusCode)
		}
		if res, _ := c.post(tab+"/thresholds", url.Values{"_csrf": {token}, "dimension": {"seats"}, "thresholds": {"80, 95"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("seat thresholds: %d", res.StatusCode)
		}
		if th, _ := quotas.Thresholds(ctx, tn.ID, "seats"); fmt.Sprint(th) != "[80 95]" {
			t.Fatalf("seat thresholds: %v", th)
		}
		if th, _ := quotas.Thresholds(ctx, tn.ID, "storage_gb"); fmt.Sprint(th) != "[55]" {
			t.Fatalf("storage thresholds: %v", th)
		}
		res, body = c.post(tab+"/webhook", url.Values{"_csrf": {token}, "url": {"javascript:alert(1)"}})
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-url"]`).Length() != 1 {
			t.Fatalf("bad webhook: %d", res.StatusCode)
		}
		if res, _ := c.post(tab+"/webhook", url.Values{"_csrf": {token}, "url": {"https://example.com/hook"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("webhook: %d", res.StatusCode)
		}
		if _, err := quotas.EvaluateAlerts(ctx); err != nil {
			t.Fatal(err)
		}
		_, body = c.get(tab)
		doc := parse(t, body)
		if doc.Find(`[data-testid="alert-row"][data-kind="crossed"]`).Length() != 1 || doc.Find(`[data-testid="thresholds-effective"]`).Text() != "55 %" ||
			doc.Find(`#f-url`).AttrOr("value", "") != "https://example.com/hook" {
			t.Fatalf("alerts section:\n%s", doc.Find("#quota-alerts").Text())
		}
		_, body = c.do(http.MethodGet, "/admin/quotas/bell", nil, http.Header{"HX-Request": {"true"}})
		if n := parse(t, body).Find(`[data-testid="quota-bell-count"]`).Text(); n == "" || n == "0" {
			t.Fatalf("bell: %q", body)
		}
		if parse(t, body).Find(`a[href="/admin/quotas/alerts"]`).Length() != 1 {
			t.Fatal("the bell links nowhere")
		}
		if _, body := c.get("/admin/tenants"); parse(t, body).Find(`[data-testid="quota-bell"][hx-get="/admin/quotas/bell"]`).Length() != 1 {
			t.Fatal("no bell in the header")
		}
		_, body = c.get("/admin/quotas/alerts?q=" + url.QueryEscape(tn.Slug))
		if parse(t, body).Find(`[data-testid="alert-row"]`).Length() != 1 || parse(t, body).Find(`[data-testid="threshold-settings"]`).Length() != 0 {
			t.Fatal("alerts page: the tenant's alert is not found by its slug")
		}
		if _, body := c.get("/admin/quotas/alerts?q=no-such-tenant-xyz"); parse(t, body).Find(`[data-testid="alert-row"]`).Length() != 0 {
			t.Fatal("search matches everything")
		}
		if _, body := c.get(tab); parse(t, body).Find(`[data-testid="threshold-settings"] li`).Length() != 2 {
			t.Fatal("the tenant's threshold settings are not listed")
		}
		ptoken := c.token("/admin/quotas/alerts")
		if res, body := c.post("/admin/quotas/thresholds", url.Values{"_csrf": {ptoken}, "thresholds": {"0"}}); res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-thresholds"]`).Length() != 1 {
			t.Fatalf("bad platform thresholds: %d", res.StatusCode)
		}
		if res, _ := c.post("/admin/quotas/alerts/read", url.Values{"_csrf": {ptoken}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("read: %d", res.StatusCode)
		}
		if n, _ := quotas.UnreadAlerts(ctx); n != 0 {
			t.Fatalf("unread after read: %d", n)
		}
	})

	t.Run("parent pool refusal at the field", func(t *testing.T) {
		kid, err := tenant.NewService(b.db, dbtest.Logger(t)).Create(ctx, "test", tenant.NewTenant{Slug: tn.Slug + "-kid", Name: "Kid", PlanKey: "free", ParentSlug: tn.Slug})
		if err != nil {
			t.Fatal(err)
		}
		res, body := c.post(tab+"/pools", url.Values{"_csrf": {token}, "dimension": {"seats"}, "cap": {"1"}})
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-cap"]`).Length() != 1 {
			t.Fatalf("pool below held: %d", res.StatusCode)
		}
		if res, _ := c.post(tab+"/pools", url.Values{"_csrf": {token}, "dimension": {"seats"}, "cap": {"5"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("pool: %d", res.StatusCode)
		}
		res, body = c.do(http.MethodPost, "/admin/tenants/"+kid.Slug+"/quotas/seats", url.Values{"_csrf": {token}, "soft": {"6"}, "hard": {"6"}}, http.Header{"HX-Request": {"true"}})
		if e := parse(t, body).Find(`[data-testid="error-hard"]`).Text(); res.StatusCode != http.StatusOK || !strings.Contains(e, tn.Name) || !strings.Contains(e, "pool") {
			t.Fatalf("pool refusal: %d %q", res.StatusCode, e)
		}
		if _, body := c.get(tab); parse(t, body).Find(`[data-testid="pool-row"][data-dimension="seats"]`).Length() != 1 {
			t.Fatal("pool not listed")
		}
	})
}

// Scaling rules: field errors, then a rule, its dry run (nothing changes) and its apply (audited
// with the rule as the reason).
func TestQuotaRulesPages(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.apiTenant(t)
	quotas := quota.NewService(b.db)
	if _, err := quotas.SetLimit(ctx, "test", tn.ID, "api_requests", 800, 1000); err != nil {
		t.Fatal(err)
	}
	// Backdate the limit's last change so the last three days count, and make them busy.
	if _, err := b.db.OwnerPool.Exec(ctx, "UPDATE tenantry.quota_limits SET updated_at = now() - interval '10 days' WHERE tenant_id = $1", tn.ID); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := 1; i <= 3; i++ {
		if _, err := b.db.OwnerPool.Exec(ctx, `INSERT INTO tenantry.usage_rollups (tenant_id, dimension, granularity, bucket_start, total, peak, events)
			VALUES ($1, 'api_requests', 'day', $2, 950, 950, 1)`, tn.ID, today.AddDate(0, 0, -i)); err != nil {
			t.Fatal(err)
		}
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	token := c.token("/admin/quotas/rules")
	res, body := c.post("/admin/quotas/rules", url.Values{"_csrf": {token}, "name": {""}, "dimension": {"api_requests"}, "threshold_percent": {"500"}, "days": {"3"}, "raise_percent": {"25"}, "max_hard": {"x"}})
	doc := parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-max_hard"]`).Length() != 1 {
		t.Fatalf("bad rule: %d", res.StatusCode)
	}
	res, body = c.post("/admin/quotas/rules", url.Values{"_csrf": {token}, "name": {""}, "dimension": {"api_requests"}, "threshold_percent": {"500"}, "days": {"3"}, "raise_percent": {"25"}, "max_hard": {"5000"}})
	doc = parse(t, body)
	if res.StatusCode != http.StatusUnprocessableEntity || doc.Find(`[data-testid="error-name"]`).Length() != 1 || doc.Find(`[data-testid="error-threshold_percent"]`).Length() != 1 {
		t.Fatalf("bad rule: %d", res.StatusCode)
	}
	if rs, _ := quotas.Rules(ctx); len(rs) != 0 {
		t.Fatal("a bad rule was saved")
	}
	res, _ = c.post("/admin/quotas/rules", url.Values{"_csrf": {token}, "name": {"Busy APIs"}, "dimension": {"api_requests"}, "plan": {"free"}, "threshold_percent": {"85"}, "days": {"3"}, "raise_percent": {"25"}, "max_hard": {"5000"}, "notify": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rule: %d", res.StatusCode)
	}
	rs, _ := quotas.Rules(ctx)
	if len(rs) != 1 || rs[0].Enabled || !rs[0].Notify {
		t.Fatalf("rules: %+v", rs)
	}
	_, body = c.get("/admin/quotas/rules")
	if parse(t, body).Find(`[data-testid="rule-row"]`).Length() != 1 || strings.TrimSpace(parse(t, body).Find(`[data-testid="rule-toggle"]`).Text()) != "Enable Busy APIs" {
		t.Fatal("rule not listed")
	}
	if res, _ := c.post(fmt.Sprintf("/admin/quotas/rules/%d/toggle", rs[0].ID), url.Values{"_csrf": {token}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("toggle: %d", res.StatusCode)
	}
	if r, _ := quotas.Rule(ctx, rs[0].ID); !r.Enabled {
		t.Fatal("not enabled")
	}
	preview := fmt.Sprintf("/admin/quotas/rules/%d/preview", rs[0].ID)
	_, body = c.get(preview)
	row := parse(t, body).Find(`[data-testid="preview-row"][data-slug="` + tn.Slug + `"]`)
	if row.Length() != 1 || row.Find(`[data-testid="preview-new"]`).Text() != "1,250" {
		t.Fatalf("preview:\n%s", body)
	}
	if l, _ := quotas.Limit(ctx, tn.ID, "api_requests"); l.Hard != 1000 {
		t.Fatal("the preview changed the limit")
	}
	res, body = c.post(fmt.Sprintf("/admin/quotas/rules/%d/apply", rs[0].ID), url.Values{"_csrf": {token}})
	if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="preview-row"]`).Length() != 1 {
		t.Fatalf("apply: %d", res.StatusCode)
	}
	if l, _ := quotas.Limit(ctx, tn.ID, "api_requests"); l.Hard != 1250 {
		t.Fatalf("after apply: %+v", l)
	}
	_, body = c.get("/admin/tenants/" + tn.Slug + "/audit")
	if a := parse(t, body).Find(`[data-testid="audit-row"]`).Text(); !strings.Contains(a, "quota.limit_scaled") || !strings.Contains(a, "Busy APIs") {
		t.Fatalf("audit: %q", a)
	}
	exec := b.user(t, identity.RoleExecutive)
	ec := b.client(t)
	ec.signIn(exec.Email)
	if _, body := ec.get("/admin/quotas/rules"); parse(t, body).Find(`[data-testid="rule-form"]`).Length() != 0 {
		t.Fatal("executives see the rule form")
	}
	if res, _ := ec.post(fmt.Sprintf("/admin/quotas/rules/%d/apply", rs[0].ID), url.Values{"_csrf": {ec.token("/admin/quotas/rules")}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive apply: %d", res.StatusCode)
	}
}
