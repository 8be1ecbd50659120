package mail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/jobs"
	tmail "github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/mail/mailtest"
)

// transportTo returns a go-mail transport to the test server at addr (plain, no TLS).
func transportTo(t *testing.T, addr string) *tmail.SMTPTransport {
	t.Helper()
	cfg, err := tmail.ParseSMTPURL("smtp://"+addr+"?tls=none", "Tenantry Test <no-reply@tenantry.test>")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 5 * time.Second
	return tmail.NewSMTPTransport(cfg)
}

// freshOutbox empties the package database's outbox so each test sees only its own messages.
func freshOutbox(t *testing.T) *db.DB {
	t.Helper()
	d := dbtest.Open(t)
	if err := d.App.Exec(`DELETE FROM tenantry.mail_outbox`).Error; err != nil {
		t.Fatal(err)
	}
	return d
}

func enqueue(t *testing.T, d *db.DB, m tmail.Message) {
	t.Helper()
	if _, err := tmail.Enqueue(d.App, m); err != nil {
		t.Fatal(err)
	}
}

func row(t *testing.T, d *db.DB, to string) tmail.Queued {
	t.Helper()
	var q tmail.Queued
	if err := d.App.Where("to_addr = ?", to).Take(&q).Error; err != nil {
		t.Fatal(err)
	}
	return q
}

func TestDeliverThroughSMTPServer(t *testing.T) {
	d := freshOutbox(t)
	srv := mailtest.Start(t, "")
	enqueue(t, d, tmail.Message{Kind: "invitation", To: "ann@example.com", Subject: "You are invited to Acme",
		Text: "Set your password: https://tenantry.test/set?token=abc", HTML: "<p>Set your <b>password</b></p>"})

	res, err := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Claimed != 1 {
		t.Fatalf("result %+v, want one sent", res)
	}
	got := srv.Received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	if len(got[0].To) != 1 || got[0].To[0] != "ann@example.com" || got[0].From != "no-reply@tenantry.test" {
		t.Fatalf("envelope from %q to %v", got[0].From, got[0].To)
	}
	msg := got[0].Parse(t)
	if s := msg.Header.Get("Subject"); s != "You are invited to Acme" {
		t.Fatalf("subject %q", s)
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "ann@example.com") {
		t.Fatalf("To header %q", to)
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<outbox-") {
		t.Fatalf("Message-ID %q is not derived from the outbox row", id)
	}
	if text, html := msg.Text, msg.HTML; text != "Set your password: https://tenantry.test/set?token=abc" || html != "<p>Set your <b>password</b></p>" {
		t.Fatalf("text part %q, html part %q", text, html)
	}
	q := row(t, d, "ann@example.com")
	if q.State != tmail.StateSent || q.SentAt == nil || q.Attempts != 1 || q.LastError != "" {
		t.Fatalf("row after delivery: state %s sent_at %v attempts %d error %q", q.State, q.SentAt, q.Attempts, q.LastError)
	}

	// Nothing is due any more: a second run sends nothing.
	res, err = tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background())
	if err != nil || res.Claimed != 0 || len(srv.Received()) != 1 {
		t.Fatalf("second run: %+v, %v, server has %d", res, err, len(srv.Received()))
	}
}

func TestSMTPDownMessageWaitsThenDelivers(t *testing.T) {
	d := freshOutbox(t)
	addr := mailtest.FreeAddr(t) // nothing listens here yet
	enqueue(t, d, tmail.Message{Kind: "signup.verify", To: "bob@example.com", Subject: "Verify", Text: "Click the link"})
	dl := tmail.NewDeliverer(d.App, transportTo(t, addr), dbtest.Logger(t))

	res, err := dl.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Retrying != 1 || res.Sent != 0 {
		t.Fatalf("result %+v, want one retrying", res)
	}
	q := row(t, d, "bob@example.com")
	if q.State != tmail.StatePending || q.Attempts != 1 || q.LastError == "" {
		t.Fatalf("after a failed attempt: state %s attempts %d error %q", q.State, q.Attempts, q.LastError)
	}
	if wait := time.Until(q.NextAttemptAt); wait < 20*time.Second || wait > 40*time.Second {
		t.Fatalf("next attempt in %v, want the first backoff of about 30 s", wait)
	}
	// Not due yet: another run leaves it alone.
	if res, _ := dl.RunOnce(context.Background()); res.Claimed != 0 {
		t.Fatalf("claimed %d messages before their next attempt", res.Claimed)
	}

	srv := mailtest.Start(t, addr)
	d.App.Exec(`UPDATE tenantry.mail_outbox SET next_attempt_at = now() WHERE id = ?`, q.ID) // the backoff has passed
	res, err = dl.RunOnce(context.Background())
	if err != nil || res.Sent != 1 {
		t.Fatalf("after the server came up: %+v, %v", res, err)
	}
	if got := srv.Received(); len(got) != 1 || got[0].To[0] != "bob@example.com" {
		t.Fatalf("server received %+v", got)
	}
	q = row(t, d, "bob@example.com")
	if q.State != tmail.StateSent || q.Attempts != 2 || q.LastError != "" {
		t.Fatalf("after delivery: state %s attempts %d error %q", q.State, q.Attempts, q.LastError)
	}
}

