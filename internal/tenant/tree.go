package tenant

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Node is a tenant as the tree browser shows it: with its number of children, so the browser
// can offer to expand it without loading them.
type Node struct {
	Tenant
	PlanName string
	Children int
}

// Nodes returns the children of parentID (the roots when nil), by name, at most limit.
func (s *Service) Nodes(ctx context.Context, parentID *int64, limit int) ([]Node, error) {
	q := s.db.WithContext(ctx).Table("tenantry.tenants AS t").
		Select(`t.*, p.name AS plan_name, (SELECT count(*) FROM tenantry.tenants c WHERE c.parent_id = t.id) AS children`).
		Joins("JOIN tenantry.plans p ON p.key = t.plan_key")
	if parentID == nil {
		q = q.Where("t.parent_id IS NULL")
	} else {
		q = q.Where("t.parent_id = ?", *parentID)
	}
	var ns []Node
	err := q.Order("lower(t.name), t.id").Limit(limit).Scan(&ns).Error
	return ns, err
}

// MovePlan says what moving a tenant under a new parent would change, before it is done.
type MovePlan struct {
	Tenant      Tenant
	From        *Tenant // nil: it is a root
	To          *Tenant // nil: it becomes a root
	Descendants int64   // tenants that move with it
}

// PlanMove checks a move of slug under newParent ("" for the top level) and says what moves.
// It refuses, at the field "parent", a parent that does not exist, the tenant itself, one of its
// descendants, or its current parent.
func (s *Service) PlanMove(ctx context.Context, slug, newParent string) (MovePlan, error) {
	return s.planMove(s.db.WithContext(ctx), slug, newParent)
}

func (s *Service) planMove(tx *gorm.DB, slug, newParent string) (MovePlan, error) {
	var p MovePlan
	if err := tx.Where("slug = ?", slug).First(&p.Tenant).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		return p, ErrNotFound
	} else if err != nil {
		return p, err
	}
	newParent = strings.ToLower(strings.TrimSpace(newParent))
	if p.Tenant.ParentID != nil {
		var from Tenant
		if err := tx.First(&from, *p.Tenant.ParentID).Error; err != nil {
			return p, err
		}
		p.From = &from
	}
	if newParent != "" {
		var to Tenant
		err := tx.Where("slug = ?", newParent).First(&to).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			return p, validation.Errors{"parent": "No tenant has this slug."}
		case err != nil:
			return p, err
		case to.ID == p.Tenant.ID:
			return p, validation.Errors{"parent": "A tenant cannot be its own parent."}
		case strings.HasPrefix(to.Path+".", p.Tenant.Path+"."):
			return p, validation.Errors{"parent": "This tenant is below " + p.Tenant.Name + "; moving it there would make a cycle."}
		}
		p.To = &to
	}
	if (p.From == nil && p.To == nil) || (p.From != nil && p.To != nil && p.From.ID == p.To.ID) {
		return p, validation.Errors{"parent": "The tenant is already there."}
	}
	err := tx.Model(&Tenant{}).Where("path <@ ? AND id <> ?", p.Tenant.Path, p.Tenant.ID).Count(&p.Descendants).Error
	return p, err
}

// Move puts slug (and its whole subtree) under newParent ("" for the top level), in one
// transaction that keeps every path consistent, and audits it with before and after.
func (s *Service) Move(ctx context.Context, actor, slug, newParent string) (MovePlan, error) {
	var plan MovePlan
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Serialise moves: two concurrent moves could otherwise form a cycle between them.
		if err := tx.Exec("LOCK TABLE tenantry.tenants IN SHARE ROW EXCLUSIVE MODE").Error; err != nil {
			return err
		}
		var err error
		if plan, err = s.planMove(tx, slug, newParent); err != nil {
			return err
		}
		var parentID *int64
		if plan.To != nil {
			parentID = &plan.To.ID
		}
		if err := tx.Model(&Tenant{}).Where("id = ?", plan.Tenant.ID).
			Updates(map[string]any{"parent_id": parentID, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		slugOf := func(t *Tenant) string {
			if t == nil {
				return ""
			}
			return t.Slug
		}
		return audit.Record(tx, audit.Event{TenantID: &plan.Tenant.ID, Actor: actor, Action: "tenant.moved", Target: plan.Tenant.Slug,
			Detail: audit.Detail(map[string]any{"before": map[string]any{"parent": slugOf(plan.From)},
				"after": map[string]any{"parent": slugOf(plan.To)}, "descendants_moved": plan.Descendants})})
	})
	return plan, err
}
