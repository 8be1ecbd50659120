package quota

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Grant is extra allowance for a tenant's dimension from StartsAt until EndsAt. While active it
// adds Amount to the hard limit; consume reads the active grants in its own statement, so a grant
// counts from its first second to its last with no job in between.
type Grant struct {
	ID               int64
	TenantID         int64
	Dimension        string
	Amount           int64
	StartsAt         time.Time
	EndsAt           time.Time
	Reason           string
	CreatedBy        string
	CreatedAt        time.Time
	RevokedAt        *time.Time
	ExpiryRecordedAt *time.Time
}

// Grant states.
const (
	GrantScheduled = "scheduled"
	GrantActive    = "active"
	GrantExpired   = "expired"
	GrantRevoked   = "revoked"
)

// State is the grant's state at now.
func (g Grant) State(now time.Time) string {
	switch {
	case g.RevokedAt != nil:
		return GrantRevoked
	case now.Before(g.StartsAt):
		return GrantScheduled
	case now.Before(g.EndsAt):
		return GrantActive
	}
	return GrantExpired
}

// NewGrant is what an admin asks for.
type NewGrant struct {
	Dimension string
	Amount    int64
	StartsAt  time.Time // zero: now
	EndsAt    time.Time
	Reason    string
}

// MaxGrantDuration bounds a grant's length.
const MaxGrantDuration = 366 * 24 * time.Hour

// AddGrant records a grant, audited. Validation errors are keyed "dimension", "amount",
// "starts_at", "ends_at" and "reason".
func (s *Service) AddGrant(ctx context.Context, actor string, tenantID int64, g NewGrant) (Grant, error) {
	now := s.now()
	errs := validation.Errors{}
	if _, err := s.dimension(ctx, g.Dimension); err != nil {
		errs.Add("dimension", "Choose a dimension from the list.")
	}
	if g.Amount <= 0 || g.Amount > MaxLimit {
		errs.Add("amount", "Enter a whole number of 1 or more.")
	}
	if g.StartsAt.IsZero() {
		g.StartsAt = now
	}
	switch {
	case g.EndsAt.IsZero():
		errs.Add("ends_at", "Enter when the grant ends.")
	case !g.EndsAt.After(g.StartsAt):
		errs.Add("ends_at", "The end must be after the start.")
	case !g.EndsAt.After(now):
		errs.Add("ends_at", "The end must be in the future.")
	case g.EndsAt.Sub(g.StartsAt) > MaxGrantDuration:
		errs.Add("ends_at", "A grant lasts at most 366 days.")
	}
	g.Reason = strings.TrimSpace(g.Reason)
	if g.Reason == "" {
		errs.Add("reason", "Say why the tenant gets this allowance.")
	} else if len(g.Reason) > 500 {
		errs.Add("reason", "Keep the reason to 500 characters.")
	}
	if err := errs.Err(); err != nil {
		return Grant{}, err
	}
	out := Grant{TenantID: tenantID, Dimension: g.Dimension, Amount: g.Amount, StartsAt: g.StartsAt.UTC(), EndsAt: g.EndsAt.UTC(),
		Reason: g.Reason, CreatedBy: actor}
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var slug string
		if err := tx.Raw("SELECT slug FROM tenantry.tenants WHERE id = ?", tenantID).Scan(&slug).Error; err != nil {
			return err
		}
		if slug == "" {
			return ErrTenantNotFound
		}
		if err := tx.Raw(`INSERT INTO tenantry.quota_grants (tenant_id, dimension, amount, starts_at, ends_at, reason, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, created_at`, tenantID, out.Dimension, out.Amount, out.StartsAt, out.EndsAt,
			out.Reason, actor).Row().Scan(&out.ID, &out.CreatedAt); err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "quota.grant_added", Target: slug,
			Detail: audit.Detail(map[string]any{"grant_id": out.ID, "dimension": out.Dimension, "amount": out.Amount,
				"starts_at": out.StartsAt, "ends_at": out.EndsAt, "reason": out.Reason})})
	})
	if err != nil {
		return Grant{}, fmt.Errorf("quota: add grant: %w", err)
	}
	return out, nil
}

