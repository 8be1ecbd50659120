package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/quota"
)

// The admin's journey on the Quotas tab: every dimension with its bar and state, Edit swaps the
// row for a form, bad input comes back at the fields with nothing saved, Save swaps the updated
// row in and is audited. Executives see no Edit and cannot save.
func TestAdminQuotasTab(t *testing.T) {
	b := setup(t)
	tn := b.apiTenant(t)
	ctx := context.Background()
	quotas := quota.NewService(b.db)
	if _, err := quotas.SetLimit(ctx, "test", tn.ID, "compute_vcpu_hours", 50, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := quotas.Consume(ctx, tn.ID, "compute_vcpu_hours", 60, "k1"); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tab := "/admin/tenants/" + tn.Slug + "/quotas"
	rowOf := func(doc *goquery.Document, dim string) *goquery.Selection {
		return doc.Find(`[data-dimension="` + dim + `"]`)
	}

	res, body := c.get(tab)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("tab: %d", res.StatusCode)
	}
	doc := parse(t, body)
	if doc.Find(`[data-testid="tab-quotas"][aria-current="page"]`).Length() != 1 || doc.Find(`[data-testid="quota-row"]`).Length() != 6 {
		t.Fatalf("quota rows: %d", doc.Find(`[data-testid="quota-row"]`).Length())
	}
	compute := rowOf(doc, "compute_vcpu_hours")
	if compute.AttrOr("data-state", "") != "soft" || !strings.Contains(compute.Find(`[data-testid="quota-used"]`).Text(), "60 of 100") ||
		compute.Find(`[data-testid="quota-bar"]`).AttrOr("style", "") != "width: 60%;" && compute.Find(`[data-testid="quota-bar"]`).AttrOr("style", "") != "width: 60%" ||
		compute.Find(`[data-testid="quota-soft-marker"]`).Length() != 1 || compute.Find(`[data-testid="quota-state"]`).Text() != "Over soft limit" {
		t.Fatalf("compute row: state %q, %q, bar %q", compute.AttrOr("data-state", ""), compute.Text(), compute.Find(`[data-testid="quota-bar"]`).AttrOr("style", ""))
	}
	if rowOf(doc, "api_requests").Find(`[data-testid="quota-default"]`).Length() != 1 {
		t.Fatal("a dimension without an override does not say it is the plan default")
	}
	edit, ok := compute.Find(`[data-testid="quota-edit"]`).Attr("hx-get")
	if !ok {
		t.Fatal("no Edit for an admin")
	}
	token := c.token(tab + "/compute_vcpu_hours/edit")
	hx := http.Header{"HX-Request": {"true"}}

	res, body = c.do(http.MethodGet, edit, nil, hx)
	form := parse(t, body)
	if res.StatusCode != http.StatusOK || form.Find(`[data-testid="quota-form"]`).Length() != 1 || strings.Contains(body, "<html") {
		t.Fatalf("edit: %d\n%s", res.StatusCode, body)
	}
	if v, _ := form.Find(`#f-hard`).Attr("value"); v != "100" {
		t.Fatalf("hard input = %q", v)
	}
	action, _ := form.Find(`[data-testid="quota-form"]`).Attr("hx-post")

	t.Run("errors at the fields, input kept, nothing saved", func(t *testing.T) {
		for _, tc := range []struct {
			soft, hard, field string
		}{
			{"200", "100", "soft"},
			{"-1", "100", "soft"},
			{"10", "lots", "hard"},
			{"10", "", "hard"},
			{"1.5", "10", "soft"},
		} {
			res, body := c.do(http.MethodPost, action, url.Values{"_csrf": {token}, "soft": {tc.soft}, "hard": {tc.hard}}, hx)
			doc := parse(t, body)
			if res.StatusCode != http.StatusOK || doc.Find(`[data-testid="error-`+tc.field+`"]`).Length() != 1 {
				t.Fatalf("%v: status %d\n%s", tc, res.StatusCode, body)
			}
			if v, _ := doc.Find(`#f-soft`).Attr("value"); v != tc.soft {
				t.Fatalf("soft input not kept: %q", v)
			}
		}
		// Without htmx: the whole page, 422.
		res, body := c.post(action, url.Values{"_csrf": {token}, "soft": {"5"}, "hard": {"1"}})
		if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-soft"]`).Length() != 1 {
			t.Fatalf("plain post: %d", res.StatusCode)
		}
		if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Soft != 50 || l.Hard != 100 {
			t.Fatalf("invalid input changed the limit: %+v", l)
		}
	})

	res, body = c.do(http.MethodPost, action, url.Values{"_csrf": {token}, "soft": {"100"}, "hard": {"1,000"}}, hx)
	doc = parse(t, body)
	row := doc.Find(`[data-testid="quota-row"]`)
	if res.StatusCode != http.StatusOK || row.Length() != 1 || row.AttrOr("data-state", "") != "ok" || !strings.Contains(row.Text(), "60 of 1,000") {
		t.Fatalf("save: %d\n%s", res.StatusCode, body)
	}
	if l, _ := quotas.Limit(ctx, tn.ID, "compute_vcpu_hours"); l.Soft != 100 || l.Hard != 1000 {
		t.Fatalf("limit not saved: %+v", l)
	}
	_, body = c.get("/admin/tenants/" + tn.Slug + "/audit")
	if a := parse(t, body).Find(`[data-testid="audit-row"]`).Text(); !strings.Contains(a, "quota.limit_changed") || !strings.Contains(a, admin.Email) {
		t.Fatalf("audit: %q", a)
	}
	t.Run("cancel and unknown dimension", func(t *testing.T) {
		res, body := c.do(http.MethodGet, tab+"/compute_vcpu_hours", nil, hx)
		if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="quota-row"]`).Length() != 1 {
			t.Fatalf("cancel: %d", res.StatusCode)
		}
		if res, _ := c.get(tab + "/bananas/edit"); res.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown dimension: %d", res.StatusCode)
		}
	})
	t.Run("without htmx, edit is the whole page and save redirects", func(t *testing.T) {
		res, body := c.get(tab + "/storage_gb/edit")
		if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="quota-form"]`).Length() != 1 || parse(t, body).Find(`[data-testid="quota-row"]`).Length() != 5 {
			t.Fatalf("edit page: %d", res.StatusCode)
		}
		res, _ = c.post(tab+"/storage_gb", url.Values{"_csrf": {token}, "soft": {"1"}, "hard": {"2"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tab {
			t.Fatalf("save: %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
	})
	t.Run("executives read only", func(t *testing.T) {
		exec := b.user(t, identity.RoleExecutive)
		ec := b.client(t)
		ec.signIn(exec.Email)
		res, body := ec.get(tab)
		if res.StatusCode != http.StatusOK || parse(t, body).Find(`[data-testid="quota-row"]`).Length() != 6 || parse(t, body).Find(`[data-testid="quota-edit"]`).Length() != 0 {
			t.Fatalf("executive tab: %d", res.StatusCode)
		}
		if res, _ := ec.get(tab + "/compute_vcpu_hours/edit"); res.StatusCode != http.StatusForbidden {
			t.Fatalf("executive edit form: %d", res.StatusCode)
		}
		etoken := ec.token("/admin/tenants/" + tn.Slug)
		if res, _ := ec.post(action, url.Values{"_csrf": {etoken}, "soft": {"1"}, "hard": {"1"}}); res.StatusCode != http.StatusForbidden {
			t.Fatalf("executive save: %d", res.StatusCode)
		}
	})
}
