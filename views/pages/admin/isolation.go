package admin

// TenantTrail is the newest events of a tenant's own audit chain and the chain's status.
type TenantTrail struct {
	VerifyURL string
	Chain     Chain
	Rows      []AuditRow
}

// IsolationRun is one verifier run as the Isolation page lists it.
type IsolationRun struct {
	ID       int64
	When     string
	Trigger  string
	Pairs    int
	Probes   int
	Failures int
	Summary  string
	Breach   bool
}

// IsolationProbe is one probe's outcome.
type IsolationProbe struct {
	Probe    string
	TenantA  string
	TenantB  string
	Passed   bool
	Detail   string
	Duration string
}

// Isolation is the Isolation page: run history and the latest run's probes.
type Isolation struct {
	CSRF     string
	CanWrite bool
	Runs     []IsolationRun
	Latest   *IsolationRun
	Probes   []IsolationProbe
	Interval string
}
