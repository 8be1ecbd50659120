package keys

// WrapContext exposes the associated data binding a wrapped keyset to its tenant, so tests can
// unwrap a stored keyset themselves and look for its key material.
func WrapContext(tenantID int64) []byte { return wrapContext(tenantID) }
