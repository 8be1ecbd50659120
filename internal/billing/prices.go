package billing

import (
	"context"
	"errors"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/validation"
)

// Dimension is a quota dimension as billing sees it.
type Dimension struct {
	Key      string
	Name     string
	Unit     string
	Kind     string // counter: billed on the month's sum; gauge: on the month's peak
	Position int
}

// UnitPrice is a plan's price for one dimension.
type UnitPrice struct {
	Dimension     string
	UnitPrice     decimal.Decimal
	IncludedUnits int64
}

// PlanPricing is a plan with its monthly base price and its per-unit prices by dimension
// (dimensions without a price are not billed for that plan).
type PlanPricing struct {
	Key    string
	Name   string
	Base   decimal.Decimal
	Prices map[string]UnitPrice
}

// Dimensions returns the quota dimensions in catalogue order.
func (s *Service) Dimensions(ctx context.Context) ([]Dimension, error) {
	var ds []Dimension
	err := s.db.WithContext(ctx).Raw("SELECT key, name, unit, kind, position FROM tenantry.quota_dimensions ORDER BY position, key").Scan(&ds).Error
	return ds, err
}

// Pricing returns every plan, cheapest first, with its prices.
func (s *Service) Pricing(ctx context.Context) ([]PlanPricing, error) {
	return pricing(s.db.WithContext(ctx))
}

func pricing(tx *gorm.DB) ([]PlanPricing, error) {
	var plans []struct {
		Key, Name         string
		MonthlyPriceCents int64
	}
	if err := tx.Raw("SELECT key, name, monthly_price_cents FROM tenantry.plans ORDER BY position, key").Scan(&plans).Error; err != nil {
		return nil, err
	}
	var prices []struct {
		PlanKey       string
		Dimension     string
		UnitPrice     decimal.Decimal
		IncludedUnits int64
	}
	if err := tx.Raw("SELECT plan_key, dimension, unit_price, included_units FROM tenantry.plan_prices").Scan(&prices).Error; err != nil {
		return nil, err
	}
	out := make([]PlanPricing, len(plans))
	idx := map[string]int{}
	for i, p := range plans {
		out[i] = PlanPricing{Key: p.Key, Name: p.Name, Base: decimal.New(p.MonthlyPriceCents, -2), Prices: map[string]UnitPrice{}}
		idx[p.Key] = i
	}
	for _, p := range prices {
		if i, ok := idx[p.PlanKey]; ok {
			out[i].Prices[p.Dimension] = UnitPrice{Dimension: p.Dimension, UnitPrice: p.UnitPrice, IncludedUnits: p.IncludedUnits}
		}
	}
	return out, nil
}

// PriceInput is the plan price form: the base price and, per dimension key, the unit price and
// included units as typed. An empty unit price removes the dimension from the plan's bill.
type PriceInput struct {
	Base     string
	Unit     map[string]string
	Included map[string]string
}

// SetPlanPrices validates and saves a plan's prices in one transaction, audited with before and
// after. Field errors: "base", "price_<dimension>", "included_<dimension>"; nothing is saved then.
func (s *Service) SetPlanPrices(ctx context.Context, actor, planKey string, in PriceInput) error {
	dims, err := s.Dimensions(ctx)
	if err != nil {
		return err
	}
	errs := validation.Errors{}
	base, msg := ParseDecimal(in.Base, 2)
	if msg != "" {
		errs.Add("base", msg)
	}
	type row struct {
		dim      string
		price    decimal.Decimal
		included int64
		remove   bool
	}
	var rows []row
	for _, d := range dims {
		raw, inc := in.Unit[d.Key], in.Included[d.Key]
		r := row{dim: d.Key}
		if raw == "" && (inc == "" || inc == "0") {
			r.remove = true
			rows = append(rows, r)
			continue
		}
		if r.price, msg = ParseDecimal(raw, 4); msg != "" {
			errs.Add("price_"+d.Key, msg)
		}
		if r.included, msg = parseCount(inc); msg != "" {
			errs.Add("included_"+d.Key, msg)
		}
		rows = append(rows, r)
	}
	if err := errs.Err(); err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		before, err := pricing(tx)
		if err != nil {
			return err
		}
		var plan *PlanPricing
		for i := range before {
			if before[i].Key == planKey {
				plan = &before[i]
			}
		}
		if plan == nil {
			return ErrNotFound
		}
		if err := tx.Exec("UPDATE tenantry.plans SET monthly_price_cents = ? WHERE key = ?", base.Shift(2).IntPart(), planKey).Error; err != nil {
			return err
		}
		after := map[string]any{"base": Money(base)}
		was := map[string]any{"base": Money(plan.Base)}
		for _, p := range plan.Prices {
			was[p.Dimension] = map[string]any{"unit_price": Price(p.UnitPrice), "included": p.IncludedUnits}
		}
		for _, r := range rows {
			if r.remove {
				if err := tx.Exec("DELETE FROM tenantry.plan_prices WHERE plan_key = ? AND dimension = ?", planKey, r.dim).Error; err != nil {
					return err
				}
				continue
			}
			err := tx.Exec(`INSERT INTO tenantry.plan_prices (plan_key, dimension, unit_price, included_units) VALUES (?, ?, ?, ?)
				ON CONFLICT (plan_key, dimension) DO UPDATE SET unit_price = EXCLUDED.unit_price,
				included_units = EXCLUDED.included_units, updated_at = now()`, planKey, r.dim, r.price, r.included).Error
			if err != nil {
				return err
			}
			after[r.dim] = map[string]any{"unit_price": Price(r.price), "included": r.included}
		}
		return record(tx, actor, "plan.prices_changed", "plan:"+planKey, nil, map[string]any{"before": was, "after": after})
	})
}

// IsNotFound reports whether err means the thing asked for does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, gorm.ErrRecordNotFound)
}
