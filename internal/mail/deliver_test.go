package mail_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/jobs"
	tmail "github.com/tenantry/tenantry/internal/mail"
)

// received is one message as the test SMTP server got it.
type received struct {
	From string
	To   []string
	Data []byte
}

// smtpServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that keeps what it receives.
type smtpServer struct {
	Addr string
	srv  *smtp.Server
	mu   sync.Mutex
	msgs []received
	// user and pass, when set, are the only credentials accepted (AUTH PLAIN).
	user, pass string
}

func (s *smtpServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{srv: s}, nil }

type session struct {
	srv *smtpServer
	cur received
}

func (x *session) Reset()        { x.cur = received{} }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.cur.From = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.cur.To = append(x.cur.To, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.cur.Data = b
	x.srv.mu.Lock()
	x.srv.msgs = append(x.srv.msgs, x.cur)
	x.srv.mu.Unlock()
	return nil
}

// reservePort returns a free 127.0.0.1 address with nothing listening on it.
func reservePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startSMTP starts a server on addr ("" for any free port) and stops it when the test ends.
func startSMTP(t testing.TB, addr string) *smtpServer {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{Addr: l.Addr().String()}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

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

// bodies decodes the plain-text and HTML parts of a received message.
func bodies(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		return string(b), ""
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return text, html
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		b, _ := io.ReadAll(body)
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			html = string(b)
		}
	}
}

func TestDeliverThroughSMTPServer(t *testing.T) {
	d := freshOutbox(t)
	srv := startSMTP(t, "")
	enqueue(t, d, tmail.Message{Kind: "invitation", To: "ann@example.com", Subject: "You are invited to Acme",
		Text: "Set your password: https://tenantry.test/set?token=abc", HTML: "<p>Set your <b>password</b></p>"})

	res, err := tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Claimed != 1 {
		t.Fatalf("result %+v, want one sent", res)
	}
	got := srv.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	if len(got[0].To) != 1 || got[0].To[0] != "ann@example.com" || got[0].From != "no-reply@tenantry.test" {
		t.Fatalf("envelope from %q to %v", got[0].From, got[0].To)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(got[0].Data)))
	if err != nil {
		t.Fatal(err)
	}
	if s := msg.Header.Get("Subject"); s != "You are invited to Acme" {
		t.Fatalf("subject %q", s)
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "ann@example.com") {
		t.Fatalf("To header %q", to)
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<outbox-") {
		t.Fatalf("Message-ID %q is not derived from the outbox row", id)
	}
	text, html := bodies(t, msg)
	if text != "Set your password: https://tenantry.test/set?token=abc" || html != "<p>Set your <b>password</b></p>" {
		t.Fatalf("text part %q, html part %q", text, html)
	}
	q := row(t, d, "ann@example.com")
	if q.State != tmail.StateSent || q.SentAt == nil || q.Attempts != 1 || q.LastError != "" {
		t.Fatalf("row after delivery: state %s sent_at %v attempts %d error %q", q.State, q.SentAt, q.Attempts, q.LastError)
	}

	// Nothing is due any more: a second run sends nothing.
	res, err = tmail.NewDeliverer(d.App, transportTo(t, srv.Addr), dbtest.Logger(t)).RunOnce(context.Background())
	if err != nil || res.Claimed != 0 || len(srv.received()) != 1 {
		t.Fatalf("second run: %+v, %v, server has %d", res, err, len(srv.received()))
	}
}

func TestSMTPDownMessageWaitsThenDelivers(t *testing.T) {
	d := freshOutbox(t)
	addr := reservePort(t) // nothing listens here yet
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

	srv := startSMTP(t, addr)
	d.App.Exec(`UPDATE tenantry.mail_outbox SET next_attempt_at = now() WHERE id = ?`, q.ID) // the backoff has passed
	res, err = dl.RunOnce(context.Background())
	if err != nil || res.Sent != 1 {
		t.Fatalf("after the server came up: %+v, %v", res, err)
	}
	if got := srv.received(); len(got) != 1 || got[0].To[0] != "bob@example.com" {
		t.Fatalf("server received %+v", got)
	}
	q = row(t, d, "bob@example.com")
	if q.State != tmail.StateSent || q.Attempts != 2 || q.LastError != "" {
		t.Fatalf("after delivery: state %s attempts %d error %q", q.State, q.Attempts, q.LastError)
	}
}

func TestGivesUpAfterMaxAttemptsAndRetryRequeues(t *testing.T) {
	d := freshOutbox(t)
	addr := reservePort(t)
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
	srv := startSMTP(t, addr)
	if res, err := dl.RunOnce(context.Background()); err != nil || res.Sent != 1 {
		t.Fatalf("after retry: %+v %v", res, err)
	}
	if len(srv.received()) != 1 {
		t.Fatalf("server received %d", len(srv.received()))
	}
}

func TestDedupKeyDeliversOnce(t *testing.T) {
	d := freshOutbox(t)
	srv := startSMTP(t, "")
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
	if n := len(srv.received()); n != 1 {
		t.Fatalf("server received %d copies, want 1", n)
	}
}

func TestConcurrentWorkersNeverSendARowTwice(t *testing.T) {
	d := freshOutbox(t)
	srv := startSMTP(t, "")
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
	for _, r := range srv.received() {
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
	srv := startSMTP(t, "")
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
	got := srv.received()
	if len(got) != 2 {
		t.Fatalf("server received %d, want the message and its redelivery", len(got))
	}
	id := func(r received) string {
		m, err := mail.ReadMessage(strings.NewReader(string(r.Data)))
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get("Message-Id")
	}
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
	srv := startSMTP(t, "")
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
	waitFor := func(to string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			for _, r := range srv.received() {
				if r.To[0] == to {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s got nothing within 30 s", to)
	}
	waitFor("first@example.com")
	enqueue(t, d, tmail.Message{Kind: "test", To: "second@example.com", Subject: "Second", Text: "queued while running"})
	waitFor("second@example.com")
	if q := row(t, d, "second@example.com"); q.State != tmail.StateSent {
		t.Fatalf("second message: %s", q.State)
	}
}
