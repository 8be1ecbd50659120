package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// TenantEvent is one event of a tenant's own audit trail, kept in the tenant's schema t_<id>.
// It is chained exactly like the platform trail; the hash also covers the tenant's id, so an
// event copied into another tenant's trail does not verify there.
type TenantEvent struct {
	ID     int64
	Actor  string
	Action string
	Target string
	Detail json.RawMessage `gorm:"type:jsonb"`
	// RequestID and SourceAddr say where the change came from.
	RequestID  string
	SourceAddr string
	CreatedAt  time.Time
	PrevHash   []byte
	Hash       []byte
}

// TableName is the tenant schema's audit_events (the tenantscope plugin qualifies it).
func (TenantEvent) TableName() string { return "audit_events" }

// TenantSchema marks the table as living in each tenant's own schema.
func (TenantEvent) TenantSchema() {}

// RecordTenant appends e to the trail of the tenant that tx works for. tx must come from
// db.InTenant, so the event commits or rolls back with the change it describes.
func RecordTenant(tx *gorm.DB, e TenantEvent) error {
	ctx := tx.Statement.Context
	tenantID, ok := tenantscope.TenantFrom(ctx)
	if !ok {
		return fmt.Errorf("audit: record tenant event: %w", tenantscope.ErrNoTenant)
	}
	if e.Detail == nil {
		e.Detail = json.RawMessage("{}")
	}
	// Appends to one tenant's chain queue behind each other; other tenants' do not wait.
	if err := tx.WithContext(tenantscope.AllowRaw(ctx)).Exec("SELECT pg_advisory_xact_lock(?)", tenantChainLock(tenantID)).Error; err != nil {
		return fmt.Errorf("audit: lock tenant chain: %w", err)
	}
	var head []TenantEvent
	if err := tx.WithContext(ctx).Select("hash").Order("id DESC").Limit(1).Find(&head).Error; err != nil {
		return fmt.Errorf("audit: read tenant chain head: %w", err)
	}
	e.ID = 0
	e.PrevHash = []byte{}
	if len(head) == 1 {
		e.PrevHash = head[0].Hash
	}
	if o := originFrom(ctx); e.RequestID == "" && e.SourceAddr == "" {
		e.RequestID, e.SourceAddr = o.RequestID, o.SourceAddr
	}
	e.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	e.Hash = tenantHash(tenantID, e)
	if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
		return fmt.Errorf("audit: append tenant event: %w", err)
	}
	return nil
}

// VerifyTenant walks tenant tenantID's whole trail and returns the number of events checked, or
// ErrChainBroken naming the first event whose hash or link does not match.
func VerifyTenant(ctx context.Context, d *db.DB, tenantID int64) (int, error) {
	n := 0
	err := d.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		rows, err := tx.Model(&TenantEvent{}).Order("id").Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		prev := []byte{}
		for rows.Next() {
			var e TenantEvent
			if err := tx.ScanRows(rows, &e); err != nil {
				return err
			}
			if string(e.PrevHash) != string(prev) || string(tenantHash(tenantID, e)) != string(e.Hash) {
				return fmt.Errorf("%w: tenant %d at event %d", ErrChainBroken, tenantID, e.ID)
			}
			prev = e.Hash
			n++
		}
		return rows.Err()
	})
	return n, err
}

// ListTenant returns the newest limit events of tenant tenantID's trail, newest first.
func ListTenant(ctx context.Context, d *db.DB, tenantID int64, limit int) ([]TenantEvent, error) {
	var events []TenantEvent
	err := d.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Order("id DESC").Limit(limit).Find(&events).Error
	})
	return events, err
}

// tenantHash is the platform chain's hash with the tenant's id in place of the optional one.
func tenantHash(tenantID int64, e TenantEvent) []byte {
	return hash(Event{TenantID: &tenantID, Actor: e.Actor, Action: e.Action, Target: e.Target,
		Detail: e.Detail, RequestID: e.RequestID, SourceAddr: e.SourceAddr, CreatedAt: e.CreatedAt, PrevHash: e.PrevHash})
}

func tenantChainLock(tenantID int64) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "tenantry.tenant_audit.%d", tenantID)
	return int64(h.Sum64())
}
