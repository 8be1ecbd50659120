package lifecycle

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/tenant"
)

// Policy is the effective decommissioning policy of a tenant.
type Policy struct {
	NoticeDays     int    `json:"notice_days"`
	ReadOnlyDays   int    `json:"read_only_days"`
	RetentionDays  int    `json:"retention_days"`
	ExportKeepDays int    `json:"export_keep_days"`
	ContactEmail   string `json:"contact_email"`
	Plan           string `json:"plan"`
	Compliance     string `json:"compliance"`
	// Sources names, per value, the scope it came from ("global", "plan enterprise", ...).
	Sources map[string]string `json:"sources"`
}

// PolicyJSON stores a Policy in a jsonb column.
type PolicyJSON Policy

// Value implements driver.Valuer.
func (p PolicyJSON) Value() (driver.Value, error) { return json.Marshal(Policy(p)) }

// Scan implements sql.Scanner.
func (p *PolicyJSON) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	case nil:
		*p = PolicyJSON{}
		return nil
	default:
		return fmt.Errorf("lifecycle: policy of type %T", v)
	}
	return json.Unmarshal(b, (*Policy)(p))
}

// PolicyRow is one row of lifecycle_policies.
type PolicyRow struct {
	Scope          string `gorm:"primaryKey"`
	Key            string `gorm:"primaryKey"`
	NoticeDays     *int
	ReadOnlyDays   *int
	RetentionDays  *int
	ExportKeepDays *int
	ContactEmail   *string
}

// TableName places policies in the control plane.
func (PolicyRow) TableName() string { return "tenantry.lifecycle_policies" }

// Policies returns every policy row, global first.
func (s *Service) Policies(ctx context.Context) ([]PolicyRow, error) {
	var rs []PolicyRow
	err := s.d.App.WithContext(ctx).Order("CASE scope WHEN 'global' THEN 0 WHEN 'plan' THEN 1 ELSE 2 END, key").Find(&rs).Error
	return rs, err
}

// PolicyFor resolves t's effective policy: notice and read-only periods, export keeping time and
// contact from the most specific scope that sets them (compliance profile, then plan, then
// global); the retention period is the longest any of them asks for, so a compliance minimum
// (HIPAA) is never undercut by a plan.
func (s *Service) PolicyFor(ctx context.Context, t tenant.Tenant) (Policy, error) {
	return s.policyFor(s.d.App.WithContext(ctx), t)
}

func (s *Service) policyFor(tx *gorm.DB, t tenant.Tenant) (Policy, error) {
	compliance, err := complianceOf(tx, t.ID)
	if err != nil {
		return Policy{}, err
	}
	var rows []PolicyRow
	err = tx.Where("(scope = 'global') OR (scope = 'plan' AND key = ?) OR (scope = 'compliance' AND key = ?)", t.PlanKey, compliance).
		Order("CASE scope WHEN 'global' THEN 0 WHEN 'plan' THEN 1 ELSE 2 END").Find(&rows).Error
	if err != nil {
		return Policy{}, err
	}
	p := Policy{NoticeDays: 30, ReadOnlyDays: 7, RetentionDays: 30, ExportKeepDays: 30, ContactEmail: "support@tenantry.example",
		Plan: t.PlanKey, Compliance: compliance, Sources: map[string]string{}}
	for _, r := range rows { // least specific first, so later rows win
		src := r.Scope
		if r.Key != "" {
			src += " " + r.Key
		}
		if r.NoticeDays != nil {
			p.NoticeDays, p.Sources["notice_days"] = *r.NoticeDays, src
		}
		if r.ReadOnlyDays != nil {
			p.ReadOnlyDays, p.Sources["read_only_days"] = *r.ReadOnlyDays, src
		}
		if r.ExportKeepDays != nil {
			p.ExportKeepDays, p.Sources["export_keep_days"] = *r.ExportKeepDays, src
		}
		if r.ContactEmail != nil && *r.ContactEmail != "" {
			p.ContactEmail, p.Sources["contact_email"] = *r.ContactEmail, src
		}
		if r.RetentionDays != nil && (r.Scope == "global" || *r.RetentionDays > p.RetentionDays) {
			p.RetentionDays, p.Sources["retention_days"] = *r.RetentionDays, src
		}
	}
	return p, nil
}

// complianceOf is the compliance profile of the template version the tenant was made from, or
// "none". Templates are optional: without the column or table the answer is "none".
func complianceOf(tx *gorm.DB, tenantID int64) (string, error) {
	var has bool
	if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = 'tenantry' AND table_name = 'tenants' AND column_name = 'template_version_id')
		AND to_regclass('tenantry.template_versions') IS NOT NULL`).Scan(&has).Error; err != nil || !has {
		return "none", err
	}
	var c *string
	err := tx.Raw(`SELECT v.compliance FROM tenantry.tenants t JOIN tenantry.template_versions v ON v.id = t.template_version_id
		WHERE t.id = ?`, tenantID).Scan(&c).Error
	if err != nil || c == nil {
		return "none", err
	}
	return *c, nil
}

// SetPolicy stores one policy row (nil values inherit).
func (s *Service) SetPolicy(ctx context.Context, r PolicyRow) error {
	if r.Scope != "global" && r.Scope != "plan" && r.Scope != "compliance" {
		return errors.New("lifecycle: unknown policy scope " + r.Scope)
	}
	return s.d.App.WithContext(ctx).Save(&r).Error
}
