package web

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/tenant"
	pageerrors "github.com/tenantry/tenantry/views/pages/errors"
)

// handleError is the one place errors become responses. Users see a status, a plain message and
// the request id; the internal detail goes to the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if isAPIRequest(c) {
		s.writeAPIError(c, err)
		return
	}
	p := problemFor(err)
	p.RequestID = requestID(c)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	if isFragmentRequest(c) {
		_ = write(c, p.Status, pageerrors.Page(p))
		return
	}
	pg := page{Title: p.Title}
	if a := currentPortal(c); a != nil { // inside a tenant's portal: its frame, its home
		p.HomeHref, p.HomeLabel = a.url(""), "Back to "+a.tenant.Name
		pg.Portal = portalFrame(a)
	}
	pg.Content = pageerrors.Page(p)
	if err := s.render(c, p.Status, pg); err != nil {
		s.log.Error("render error page", "id", p.RequestID, "err", err)
	}
}

func problemFor(err error) pageerrors.Problem {
	var he *echo.HTTPError
	switch {
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, identity.ErrNotFound):
		return pageerrors.Problem{Status: http.StatusNotFound, Title: "Not found", Message: "There is nothing at this address. It may have been removed, or the link may be mistyped."}
	case errors.As(err, &he):
		p := pageerrors.Problem{Status: he.Code, Title: http.StatusText(he.Code)}
		if msg, ok := he.Message.(string); ok && he.Code < 500 {
			p.Message = msg
		}
		switch he.Code {
		case http.StatusNotFound:
			p.Message = "There is nothing at this address. It may have been removed, or the link may be mistyped."
		case http.StatusForbidden:
			p.Title = "Not allowed"
			if p.Message == "" || p.Message == http.StatusText(http.StatusForbidden) {
				p.Message = "You do not have permission to do this."
			}
		case http.StatusMethodNotAllowed:
			p.Message = "This address does not accept that kind of request."
		}
		if p.Code() >= 500 {
			p.Message = "Something went wrong on our side. It has been logged; try again in a moment."
		}
		return p
	case unavailable(err):
		return pageerrors.Problem{Status: http.StatusServiceUnavailable, Title: "Temporarily unavailable",
			Message: "Tenantry cannot reach its database right now. Try again in a moment."}
	default:
		return pageerrors.Problem{Status: http.StatusInternalServerError, Title: "Something went wrong",
			Message: "Something went wrong on our side. It has been logged; try again in a moment."}
	}
}

// unavailable reports errors that mean the database cannot be reached.
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err)
}
