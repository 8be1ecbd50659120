package admin

import (
	"strconv"

	"github.com/tenantry/tenantry/views/components"
)

// Quotas is the tenant page's Quotas tab: one row per dimension of the catalogue.
type Quotas struct {
	Rows       []QuotaRow
	Slug       string
	CSRF       string
	CanWrite   bool
	Chart      QuotaChart
	Grants     []GrantRow
	GrantForm  GrantForm
	Dimensions []components.Option
	Alerts     QuotaAlerts
	Pools      QuotaPools
}

// QuotaRow is one dimension's limits and usage; it renders as a row or, while Editing, as the
// row's small form.
type QuotaRow struct {
	Slug      string
	CSRF      string
	CanWrite  bool
	Dimension string
	Name      string
	Unit      string
	Kind      string // counter or gauge
	Reset     string // none, hourly, daily, monthly
	Soft      int64
	Hard      int64
	Used      int64
	Remaining int64
	State     string // ok, soft, blocked
	ResetAt   string // empty when the dimension never resets
	Default   bool   // the plan's default applies (no override yet)
	Grants    int64  // active grants: Hard + Grants is the effective limit
	Burst     string // the burst capacity and today's window, in words; "" when none

	BurstPercentInput string
	BurstWindowInput  string

	Editing   bool
	SoftInput string
	HardInput string
	Errors    map[string]string
}

// URL is the row's address; /edit after it is the form.
func (r QuotaRow) URL() string { return "/admin/tenants/" + r.Slug + "/quotas/" + r.Dimension }

// Percent is used against the hard limit, 0–100 (100 when the hard limit is 0).
func (r QuotaRow) Percent() int { return percent(r.Used, r.Hard+r.Grants) }

// SoftPercent places the soft-limit marker on the bar.
func (r QuotaRow) SoftPercent() int { return percent(r.Soft, r.Hard+r.Grants) }

func percent(n, of int64) int {
	if of <= 0 {
		return 100
	}
	return int(min(100, max(0, n*100/of)))
}

// StateLabel names the state for people.
func (r QuotaRow) StateLabel() string {
	switch r.State {
	case "blocked":
		return "Blocked"
	case "soft":
		return "Over soft limit"
	}
	return "Within limits"
}

// thousands formats a count with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func itoa(n int) string { return strconv.Itoa(n) }

func barClass(state string) string {
	switch state {
	case "blocked":
		return "bg-rose-500"
	case "soft":
		return "bg-amber-500"
	}
	return "bg-emerald-500"
}

func badgeClass(state string) string {
	switch state {
	case "blocked":
		return "bg-rose-50 text-rose-700 ring-rose-200"
	case "soft":
		return "bg-amber-50 text-amber-800 ring-amber-200"
	}
	return "bg-emerald-50 text-emerald-700 ring-emerald-200"
}
