package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/mail"
)

func TestOutboxPage(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	tag := "obx" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", ""))

	// Empty state for a search that matches nothing; the nav links here.
	res, body := c.get("/admin/outbox?q=" + tag)
	doc := parse(t, body)
	if res.StatusCode != 200 || doc.Find(`[data-testid="empty-state"]`).Length() != 1 {
		t.Fatalf("empty search: %d, empty state %d", res.StatusCode, doc.Find(`[data-testid="empty-state"]`).Length())
	}
	if doc.Find(`a[href="/admin/outbox"][aria-current="page"]`).Length() == 0 {
		t.Fatal("the Outbox is not the current item of the navigation")
	}
	if v, _ := doc.Find(`[data-testid="outbox-delivery"]`).Attr("data-configured"); v != "false" {
		t.Fatalf("delivery banner says configured=%q without SMTP", v)
	}

	// 55 messages: one with HTML that tries to run a script, one failed.
	err := b.db.App.Transaction(func(tx *gorm.DB) error {
		for i := 0; i < 55; i++ {
			m := mail.Message{Kind: "test." + tag, To: fmt.Sprintf("%s-%d@example.com", tag, i), Subject: fmt.Sprintf("Hello %s %d", tag, i), Text: "Plain body " + tag}
			if i == 0 {
				m.HTML = `<p id="inner">Hi</p><script>parent.document.title='owned'</script>`
			}
			if _, err := mail.Enqueue(tx, m); err != nil {
				return err
			}
		}
		return tx.Exec(`UPDATE tenantry.mail_outbox SET state = 'failed', attempts = 8, last_error = 'connection refused'
			WHERE to_addr = ?`, tag+"-1@example.com").Error
	})
	if err != nil {
		t.Fatal(err)
	}

	_, body = c.get("/admin/outbox?q=" + tag)
	doc = parse(t, body)
	if n := doc.Find(`[data-testid="outbox-row"]`).Length(); n != 50 {
		t.Fatalf("page 1 has %d rows, want 50", n)
	}
	if total := doc.Find(`[data-testid="total"]`).Text(); total != "55" {
		t.Fatalf("total %q, want 55", total)
	}
	_, body = c.get("/admin/outbox?q=" + tag + "&page=2")
	if n := parse(t, body).Find(`[data-testid="outbox-row"]`).Length(); n != 5 {
		t.Fatalf("page 2 has %d rows, want 5", n)
	}
	// State filter and search by recipient, as an htmx fragment.
	res, body = c.do(http.MethodGet, "/admin/outbox?state=failed&q="+url.QueryEscape(tag+"-1@"), nil, http.Header{"Hx-Request": {"true"}})
	doc = parse(t, body)
	if strings.Contains(body, "<html") || doc.Find(`[data-testid="outbox-row"]`).Length() != 1 {
		t.Fatalf("failed filter fragment: %d rows, full page %v", doc.Find(`[data-testid="outbox-row"]`).Length(), strings.Contains(body, "<html"))
	}
	if st := doc.Find(`[data-testid="outbox-state"]`).Text(); st != "failed" {
		t.Fatalf("state %q", st)
	}
	failedID, _ := doc.Find(`[data-testid="outbox-row"]`).Attr("data-id")

	// The message with HTML: text shown, HTML only inside a sandboxed iframe.
	var first mail.Queued
	b.db.App.Where("to_addr = ?", tag+"-0@example.com").Take(&first)
	_, body = c.get(fmt.Sprintf("/admin/outbox/%d", first.ID))
	doc = parse(t, body)
	if got := doc.Find(`[data-testid="outbox-message-text"]`).Text(); got != "Plain body "+tag {
		t.Fatalf("text %q", got)
	}
	frame := doc.Find(`iframe[data-testid="outbox-message-html"]`)
	if sb, ok := frame.Attr("sandbox"); !ok || sb != "" {
		t.Fatalf("iframe sandbox = %q (present %v), want an empty sandbox", sb, ok)
	}
	if src, _ := frame.Attr("srcdoc"); !strings.Contains(src, `<p id="inner">Hi</p>`) {
		t.Fatalf("srcdoc %q", src)
	}
	if doc.Find(`#inner`).Length() != 0 || strings.Contains(body, "<script>parent") {
		t.Fatal("the message's HTML is part of the admin page itself")
	}
	if doc.Find(`[data-testid="outbox-retry"]`).Length() != 0 {
		t.Fatal("a pending message offers Retry")
	}

	// Retry the failed one: CSRF required, audited, back to pending.
	path := "/admin/outbox/" + failedID
	if res, _ := c.post(path+"/retry", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("retry without CSRF: %d", res.StatusCode)
	}
	tok := c.token(path)
	if res, _ := c.post(path+"/retry", url.Values{"_csrf": {tok}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", res.StatusCode)
	}
	var q mail.Queued
	b.db.App.Where("to_addr = ?", tag+"-1@example.com").Take(&q)
	if q.State != mail.StatePending || q.Attempts != 0 {
		t.Fatalf("after retry: %s, %d attempts", q.State, q.Attempts)
	}
	var events int64
	b.db.App.Table("tenantry.audit_events").Where("action = 'mail.retried' AND actor = ? AND target = ?", admin.Email, q.ToAddr).Count(&events)
	if events != 1 {
		t.Fatalf("%d audit events for the retry", events)
	}
	_, body = c.get(path)
	if !strings.Contains(body, "queued again") {
		t.Fatal("no flash after retry")
	}
	// A second retry is refused with a message: it is pending now.
	if res, _ := c.post(path+"/retry", url.Values{"_csrf": {tok}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second retry: %d", res.StatusCode)
	}
	if _, body = c.get(path); !strings.Contains(body, "Only a failed message can be retried") {
		t.Fatal("no explanation when retrying a pending message")
	}
	if res, _ := c.get("/admin/outbox/999999999"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown message: %d", res.StatusCode)
	}
}

func TestOutboxRetryRefusedForExecutives(t *testing.T) {
	b := setup(t)
	exec := b.user(t, identity.RoleExecutive)
	c := b.client(t)
	c.signIn(exec.Email)
	tag := "obxexec"
	if _, err := mail.Enqueue(b.db.App, mail.Message{Kind: "test", To: tag + "@example.com", Subject: "S", Text: "T"}); err != nil {
		t.Fatal(err)
	}
	var q mail.Queued
	b.db.App.Where("to_addr = ?", tag+"@example.com").Take(&q)
	b.db.App.Exec(`UPDATE tenantry.mail_outbox SET state = 'failed' WHERE id = ?`, q.ID)
	path := fmt.Sprintf("/admin/outbox/%d", q.ID)
	_, body := c.get(path)
	if parse(t, body).Find(`[data-testid="outbox-retry"]`).Length() != 0 {
		t.Fatal("an executive is offered Retry")
	}
	res, _ := c.post(path+"/retry", url.Values{"_csrf": {c.token("/admin/outbox")}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive retry: %d", res.StatusCode)
	}
	b.db.App.Where("id = ?", q.ID).Take(&q)
	if q.State != mail.StateFailed {
		t.Fatalf("state %s after an executive's retry", q.State)
	}
}
