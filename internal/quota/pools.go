package quota

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Pool is a parent's cap on the sum of its children's hard limits for one dimension.
type Pool struct {
	ParentID      int64
	Dimension     string
	DimensionName string
	Cap           int64
	// Allocated is the sum of the children's hard limits now (their plan's default when they
	// have no row yet).
	Allocated int64
}

// childrenHardSQL sums the hard limits of parent ?'s children on dimension ?, leaving out child ?.
const childrenHardSQL = `
	SELECT COALESCE(sum(COALESCE(l.hard_limit, p.hard_limit, 0)), 0)::bigint
	  FROM tenantry.tenants c
	  LEFT JOIN tenantry.quota_limits l ON l.tenant_id = c.id AND l.dimension = @dim
	  LEFT JOIN tenantry.plan_quota_defaults p ON p.plan_key = c.plan_key AND p.dimension = @dim
	 WHERE c.parent_id = @parent AND c.id <> @child`

// checkPool refuses, at field "hard", a child's hard limit that would take its children's sum
// past the parent's pool. It locks the pool row so that two children raised at once cannot both
// fit in what is left.
func checkPool(tx *gorm.DB, parentID, childID int64, d Dimension, hard int64) error {
	var pool struct {
		Cap  int64
		Name string
	}
	err := tx.Raw(`SELECT p.cap, t.name FROM tenantry.quota_pools p JOIN tenantry.tenants t ON t.id = p.parent_id
		WHERE p.parent_id = ? AND p.dimension = ? FOR UPDATE OF p`, parentID, d.Key).Scan(&pool).Error
	if err != nil {
		return err
	}
	if pool.Name == "" {
		return nil // no pool
	}
	var others int64
	if err := tx.Raw(childrenHardSQL, map[string]any{"dim": d.Key, "parent": parentID, "child": childID}).Scan(&others).Error; err != nil {
		return err
	}
	if others+hard > pool.Cap {
		return validation.Errors{"hard": fmt.Sprintf("The %s pool of %s caps its children's hard limits at %d in all; the other children hold %d, so at most %d is left for this one.",
			d.Name, pool.Name, pool.Cap, others, max(0, pool.Cap-others))}.Err()
	}
	return nil
}

// SetPool caps the sum of parent's children's hard limits on dimension (cap nil removes the
// pool), audited. A cap below what the children hold now is refused at field "cap".
func (s *Service) SetPool(ctx context.Context, actor string, parentID int64, dimension string, limit *int64) error {
	d, err := s.dimension(ctx, dimension)
	if err != nil {
		return err
	}
	if limit != nil && (*limit < 0 || *limit > MaxLimit) {
		return validation.Errors{"cap": "Enter a whole number from 0 to 1,000,000,000,000,000."}.Err()
	}
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var slug string
		if err := tx.Raw("SELECT slug FROM tenantry.tenants WHERE id = ? FOR UPDATE", parentID).Scan(&slug).Error; err != nil {
			return err
		}
		if slug == "" {
			return ErrTenantNotFound
		}
		var before *int64
		if err := tx.Raw("SELECT cap FROM tenantry.quota_pools WHERE parent_id = ? AND dimension = ?", parentID, dimension).Scan(&before).Error; err != nil {
			return err
		}
		if limit == nil {
			if err := tx.Exec("DELETE FROM tenantry.quota_pools WHERE parent_id = ? AND dimension = ?", parentID, dimension).Error; err != nil {
				return err
			}
		} else {
			var held int64
			if err := tx.Raw(childrenHardSQL, map[string]any{"dim": dimension, "parent": parentID, "child": 0}).Scan(&held).Error; err != nil {
				return err
			}
			if held > *limit {
				return validation.Errors{"cap": fmt.Sprintf("The children's %s hard limits add up to %d already; lower them first or cap at %d or more.", d.Name, held, held)}.Err()
			}
			if err := tx.Exec(`INSERT INTO tenantry.quota_pools (parent_id, dimension, cap, updated_by) VALUES (?, ?, ?, ?)
				ON CONFLICT (parent_id, dimension) DO UPDATE SET cap = EXCLUDED.cap, updated_by = EXCLUDED.updated_by, updated_at = now()`,
				parentID, dimension, *limit, actor).Error; err != nil {
				return err
			}
		}
		return audit.Record(tx, audit.Event{TenantID: &parentID, Actor: actor, Action: "quota.pool_changed", Target: slug,
			Detail: audit.Detail(map[string]any{"dimension": dimension, "before": before, "after": limit})})
	})
}

// Pools returns parent's pools with what its children hold.
func (s *Service) Pools(ctx context.Context, parentID int64) ([]Pool, error) {
	var out []Pool
	err := s.db.App.WithContext(ctx).Raw(`
		SELECT p.parent_id, p.dimension, d.name AS dimension_name, p.cap,
		       (SELECT COALESCE(sum(COALESCE(l.hard_limit, pd.hard_limit, 0)), 0)
		          FROM tenantry.tenants c
		          LEFT JOIN tenantry.quota_limits l ON l.tenant_id = c.id AND l.dimension = p.dimension
		          LEFT JOIN tenantry.plan_quota_defaults pd ON pd.plan_key = c.plan_key AND pd.dimension = p.dimension
		         WHERE c.parent_id = p.parent_id)::bigint AS allocated
		  FROM tenantry.quota_pools p JOIN tenantry.quota_dimensions d ON d.key = p.dimension
		 WHERE p.parent_id = ? ORDER BY d.position`, parentID).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("quota: pools: %w", err)
	}
	return out, nil
}
