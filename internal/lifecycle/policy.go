package lifecycle

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
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

// SetPolicy validates and stores one policy row (nil values inherit; the global row must set
// every value), audited.
func (s *Service) SetPolicy(ctx context.Context, r PolicyRow) error {
	return s.SetPolicyBy(ctx, "system", r)
}

// SetPolicyBy is SetPolicy with the actor recorded in the audit trail.
func (s *Service) SetPolicyBy(ctx context.Context, actor string, r PolicyRow) error {
	errs := validation.Errors{}
	switch r.Scope {
	case "global":
		r.Key = ""
	case "plan", "compliance":
		if strings.TrimSpace(r.Key) == "" {
			errs.Add("key", "Choose the plan or compliance profile this override is for.")
		}
	default:
		return errors.New("lifecycle: unknown policy scope " + r.Scope)
	}
	check := func(field string, v *int, min, max int, label string) {
		if v == nil {
			if r.Scope == "global" {
				errs.Add(field, "The global policy must set the "+label+".")
			}
			return
		}
		if *v < min || *v > max {
			errs.Add(field, fmt.Sprintf("Give the %s as a whole number of days from %d to %d.", label, min, max))
		}
	}
	check("notice_days", r.NoticeDays, 1, 365, "notice period")
	check("read_only_days", r.ReadOnlyDays, 0, 365, "read-only period")
	check("retention_days", r.RetentionDays, 0, 3650, "retention period")
	check("export_keep_days", r.ExportKeepDays, 1, 365, "time exports are kept")
	if r.ContactEmail != nil {
		c := strings.TrimSpace(*r.ContactEmail)
		if c == "" {
			r.ContactEmail = nil
		} else if _, err := mail.ParseAddress(c); err != nil || strings.ContainsAny(c, "<> ") {
			errs.Add("contact_email", "Enter an e-mail address such as support@example.com.")
		} else {
			r.ContactEmail = &c
		}
	}
	if r.Scope == "global" && r.ContactEmail == nil && errs["contact_email"] == "" {
		errs.Add("contact_email", "The global policy must name a contact address.")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO tenantry.lifecycle_policies (scope, key, notice_days, read_only_days, retention_days, export_keep_days, contact_email, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, now())
			ON CONFLICT (scope, key) DO UPDATE SET notice_days = EXCLUDED.notice_days, read_only_days = EXCLUDED.read_only_days,
			  retention_days = EXCLUDED.retention_days, export_keep_days = EXCLUDED.export_keep_days,
			  contact_email = EXCLUDED.contact_email, updated_at = now()`,
			r.Scope, r.Key, r.NoticeDays, r.ReadOnlyDays, r.RetentionDays, r.ExportKeepDays, r.ContactEmail).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "lifecycle.policy_set", Target: strings.TrimSpace(r.Scope + " " + r.Key),
			Detail: audit.Detail(map[string]any{"notice_days": r.NoticeDays, "read_only_days": r.ReadOnlyDays, "retention_days": r.RetentionDays,
				"export_keep_days": r.ExportKeepDays, "contact_email": r.ContactEmail})})
	})
}

// DeletePolicy removes a plan or compliance override (the global policy stays).
func (s *Service) DeletePolicy(ctx context.Context, actor, scope, key string) error {
	if scope == "global" {
		return validation.Errors{"key": "The global policy cannot be removed."}
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM tenantry.lifecycle_policies WHERE scope = ? AND key = ?", scope, key).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "lifecycle.policy_removed", Target: scope + " " + key})
	})
}
