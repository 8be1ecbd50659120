package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// settingsLevel is the level a settings request works on: the platform (t nil) or a tenant.
func (s *Server) settingsLevel(c echo.Context) (*tenant.Tenant, string, error) {
	slug := c.Param("slug")
	if slug == "" {
		return nil, "/admin/settings", nil
	}
	t, err := s.tenants.Get(c.Request().Context(), slug)
	if err != nil {
		return nil, "", err
	}
	return &t, "/admin/tenants/" + t.Slug + "/settings", nil
}

func (s *Server) settingRow(c echo.Context, base string, e settings.Effective) admin.SettingRow {
	u, _ := currentUser(c)
	r := admin.SettingRow{Base: base, CSRF: csrfToken(c), Key: e.Key.Key, Label: e.Key.Label, Description: e.Key.Description,
		Type: string(e.Key.Type), Options: e.Key.Options, Value: e.Value, Kind: e.Kind, Source: e.Source,
		Locked: !e.Overridable(), Own: e.Own != nil, Locks: e.Locks, SetBy: e.SetBy, CanWrite: u.CanWrite(), Input: e.Value}
	if !e.SetAt.IsZero() {
		r.SetAt = e.SetAt.Format(dateFormat)
	}
	r.Reason = e.Reason
	switch e.Key.Type {
	case settings.Secret:
		r.Input = ""                   // write-only: never put back into a page
		if base == "/admin/settings" { // no tenant key to encrypt with: set per tenant only
			r.CanWrite = false
			if e.Own == nil {
				r.Source = "set per tenant"
			}
		}
	case settings.Image:
		r.ImageURL, r.Input = settings.ImageURL(e.Value), ""
	}
	return r
}

// settingsPanel builds the Settings tab of t, or the platform's settings when t is nil.
func (s *Server) settingsPanel(c echo.Context, t *tenant.Tenant, base string) (admin.SettingsPanel, error) {
	all, err := s.settingsSvc().Effective(c.Request().Context(), t)
	if err != nil {
		return admin.SettingsPanel{}, err
	}
	m := admin.SettingsPanel{Level: "the whole platform"}
	if t != nil {
		m.Level = t.Name
	}
	for _, e := range all {
		if n := len(m.Groups); n == 0 || m.Groups[n-1].Name != e.Key.Group {
			m.Groups = append(m.Groups, admin.SettingGroup{Name: e.Key.Group, Note: settings.GroupNotes[e.Key.Group]})
		}
		g := &m.Groups[len(m.Groups)-1]
		g.Rows = append(g.Rows, s.settingRow(c, base, e))
	}
	return m, nil
}

// platformSettings is the platform's settings page.
func (s *Server) platformSettings(c echo.Context) error {
	m, err := s.settingsPanel(c, nil, "/admin/settings")
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, page{Title: "Platform settings", Nav: "settings",
		Crumbs: []layouts.Crumb{{Label: "Platform settings"}}, Content: admin.PlatformSettingsPage(m)})
}

// settingShow answers with one row (Cancel of an edit).
func (s *Server) settingShow(c echo.Context) error {
	return s.settingRowResponse(c, false, "", "", http.StatusOK)
}

// settingEdit answers with the row as a form.
func (s *Server) settingEdit(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	return s.settingRowResponse(c, true, "", "", http.StatusOK)
}

func (s *Server) settingRowResponse(c echo.Context, editing bool, input, msg string, status int) error {
	t, base, err := s.settingsLevel(c)
	if err != nil {
		return err
	}
	e, err := s.settingsSvc().EffectiveOf(c.Request().Context(), t, c.Param("key"))
	if errors.Is(err, settings.ErrUnknownKey) {
		return echo.ErrNotFound
	}
	if err != nil {
		return err
	}
	r := s.settingRow(c, base, e)
	r.Editing = editing && !r.Locked
	if editing && msg != "" {
		r.Editing, r.Error = true, msg
		if e.Key.Type != settings.Secret && e.Key.Type != settings.Image {
			r.Input = input // a typed secret is never echoed back
		}
	}
	return write(c, status, admin.SettingRowView(r))
}

// settingSave overrides a key at this level; a bad value comes back at the field (422).
func (s *Server) settingSave(c echo.Context) error {
	t, _, err := s.settingsLevel(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	raw := c.FormValue("value")
	if k, ok := settings.Lookup(c.Param("key")); ok && k.Type == settings.Image {
		if raw, err = s.storeUploadedImage(c, u.Email, "file"); errors.Is(err, validation.ErrInvalid) {
			return s.settingRowResponse(c, true, "", validation.Fields(err)["file"], http.StatusUnprocessableEntity)
		} else if err != nil {
			return err
		}
	}
	_, err = s.settingsSvc().Set(c.Request().Context(), u.Email, t, c.Param("key"), raw, c.FormValue("lock") == "true")
	switch {
	case errors.Is(err, settings.ErrUnknownKey):
		return echo.ErrNotFound
	case errors.Is(err, validation.ErrInvalid):
		return s.settingRowResponse(c, true, raw, validation.Fields(err)["value"], http.StatusUnprocessableEntity)
	case err != nil:
		return err
	}
	return s.settingRowResponse(c, false, "", "", http.StatusOK)
}

// settingReset removes this level's value.
func (s *Server) settingReset(c echo.Context) error {
	t, _, err := s.settingsLevel(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	if _, err := s.settingsSvc().Reset(c.Request().Context(), u.Email, t, c.Param("key")); errors.Is(err, settings.ErrUnknownKey) {
		return echo.ErrNotFound
	} else if err != nil {
		return err
	}
	return s.settingRowResponse(c, false, "", "", http.StatusOK)
}

// settingsDiff compares two tenants' effective settings.
func (s *Server) settingsDiff(c echo.Context) error {
	ctx := c.Request().Context()
	m := admin.SettingsDiff{A: strings.TrimSpace(c.QueryParam("a")), B: strings.TrimSpace(c.QueryParam("b"))}
	if m.A != "" || m.B != "" {
		a, errA := s.tenants.Get(ctx, m.A)
		b, errB := s.tenants.Get(ctx, m.B)
		switch {
		case errors.Is(errA, tenant.ErrNotFound):
			m.Error = "No tenant has the slug " + quoteOr(m.A) + "."
		case errors.Is(errB, tenant.ErrNotFound):
			m.Error = "No tenant has the slug " + quoteOr(m.B) + "."
		case errA != nil:
			return errA
		case errB != nil:
			return errB
		default:
			rows, err := s.settingsSvc().Diff(ctx, a, b)
			if err != nil {
				return err
			}
			m.Compared, m.AName, m.BName = true, a.Name, b.Name
			for _, r := range rows {
				m.Rows = append(m.Rows, admin.SettingsDiffRow{Label: r.Key.Label, Key: r.Key.Key, A: r.A.Value, ASource: r.A.Source,
					B: r.B.Value, BSource: r.B.Source, Different: r.Different})
			}
		}
	}
	status := http.StatusOK
	if m.Error != "" {
		status = http.StatusUnprocessableEntity
	}
	return s.render(c, status, page{Title: "Compare settings", Nav: "settings",
		Crumbs: []layouts.Crumb{{Label: "Platform settings", Href: "/admin/settings"}, {Label: "Compare"}}, Content: admin.SettingsDiffPage(m)})
}

func quoteOr(s string) string {
	if s == "" {
		return "(empty)"
	}
	return "“" + s + "”"
}

// settingsSvc resolves settings against this server's tenant registry.
func (s *Server) settingsSvc() *settings.Service {
	return settings.NewService(s.db.App, s.tenants).WithKeys(s.keys)
}
