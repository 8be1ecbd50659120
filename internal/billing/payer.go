package billing

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/validation"
)

// Account is the billing account a paying tenant's invoices are addressed to.
type Account struct {
	ID               int64
	TenantID         int64
	Name             string
	Email            string
	Currency         string
	PaymentTermsDays int
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TableName places accounts in the control plane.
func (Account) TableName() string { return "tenantry.billing_accounts" }

// treeNode is a tenant as payer resolution needs it.
type treeNode struct {
	ID       int64
	Slug     string
	Name     string
	PlanKey  string
	State    string
	ParentID *int64
	Path     string
}

// Payer says who pays for a tenant and why.
type Payer struct {
	// Mode is the tenant's own choice: "self", "parent", or "" when it has none (billed to parent).
	Mode string
	// TenantID, Slug and Name are the paying tenant (the tenant itself when it pays).
	TenantID int64
	Slug     string
	Name     string
	// Inherited is true when the tenant is billed to an ancestor.
	Inherited bool
	// Reason words it for people: "pays for itself", "billed to Acme Holdings (inherited)".
	Reason string
	// Root is true for a top-level tenant (which always pays).
	Root bool
	// Account is the payer's billing account, nil until one is created.
	Account *Account
}

// resolvePayer walks the tenant's path from itself to the root and returns the first tenant that
// pays: one that chose "self", or the root. Purged tenants cannot pay and are passed over.
func resolvePayer(n treeNode, byID map[int64]treeNode, modes map[int64]string) int64 {
	ids := strings.Split(n.Path, ".")
	for i := len(ids) - 1; i >= 0; i-- {
		id, err := strconv.ParseInt(ids[i], 10, 64)
		if err != nil {
			continue
		}
		a, ok := byID[id]
		if !ok || a.State == "purged" {
			continue
		}
		if i == 0 || modes[id] == ModeSelf {
			return id
		}
	}
	return n.ID
}

// Payer resolves who pays for tenantID.
func (s *Service) Payer(ctx context.Context, tenantID int64) (Payer, error) {
	tx := s.db.WithContext(ctx)
	var self treeNode
	if err := tx.Raw("SELECT id, slug, name, plan_key, state, parent_id, path::text AS path FROM tenantry.tenants WHERE id = ?", tenantID).Scan(&self).Error; err != nil {
		return Payer{}, err
	}
	if self.ID == 0 {
		return Payer{}, ErrNotFound
	}
	var chain []treeNode
	if err := tx.Raw(`SELECT id, slug, name, plan_key, state, parent_id, path::text AS path FROM tenantry.tenants
		WHERE path @> ?::ltree`, self.Path).Scan(&chain).Error; err != nil {
		return Payer{}, err
	}
	byID := map[int64]treeNode{}
	ids := []int64{}
	for _, n := range chain {
		byID[n.ID] = n
		ids = append(ids, n.ID)
	}
	var ms []struct {
		TenantID int64
		Mode     string
	}
	if err := tx.Raw("SELECT tenant_id, mode FROM tenantry.tenant_billing WHERE tenant_id IN ?", ids).Scan(&ms).Error; err != nil {
		return Payer{}, err
	}
	modes := map[int64]string{}
	for _, m := range ms {
		modes[m.TenantID] = m.Mode
	}
	payer := byID[resolvePayer(self, byID, modes)]
	p := Payer{Mode: modes[self.ID], TenantID: payer.ID, Slug: payer.Slug, Name: payer.Name,
		Inherited: payer.ID != self.ID, Root: self.ParentID == nil}
	switch {
	case !p.Inherited && p.Root && p.Mode != ModeSelf:
		p.Reason = "pays for itself (a top-level tenant always does)"
	case !p.Inherited:
		p.Reason = "pays for itself"
	case p.Mode == ModeParent:
		p.Reason = fmt.Sprintf("billed to %s (set on this tenant: billed to parent)", payer.Name)
	default:
		p.Reason = fmt.Sprintf("billed to %s (inherited)", payer.Name)
	}
	var acc Account
	err := tx.Where("tenant_id = ?", payer.ID).Take(&acc).Error
	switch {
	case err == nil:
		p.Account = &acc
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return p, err
	}
	return p, nil
}

// SetMode records whether the tenant pays for itself ("self") or is billed to its parent
// ("parent"), audited. Paying for itself gives the tenant a billing account if it has none.
// A top-level tenant always pays, so "parent" is refused for it at the field "mode".
func (s *Service) SetMode(ctx context.Context, actor string, tenantID int64, mode string) error {
	if mode != ModeSelf && mode != ModeParent {
		return invalid("mode", "Choose whether the tenant pays for itself or is billed to its parent.")
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t treeNode
		if err := tx.Raw("SELECT id, slug, name, parent_id FROM tenantry.tenants WHERE id = ? FOR UPDATE", tenantID).Scan(&t).Error; err != nil {
			return err
		}
		if t.ID == 0 {
			return ErrNotFound
		}
		if t.ParentID == nil && mode == ModeParent {
			return invalid("mode", "This is a top-level tenant: it has no parent to bill, so it always pays for itself.")
		}
		var before string
		if err := tx.Raw("SELECT mode FROM tenantry.tenant_billing WHERE tenant_id = ?", tenantID).Scan(&before).Error; err != nil {
			return err
		}
		if err := tx.Exec(`INSERT INTO tenantry.tenant_billing (tenant_id, mode) VALUES (?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()`, tenantID, mode).Error; err != nil {
			return err
		}
		if mode == ModeSelf {
			if _, err := ensureAccount(tx, tenantID, t.Name); err != nil {
				return err
			}
		}
		if before == "" {
			before = "inherit"
		}
		return record(tx, actor, "tenant.billing_mode_changed", "tenant:"+t.Slug, &tenantID,
			map[string]any{"before": before, "after": mode})
	})
}

