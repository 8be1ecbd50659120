package web

import (
	"net/http"
	"net/url"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/tenantry/tenantry/views/layouts"
)

// page describes a page for the render helper.
type page struct {
	Title  string
	Nav    string
	Crumbs []layouts.Crumb
	// Content is the page body inside the layout.
	Content templ.Component
	// Fragment, when set, is what an htmx request gets instead of the whole page.
	Fragment templ.Component
	// Portal, when set, makes this a tenant portal page, rendered in the tenant's frame.
	Portal *layouts.Portal
}

// render is the one way handlers answer with HTML: the fragment for htmx requests that asked
// for part of a page, otherwise the full page in the signed-in, bare or tenant portal layout.
func (s *Server) render(c echo.Context, status int, p page) error {
	c.Response().Header().Add("Vary", "HX-Request")
	if p.Fragment != nil && isFragmentRequest(c) {
		return write(c, status, p.Fragment)
	}
	shell := s.shell(c, p.Title, p.Nav, p.Crumbs)
	if p.Portal != nil {
		return write(c, status, layouts.PortalPage(shell, *p.Portal, p.Content))
	}
	if shell.User == nil {
		return write(c, status, layouts.Bare(shell, p.Content))
	}
	return write(c, status, layouts.Page(shell, p.Content))
}

// write renders t into a buffer first: templ emits many small writes, and a failed render must
// not leave a half-written page behind a 200 status.
func write(c echo.Context, status int, t templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := t.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(buf.Bytes())
	return err
}

// isFragmentRequest is true for htmx requests that swap part of a page: not boosted navigation
// and not a history restore, which both need the whole page.
func isFragmentRequest(c echo.Context) bool {
	h := c.Request().Header
	return h.Get("HX-Request") == "true" && h.Get("HX-Boosted") != "true" && h.Get("HX-History-Restore-Request") != "true"
}

func (s *Server) shell(c echo.Context, title, nav string, crumbs []layouts.Crumb) layouts.Shell {
	sh := layouts.Shell{Title: title, Nav: nav, Crumbs: crumbs, CSRF: csrfToken(c), CSSHref: s.cssHref, Flashes: s.takeFlashes(c)}
	if u, ok := currentUser(c); ok {
		sh.User = &layouts.User{Name: u.Name, Email: u.Email, Role: string(u.Role), CanWrite: u.CanWrite()}
		sh.Pending = s.navPending(c) // admin_approvals.go
	}
	return sh
}

func csrfToken(c echo.Context) string {
	t, _ := c.Get(middleware.DefaultCSRFConfig.ContextKey).(string)
	return t
}

// redirect sends the browser to target after a POST (303), or tells htmx to navigate there.
func redirect(c echo.Context, target string) error {
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Redirect", target)
		return c.NoContent(http.StatusNoContent)
	}
	return c.Redirect(http.StatusSeeOther, target)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
