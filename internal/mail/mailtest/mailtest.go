// Package mailtest is a real SMTP server (emersion/go-smtp) for tests: it listens on
// 127.0.0.1, keeps every message it receives, and decodes them (headers, text and HTML parts)
// so a test can read back what Tenantry sent, e.g. a verification link.
package mailtest

import (
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
)

// Message is one message as the server received it.
type Message struct {
	From string   // envelope sender
	To   []string // envelope recipients
	Data []byte   // the raw message
}

// Server is a running SMTP server.
type Server struct {
	// Addr is host:port to give TENANTRY_SMTP_URL (smtp://Addr?tls=none).
	Addr string
	srv  *smtp.Server
	mu   sync.Mutex
	msgs []Message
}

// Start runs a server on addr ("" for a free port) until the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String()}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// URL is the TENANTRY_SMTP_URL for this server.
func (s *Server) URL() string { return "smtp://" + s.Addr + "?tls=none" }

// FreeAddr returns a 127.0.0.1 address nothing listens on (for "SMTP down" tests; Start it later).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Received returns a copy of every message received so far.
func (s *Server) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor waits up to timeout for a message to the recipient and returns the first one.
func (s *Server) WaitFor(t testing.TB, to string, timeout time.Duration) Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range s.Received() {
			for _, r := range m.To {
				if strings.EqualFold(r, to) {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: no message to %s within %s", to, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Parsed is a received message decoded.
type Parsed struct {
	Header mail.Header
	Text   string
	HTML   string
}

// Parse decodes m's headers and its text and HTML parts.
func (m Message) Parse(t testing.TB) Parsed {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatal(err)
	}
	p := Parsed{Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		p.Text = decode(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return p
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := r.NextRawPart()
		if err == io.EOF {
			return p
		}
		if err != nil {
			t.Fatal(err)
		}
		body := decode(t, part.Header.Get("Content-Transfer-Encoding"), part)
		switch ct := part.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			p.Text = body
		case strings.HasPrefix(ct, "text/html"):
			p.HTML = body
		}
	}
}

func decode(t testing.TB, encoding string, r io.Reader) string {
	t.Helper()
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s   *Server
	cur Message
}

func (x *session) Reset()        { x.cur = Message{} }
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
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.cur)
	x.s.mu.Unlock()
	return nil
}
