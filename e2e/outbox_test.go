package e2e

import (
	"regexp"
	"testing"

	"github.com/tenantry/tenantry/internal/mail"
)

// TestOutboxReadMessage: without SMTP the admin finds a queued message by searching the Outbox,
// opens it, and reads its text and its HTML, which renders inside a sandboxed frame (under the
// page's CSP) where its script does not run.
func TestOutboxReadMessage(t *testing.T) {
	b := setup(t, config{Width: phoneWidth, Height: phoneHeight})
	// Chromium reports the sandbox refusing the message's script: that is the point.
	b.mu.Lock()
	b.allowed = append(b.allowed, regexp.MustCompile(`^console error: Blocked script execution in 'about:srcdoc' because the document's frame is sandboxed`))
	b.mu.Unlock()
	_, err := mail.Enqueue(b.db.App, mail.Message{Kind: "invitation", DedupKey: "e2e:outbox:invite", To: "newcomer@outbox-e2e.example",
		Subject: "Welcome to Outbox E2E", Text: "Set your password: https://tenantry.test/set?token=e2e",
		HTML: `<h1 id="greeting">Welcome aboard</h1><script>document.body.dataset.ran = "yes"</script>`})
	if err != nil {
		t.Fatal(err)
	}
	b.signIn(adminEmail, adminPassword, "/admin")
	b.goTo("/admin/outbox")
	b.ok(b.expect.Locator(b.testID("outbox-delivery")).ToHaveAttribute("data-configured", "false"), "says SMTP is not configured")
	b.setMarker()
	b.ok(b.page.Locator("#f-outbox-q").Fill("outbox-e2e"), "search")
	rows := b.testID("outbox-row")
	b.ok(b.expect.Locator(rows).ToHaveCount(1), "one match")
	b.wantNoReload("search")
	b.wantPath("/admin/outbox?q=outbox-e2e")
	b.ok(b.expect.Locator(rows.First().GetByTestId("outbox-state")).ToHaveText("pending"), "pending without SMTP")
	b.wantFitsWidth("outbox list")
	b.screenshot("outbox-list-390")

	b.ok(rows.First().GetByTestId("outbox-subject").Click(), "open the message")
	b.ok(b.expect.Locator(b.testID("outbox-message-subject")).ToHaveText("Welcome to Outbox E2E"), "message page")
	b.ok(b.expect.Locator(b.testID("outbox-message-text")).ToContainText("token=e2e"), "text body")
	frame := b.page.FrameLocator(`[data-testid="outbox-message-html"]`)
	b.ok(b.expect.Locator(frame.Locator("#greeting")).ToHaveText("Welcome aboard"), "HTML rendered in the frame")
	ran, err := frame.Locator("body").GetAttribute("data-ran")
	b.ok(err, "read the frame body")
	if ran != "" {
		t.Fatal("the message's script ran inside the sandbox")
	}
	b.ok(b.expect.Locator(b.testID("outbox-retry")).ToHaveCount(0), "no Retry for a pending message")
	b.wantFitsWidth("outbox message")
	b.screenshot("outbox-message-390")
}
