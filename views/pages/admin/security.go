package admin

// Security is the tenant page's Security tab: network access, the encryption key and the
// integration credentials.
type Security struct {
	CSRF     string
	Slug     string
	CanWrite bool

	Allowlist     string // one entry per line
	Hostname      string
	NetworkErrors map[string]string

	Key *KeyStatus // nil when the tenant has no keyset yet

	Credentials      []CredentialRow
	CredentialName   string
	CredentialErrors map[string]string
}

// KeyStatus is the tenant's keyset as people see it: ids and dates, never material.
type KeyStatus struct {
	PrimaryKeyID string
	KeyIDs       string
	Created      string
	Rotated      string
	Destroyed    string
	Rotation     *RotationStatus
}

// RotationStatus is the progress of the latest key rotation.
type RotationStatus struct {
	ID       int64
	Started  string
	Done     int
	Total    int // -1 until counted
	Finished bool
	Error    string
}

// Running reports whether the page should keep polling.
func (r RotationStatus) Running() bool { return !r.Finished && r.Error == "" }

// Percent is the share of items re-encrypted, 0–100.
func (r RotationStatus) Percent() int {
	if r.Finished {
		return 100
	}
	if r.Total <= 0 {
		return 0
	}
	return min(100, r.Done*100/r.Total)
}

// CredentialRow is one stored credential, without its value.
type CredentialRow struct {
	Name  string
	SetBy string
	SetAt string
}
