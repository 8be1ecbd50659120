package billing

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"
)

// Invoice is one account's bill for one month.
type Invoice struct {
	ID           int64
	Number       string
	AccountID    int64
	TenantID     int64 // the paying tenant
	PeriodStart  time.Time
	PeriodEnd    time.Time // exclusive
	AccountName  string
	AccountEmail string
	Currency     string
	Status       string
	IssueDate    time.Time
	DueDate      time.Time
	Total        decimal.Decimal
	Paid         decimal.Decimal
	IssuedAt     *time.Time
	PaidAt       *time.Time
	VoidedAt     *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time

	Sections []Section `gorm:"-"`
	Payments []Payment `gorm:"-"`
}

// TableName places invoices in the control plane.
func (Invoice) TableName() string { return "tenantry.invoices" }

// Balance is what remains to be paid.
func (i Invoice) Balance() decimal.Decimal { return i.Total.Sub(i.Paid) }

// Period words the billing month, "October 2026".
func (i Invoice) Period() string { return i.PeriodStart.Format("January 2006") }

// Section is one tenant's part of an invoice.
type Section struct {
	ID         int64
	InvoiceID  int64
	TenantID   int64
	Position   int
	TenantSlug string
	TenantName string
	PlanKey    string
	PlanName   string
	Subtotal   decimal.Decimal
	Lines      []Line `gorm:"-"`
}

// TableName places sections in the control plane.
func (Section) TableName() string { return "tenantry.invoice_sections" }

// Line is one item of a section: the plan's base price, or one dimension's usage.
type Line struct {
	ID          int64
	SectionID   int64
	Position    int
	Kind        string // base or usage
	Dimension   string
	Description string
	Unit        string
	Used        int64 // usage in the month (sum for counters, peak for gauges)
	Included    int64 // units covered by the base price
	Quantity    int64 // billed units: 1 for the base price, max(0, used - included) for usage
	UnitPrice   decimal.Decimal
	Amount      decimal.Decimal
}

// TableName places lines in the control plane.
func (Line) TableName() string { return "tenantry.invoice_lines" }

// Payment is money received against an invoice.
type Payment struct {
	ID             int64
	InvoiceID      int64
	Amount         decimal.Decimal
	PaidAt         time.Time
	Reference      string
	IdempotencyKey string
	Source         string // admin or api
	Actor          string
	CreatedAt      time.Time
}

// TableName places payments in the control plane.
func (Payment) TableName() string { return "tenantry.invoice_payments" }

// GenerateResult says what a run of Generate did.
type GenerateResult struct {
	Period   time.Time
	Created  int
	Existing int
	Numbers  []string // of the invoices created
}

// generateLock serialises runs of Generate, so two nodes or a click during the job cannot both
// number the same account's invoice.
const generateLock = 0x7e4a_b111

