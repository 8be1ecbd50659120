package admin

import "github.com/tenantry/tenantry/views/components"

// LifecyclePanel is the Lifecycle tab of a tenant's page: the decommissioning policy and form,
// the timeline of dated steps, the notification campaign, exports, legal hold, purge and the
// certificate of destruction.
type LifecyclePanel struct {
	Slug     string
	Name     string
	State    string
	CSRF     string
	CanWrite bool
	// Base is the tab's address, /admin/tenants/<slug>/lifecycle.
	Base string
	// Now is the lifecycle clock's time, as the timeline is read against it.
	Now    string
	Policy LifecyclePolicy
	// Start is the start form, shown while the tenant is active.
	Start    *LifecycleStartForm
	Children []Link
	Plan     *LifecyclePlanInfo
	Timeline []TimelineStep
	Events   []LifecycleEventRow
	Messages []LifecycleMessageRow
	Edit     *LifecycleMessageForm
	Exports  LifecycleExports
	Hold     *LegalHoldInfo
	// HoldError is the legal hold form's error.
	HoldError string
	// CanCancel offers cancel / reactivate (any state before purged).
	CanCancel   bool
	CancelError string
	// CanPurge is true in state exported; PurgeBlocked then says why it cannot happen yet.
	CanPurge     bool
	PurgeBlocked string
	Certificate  *CertificateLinks
	// Unsigned, when set, says certificates cannot be signed (no master key configured).
	Unsigned string
}

// LifecyclePolicy is the tenant's effective decommissioning policy, for people.
type LifecyclePolicy struct {
	NoticeDays     int
	ReadOnlyDays   int
	RetentionDays  int
	ExportKeepDays int
	Contact        string
	Compliance     string
	// Sources says where each value comes from ("notice: plan enterprise; retention: global").
	Sources string
}

// LifecycleStartForm is the start-decommissioning form.
type LifecycleStartForm struct {
	Reason         string
	NoticeDays     string
	ChildrenAction string
	ChildrenTarget string
	Errors         map[string]string
}

// Focus names the field that should have focus.
func (f LifecycleStartForm) Focus() string {
	return components.FocusField(f.Errors, "reason", "notice_days", "children_action", "children_target")
}

// LifecyclePlanInfo summarises the running (or last) decommissioning.
type LifecyclePlanInfo struct {
	Reason      string
	RequestedBy string
	NoticeDays  int
	Started     string
	Cancelled   string // when cancelled: when and by whom
	Children    string // what was done with the children
}

// TimelineStep is one dated step: done, next, pending or waiting.
type TimelineStep struct {
	Label  string
	When   string
	Status string
	Note   string
}

// LifecycleEventRow is one dated state change.
type LifecycleEventRow struct {
	When  string
	From  string
	To    string
	Actor string
	Note  string
}

// LifecycleMessageRow is one message of the campaign.
type LifecycleMessageRow struct {
	ID         int64
	Label      string
	Scheduled  string
	Subject    string // as recipients read it
	Status     string // scheduled, sent, dropped
	Recipients int
	Delivery   string // "2 sent, 1 pending"
	EditURL    string
}

// LifecycleMessageForm edits an unsent campaign message.
type LifecycleMessageForm struct {
	ID          int64
	Label       string
	Subject     string
	Body        string
	ScheduledAt string // datetime-local, UTC
	Action      string
	// PreviewSubject and PreviewBody show the saved message as recipients will read it.
	PreviewSubject string
	PreviewBody    string
	Errors         map[string]string
}

// LifecycleExports is the export list, which refreshes itself while one runs.
type LifecycleExports struct {
	Rows []ExportRow
	// URL is the fragment's own address, polled while Polling.
	URL        string
	Polling    bool
	CanRequest bool
	RequestURL string
	CSRF       string
}

// ExportRow is one export archive.
type ExportRow struct {
	ID          int64
	State       string
	Requested   string
	Progress    string // "3 of 12 tables, 1,024 rows"
	Percent     int
	Size        string
	SHA256      string
	Expires     string
	DownloadURL string // empty when not downloadable
	Error       string
}

// LegalHoldInfo is an active legal hold.
type LegalHoldInfo struct {
	Reason string
	SetBy  string
	SetAt  string
}

// CertificateLinks point at the certificate of destruction.
type CertificateLinks struct {
	ID      string
	JSONURL string
	PDFURL  string
}

// LifecyclePolicies is the decommissioning policies page: the global policy and its overrides
// per plan and per compliance profile.
type LifecyclePolicies struct {
	CSRF     string
	CanWrite bool
	Rows     []LifecyclePolicyRow
	// New is the add-an-override form.
	New        LifecyclePolicyRow
	Plans      []components.Option
	Compliance []components.Option
}

// LifecyclePolicyRow is one policy row as a form; empty values inherit.
type LifecyclePolicyRow struct {
	Scope          string
	Key            string
	Label          string
	NoticeDays     string
	ReadOnlyDays   string
	RetentionDays  string
	ExportKeepDays string
	Contact        string
	Errors         map[string]string
}

// ID is the row's HTML id prefix.
func (r LifecyclePolicyRow) ID() string { return "p-" + r.Scope + "-" + r.Key }
