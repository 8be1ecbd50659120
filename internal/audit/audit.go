// Package audit owns the platform audit trail: an append-only, hash-chained log of every change.
// Each event's hash covers the previous event's hash and the event's own content, so editing or
// removing any past event breaks the chain, which Verify detects. The app role may only INSERT.
package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
)

// Event is one recorded change.
type Event struct {
	ID       int64
	TenantID *int64
	Actor    string
	Action   string
	Target   string
	Detail   json.RawMessage `gorm:"type:jsonb"`
	// RequestID and SourceAddr say where the change came from (empty for jobs and the CLI).
	RequestID  string
	SourceAddr string
	CreatedAt  time.Time
	PrevHash   []byte
	Hash       []byte
}

// TableName places events in the control plane.
func (Event) TableName() string { return "tenantry.audit_events" }

// ErrChainBroken reports a tampered audit trail.
var ErrChainBroken = errors.New("audit chain broken")

// chainLock serialises appends so every event links to exactly one predecessor.
const chainLock = 0x7e4a_0001

// Record appends an event inside tx, the transaction that makes the change it describes, so the
// change and its audit record commit or roll back together.
func Record(tx *gorm.DB, e Event) error {
	if e.Detail == nil {
		e.Detail = json.RawMessage("{}")
	}
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", chainLock).Error; err != nil {
		return fmt.Errorf("audit: lock chain: %w", err)
	}
	prev := []byte{}
	err := tx.Raw("SELECT hash FROM tenantry.audit_events ORDER BY id DESC LIMIT 1").Row().Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("audit: read chain head: %w", err)
	}
	if o := originFrom(tx.Statement.Context); e.RequestID == "" && e.SourceAddr == "" {
		e.RequestID, e.SourceAddr = o.RequestID, o.SourceAddr
	}
	e.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	e.PrevHash = prev
	e.Hash = hash(e)
	if err := tx.Create(&e).Error; err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// Detail marshals v for Event.Detail; it panics only on values that cannot be JSON.
func Detail(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("audit: detail: %v", err))
	}
	return b
}

func hash(e Event) []byte {
	h := sha256.New()
	h.Write(e.PrevHash)
	tenant := "-"
	if e.TenantID != nil {
		tenant = fmt.Sprint(*e.TenantID)
	}
	// jsonb normalises whitespace and key order, so hash the normalised form of Detail.
	var detail any
	_ = json.Unmarshal(e.Detail, &detail)
	canon, _ := json.Marshal(detail)
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", tenant, e.Actor, e.Action, e.Target, e.CreatedAt.UTC().Format(time.RFC3339Nano))
	h.Write(canon)
	if e.RequestID != "" || e.SourceAddr != "" { // events without an origin keep their original hash
		fmt.Fprintf(h, "\x00%s\x00%s", e.RequestID, e.SourceAddr)
	}
	return h.Sum(nil)
}

// Verify walks the whole chain and returns the number of events checked, or ErrChainBroken
// naming the first event whose hash or link does not match.
func Verify(ctx context.Context, db *gorm.DB) (int, error) {
	rows, err := db.WithContext(ctx).Model(&Event{}).Order("id").Rows()
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var prev []byte
	n := 0
	for rows.Next() {
		var e Event
		if err := db.ScanRows(rows, &e); err != nil {
			return n, err
		}
		if prev == nil {
			prev = []byte{}
		}
		if string(e.PrevHash) != string(prev) || string(hash(e)) != string(e.Hash) {
			return n, fmt.Errorf("%w at event %d", ErrChainBroken, e.ID)
		}
		prev = e.Hash
		n++
	}
	return n, rows.Err()
}

// Query selects events for a listing.
type Query struct {
	TenantID *int64
	Search   string
	Page     int
	PerPage  int
}

func filtered(ctx context.Context, gdb *gorm.DB, q Query) *gorm.DB {
	tx := gdb.WithContext(ctx).Model(&Event{})
	if q.TenantID != nil {
		tx = tx.Where("tenant_id = ?", *q.TenantID)
	}
	if q.Search != "" {
		like := db.Contains(q.Search)
		tx = tx.Where("(actor ILIKE ? OR action ILIKE ? OR target ILIKE ?)", like, like, like)
	}
	return tx
}

// Each calls fn for every event matching q (Page and PerPage are ignored), oldest first, reading
// in batches so an export of any size runs in constant memory.
func Each(ctx context.Context, gdb *gorm.DB, q Query, fn func(Event) error) error {
	var batch []Event
	return filtered(ctx, gdb, q).Order("id").FindInBatches(&batch, 1000, func(*gorm.DB, int) error {
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}).Error
}

// List returns one page of events, newest first, and the total matching.
func List(ctx context.Context, gdb *gorm.DB, q Query) ([]Event, int64, error) {
	tx := filtered(ctx, gdb, q)
	var total int64
	if err := tx.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	var events []Event
	err := tx.Order("id DESC").Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Find(&events).Error
	return events, total, err
}
