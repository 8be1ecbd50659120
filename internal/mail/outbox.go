package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
)

// ErrNotFound is returned for an outbox message that does not exist.
var ErrNotFound = errors.New("mail: message not found")

// ErrNotFailed is returned when retrying a message that is not in the failed state.
var ErrNotFailed = errors.New("mail: only failed messages can be retried")

// Filter selects outbox messages for the admin list.
type Filter struct {
	// Search matches the recipient, subject or kind (case-insensitive substring).
	Search string
	// State is pending, sent, failed or empty for all.
	State   string
	Page    int // 1-based
	PerPage int
}

// List returns one page of messages matching f, newest first, and how many match in all.
func List(ctx context.Context, db *gorm.DB, f Filter) ([]Queued, int64, error) {
	if f.PerPage <= 0 {
		f.PerPage = 25
	}
	if f.Page < 1 {
		f.Page = 1
	}
	q := db.WithContext(ctx).Model(&Queued{})
	if s := strings.TrimSpace(f.Search); s != "" {
		like := "%" + escapeLike(strings.ToLower(s)) + "%"
		q = q.Where(`lower(to_addr) LIKE ? OR lower(subject) LIKE ? OR lower(kind) LIKE ?`, like, like, like)
	}
	switch f.State {
	case StatePending, StateSent, StateFailed:
		q = q.Where("state = ?", f.State)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("mail: count outbox: %w", err)
	}
	var rows []Queued
	err := q.Order("created_at DESC, id DESC").Limit(f.PerPage).Offset((f.Page - 1) * f.PerPage).Find(&rows).Error
	if err != nil {
		return nil, 0, fmt.Errorf("mail: list outbox: %w", err)
	}
	return rows, total, nil
}

// Counts returns how many messages are in each state.
func Counts(ctx context.Context, db *gorm.DB) (map[string]int64, error) {
	var rows []struct {
		State string
		N     int64
	}
	if err := db.WithContext(ctx).Raw(`SELECT state, count(*) AS n FROM tenantry.mail_outbox GROUP BY state`).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("mail: count by state: %w", err)
	}
	out := map[string]int64{StatePending: 0, StateSent: 0, StateFailed: 0}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}

// Get returns one message.
func Get(ctx context.Context, db *gorm.DB, id int64) (Queued, error) {
	var q Queued
	res := db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&q)
	if res.Error != nil {
		return q, fmt.Errorf("mail: get %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return q, ErrNotFound
	}
	return q, nil
}

// Retry puts a failed message back in the queue with fresh attempts and records who did it
// in the platform audit trail, in one transaction. It returns the message as it was before.
func Retry(ctx context.Context, db *gorm.DB, actor string, id int64) (Queued, error) {
	var q Queued
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Raw(`SELECT * FROM tenantry.mail_outbox WHERE id = ? FOR UPDATE`, id).Scan(&q)
		if res.Error != nil {
			return fmt.Errorf("mail: retry %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if q.State != StateFailed {
			return ErrNotFailed
		}
		if err := tx.Exec(`UPDATE tenantry.mail_outbox SET state = 'pending', attempts = 0, next_attempt_at = now()
			WHERE id = ?`, id).Error; err != nil {
			return fmt.Errorf("mail: retry %d: %w", id, err)
		}
		return audit.Record(tx, audit.Event{TenantID: q.TenantID, Actor: actor, Action: "mail.retried", Target: q.ToAddr,
			Detail: audit.Detail(map[string]any{"message_id": q.ID, "kind": q.Kind, "subject": q.Subject,
				"attempts": q.Attempts, "last_error": q.LastError})})
	})
	return q, err
}

// TenantSlug names the tenant a message concerns ("" when none or when it no longer exists).
func TenantSlug(ctx context.Context, db *gorm.DB, q Queued) (string, error) {
	if q.TenantID == nil {
		return "", nil
	}
	var slugs []string
	if err := db.WithContext(ctx).Raw(`SELECT slug FROM tenantry.tenants WHERE id = ?`, *q.TenantID).Scan(&slugs).Error; err != nil {
		return "", fmt.Errorf("mail: tenant of %d: %w", q.ID, err)
	}
	if len(slugs) == 0 {
		return "", nil
	}
	return slugs[0], nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