// Generate produces the invoices of the month that starts at month (any day of it will do), one
// per paying account, for every account that has none for that month yet; existing invoices are
// left as they are, so running it again changes nothing. Tenants are billed when they existed
// before the month ended and are neither purged nor still provisioning. Usage comes from the daily usage rollups: the sum
// of the month for counters, the highest level for gauges.
func (s *Service) Generate(ctx context.Context, actor string, month time.Time) (GenerateResult, error) {
	start := MonthStart(month)
	end := start.AddDate(0, 1, 0)
	res := GenerateResult{Period: start}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", generateLock).Error; err != nil {
			return err
		}
		var nodes []treeNode
		if err := tx.Raw(`SELECT id, slug, name, plan_key, state, parent_id, path::text AS path FROM tenantry.tenants
			WHERE created_at < ?`, end).Scan(&nodes).Error; err != nil {
			return err
		}
		var ms []struct {
			TenantID int64
			Mode     string
		}
		if err := tx.Raw("SELECT tenant_id, mode FROM tenantry.tenant_billing").Scan(&ms).Error; err != nil {
			return err
		}
		modes := map[int64]string{}
		for _, m := range ms {
			modes[m.TenantID] = m.Mode
		}
		byID := make(map[int64]treeNode, len(nodes))
		for _, n := range nodes {
			byID[n.ID] = n
		}
		billed := map[int64][]treeNode{} // payer -> tenants billed to it
		for _, n := range nodes {
			if n.State == "purged" || n.State == "provisioning" { // gone, or not serving yet
				continue
			}
			p := resolvePayer(n, byID, modes)
			billed[p] = append(billed[p], n)
		}
		var existing []int64
		if err := tx.Raw(`SELECT a.tenant_id FROM tenantry.invoices i JOIN tenantry.billing_accounts a ON a.id = i.account_id
			WHERE i.period_start = ?`, start).Scan(&existing).Error; err != nil {
			return err
		}
		done := map[int64]bool{}
		for _, id := range existing {
			done[id] = true
		}
		plans, err := pricing(tx)
		if err != nil {
			return err
		}
		planByKey := map[string]PlanPricing{}
		for _, p := range plans {
			planByKey[p.Key] = p
		}
		dims, err := s.WithTx(tx).Dimensions(ctx)
		if err != nil {
			return err
		}
		usage, err := monthUsage(tx, start, end)
		if err != nil {
			return err
		}
		payers := make([]int64, 0, len(billed))
		for id := range billed {
			payers = append(payers, id)
		}
		sort.Slice(payers, func(i, j int) bool { return payers[i] < payers[j] })
		var todo []int64
		for _, pid := range payers {
			if done[pid] {
				res.Existing++
				continue
			}
			todo = append(todo, pid)
		}
		accounts, err := ensureAccounts(tx, todo)
		if err != nil {
			return err
		}
		// In chunks, so memory stays bounded and each chunk is a handful of multi-row INSERTs.
		const chunk = 500
		for lo := 0; lo < len(todo); lo += chunk {
			batch := make([]Invoice, 0, chunk)
			for _, pid := range todo[lo:min(lo+chunk, len(todo))] {
				inv := buildInvoice(accounts[pid], byID[pid], billed[pid], planByKey, dims, usage)
				inv.PeriodStart, inv.PeriodEnd = start, end
				batch = append(batch, inv)
			}
			if err := insertInvoices(tx, batch, accounts); err != nil {
				return err
			}
			for _, inv := range batch {
				res.Numbers = append(res.Numbers, inv.Number)
			}
			res.Created += len(batch)
		}
		if res.Created == 0 {
			return nil
		}
		detail := map[string]any{"period": start.Format("2006-01"), "created": res.Created, "already_existed": res.Existing,
			"first": res.Numbers[0], "last": res.Numbers[len(res.Numbers)-1]}
		return record(tx, actor, "invoices.generated", "period:"+start.Format("2006-01"), nil, detail)
	})
	return res, err
}

// usageKey is one tenant's one dimension.
type usageKey struct {
	tenant    int64
	dimension string
}

func monthUsage(tx *gorm.DB, start, end time.Time) (map[usageKey]int64, error) {
	var rows []struct {
		TenantID  int64
		Dimension string
		Used      int64
	}
	err := tx.Raw(`SELECT r.tenant_id, r.dimension,
		       CASE WHEN d.kind = 'gauge' THEN max(r.peak) ELSE sum(r.total) END::bigint AS used
		  FROM tenantry.usage_rollups r JOIN tenantry.quota_dimensions d ON d.key = r.dimension
		 WHERE r.granularity = 'day' AND r.bucket_start >= ? AND r.bucket_start < ?
		 GROUP BY r.tenant_id, r.dimension, d.kind`, start, end).Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[usageKey]int64, len(rows))
	for _, r := range rows {
		out[usageKey{r.TenantID, r.Dimension}] = r.Used
	}
	return out, nil
}

