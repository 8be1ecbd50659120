package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

const approvalTime = "2 Jan 2006 15:04 MST"

func (s *Server) approvalList(c echo.Context) error {
	return s.renderApprovals(c, http.StatusOK, nil)
}

func (s *Server) renderApprovals(c echo.Context, status int, after func(*admin.Approvals)) error {
	ctx := c.Request().Context()
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	q := signup.Queue{State: c.QueryParam("state"), Search: c.QueryParam("q"), Page: max(pageNo, 1), PerPage: 25}
	items, total, err := s.signups().List(ctx, q)
	if err != nil {
		return err
	}
	if q.State == "" || !containsString(signup.QueueStates, q.State) {
		q.State = signup.StateHeld
	}
	u, _ := currentUser(c)
	m := admin.Approvals{CSRF: csrfToken(c), State: q.State, States: signup.QueueStates, Query: strings.TrimSpace(q.Search),
		CanWrite: u.CanWrite(), Counts: map[string]int64{}}
	if m.Counts, err = s.signups().Counts(ctx); err != nil {
		return err
	}
	var tids []int64
	for _, it := range items {
		if it.TemplateID != nil {
			tids = append(tids, *it.TemplateID)
		}
	}
	names, err := s.signups().TemplateNames(ctx, tids)
	if err != nil {
		return err
	}
	for _, it := range items {
		r := admin.ApprovalRow{ID: it.ID, OrgName: it.OrgName, Slug: it.Slug, Email: it.Email, Brand: it.BrandName,
			Created: it.CreatedAt.UTC().Format(approvalTime), State: it.State, Reason: it.Reason, Error: it.Error, Source: it.SourceAddr}
		if it.VerifiedAt != nil {
			r.Verified = it.VerifiedAt.UTC().Format(approvalTime)
		}
		if it.TemplateID != nil {
			r.Template = names[*it.TemplateID]
		}
		m.Rows = append(m.Rows, r)
	}
	m.Pager = components.PaginationProps{Page: q.Page, Pages: pages(total, q.PerPage), Total: total, Noun: "signups",
		URL: func(p int) string {
			return "/admin/approvals?" + url.Values{"state": {m.State}, "q": {m.Query}, "page": {strconv.Itoa(p)}}.Encode()
		}}
	if after != nil {
		after(&m)
	}
	return s.render(c, status, page{Title: "Approvals", Nav: "approvals", Crumbs: []layouts.Crumb{{Label: "Approvals", Href: "/admin/approvals"}},
		Content: admin.ApprovalsPage(m)})
}

func containsString(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func approvalID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return 0, echo.ErrNotFound
	}
	return id, nil
}

// approvalApprove starts provisioning a held signup (or retries a failed one).
func (s *Server) approvalApprove(c echo.Context) error {
	id, err := approvalID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	svc := s.signups().WithBaseURL(signupBaseURL(c))
	su, err := svc.Approve(c.Request().Context(), u.Email, id)
	switch {
	case errors.Is(err, signup.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, signup.ErrState):
		s.flash(c, "error", "The signup for "+su.OrgName+" is "+su.State+" already; nothing was changed.")
		return redirect(c, "/admin/approvals")
	case errors.Is(err, validation.ErrInvalid):
		s.flash(c, "error", validation.Fields(err)["slug"])
		return redirect(c, "/admin/approvals?state=failed")
	case err != nil:
		return err
	}
	if su.State == signup.StateFailed {
		s.flash(c, "error", "Provisioning "+su.OrgName+" could not start: "+su.Error)
		return redirect(c, "/admin/approvals?state=failed")
	}
	s.flash(c, "success", "Approved "+su.OrgName+": provisioning has started. "+su.Email+" gets an e-mail when it is ready.")
	return redirect(c, "/admin/approvals")
}

// approvalReject refuses a held signup with a reason e-mailed to the visitor.
func (s *Server) approvalReject(c echo.Context) error {
	id, err := approvalID(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	reason := c.FormValue("reason")
	su, err := s.signups().WithBaseURL(signupBaseURL(c)).Reject(c.Request().Context(), u.Email, id, reason)
	switch {
	case errors.Is(err, signup.ErrNotFound):
		return echo.ErrNotFound
	case errors.Is(err, signup.ErrState):
		s.flash(c, "error", "That signup is no longer waiting; nothing was changed.")
		return redirect(c, "/admin/approvals")
	case errors.Is(err, validation.ErrInvalid):
		return s.renderApprovals(c, http.StatusUnprocessableEntity, func(m *admin.Approvals) {
			m.RejectID, m.RejectReason, m.RejectError = id, reason, validation.Fields(err)["reason"]
		})
	case err != nil:
		return err
	}
	s.flash(c, "success", "Rejected "+su.OrgName+"; "+su.Email+" receives the reason by e-mail.")
	return redirect(c, "/admin/approvals")
}

// navPending counts what waits for a platform admin, for the badges in the menu: signups held
// for approval (one count on an index). A failure only loses the badge.
func (s *Server) navPending(c echo.Context) map[string]int64 {
	n, err := s.signups().Pending(c.Request().Context())
	if err != nil {
		s.log.Warn("count pending signups", "id", requestID(c), "err", err)
		return nil
	}
	return map[string]int64{"approvals": n}
}
