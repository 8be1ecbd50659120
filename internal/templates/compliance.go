package templates

import (
	"strconv"
	"time"

	"github.com/tenantry/tenantry/internal/settings"
)

// Compliance profiles a template may carry.
const (
	ComplianceNone = "none"
	SOC2           = "soc2"
	HIPAA          = "hipaa"
	PCIDSS         = "pci-dss"
	GDPR           = "gdpr"
)

// Option is a value a select offers, with its label.
type Option struct {
	Value string
	Label string
}

// ComplianceProfiles lists the profiles in the order forms show them.
var ComplianceProfiles = []Option{
	{ComplianceNone, "None"}, {SOC2, "SOC 2"}, {HIPAA, "HIPAA"}, {PCIDSS, "PCI-DSS"}, {GDPR, "GDPR"},
}

// TenantTypes lists the kinds of tenant a template may describe.
var TenantTypes = []Option{
	{"company", "Company"}, {"reseller", "Reseller"}, {"department", "Department"}, {"trial", "Trial"},
}

// Industries lists the industries a template may be meant for.
var Industries = []Option{
	{"general", "General"}, {"healthcare", "Healthcare"}, {"finance", "Finance and payments"},
	{"retail", "Retail"}, {"education", "Education"}, {"public-sector", "Public sector"},
	{"technology", "Technology"}, {"manufacturing", "Manufacturing"},
}

// SeedDatasets lists the initial data a new tenant may be seeded with (the provisioning
// workflow's seed step acts on the name).
var SeedDatasets = []Option{
	{"empty", "Empty"}, {"sample-projects", "Sample projects"},
}

// Comparison of a requirement.
const (
	Equal   = "eq"  // the value must be exactly Value
	AtLeast = "min" // Int or Duration at least Value
	AtMost  = "max" // Int or Duration at most Value
)

// Requirement is one setting a compliance profile implies: a template of the profile cannot
// weaken it, and the template's value locks the key for the tenant and its descendants.
type Requirement struct {
	Key    string
	Op     string
	Value  string
	Reason string // one sentence for people: "HIPAA requires MFA."
}

// Requirements lists, per compliance profile, the settings it implies.
var Requirements = map[string][]Requirement{
	HIPAA: {
		{"security.mfa_required", Equal, "true", "HIPAA requires MFA for everyone who can reach health data."},
		{"security.audit_retention_days", AtLeast, "2190", "HIPAA requires audit records to be kept for at least six years (2,190 days)."},
	},
	PCIDSS: {
		{"security.mfa_required", Equal, "true", "PCI-DSS requires MFA for access to the cardholder data environment."},
		{"security.password_min_length", AtLeast, "12", "PCI-DSS requires passwords of at least 12 characters."},
		{"security.session_timeout", AtMost, "15m", "PCI-DSS requires idle sessions to end after at most 15 minutes."},
		{"security.audit_retention_days", AtLeast, "365", "PCI-DSS requires at least one year of audit trail history."},
	},
	SOC2: {
		{"security.mfa_required", Equal, "true", "SOC 2 access controls require MFA."},
		{"security.audit_retention_days", AtLeast, "365", "SOC 2 auditors expect at least a year of audit trail."},
	},
	GDPR: {
		{"security.data_residency", Equal, "eu", "GDPR: this profile keeps personal data in the EU, avoiding transfers that need extra safeguards."},
		{"backup.retention_days", AtMost, "90", "GDPR storage limitation: this profile keeps backups for at most 90 days."},
	},
}

// RequirementFor returns the requirement profile places on key, if any.
func RequirementFor(profile, key string) (Requirement, bool) {
	for _, r := range Requirements[profile] {
		if r.Key == key {
			return r, true
		}
	}
	return Requirement{}, false
}

// Satisfied reports whether value (normalised for the key's type) meets the requirement.
func (r Requirement) Satisfied(value string) bool {
	if r.Op == Equal {
		return value == r.Value
	}
	k, _ := settings.Lookup(r.Key)
	var have, want int64
	switch k.Type {
	case settings.Int:
		a, err1 := strconv.ParseInt(value, 10, 64)
		b, err2 := strconv.ParseInt(r.Value, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		have, want = a, b
	case settings.Duration:
		a, err1 := time.ParseDuration(value)
		b, err2 := time.ParseDuration(r.Value)
		if err1 != nil || err2 != nil {
			return false
		}
		have, want = int64(a), int64(b)
	default:
		return value == r.Value
	}
	if r.Op == AtLeast {
		return have >= want
	}
	return have <= want
}

// Describe says what the requirement allows, for a field's hint: "at least 12".
func (r Requirement) Describe() string {
	switch r.Op {
	case AtLeast:
		return "at least " + r.Value
	case AtMost:
		return "at most " + r.Value
	}
	return "always " + r.Value
}

func label(opts []Option, v string) string {
	for _, o := range opts {
		if o.Value == v {
			return o.Label
		}
	}
	return v
}

func valid(opts []Option, v string) bool {
	for _, o := range opts {
		if o.Value == v {
			return true
		}
	}
	return false
}

// ComplianceLabel names a profile for people ("PCI-DSS").
func ComplianceLabel(v string) string { return label(ComplianceProfiles, v) }
