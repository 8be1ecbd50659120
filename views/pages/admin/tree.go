package admin

// TreeNode is one tenant in the tree browser. Kids are filled only along expanded branches.
type TreeNode struct {
	ID       int64
	Slug     string
	Name     string
	State    string
	Plan     string
	Children int
	Expanded bool
	Hit      bool // matches the search
	Kids     []TreeNode
}

// TreePage is the tenant tree browser.
type TreePage struct {
	Search string
	Roots  []TreeNode
	// Hits counts the tenants matching the search (only the first ones are expanded to).
	Hits int
	// Limited is set when a level had more tenants than are shown.
	Limited bool
}

// MoveForm is the form that moves a tenant (and its subtree) under another parent.
type MoveForm struct {
	CSRF      string
	Slug      string
	Name      string
	Parent    string // the current parent's slug, "" at the top level
	NewParent string
	Error     string
	// Preview, when set, says what the move would change.
	Preview *MovePreview
}

// MovePreview words a planned move.
type MovePreview struct {
	From        string
	To          string
	Descendants int64
}