func TestGivesUpAfterMaxAttemptsAndRetryRequeues(t *testing.T) {
	d := freshOutbox(t)
	addr := mailtest.FreeAddr(t)
	enqueue(t, d, tmail.Message{Kind: "quota.alert", To: "ops@example.com", Subject: "Quota", Text: "Near the limit"})
	dl := tmail.NewDeliverer(d.App, transportTo(t, addr), dbtest.Logger(t))
	dl.MaxAttempts = 3
	dl.Backoff = func(int) time.Duration { return 0 }
	for i := 0; i < 3; i++ {
		if _, err := dl.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	q := row(t, d, "ops@example.com")
	if q.State != tmail.StateFailed || q.Attempts != 3 || q.LastError == "" {
		t.Fatalf("after 3 failures: state %s attempts %d error %q", q.State, q.Attempts, q.LastError)
	}
	if res, _ := dl.RunOnce(context.Background()); res.Claimed != 0 {
		t.Fatal("a failed message was claimed again without a retry")
	}

	if _, err := tmail.Retry(context.Background(), d.App, "admin@example.com", q.ID); err != nil {
		t.Fatal(err)
	}
	var audited int64
	d.App.Table("tenantry.audit_events").Where("action = 'mail.retried' AND actor = 'admin@example.com' AND target = 'ops@example.com'").Count(&audited)
	if audited != 1 {
		t.Fatalf("%d audit events for the retry, want 1", audited)
	}
	if _, err := tmail.Retry(context.Background(), d.App, "admin@example.com", q.ID); !errors.Is(err, tmail.ErrNotFailed) {
		t.Fatalf("retrying a pending message: %v, want ErrNotFailed", err)
	}
	srv := mailtest.Start(t, addr)
	if res, err := dl.RunOnce(context.Background()); err != nil || res.Sent != 1 {
		t.Fatalf("after retry: %+v %v", res, err)
	}
	if len(srv.Received()) != 1 {
		t.Fatalf("server received %d", len(srv.Received()))
	}
}

func TestDedupKeyDeliversOnce(t *testing.T) {
	d := freshOutbox(t)
	srv := mailtest.Start(t, "")
	m := tmail.Message{Kind: "invitation", DedupKey: "invite:42", To: "cat@example.com", Subject: "Invited", Text: "Hello"}
	enqueue(t, d, m)
	enqueue(t, d, m) // a step that ran twice after a crash
	if _, err := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	enqueue(t, d, m) // and again after delivery
	if _, err := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Received()); n != 1 {
		t.Fatalf("server received %d copies, want 1", n)
	}
}

