package admin

// SettingRow is one key of the settings table, in view or edit mode.
type SettingRow struct {
	Base        string // address of the settings of this level, e.g. /admin/tenants/acme/settings
	CSRF        string
	Key         string
	Label       string
	Description string
	Type        string
	Options     []string
	Value       string
	Kind        string // default, platform, ancestor, tenant
	Source      string
	Locked      bool   // locked above: this level cannot change it
	Own         bool   // this level set a value (Reset is possible)
	Locks       bool   // this level's value locks the levels below
	Reason      string // why a template's compliance profile locked it
	ImageURL    string // an image value's address
	SetBy       string
	SetAt       string
	CanWrite    bool
	Editing     bool
	Input       string // the value typed, when re-rendering an error
	Error       string
}

// SettingGroup is a heading and its rows.
type SettingGroup struct {
	Name string
	Note string // what Tenantry does with these values today, when it does not act on them
	Rows []SettingRow
}

// SettingsPanel is the settings of one level: the platform or a tenant.
type SettingsPanel struct {
	Level  string // "the platform" or the tenant's name
	Groups []SettingGroup
}

// SettingsDiff compares two tenants' effective settings.
type SettingsDiff struct {
	A, B     string // slugs as typed
	AName    string
	BName    string
	Error    string
	Rows     []SettingsDiffRow
	Compared bool
}

// SettingsDiffRow is one key side by side.
type SettingsDiffRow struct {
	Label      string
	Key        string
	A, ASource string
	B, BSource string
	Different  bool
}
