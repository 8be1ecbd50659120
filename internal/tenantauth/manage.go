package tenantauth

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
)

// Managing a tenant's users from its portal: a searchable page of users, role changes and
// deactivation. A tenant always keeps one active admin, and nobody changes their own role or
// deactivates themselves (another admin must).

// Refusals of a user change, each shown as its own message.
var (
	ErrSelf      = errors.New("tenantauth: you cannot change your own role or deactivate yourself")
	ErrLastAdmin = errors.New("tenantauth: the tenant's last active admin")
)

// UserQuery selects a page of users.
type UserQuery struct {
	Search  string
	Page    int
	PerPage int
}

// UserPage lists tenant tenantID's users matching q by e-mail, the total, and how many active
// admins the tenant has.
func (s *Service) UserPage(ctx context.Context, tenantID int64, q UserQuery) (users []User, total, admins int64, err error) {
	q.Page = max(q.Page, 1)
	if q.PerPage <= 0 || q.PerPage > 100 {
		q.PerPage = 25
	}
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		f := tx.Model(&User{})
		if q.Search != "" {
			like := db.Contains(q.Search)
			f = f.Where("(email ILIKE ? OR name ILIKE ?)", like, like)
		}
		if err := f.Session(&gorm.Session{}).Count(&total).Error; err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("role = ? AND disabled_at IS NULL", RoleAdmin).Count(&admins).Error; err != nil {
			return err
		}
		return f.Order("email").Limit(q.PerPage).Offset((q.Page - 1) * q.PerPage).Find(&users).Error
	})
	return users, total, admins, err
}

// Counts returns how many users tenant tenantID has (active ones) and how many API keys are
// live (not revoked, not expired).
func (s *Service) Counts(ctx context.Context, tenantID int64) (users, active, apiKeys int64, err error) {
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Count(&users).Error; err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("disabled_at IS NULL").Count(&active).Error; err != nil {
			return err
		}
		return tx.Model(&apiKeyRow{}).Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())").Count(&apiKeys).Error
	})
	return users, active, apiKeys, err
}

// apiKeyRow is the tenant schema's api_keys table, only counted here (internal/apikeys owns it).
type apiKeyRow struct{ ID int64 }

func (apiKeyRow) TableName() string { return "api_keys" }
func (apiKeyRow) TenantSchema()     {}

// change locks user id of the tenant, checks the guards and applies fn.
func (s *Service) change(ctx context.Context, tenantID, id, actorID int64, demotesOrDisables bool, fn func(tx *gorm.DB, u *User) error) (User, error) {
	var u User
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		// Lock the active admins: one admin-changing transaction at a time per tenant, so two
		// admins cannot demote each other at once and leave none.
		var admins []User
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("role = ? AND disabled_at IS NULL", RoleAdmin).Order("id").Find(&admins).Error; err != nil {
			return err
		}
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&u, id).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if u.ID == actorID {
			return ErrSelf
		}
		if demotesOrDisables && u.Role == RoleAdmin && u.Active() {
			var admins int64
			if err := tx.Model(&User{}).Where("role = ? AND disabled_at IS NULL", RoleAdmin).Count(&admins).Error; err != nil {
				return err
			}
			if admins <= 1 {
				return ErrLastAdmin
			}
		}
		return fn(tx, &u)
	})
	return u, err
}

// SetRole changes user id's role; actorID is the signed-in user (0 for an acting platform
// admin), actor is recorded.
func (s *Service) SetRole(ctx context.Context, tenantID, id, actorID int64, actor string, role Role) (User, error) {
	if role != RoleAdmin && role != RoleMember {
		return User{}, errors.New("tenantauth: unknown role " + string(role))
	}
	return s.change(ctx, tenantID, id, actorID, role == RoleMember, func(tx *gorm.DB, u *User) error {
		if u.Role == role {
			return nil
		}
		before := u.Role
		u.Role = role
		if err := tx.Model(u).Updates(map[string]any{"role": role, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "user.role_changed", Target: u.Email,
			Detail: audit.Detail(map[string]any{"before": before, "after": role})})
	})
}

// SetActive deactivates (ending every session) or reactivates user id.
func (s *Service) SetActive(ctx context.Context, tenantID, id, actorID int64, actor string, active bool) (User, error) {
	return s.change(ctx, tenantID, id, actorID, !active, func(tx *gorm.DB, u *User) error {
		if u.Active() == active {
			return nil
		}
		now := time.Now().UTC()
		upd := map[string]any{"updated_at": now}
		action := "user.reactivated"
		if active {
			upd["disabled_at"] = nil
			u.DisabledAt = nil
		} else {
			upd["disabled_at"] = now
			upd["session_epoch"] = gorm.Expr("session_epoch + 1")
			u.DisabledAt = &now
			action = "user.deactivated"
		}
		if err := tx.Model(u).Updates(upd).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: action, Target: u.Email})
	})
}

// OpenInvitations lists tenant tenantID's invitations not accepted and not expired.
func (s *Service) OpenInvitations(ctx context.Context, tenantID int64) ([]Invitation, error) {
	var out []Invitation
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Where("accepted_at IS NULL AND expires_at > now()").Order("created_at DESC").Limit(50).Find(&out).Error
	})
	return out, err
}

// AuditPage returns a page of tenant tenantID's own audit trail, newest first, matching search
// in actor, action or target, and the total.
func (s *Service) AuditPage(ctx context.Context, tenantID int64, search string, page, perPage int) ([]audit.TenantEvent, int64, error) {
	page = max(page, 1)
	var events []audit.TenantEvent
	var total int64
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		f := tx.Model(&audit.TenantEvent{})
		if search != "" {
			like := db.Contains(search)
			f = f.Where("(actor ILIKE ? OR action ILIKE ? OR target ILIKE ?)", like, like, like)
		}
		if err := f.Session(&gorm.Session{}).Count(&total).Error; err != nil {
			return err
		}
		return f.Order("id DESC").Limit(perPage).Offset((page - 1) * perPage).Find(&events).Error
	})
	return events, total, err
}
