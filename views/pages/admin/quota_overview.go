package admin

// QuotaPressureRow is one tenant's usage of one dimension on the platform Quotas page.
type QuotaPressureRow struct {
	Slug      string
	Tenant    string
	Dimension string
	Unit      string
	Used      int64
	Soft      int64
	Hard      int64
	State     string
}

// Percent is used as a share of the hard limit, 0–100.
func (r QuotaPressureRow) Percent() int {
	if r.Hard <= 0 {
		return 100
	}
	return int(min(100, r.Used*100/r.Hard))
}

// QuotaOverview is the platform Quotas page.
type QuotaOverview struct {
	Blocked []QuotaPressureRow
	Nearest []QuotaPressureRow
	Chart   QuotaChart
}