func TestConcurrentWorkersNeverSendARowTwice(t *testing.T) {
	d := freshOutbox(t)
	srv := mailtest.Start(t, "")
	const n = 120
	err := d.App.Transaction(func(tx *gorm.DB) error {
		for i := 0; i < n; i++ {
			if _, err := tmail.Enqueue(tx, tmail.Message{Kind: "bulk", To: fmt.Sprintf("u%d@example.com", i), Subject: fmt.Sprintf("msg %d", i), Text: "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimedBy := map[string]int{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t))
			dl.Batch = 7
			res, err := dl.RunOnce(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			claimedBy[fmt.Sprint(len(claimedBy))] = res.Claimed
			mu.Unlock()
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, r := range srv.Received() {
		seen[r.To[0]]++
	}
	for to, k := range seen {
		if k != 1 {
			t.Errorf("%s received %d copies", to, k)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct recipients got mail, want %d (claims per worker %v)", len(seen), n, claimedBy)
	}
	var unsent int64
	d.App.Model(&tmail.Queued{}).Where("state <> 'sent' OR attempts <> 1").Count(&unsent)
	if unsent != 0 {
		t.Fatalf("%d rows not sent exactly once", unsent)
	}
	t.Logf("claims per worker: %v", claimedBy)
}

func TestCrashAfterClaimIsRedeliveredAfterLease(t *testing.T) {
	d := freshOutbox(t)
	srv := mailtest.Start(t, "")
	enqueue(t, d, tmail.Message{Kind: "invitation", To: "dan@example.com", Subject: "Invited", Text: "Hello"})
	crashed := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t))
	crashed.Lease = time.Second
	// A worker claims the message and dies before it can record the outcome.
	rows, err := crashed.Claim(context.Background(), 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v %v", rows, err)
	}
	if errs := transportTo(t, srv.Addr).Deliver(context.Background(), rows); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// Within the lease no other worker takes it.
	other := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t))
	if res, _ := other.RunOnce(context.Background()); res.Claimed != 0 {
		t.Fatal("a leased message was claimed by another worker")
	}
	time.Sleep(1100 * time.Millisecond)
	if res, err := other.RunOnce(context.Background()); err != nil || res.Sent != 1 {
		t.Fatalf("after the lease: %+v %v", res, err)
	}
	// At least once: the crash produced a duplicate with the same Message-ID, never a loss.
	got := srv.Received()
	if len(got) != 2 {
		t.Fatalf("server received %d, want the message and its redelivery", len(got))
	}
	id := func(r mailtest.Message) string { return r.Parse(t).Header.Get("Message-Id") }
	if id(got[0]) != id(got[1]) || id(got[0]) == "" {
		t.Fatalf("the copies have different Message-IDs %q and %q", id(got[0]), id(got[1]))
	}
	if q := row(t, d, "dan@example.com"); q.State != tmail.StateSent || q.Attempts != 2 {
		t.Fatalf("row: state %s attempts %d", q.State, q.Attempts)
	}
}

func TestWithoutSMTPMessagesStayPending(t *testing.T) {
	d := freshOutbox(t)
	enqueue(t, d, tmail.Message{Kind: "invitation", To: "eve@example.com", Subject: "Invited", Text: "Hello"})
	dl := tmail.NewDeliverer(d.App, nil, dbtest.Logger(t))
	if dl.Configured() {
		t.Fatal("a deliverer without transport says it is configured")
	}
	w := &tmail.DeliverWorker{Deliverer: dl}
	if err := w.Work(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if q := row(t, d, "eve@example.com"); q.State != tmail.StatePending || q.Attempts != 0 {
		t.Fatalf("row: state %s attempts %d", q.State, q.Attempts)
	}
}

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		url, from string
		want      tmail.SMTPConfig
		bad       bool
	}{
		{url: "smtp://mail.example.com", want: tmail.SMTPConfig{Host: "mail.example.com", Port: 587, TLS: "starttls", From: tmail.DefaultFrom}},
		{url: "smtp://u:p%40ss@mail.example.com:2525?tls=none", from: "Ops <ops@example.com>",
			want: tmail.SMTPConfig{Host: "mail.example.com", Port: 2525, Username: "u", Password: "p@ss", TLS: "none", From: "Ops <ops@example.com>"}},
		{url: "smtp://mail.example.com?tls=tls", want: tmail.SMTPConfig{Host: "mail.example.com", Port: 465, TLS: "tls", From: tmail.DefaultFrom}},
		{url: "smtps://mail.example.com", want: tmail.SMTPConfig{Host: "mail.example.com", Port: 465, TLS: "tls", From: tmail.DefaultFrom}},
		{url: "http://mail.example.com", bad: true},
		{url: "smtp://mail.example.com?tls=maybe", bad: true},
		{url: "smtp://mail.example.com:99999", bad: true},
		{url: "smtp://", bad: true},
		{url: "smtp://mail.example.com", from: "not an address", bad: true},
	} {
		got, err := tmail.ParseSMTPURL(tc.url, tc.from)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		got.Timeout = 0
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

// The wiring of `serve`: a River client with the worker and the periodic job delivers what is
// queued, both at start and later (the periodic run, not only RunOnStart).
func TestRiverPeriodicJobDelivers(t *testing.T) {
	ctx := context.Background()
	d := dbtest.NewDatabase(t) // a River queue of its own
	srv := mailtest.Start(t, "")
	workers := river.NewWorkers()
	river.AddWorker(workers, &tmail.DeliverWorker{Deliverer: tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t))})
	client, err := jobs.New(d.AppPool, workers, []*river.PeriodicJob{tmail.DeliverPeriodic()}, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, d, tmail.Message{Kind: "test", To: "first@example.com", Subject: "First", Text: "queued before start"})
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	srv.WaitFor(t, "first@example.com", 30*time.Second)
	enqueue(t, d, tmail.Message{Kind: "test", To: "second@example.com", Subject: "Second", Text: "queued while running"})
	srv.WaitFor(t, "second@example.com", 30*time.Second)
	if q := row(t, d, "second@example.com"); q.State != tmail.StateSent {
		t.Fatalf("second message: %s", q.State)
	}
}