// ensureAccount returns the tenant's billing account, creating it (named after the tenant,
// USD, 30 days) when missing.
func ensureAccount(tx *gorm.DB, tenantID int64, name string) (Account, error) {
	if err := tx.Exec(`INSERT INTO tenantry.billing_accounts (tenant_id, name) VALUES (?, ?)
		ON CONFLICT (tenant_id) DO NOTHING`, tenantID, name).Error; err != nil {
		return Account{}, err
	}
	var a Account
	err := tx.Where("tenant_id = ?", tenantID).Take(&a).Error
	return a, err
}

// AccountInput is the billing account form as typed.
type AccountInput struct {
	Name     string
	Email    string
	Currency string
	Terms    string
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// SaveAccount validates and saves the billing account of a tenant that pays for itself (creating
// it when missing), audited. Field errors: name, email, currency, terms.
func (s *Service) SaveAccount(ctx context.Context, actor string, tenantID int64, in AccountInput) (Account, error) {
	errs := validation.Errors{}
	in.Name = strings.TrimSpace(in.Name)
	in.Email = strings.TrimSpace(in.Email)
	in.Currency = strings.ToUpper(strings.TrimSpace(in.Currency))
	if in.Name == "" || len(in.Name) > 200 {
		errs.Add("name", "Enter the name invoices are addressed to (1 to 200 characters).")
	}
	if in.Email != "" {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
			errs.Add("email", "Enter one e-mail address, such as billing@example.com.")
		}
	}
	if !currencyPattern.MatchString(in.Currency) {
		errs.Add("currency", "Enter a three-letter ISO 4217 currency code, such as USD or EUR.")
	}
	terms, err := strconv.Atoi(strings.TrimSpace(in.Terms))
	if err != nil || terms < 0 || terms > 365 {
		errs.Add("terms", "Enter the payment terms as a whole number of days from 0 to 365.")
	}
	if err := errs.Err(); err != nil {
		return Account{}, err
	}
	var acc Account
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.WithTx(tx).Payer(ctx, tenantID)
		if err != nil {
			return err
		}
		if p.Inherited {
			return invalid("name", "This tenant is billed to "+p.Name+"; make it pay for itself first to give it its own account.")
		}
		before, err := ensureAccount(tx, tenantID, in.Name)
		if err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE tenantry.billing_accounts SET name = ?, email = ?, currency = ?, payment_terms_days = ?, updated_at = now()
			WHERE id = ?`, in.Name, in.Email, in.Currency, terms, before.ID).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", before.ID).Take(&acc).Error; err != nil {
			return err
		}
		return record(tx, actor, "billing_account.changed", "tenant:"+p.Slug, &tenantID, map[string]any{
			"before": map[string]any{"name": before.Name, "email": before.Email, "currency": before.Currency, "terms": before.PaymentTermsDays},
			"after":  map[string]any{"name": acc.Name, "email": acc.Email, "currency": acc.Currency, "terms": acc.PaymentTermsDays}})
	})
	return acc, err
}

// WithTx returns a copy of s whose queries run in tx.
func (s *Service) WithTx(tx *gorm.DB) *Service {
	c := *s
	c.db = tx
	return &c
}
