package admin

// TenantUserRow is one user of a tenant, as the platform admin sees it.
type TenantUserRow struct {
	ID         int64
	Name       string
	Email      string
	Role       string
	LastSignIn string
	Disabled   bool
	// MFA says the user has a second factor; ResetURL is where its reset posts.
	MFA      bool
	ResetURL string
}

// ActAsForm is the "act as tenant admin" form with the reason typed and its error.
type ActAsForm struct {
	Reason string
	Errors map[string]string
}

// TenantUsers is the Users tab of a tenant's page.
type TenantUsers struct {
	CSRF string
	// Unavailable, when set, says why the tenant's users cannot be listed (no schema).
	Unavailable string
	Rows        []TenantUserRow
	// CanActAs is true for platform admins (executives only read).
	CanActAs bool
	// Closed, when set, says why the tenant's portal is closed to everyone.
	Closed string
	// ActAsURL is where the act-as form posts.
	ActAsURL string
	Form     ActAsForm
}
