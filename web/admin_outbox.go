package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// outboxRoutes is the admin Outbox: every queued e-mail, readable whether or not SMTP is set.
func (s *Server) outboxRoutes(admin *echo.Group) {
	admin.GET("/outbox", s.outboxList)
	admin.GET("/outbox/:id", s.outboxShow)
	admin.POST("/outbox/:id/retry", s.outboxRetry)
}

const outboxPerPage = 50

const outboxTimeFormat = dateFormat + " 15:04:05 MST"

// outboxList shows a page of messages matching the search and state filter.
func (s *Server) outboxList(c echo.Context) error {
	ctx := c.Request().Context()
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	if pageNo < 1 {
		pageNo = 1
	}
	f := mail.Filter{Search: c.QueryParam("q"), State: c.QueryParam("state"), Page: pageNo, PerPage: outboxPerPage}
	switch f.State {
	case mail.StatePending, mail.StateSent, mail.StateFailed:
	default:
		f.State = ""
	}
	rows, total, err := mail.List(ctx, s.db.App, f)
	if err != nil {
		return err
	}
	counts, err := mail.Counts(ctx, s.db.App)
	if err != nil {
		return err
	}
	m := admin.OutboxList{Search: f.Search, State: f.State, Page: pageNo, Total: total, Counts: counts,
		Pages: max(1, int((total+outboxPerPage-1)/outboxPerPage)), Delivery: s.mailDelivery}
	for _, q := range rows {
		m.Rows = append(m.Rows, admin.OutboxRow{ID: q.ID, When: q.CreatedAt.Format(outboxTimeFormat), To: q.ToAddr,
			Subject: q.Subject, Kind: q.Kind, State: q.State, Attempts: q.Attempts, LastError: q.LastError})
	}
	if isFragmentRequest(c) { // the address bar shows the canonical address, without empty fields
		c.Response().Header().Set("HX-Push-Url", m.URL(pageNo))
	}
	return s.render(c, http.StatusOK, page{Title: "Outbox", Nav: "outbox", Crumbs: []layouts.Crumb{{Label: "Outbox"}},
		Content: admin.OutboxPage(m), Fragment: admin.OutboxResults(m)})
}

// outboxShow shows one message: envelope, delivery state, text and (sandboxed) HTML.
func (s *Server) outboxShow(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := s.outboxMessage(c)
	if err != nil {
		return err
	}
	slug, err := mail.TenantSlug(ctx, s.db.App, q)
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	m := admin.OutboxMessage{ID: q.ID, To: q.ToAddr, Subject: q.Subject, Kind: q.Kind, Tenant: slug, State: q.State,
		Attempts: q.Attempts, LastError: q.LastError, Created: q.CreatedAt.Format(outboxTimeFormat),
		NextAttempt: q.NextAttemptAt.Format(outboxTimeFormat), Text: q.TextBody, HTML: q.HTMLBody,
		CSRF: csrfToken(c), CanRetry: q.State == mail.StateFailed && me.CanWrite(), Delivery: s.mailDelivery}
	if q.DedupKey != nil {
		m.DedupKey = *q.DedupKey
	}
	if q.SentAt != nil {
		m.Sent = q.SentAt.Format(outboxTimeFormat)
	}
	return s.render(c, http.StatusOK, page{Title: q.Subject + " · Outbox", Nav: "outbox",
		Crumbs:  []layouts.Crumb{{Label: "Outbox", Href: "/admin/outbox"}, {Label: "Message " + strconv.FormatInt(q.ID, 10)}},
		Content: admin.OutboxMessagePage(m)})
}

// outboxRetry puts a failed message back in the queue (audited).
func (s *Server) outboxRetry(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.ErrNotFound
	}
	me, _ := currentUser(c)
	q, err := mail.Retry(c.Request().Context(), s.db.App, me.Email, id)
	switch {
	case errors.Is(err, mail.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, mail.ErrNotFailed):
		s.flash(c, "error", "Only a failed message can be retried; this one is "+q.State+".")
	case err != nil:
		return err
	default:
		msg := "The message to " + q.ToAddr + " is queued again and will be sent within a few seconds."
		if s.mailDelivery == "" {
			msg = "The message to " + q.ToAddr + " is queued again; it stays pending until SMTP is configured."
		}
		s.flash(c, "success", msg)
	}
	return redirect(c, "/admin/outbox/"+strconv.FormatInt(id, 10))
}

func (s *Server) outboxMessage(c echo.Context) (mail.Queued, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return mail.Queued{}, echo.ErrNotFound
	}
	q, err := mail.Get(c.Request().Context(), s.db.App, id)
	if errors.Is(err, mail.ErrNotFound) {
		return q, echo.ErrNotFound
	}
	return q, err
}
