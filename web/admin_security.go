package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// errNoKeys answers requests that need tenant encryption on a server started without a master key.
var errNoKeys = echo.NewHTTPError(http.StatusServiceUnavailable, "Tenant encryption is not configured on this server (no master key).")

// securityTab builds the Security tab of tenant t.
func (s *Server) securityTab(c echo.Context, t tenant.Tenant) (admin.Security, error) {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	m := admin.Security{CSRF: csrfToken(c), Slug: t.Slug, CanWrite: u.CanWrite(), Allowlist: t.IPAllowlist.String()}
	if t.Hostname != nil {
		m.Hostname = *t.Hostname
	}
	if s.keys == nil {
		return m, nil
	}
	st, err := s.keys.Status(ctx, t.ID)
	switch {
	case errors.Is(err, keys.ErrNoKeyset):
	case err != nil:
		return m, err
	default:
		m.Key = keyStatus(st)
	}
	creds, err := s.credentials.List(ctx, t.ID)
	if err != nil && !isMissingPlane(err) {
		return m, err
	}
	for _, cr := range creds {
		m.Credentials = append(m.Credentials, admin.CredentialRow{Name: cr.Name, SetBy: cr.SetBy, SetAt: cr.SetAt.Format(dateFormat + " 15:04 MST")})
	}
	return m, nil
}

// isMissingPlane is true for tenants whose schema does not exist (purged, or still provisioning).
func isMissingPlane(err error) bool {
	var pe *pgconn.PgError
	// 3F000: no such schema; 42P01: no such table; 22023: no such role for SET ROLE (roles are
	// cluster-wide, so another database may still hold t_<id> while this one has no schema).
	return errors.As(err, &pe) && (pe.Code == "3F000" || pe.Code == "42P01" || pe.Code == "22023")
}

func keyStatus(st keys.Status) *admin.KeyStatus {
	ks := &admin.KeyStatus{PrimaryKeyID: fmt.Sprint(st.PrimaryKeyID), Created: st.CreatedAt.Format(dateFormat + " 15:04 MST")}
	ids := make([]string, len(st.KeyIDs))
	for i, id := range st.KeyIDs {
		ids[i] = fmt.Sprint(id)
	}
	ks.KeyIDs = strings.Join(ids, ", ")
	if st.RotatedAt != nil {
		ks.Rotated = st.RotatedAt.Format(dateFormat + " 15:04 MST")
	}
	if st.DestroyedAt != nil {
		ks.Destroyed = st.DestroyedAt.Format(dateFormat + " 15:04 MST")
	}
	if r := st.LatestRotation; r != nil {
		rs := &admin.RotationStatus{ID: r.ID, Started: r.StartedAt.Format(dateFormat + " 15:04:05 MST"), Done: r.ItemsDone, Total: -1, Finished: r.FinishedAt != nil}
		if r.ItemsTotal != nil {
			rs.Total = *r.ItemsTotal
		}
		if r.Error != nil {
			rs.Error = *r.Error
		}
		ks.Rotation = rs
	}
	return ks
}

// keyedTenant is the tenant named by :slug, for handlers that need tenant encryption.
func (s *Server) keyedTenant(c echo.Context) (tenant.Tenant, error) {
	if s.keys == nil {
		return tenant.Tenant{}, errNoKeys
	}
	return s.tenants.Get(c.Request().Context(), c.Param("slug"))
}

// tenantNetworkSave changes the tenant's IP allowlist and host name.
func (s *Server) tenantNetworkSave(c echo.Context) error {
	u, _ := currentUser(c)
	in := tenant.Network{Allowlist: c.FormValue("ip_allowlist"), Hostname: c.FormValue("hostname")}
	_, err := s.tenants.SetNetwork(c.Request().Context(), u.Email, c.Param("slug"), in)
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "security", func(m *admin.TenantDetail) {
			m.Security.Allowlist, m.Security.Hostname, m.Security.NetworkErrors = in.Allowlist, in.Hostname, validation.Fields(err)
		})
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Network access saved.")
	return redirect(c, "/admin/tenants/"+c.Param("slug")+"/security")
}

// tenantKeyRotate starts a rotation of the tenant's key.
func (s *Server) tenantKeyRotate(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.keyedTenant(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	if _, err := s.keys.Rotate(ctx, u.Email, t.ID); err != nil {
		if errors.Is(err, keys.ErrKeysetDestroyed) || errors.Is(err, keys.ErrNoKeyset) {
			s.flash(c, "error", "This tenant's key cannot be rotated: "+err.Error()+".")
			return redirect(c, "/admin/tenants/"+t.Slug+"/security")
		}
		return err
	}
	s.flash(c, "success", "New primary key in use. Existing secrets are being re-encrypted; progress shows below.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/security")
}

// tenantKeyRotation answers the rotation progress poll.
func (s *Server) tenantKeyRotation(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.keyedTenant(c)
	if err != nil {
		return err
	}
	st, err := s.keys.Status(ctx, t.ID)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, admin.RotationProgress(t.Slug, keyStatus(st).Rotation))
}

// tenantCredentialSet stores an integration credential, encrypted with the tenant's key.
func (s *Server) tenantCredentialSet(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.keyedTenant(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	name := c.FormValue("name")
	err = s.credentials.Set(ctx, u.Email, t.ID, name, c.FormValue("value"))
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderTenant(c, http.StatusUnprocessableEntity, "security", func(m *admin.TenantDetail) {
			m.Security.CredentialName, m.Security.CredentialErrors = name, validation.Fields(err)
		})
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Credential "+strings.ToLower(strings.TrimSpace(name))+" stored, encrypted with the tenant's key.")
	return redirect(c, "/admin/tenants/"+t.Slug+"/security")
}
