package admin

import (
	"net/url"
	"strconv"

	"github.com/tenantry/tenantry/views/components"
)

// QuotaChart is a usage history chart (go-echarts snippet) that reloads itself from URL.
type QuotaChart struct {
	ID          string // the element swapped on refresh
	URL         string // the fragment's address, with dimension and granularity
	BaseURL     string // without query, for the selectors
	Dimension   string
	Granularity string // hour or day
	Dimensions  []components.Option
	Element     string // go-echarts element and script, trusted HTML built by the server
	Script      string
	Empty       bool
	Unit        string
}

// GrantRow is one grant on the Quotas tab.
type GrantRow struct {
	ID        int64
	Dimension string
	Amount    int64
	Starts    string
	Ends      string
	Reason    string
	By        string
	State     string // scheduled, active, expired, revoked
}

// GrantForm is the add-a-grant form with its input and errors.
type GrantForm struct {
	Dimension string
	Amount    string
	StartsAt  string
	EndsAt    string
	Reason    string
	Errors    map[string]string
}

// AlertRow is one alert in a history or the bell's list.
type AlertRow struct {
	ID        int64
	Slug      string
	Tenant    string
	Dimension string
	Kind      string
	Threshold int
	Message   string
	When      string
	Unread    bool
}

// KindLabel names an alert kind for people.
func (a AlertRow) KindLabel() string {
	switch a.Kind {
	case "crossed":
		return "Threshold " + strconv.Itoa(a.Threshold) + "%"
	case "resolved":
		return "Back under " + strconv.Itoa(a.Threshold) + "%"
	case "scaled":
		return "Limit raised"
	case "grant_expired":
		return "Grant ended"
	}
	return a.Kind
}

// DeliveryRow is one webhook delivery in the log.
type DeliveryRow struct {
	ID        int64
	URL       string
	Attempts  int
	Status    string
	Error     string
	Delivered string
	When      string
}

// PoolRow is one of a parent's pools.
type PoolRow struct {
	Dimension string
	Name      string
	Cap       int64
	Allocated int64
}

// ThresholdRow is one threshold setting (for every dimension, or one).
type ThresholdRow struct {
	Dimension string // a key, or * for every dimension
	Label     string
	Values    string
}

// QuotaAlerts is the alerts section of the Quotas tab.
type QuotaAlerts struct {
	Own                []ThresholdRow
	ThresholdDimension string
	ThresholdOptions   []components.Option
	Thresholds         string // the tenant's own setting for every dimension, "" when inherited
	Effective          string // what applies now when the tenant sets nothing
	ThresholdsInput    string
	WebhookURL         string
	Channel            string
	Errors             map[string]string
	Rows               []AlertRow
	Page, Pages        int
	Total              int64
	Deliveries         []DeliveryRow
}

// QuotaPools is the pools section (for tenants with children).
type QuotaPools struct {
	HasChildren bool
	Rows        []PoolRow
	Dimension   string
	CapInput    string
	Errors      map[string]string
}

// RuleRow is a scaling rule on /admin/quotas/rules.
type RuleRow struct {
	ID          int64
	Name        string
	Description string
	Enabled     bool
	Notify      bool
	LastRun     string
}

// RuleForm is the new-rule form.
type RuleForm struct {
	Name, Dimension, Plan, Threshold, Days, Raise, MaxHard string
	Notify, Enabled                                        bool
	Errors                                                 map[string]string
}

// QuotaRules is the scaling rules page.
type QuotaRules struct {
	CSRF       string
	CanWrite   bool
	Rules      []RuleRow
	Form       RuleForm
	Dimensions []components.Option
	Plans      []components.Option
}

// ProposalRow is one tenant in a dry run or an apply.
type ProposalRow struct {
	Slug        string
	Tenant      string
	Hard        int64
	NewHard     int64
	Utilisation string
	Skipped     string
}

// QuotaRulePreview is the dry-run page of a rule.
type QuotaRulePreview struct {
	CSRF        string
	CanWrite    bool
	ID          int64
	Name        string
	Description string
	Rows        []ProposalRow
	Applied     bool
}

// QuotaAlertsPage is the platform list of quota alerts (the bell's page).
type QuotaAlertsPage struct {
	CSRF            string
	CanWrite        bool
	Rows            []AlertRow
	Page, Pages     int
	Total           int64
	Unread          int64
	Thresholds      string
	ThresholdsInput string
	Errors          map[string]string
	Search          string

	Own                []ThresholdRow
	ThresholdDimension string
	ThresholdOptions   []components.Option
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func queryEscape(s string) string { return url.QueryEscape(s) }
