// Package settings owns the settings catalogue and its cascade: every key has a type, a default
// and validation; a value may be set for the platform and for any tenant, and locked so that the
// tenants below cannot override it. The effective value of a key for a tenant, and where it comes
// from, is resolved from the platform down the tenant's ancestors to the tenant itself.
package settings

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantry/tenantry/internal/tenant"
)

// Type is the kind of value a key holds.
type Type string

// The types of the catalogue.
const (
	Bool     Type = "bool"
	Int      Type = "int"
	String   Type = "string"
	Enum     Type = "enum"
	Duration Type = "duration"
	Colour   Type = "colour"
	CIDRList Type = "cidr_list"
	// Secret values are encrypted with the owning tenant's key, write-only: no page or API shows
	// them (Effective carries SecretSet instead), and they may be set on tenants only.
	Secret Type = "secret"
	// Image values are the id of an uploaded image (see StoreImage), served at ImageURL.
	Image Type = "image"
)

// SecretSet is the Value an Effective secret shows when a value is set; never the secret.
const SecretSet = "(set)"

// MaxSecretBytes bounds one secret value.
const MaxSecretBytes = 4 << 10

// Key is one entry of the catalogue.
type Key struct {
	Key         string
	Group       string
	Label       string
	Description string
	Type        Type
	Default     string
	Min, Max    int      // Int bounds; String maximum length in Max
	Options     []string // Enum choices
}

// Catalogue lists every setting, by group.
var Catalogue = []Key{
	{Key: "flags.new_dashboard", Group: "Feature flags", Label: "New dashboard", Type: Bool, Default: "false", Description: "Shows the redesigned dashboard to the tenant's users."},
	{Key: "flags.beta_reports", Group: "Feature flags", Label: "Beta reports", Type: Bool, Default: "false", Description: "Enables reports still in beta."},
	{Key: "flags.sso", Group: "Feature flags", Label: "Single sign-on", Type: Bool, Default: "false", Description: "Lets the tenant connect its identity provider."},
	{Key: "branding.name", Group: "Branding", Label: "Display name", Type: String, Max: 80, Default: "", Description: "Name shown on the portal and in e-mails; empty uses the tenant's name."},
	{Key: "branding.logo", Group: "Branding", Label: "Logo", Type: Image, Default: "", Description: "PNG or JPEG, at most 256 KB, shown on the portal, the signup page and in e-mails; empty shows the name only."},
	{Key: "branding.primary_colour", Group: "Branding", Label: "Primary colour", Type: Colour, Default: "#4f46e5", Description: "Accent colour of the portal, as #rrggbb."},
	{Key: "security.mfa_required", Group: "Security policies", Label: "MFA required", Type: Bool, Default: "false", Description: "Users must enrol a TOTP second factor at their next sign-in."},
	{Key: "security.password_min_length", Group: "Security policies", Label: "Minimum password length", Type: Int, Min: 10, Max: 128, Default: "10", Description: "Applies to passwords set from now on."},
	{Key: "security.password_complexity", Group: "Security policies", Label: "Password complexity", Type: Enum, Options: []string{"length", "mixed", "strong"}, Default: "length", Description: "length: any characters; mixed: letters and digits; strong: upper- and lower-case letters, a digit and a symbol. Applies to passwords set from now on."},
	{Key: "security.session_timeout", Group: "Security policies", Label: "Idle session timeout", Type: Duration, Min: 5, Max: 24 * 60, Default: "12h", Description: "Signs out sessions idle for longer, between 5m and 24h."},
	{Key: "security.audit_retention_days", Group: "Security policies", Label: "Audit retention (days)", Type: Int, Min: 30, Max: 3650, Default: "365", Description: "How long the tenant's audit trail is kept."},
	{Key: "security.data_residency", Group: "Security policies", Label: "Data residency", Type: Enum, Options: []string{"any", "eu", "us"}, Default: "any", Description: "Region where the tenant's data must be stored and processed."},
	{Key: "integrations.webhook_secret", Group: "Integration credentials", Label: "Webhook signing secret", Type: Secret, Default: "", Description: "Signs the webhooks sent to the tenant; write-only, encrypted with the tenant's key."},
	{Key: "integrations.smtp_password", Group: "Integration credentials", Label: "SMTP relay password", Type: Secret, Default: "", Description: "Password of the tenant's own mail relay; write-only, encrypted with the tenant's key."},
	{Key: "notify.channel", Group: "Notifications", Label: "Alert channel", Type: Enum, Options: []string{"email", "webhook", "in_app"}, Default: "email", Description: "Where alerts for the tenant go."},
	{Key: "notify.email", Group: "Notifications", Label: "Alert address", Type: String, Max: 254, Default: "", Description: "E-mail address for alerts; empty sends them to the tenant's admins."},
	{Key: "backup.retention_days", Group: "Backup", Label: "Backup retention (days)", Type: Int, Min: 1, Max: 3650, Default: "30", Description: "How long backups of the tenant are kept."},
	{Key: "backup.legal_hold", Group: "Backup", Label: "Legal hold", Type: Bool, Default: "false", Description: "Keeps every backup and blocks purging while set."},
}

