package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/settings"
)

// apiSettingsRoutes adds the governed services' read-only view of their tenant's configuration.
func (s *Server) apiSettingsRoutes(g *echo.Group) {
	g.GET("/flags", s.apiFlags, s.requireAPIKey)
	g.GET("/settings", s.apiSettings, s.requireAPIKey)
}

// apiSetting is one effective setting as the API shows it.
type apiSetting struct {
	Value  any    `json:"value"`
	Type   string `json:"type"`
	Source string `json:"source"`
}

// apiFlags answers the key's tenant's effective feature flags as {"flag": bool}.
func (s *Server) apiFlags(c echo.Context) error {
	return s.apiEffective(c, func(e settings.Effective) (string, any, bool) {
		if e.Key.Group != "Feature flags" {
			return "", nil, false
		}
		return strings.TrimPrefix(e.Key.Key, "flags."), e.Value == "true", true
	})
}

// apiSettings answers every effective setting of the key's tenant with its type and source.
func (s *Server) apiSettings(c echo.Context) error {
	return s.apiEffective(c, func(e settings.Effective) (string, any, bool) {
		if e.Key.Type == settings.Secret { // write-only: services get secrets another way, never here
			return "", nil, false
		}
		return e.Key.Key, apiSetting{Value: typedValue(e), Type: string(e.Key.Type), Source: e.Source}, true
	})
}

// apiEffective resolves the tenant's settings, keeps those pick selects, and answers with an
// ETag so pollers get 304 Not Modified while nothing changed.
func (s *Server) apiEffective(c echo.Context, pick func(settings.Effective) (string, any, bool)) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	all, err := s.settingsSvc().Effective(c.Request().Context(), &p.Tenant)
	if err != nil {
		return err
	}
	out := map[string]any{}
	for _, e := range all {
		if k, v, ok := pick(e); ok {
			out[k] = v
		}
	}
	body, err := json.Marshal(out) // map keys are sorted: the same settings give the same bytes
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache") // keep it, but ask again (cheaply) each time
	for _, m := range strings.Split(c.Request().Header.Get("If-None-Match"), ",") {
		if strings.TrimSpace(m) == etag {
			return c.NoContent(http.StatusNotModified)
		}
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// typedValue is the JSON value of a setting: booleans and numbers as such, the rest as strings.
func typedValue(e settings.Effective) any {
	switch e.Key.Type {
	case settings.Bool:
		return e.Value == "true"
	case settings.Int:
		if n, err := strconv.Atoi(e.Value); err == nil {
			return n
		}
	}
	return e.Value
}