// buildInvoice computes the sections, lines and totals of an invoice (no I/O, so it is the one
// place the arithmetic lives). The payer's own section comes first, then the tenants billed to
// it by depth and name.
func buildInvoice(acc Account, payer treeNode, tenants []treeNode, plans map[string]PlanPricing, dims []Dimension, usage map[usageKey]int64) Invoice {
	sort.SliceStable(tenants, func(i, j int) bool {
		a, b := tenants[i], tenants[j]
		if (a.ID == payer.ID) != (b.ID == payer.ID) {
			return a.ID == payer.ID
		}
		da, db := strings.Count(a.Path, "."), strings.Count(b.Path, ".")
		if da != db {
			return da < db
		}
		if la, lb := strings.ToLower(a.Name), strings.ToLower(b.Name); la != lb {
			return la < lb
		}
		return a.ID < b.ID
	})
	inv := Invoice{AccountID: acc.ID, TenantID: payer.ID, AccountName: acc.Name, AccountEmail: acc.Email,
		Currency: acc.Currency, Status: StatusDraft, Total: decimal.Zero, Paid: decimal.Zero}
	for i, t := range tenants {
		plan := plans[t.PlanKey]
		name := plan.Name
		if name == "" {
			name = t.PlanKey
		}
		sec := Section{TenantID: t.ID, Position: i + 1, TenantSlug: t.Slug, TenantName: t.Name, PlanKey: t.PlanKey, PlanName: name}
		base := plan.Base
		sec.Lines = append(sec.Lines, Line{Position: 1, Kind: "base", Description: name + " plan, monthly base price",
			Quantity: 1, UnitPrice: base, Amount: base.Round(2)})
		for _, d := range dims {
			p, ok := plan.Prices[d.Key]
			if !ok {
				continue
			}
			used := usage[usageKey{t.ID, d.Key}]
			qty := max(0, used-p.IncludedUnits)
			sec.Lines = append(sec.Lines, Line{Position: len(sec.Lines) + 1, Kind: "usage", Dimension: d.Key, Description: d.Name,
				Unit: d.Unit, Used: used, Included: p.IncludedUnits, Quantity: qty, UnitPrice: p.UnitPrice,
				Amount: decimal.NewFromInt(qty).Mul(p.UnitPrice).Round(2)})
		}
		sec.Subtotal = decimal.Zero
		for _, l := range sec.Lines {
			sec.Subtotal = sec.Subtotal.Add(l.Amount)
		}
		inv.Total = inv.Total.Add(sec.Subtotal)
		inv.Sections = append(inv.Sections, sec)
	}
	return inv
}

// ensureAccounts gives every paying tenant in ids a billing account (named after the tenant,
// USD, 30 days) when it has none, in one statement, and returns the accounts by tenant.
func ensureAccounts(tx *gorm.DB, ids []int64) (map[int64]Account, error) {
	out := make(map[int64]Account, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if err := tx.Exec(`INSERT INTO tenantry.billing_accounts (tenant_id, name)
		SELECT id, name FROM tenantry.tenants WHERE id = ANY (?::bigint[]) ON CONFLICT (tenant_id) DO NOTHING`, int8Array(ids)).Error; err != nil {
		return nil, err
	}
	var accs []Account
	if err := tx.Where("tenant_id = ANY (?::bigint[])", int8Array(ids)).Find(&accs).Error; err != nil {
		return nil, err
	}
	for _, a := range accs {
		out[a.TenantID] = a
	}
	return out, nil
}

// insertInvoices numbers and stores built invoices with their sections and lines, a few
// multi-row INSERTs for the lot. Drafts carry a provisional issue date (the day after the period)
// and due date; issuing sets both for real.
func insertInvoices(tx *gorm.DB, invs []Invoice, accounts map[int64]Account) error {
	var numbers []int64
	if err := tx.Raw("SELECT nextval('tenantry.invoice_numbers') FROM generate_series(1, ?)", len(invs)).Scan(&numbers).Error; err != nil {
		return err
	}
	sort.Slice(numbers, func(i, j int) bool { return numbers[i] < numbers[j] })
	for i := range invs {
		inv := &invs[i]
		inv.Number = fmt.Sprintf("INV-%06d", numbers[i])
		inv.IssueDate = inv.PeriodEnd
		inv.DueDate = inv.PeriodEnd.AddDate(0, 0, accounts[inv.TenantID].PaymentTermsDays)
	}
	if err := tx.Omit("Sections", "Payments").CreateInBatches(&invs, 1000).Error; err != nil {
		return fmt.Errorf("billing: insert invoices: %w", err)
	}
	var sections []*Section
	for i := range invs {
		for j := range invs[i].Sections {
			invs[i].Sections[j].InvoiceID = invs[i].ID
			sections = append(sections, &invs[i].Sections[j])
		}
	}
	if len(sections) > 0 {
		if err := tx.Omit("Lines").CreateInBatches(sections, 2000).Error; err != nil {
			return fmt.Errorf("billing: insert sections: %w", err)
		}
	}
	var lines []Line
	for _, sec := range sections {
		for j := range sec.Lines {
			sec.Lines[j].SectionID = sec.ID
		}
		lines = append(lines, sec.Lines...)
	}
	if len(lines) > 0 {
		if err := tx.CreateInBatches(&lines, 4000).Error; err != nil {
			return fmt.Errorf("billing: insert lines: %w", err)
		}
	}
	return nil
}

// int8Array is ids as a PostgreSQL array literal, one parameter however many ids there are.
func int8Array(ids []int64) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte('}')
	return b.String()
}
