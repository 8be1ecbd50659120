package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/admin"
)

const (
	apiKeysTabKey = "api-keys"
	dateTimeUTC   = dateFormat + " 15:04 UTC"
)

// apiKeysTab loads the API keys tab of tenant t.
func (s *Server) apiKeysTab(c echo.Context, t tenant.Tenant) (admin.APIKeys, error) {
	u, _ := currentUser(c)
	base := "/admin/tenants/" + t.Slug + "/" + apiKeysTabKey
	m := admin.APIKeys{CSRF: csrfToken(c), CanWrite: u.CanWrite(), CreateURL: base}
	switch {
	case t.State == "provisioning":
		m.Unavailable = "This tenant's database schema is still being prepared. API keys can be created once it is active."
		return m, nil
	case !apikeys.HasKeys(t.State):
		m.Unavailable = "This tenant was purged: its schema, with every API key in it, no longer exists."
		return m, nil
	case !apikeys.Serving(t.State):
		m.NotServing = "This tenant is " + t.State + ": its API keys are refused and no new ones can be created until it is active again."
	}
	keys, err := s.apiKeys.List(c.Request().Context(), t.ID)
	if err != nil {
		return m, err
	}
	now := time.Now()
	for _, k := range keys {
		r := admin.APIKeyRow{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedBy: k.CreatedBy,
			Created: k.CreatedAt.UTC().Format(dateTimeUTC), LastUsed: "Never", Expires: "Never", Status: k.Status(now),
			RevokeURL: base + "/" + strconv.FormatInt(k.ID, 10) + "/revoke"}
		if k.LastUsedAt != nil {
			r.LastUsed = k.LastUsedAt.UTC().Format(dateTimeUTC)
		}
		if k.ExpiresAt != nil {
			r.Expires = k.ExpiresAt.UTC().Format(dateTimeUTC)
		}
		m.Rows = append(m.Rows, r)
	}
	return m, nil
}

// apiKeyCreate issues a key and shows it once on the API keys tab, or re-renders the tab with
// the form's errors and input. The key is never stored, redirected or flashed: this response is
// the only place it appears, so it must not be cached.
func (s *Server) apiKeyCreate(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	form := admin.APIKeyForm{Name: c.FormValue("name"), ExpiresOn: strings.TrimSpace(c.FormValue("expires_on"))}
	withForm := func(m *admin.TenantDetail) { m.APIKeys.Form = form }
	var expires *time.Time
	if form.ExpiresOn != "" {
		day, err := time.Parse(time.DateOnly, form.ExpiresOn)
		if err != nil {
			form.Errors = map[string]string{"expires_on": "Enter a date such as 2030-12-31, or leave it empty."}
			return s.renderTenant(c, http.StatusUnprocessableEntity, apiKeysTabKey, withForm)
		}
		expires = &day
	}
	issued, err := s.apiKeys.Create(ctx, u.Email, t.ID, form.Name, expires)
	if errors.Is(err, validation.ErrInvalid) {
		fields := validation.Fields(err)
		form.Errors = map[string]string{}
		for field, formField := range map[string]string{"name": "name", "expires_at": "expires_on"} {
			if msg := fields[field]; msg != "" {
				form.Errors[formField] = msg
			}
		}
		return s.renderTenant(c, http.StatusUnprocessableEntity, apiKeysTabKey, withForm)
	}
	if errors.Is(err, apikeys.ErrTenantNotServing) {
		s.flash(c, "error", "No key was created: tenant "+t.Name+" is "+t.State+", so it cannot have new API keys until it is active again.")
		return redirect(c, "/admin/tenants/"+t.Slug+"/"+apiKeysTabKey)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.renderTenant(c, http.StatusOK, apiKeysTabKey, func(m *admin.TenantDetail) {
		m.APIKeys.Issued = &admin.IssuedKey{Name: issued.Name, FullKey: issued.FullKey}
	})
}

// apiKeyRevoke revokes a key at once and goes back to the API keys tab.
func (s *Server) apiKeyRevoke(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.ErrNotFound
	}
	u, _ := currentUser(c)
	k, err := s.apiKeys.Revoke(ctx, u.Email, t.ID, id)
	if errors.Is(err, apikeys.ErrNotFound) {
		return echo.ErrNotFound
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "API key “"+k.Name+"” ("+k.Prefix+"…) is revoked: services using it are refused from now on.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/"+apiKeysTabKey)
}