// RevokeGrant ends a grant now, audited. Revoking a grant that is revoked or expired does nothing.
func (s *Service) RevokeGrant(ctx context.Context, actor string, tenantID, grantID int64) error {
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var g struct {
			Dimension string
			Amount    int64
			Slug      string
		}
		err := tx.Raw(`UPDATE tenantry.quota_grants g SET revoked_at = ? FROM tenantry.tenants t
			WHERE g.id = ? AND g.tenant_id = ? AND t.id = g.tenant_id AND g.revoked_at IS NULL AND g.ends_at > ?
			RETURNING g.dimension, g.amount, t.slug`, s.now(), grantID, tenantID, s.now()).Scan(&g).Error
		if err != nil || g.Slug == "" {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "quota.grant_revoked", Target: g.Slug,
			Detail: audit.Detail(map[string]any{"grant_id": grantID, "dimension": g.Dimension, "amount": g.Amount})})
	})
}

// Grants returns the tenant's grants, newest first, at most limit.
func (s *Service) Grants(ctx context.Context, tenantID int64, limit int) ([]Grant, error) {
	var out []Grant
	err := s.db.App.WithContext(ctx).Raw(`SELECT id, tenant_id, dimension, amount, starts_at, ends_at, reason, created_by, created_at,
		revoked_at, expiry_recorded_at FROM tenantry.quota_grants WHERE tenant_id = ? ORDER BY ends_at DESC, id DESC LIMIT ?`,
		tenantID, limit).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("quota: grants: %w", err)
	}
	return out, nil
}

// RecordExpiredGrants records each grant that has ended since the last run, exactly once: an
// audit event ("quota.grant_expired", actor "system") and an entry in the tenant's alert history,
// in the same transaction as the mark that makes it once. (The grant stopped counting at its end
// already: consume reads the active grants itself.) It returns how many it recorded.
func (s *Service) RecordExpiredGrants(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var gs []struct {
			ID        int64
			TenantID  int64
			Dimension string
			Amount    int64
			Reason    string
			Slug      string
			Name      string
		}
		err := tx.Raw(`UPDATE tenantry.quota_grants g SET expiry_recorded_at = ?
			  FROM tenantry.tenants t, tenantry.quota_dimensions d
			 WHERE t.id = g.tenant_id AND d.key = g.dimension AND g.id IN (
			       SELECT id FROM tenantry.quota_grants WHERE ends_at <= ? AND expiry_recorded_at IS NULL AND revoked_at IS NULL
			        ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED)
			RETURNING g.id, g.tenant_id, g.dimension, g.amount, g.reason, t.slug, d.name`, now, now).Scan(&gs).Error
		if err != nil {
			return err
		}
		for _, g := range gs {
			if err := audit.Record(tx, audit.Event{TenantID: &g.TenantID, Actor: "system", Action: "quota.grant_expired", Target: g.Slug,
				Detail: audit.Detail(map[string]any{"grant_id": g.ID, "dimension": g.Dimension, "amount": g.Amount, "reason": g.Reason})}); err != nil {
				return err
			}
			if err := tx.Exec(`INSERT INTO tenantry.quota_alerts (tenant_id, dimension, kind, period_start, used, hard_limit, message)
				SELECT ?, ?, 'grant_expired', ?, COALESCE(l.used, 0), COALESCE(l.hard_limit, 0), ?
				  FROM (SELECT 1) x LEFT JOIN tenantry.quota_limits l ON l.tenant_id = ? AND l.dimension = ?`,
				g.TenantID, g.Dimension, now, fmt.Sprintf("A grant of %d for %s ended (%s).", g.Amount, g.Name, g.Reason),
				g.TenantID, g.Dimension).Error; err != nil {
				return err
			}
		}
		n = len(gs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("quota: record expired grants: %w", err)
	}
	return n, nil
}
