// Package public renders pages anyone may open: the verification of certificates of data
// destruction, and the tenant portal's export download.
package public

// Verify is the /verify page: the platform's public key, the form, and the result of a check.
type Verify struct {
	CSRF      string
	PublicKey string // base64; empty until the first certificate was signed
	KeyID     string
	Pasted    string
	// Checked is true once something was submitted; then Valid or Error says the outcome.
	Checked bool
	Valid   bool
	Error   string
	Result  *VerifiedCertificate
}

// VerifiedCertificate is a checked certificate's content, for people.
type VerifiedCertificate struct {
	ID          string
	Tenant      string
	Issued      string
	Purged      string
	Operator    string
	Reason      string
	Policy      string
	Schema      string
	KeyIDs      string
	Tables      []Row
	Archives    []string
	Retained    []Row
	SignedKeyID string
	Trusted     bool
}

// Row is a table with its row count.
type Row struct {
	Name string
	Rows string
}

// PortalExport is the tenant portal's export page (tenant admins).
type PortalExport struct {
	CSRF    string
	Base    string
	Rows    []ExportRow
	Polling bool
	CanAsk  bool
	Notice  string
	Contact string
}

// ExportRow is one export as the portal shows it.
type ExportRow struct {
	ID          int64
	State       string
	When        string
	Progress    string
	Size        string
	SHA256      string
	Expires     string
	DownloadURL string
}