// GroupNotes says, for the groups whose values Tenantry itself does not act on yet, what
// happens to them today, so no operator mistakes a recorded value for an enforced one.
var GroupNotes = map[string]string{
	"Branding":                "Used by the tenant portal, and by the signup page and e-mails of a reseller's brand; where not set here, the parent's or the reseller brand's look applies.",
	"Security policies":       "MFA required makes tenant users enrol TOTP at their next sign-in; the minimum password length applies to new passwords of tenant users; the idle timeout ends tenant portal sessions. Audit retention and data residency are kept and served through the API, but Tenantry does not enforce them yet.",
	"Integration credentials": "Encrypted with the tenant's key and never shown again; Tenantry keeps them for the tenant's integrations and does not use them itself yet.",
	"Notifications":           "Kept and served through the API; Tenantry sends no alerts yet.",
	"Backup":                  "Kept and served through the API; Tenantry runs no backups yet.",
}

// Lookup returns the catalogue entry of key.
func Lookup(key string) (Key, bool) {
	i := slices.IndexFunc(Catalogue, func(k Key) bool { return k.Key == key })
	if i < 0 {
		return Key{}, false
	}
	return Catalogue[i], true
}

var colourRE = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// Normalize checks raw against the key's type and returns the value as stored.
func (k Key) Normalize(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	switch k.Type {
	case Bool:
		switch strings.ToLower(v) {
		case "true", "on", "yes", "1":
			return "true", nil
		case "false", "off", "no", "0", "":
			return "false", nil
		}
		return "", fmt.Errorf("Choose on or off.")
	case Int:
		n, err := strconv.Atoi(v)
		if err != nil || n < k.Min || n > k.Max {
			return "", fmt.Errorf("Enter a whole number from %d to %d.", k.Min, k.Max)
		}
		return strconv.Itoa(n), nil
	case String:
		if len([]rune(v)) > k.Max {
			return "", fmt.Errorf("Use at most %d characters.", k.Max)
		}
		return v, nil
	case Enum:
		if !slices.Contains(k.Options, v) {
			return "", fmt.Errorf("Choose one of: %s.", strings.Join(k.Options, ", "))
		}
		return v, nil
	case Duration:
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Duration(k.Min)*time.Minute || d > time.Duration(k.Max)*time.Minute {
			return "", fmt.Errorf("Enter a duration such as 30m or 8h, from %s to %s.", time.Duration(k.Min)*time.Minute, time.Duration(k.Max)*time.Minute)
		}
		out := d.String() // 1h30m0s: drop the zero seconds, and the zero minutes of whole hours
		if strings.HasSuffix(out, "m0s") {
			out = strings.TrimSuffix(out, "0s")
		}
		if strings.HasSuffix(out, "h0m") {
			out = strings.TrimSuffix(out, "0m")
		}
		return out, nil
	case Colour:
		v = strings.ToLower(v)
		if !colourRE.MatchString(v) {
			return "", fmt.Errorf("Enter a colour as #rrggbb, such as #4f46e5.")
		}
		return v, nil
	case CIDRList:
		l, err := tenant.ParseCIDRList(v)
		if err != nil {
			return "", err
		}
		return strings.ReplaceAll(l.String(), "\n", ", "), nil
	case Secret:
		if raw == "" {
			return "", fmt.Errorf("Enter the secret value.")
		}
		if len(raw) > MaxSecretBytes {
			return "", fmt.Errorf("Use at most 4 KiB.")
		}
		return raw, nil // kept as typed: spaces may be part of a secret
	case Image:
		if v != "" && !imageIDRE.MatchString(v) {
			return "", fmt.Errorf("Upload a PNG or JPEG image.")
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown type %q", k.Type)
}
