package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultFrom is the sender address used when TENANTRY_MAIL_FROM is not set.
const DefaultFrom = "Tenantry <no-reply@localhost>"

// SMTP security modes in TENANTRY_SMTP_URL's tls parameter.
const (
	TLSNone     = "none"     // plain connection (a local relay); credentials sent in clear
	TLSStartTLS = "starttls" // STARTTLS required (the default)
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
)

// SMTPConfig is where and how to deliver, parsed from TENANTRY_SMTP_URL.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      string
	// From is the envelope and header sender.
	From string
	// Timeout bounds connecting and each SMTP command.
	Timeout time.Duration
}

// ParseSMTPURL reads smtp://user:pass@host:port?tls=none|starttls|tls. The port defaults to
// 587 (465 with tls=tls); tls defaults to starttls. from is the sender (DefaultFrom when empty).
func ParseSMTPURL(raw, from string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, errors.New("TENANTRY_SMTP_URL is not a URL; write smtp://user:pass@host:587?tls=starttls")
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return SMTPConfig{}, fmt.Errorf("TENANTRY_SMTP_URL must start with smtp:// (got %q)", u.Scheme)
	}
	c := SMTPConfig{Host: u.Hostname(), TLS: TLSStartTLS, From: strings.TrimSpace(from), Timeout: 30 * time.Second}
	if u.Scheme == "smtps" {
		c.TLS = TLSImplicit
	}
	if c.Host == "" {
		return SMTPConfig{}, errors.New("TENANTRY_SMTP_URL has no host")
	}
	if v := u.Query().Get("tls"); v != "" {
		switch v {
		case TLSNone, TLSStartTLS, TLSImplicit:
			c.TLS = v
		default:
			return SMTPConfig{}, fmt.Errorf("TENANTRY_SMTP_URL: tls must be none, starttls or tls, not %q", v)
		}
	}
	c.Port = 587
	if c.TLS == TLSImplicit {
		c.Port = 465
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("TENANTRY_SMTP_URL: port %q is not a port number", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	if c.From == "" {
		c.From = DefaultFrom
	}
	if _, err := netmail.ParseAddress(c.From); err != nil || strings.ContainsAny(c.From, "\r\n") {
		return SMTPConfig{}, fmt.Errorf("TENANTRY_MAIL_FROM is not an address like \"Tenantry <no-reply@example.com>\"")
	}
	return c, nil
}

// String describes the configuration without the password (for logs).
func (c SMTPConfig) String() string {
	return fmt.Sprintf("smtp://%s:%d (tls=%s, from %s)", c.Host, c.Port, c.TLS, c.From)
}

// SMTPTransport delivers over SMTP with go-mail, one connection per batch.
type SMTPTransport struct {
	cfg SMTPConfig
	// tlsConfig overrides the TLS settings (tests trust their own certificate).
	tlsConfig *tls.Config
}

// NewSMTPTransport returns a transport for cfg.
func NewSMTPTransport(cfg SMTPConfig) *SMTPTransport { return &SMTPTransport{cfg: cfg} }

// WithTLSConfig returns a copy that uses tc for TLS (for servers with private certificates).
func (t *SMTPTransport) WithTLSConfig(tc *tls.Config) *SMTPTransport {
	cp := *t
	cp.tlsConfig = tc
	return &cp
}

func (t *SMTPTransport) client() (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(t.cfg.Port), gomail.WithTimeout(t.cfg.Timeout)}
	switch t.cfg.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if t.tlsConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(t.tlsConfig))
	}
	if t.cfg.Username != "" {
		auth := gomail.SMTPAuthAutoDiscover
		if t.cfg.TLS == TLSNone {
			auth = gomail.SMTPAuthPlainNoEnc // an explicit choice to send credentials in clear
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(t.cfg.Username), gomail.WithPassword(t.cfg.Password))
	}
	return gomail.NewClient(t.cfg.Host, opts...)
}

// Deliver sends each message over one connection and returns one error per message (nil when
// the server accepted it). When the server cannot be reached every message gets that error.
func (t *SMTPTransport) Deliver(ctx context.Context, msgs []Queued) []error {
	errs := make([]error, len(msgs))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	c, err := t.client()
	if err != nil {
		return fail(fmt.Errorf("smtp client: %w", err))
	}
	if err := c.DialWithContext(ctx); err != nil {
		return fail(fmt.Errorf("connect to %s:%d: %w", t.cfg.Host, t.cfg.Port, err))
	}
	defer c.Close()
	for i, q := range msgs {
		m, err := t.build(q)
		if err != nil {
			errs[i] = err
			continue
		}
		if err := c.Send(m); err != nil {
			errs[i] = fmt.Errorf("send: %w", err)
		}
	}
	return errs
}

// build turns a queued row into a MIME message. Its Message-ID is derived from the row, so a
// message sent twice (at-least-once delivery) carries the same Message-ID both times and
// receiving systems can tell the copies apart from distinct messages.
func (t *SMTPTransport) build(q Queued) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(t.cfg.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", t.cfg.From, err)
	}
	if err := m.To(q.ToAddr); err != nil {
		return nil, fmt.Errorf("to %q: %w", q.ToAddr, err)
	}
	m.Subject(q.Subject)
	m.SetDate()
	m.SetMessageIDWithValue(fmt.Sprintf("outbox-%d.%d@%s", q.ID, q.CreatedAt.Unix(), domainOf(t.cfg.From)))
	m.SetGenHeader("X-Tenantry-Kind", q.Kind)
	m.SetBodyString(gomail.TypeTextPlain, q.TextBody)
	if q.HTMLBody != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, q.HTMLBody)
	}
	return m, nil
}

func domainOf(from string) string {
	if a, err := netmail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			return a.Address[i+1:]
		}
	}
	return "localhost"
}
