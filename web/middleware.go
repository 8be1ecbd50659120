package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/tenantry/tenantry/internal/audit"
)

// csrf protects every state-changing request. Browsers that send Sec-Fetch-Site are checked on
// it (same-origin passes, cross-site is refused); others must echo the token from the cookie in
// the _csrf form field or the X-CSRF-Token header, which htmx sends from <body hx-headers>.
func (s *Server) csrf() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     "tenantry_csrf",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSameSite: http.SameSiteLaxMode,
		CookieMaxAge:   sessionMaxAge,
		ErrorHandler: func(err error, c echo.Context) error {
			return &echo.HTTPError{Code: http.StatusForbidden, Message: "This form has expired or did not come from Tenantry. Reload the page and try again.", Internal: err}
		},
	})
}

// recoverPanics turns a panic into a 500 page, logging the stack with the request id.
func (s *Server) recoverPanics() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
				}
			}()
			return next(c)
		}
	}
}

// logRequests logs one line per request with its id, route, status and duration.
func (s *Server) logRequests() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // writes the response, so the status below is final
			}
			status := c.Response().Status
			level := slog.LevelInfo
			switch {
			case status >= 500:
				level = slog.LevelError
			case c.Path() == "/healthz" || c.Path() == "/readyz" || c.Path() == "/metrics" || len(c.Path()) > 7 && c.Path()[:8] == "/static/":
				level = slog.LevelDebug
			}
			attrs := []any{"id", requestID(c), "method", c.Request().Method, "path", c.Request().URL.Path,
				"route", c.Path(), "status", status, "took", time.Since(start).Round(time.Microsecond)}
			var he *echo.HTTPError
			if err != nil && (!errors.As(err, &he) || he.Internal != nil || status >= 500) {
				attrs = append(attrs, "err", err)
			}
			s.log.Log(c.Request().Context(), level, "request", attrs...)
			return nil
		}
	}
}

// auditOrigin puts the request id and the client's address in the request's context, so every
// audit event a request causes says where it came from.
func auditOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(audit.WithOrigin(r.Context(), audit.Origin{RequestID: requestID(c), SourceAddr: clientAddr(c).String()})))
		return next(c)
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
