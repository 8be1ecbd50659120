package portal

// MFAEnrol is the page that sets up a tenant user's authenticator app.
type MFAEnrol struct {
	CSRF       string
	Base       string
	TenantName string
	Email      string
	// QR is the otpauth:// address as a data: URI PNG; Secret is the same secret as text.
	QR     string
	Secret string
	// Required says the tenant's policy asks for it (otherwise the user chose to).
	Required bool
	Error    string
}

// MFAVerify asks an enrolled user for the current code.
type MFAVerify struct {
	CSRF       string
	Base       string
	TenantName string
	Email      string
	Error      string
}

// groupSecret spaces a base32 secret in fours so it can be typed by hand.
func groupSecret(s string) string {
	out := make([]byte, 0, len(s)+len(s)/4)
	for i := 0; i < len(s); i++ {
		if i > 0 && i%4 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}
