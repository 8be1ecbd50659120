package admin

import "github.com/tenantry/tenantry/views/components"

// APIKeyRow is one API key of a tenant; never its secret.
type APIKeyRow struct {
	ID        int64
	Name      string
	Prefix    string
	CreatedBy string
	Created   string
	LastUsed  string // "Never" when unused
	Expires   string // "Never" when it does not expire
	Status    string // active, expired, revoked
	// RevokeURL is where the revoke form posts.
	RevokeURL string
}

// APIKeyForm is the create-key form with the user's input and field errors.
type APIKeyForm struct {
	Name      string
	ExpiresOn string // yyyy-mm-dd, as the date input sends it
	Errors    map[string]string
}

// Focus names the field that should have focus: the first one in error, else the name.
func (f APIKeyForm) Focus() string {
	return components.FocusField(f.Errors, "name", "expires_on")
}

// IssuedKey is a key just created: the only time its full value is shown.
type IssuedKey struct {
	Name    string
	FullKey string
}

// APIKeys is the API keys tab of a tenant's page.
type APIKeys struct {
	CSRF string
	// Unavailable, when set, says why the tenant has no keys to show (no schema yet or any more).
	Unavailable string
	// NotServing, when set, says why new keys cannot be created and existing ones are refused.
	NotServing string
	Rows       []APIKeyRow
	// CanWrite is true for platform admins; executives only read.
	CanWrite bool
	// CreateURL is where the create form posts.
	CreateURL string
	Form      APIKeyForm
	// Issued is set on the page that answers a successful create.
	Issued *IssuedKey
}
