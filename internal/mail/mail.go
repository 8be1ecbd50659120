// Package mail is Tenantry's e-mail outbox. Callers queue a Message inside the transaction of
// the change that causes it (Enqueue); a River job delivers queued messages over SMTP with
// retries. Without SMTP configured, messages stay queued and readable on the admin Outbox page.
package mail

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/validation"
)

// Message is one e-mail to queue.
type Message struct {
	// TenantID is the tenant the message concerns, if any (its admins can read it).
	TenantID *int64
	// Kind names what the message is for, e.g. "invitation", "signup.verify", "quota.alert".
	Kind string
	// DedupKey, when set, makes queuing idempotent: a second message with the same key is
	// dropped. Steps that may run twice after a crash set it.
	DedupKey string
	To       string
	Subject  string
	Text     string
	// HTML is optional; when empty the message is plain text.
	HTML string
}

// Outbox states.
const (
	StatePending = "pending"
	StateSent    = "sent"
	StateFailed  = "failed"
)

// Queued is a row of the outbox.
type Queued struct {
	ID            int64
	TenantID      *int64
	Kind          string
	DedupKey      *string
	ToAddr        string
	Subject       string
	TextBody      string
	HTMLBody      string
	State         string
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	SentAt        *time.Time
	CreatedAt     time.Time
}

// TableName places the outbox in the control plane.
func (Queued) TableName() string { return "tenantry.mail_outbox" }

// Enqueue queues m in tx, the caller's transaction, so the message exists exactly when the
// change that caused it commits. It reports whether a new message was queued (false when
// DedupKey was already used).
func Enqueue(tx *gorm.DB, m Message) (bool, error) {
	if err := m.validate(); err != nil {
		return false, err
	}
	q := Queued{TenantID: m.TenantID, Kind: m.Kind, ToAddr: m.To, Subject: m.Subject,
		TextBody: m.Text, HTMLBody: m.HTML, State: StatePending}
	if m.DedupKey != "" {
		q.DedupKey = &m.DedupKey
	}
	res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "dedup_key"}}, DoNothing: true}).
		Omit("NextAttemptAt", "CreatedAt", "SentAt").Create(&q)
	if res.Error != nil {
		return false, fmt.Errorf("mail: queue %s to %s: %w", m.Kind, m.To, res.Error)
	}
	return res.RowsAffected == 1, nil
}

func (m Message) validate() error {
	errs := validation.Errors{}
	addr, err := mail.ParseAddress(m.To)
	switch {
	case err != nil || addr.Address != m.To:
		errs["to"] = "Enter an e-mail address like name@example.com."
	case strings.ContainsAny(m.To, "\r\n"):
		errs["to"] = "An e-mail address cannot contain line breaks."
	}
	if strings.TrimSpace(m.Subject) == "" || strings.ContainsAny(m.Subject, "\r\n") {
		errs["subject"] = "A subject is one non-empty line."
	}
	if m.Kind == "" {
		errs["kind"] = "Say what the message is for."
	}
	if strings.TrimSpace(m.Text) == "" {
		errs["text"] = "A message needs a plain-text body."
	}
	return errs.Err()
}
