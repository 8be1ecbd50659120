package admin

import (
	"net/url"
	"strconv"
)

// OutboxList is a page of the e-mail outbox with its search and state filter.
type OutboxList struct {
	Search string
	State  string // pending, sent, failed or "" for all
	Rows   []OutboxRow
	Page   int
	Pages  int
	Total  int64
	// Counts is how many messages are in each state, whatever the search.
	Counts map[string]int64
	// Delivery says where messages go; empty when SMTP is not configured.
	Delivery string
}

// OutboxRow is one message in the list.
type OutboxRow struct {
	ID        int64
	When      string
	To        string
	Subject   string
	Kind      string
	State     string
	Attempts  int
	LastError string
}

// URL is the address of the list with the current search and state on the given page.
func (m OutboxList) URL(page int) string {
	return outboxURL(m.Search, m.State, page)
}

// StateURL is the list filtered to state, keeping the search.
func (m OutboxList) StateURL(state string) string { return outboxURL(m.Search, state, 1) }

func outboxURL(search, state string, page int) string {
	v := url.Values{}
	if search != "" {
		v.Set("q", search)
	}
	if state != "" {
		v.Set("state", state)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/admin/outbox"
	}
	return "/admin/outbox?" + v.Encode()
}

// OutboxMessage is one message in full.
type OutboxMessage struct {
	ID          int64
	To          string
	Subject     string
	Kind        string
	DedupKey    string
	Tenant      string // slug, or "" when the message concerns no tenant
	State       string
	Attempts    int
	LastError   string
	NextAttempt string
	Created     string
	Sent        string
	Text        string
	HTML        string
	CSRF        string
	CanRetry    bool
	Delivery    string
}

// OutboxStates are the filter choices, in order.
var OutboxStates = []struct{ Key, Label string }{
	{"", "All"}, {"pending", "Pending"}, {"sent", "Sent"}, {"failed", "Failed"},
}

func outboxStateClass(state string) string {
	switch state {
	case "sent":
		return "bg-emerald-50 text-emerald-700 ring-emerald-200"
	case "failed":
		return "bg-rose-50 text-rose-700 ring-rose-200"
	default:
		return "bg-amber-50 text-amber-800 ring-amber-200"
	}
}

func (m OutboxList) count(state string) string {
	if state == "" {
		var n int64
		for _, v := range m.Counts {
			n += v
		}
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(m.Counts[state], 10)
}
