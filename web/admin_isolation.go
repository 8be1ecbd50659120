package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/isolation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// isolationPage shows the verifier's history and the latest run's probes.
func (s *Server) isolationPage(c echo.Context) error {
	ctx := c.Request().Context()
	runs, err := isolation.Latest(ctx, s.db.App, 20)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	m := admin.Isolation{CSRF: csrfToken(c), CanWrite: u.CanWrite(), Interval: s.isolationInterval.String()}
	for _, r := range runs {
		m.Runs = append(m.Runs, admin.IsolationRun{ID: r.ID, When: r.StartedAt.Format(dateFormat + " 15:04 MST"), Trigger: r.Trigger,
			Pairs: r.Pairs, Probes: r.Probes, Failures: r.Failures, Summary: r.Summary(), Breach: r.Failures > 0 || r.Error != nil})
	}
	if len(m.Runs) > 0 {
		m.Latest = &m.Runs[0]
		results, err := isolation.Results(ctx, s.db.App, runs[0].ID)
		if err != nil {
			return err
		}
		names, err := s.tenantSlugs(ctx, results)
		if err != nil {
			return err
		}
		for _, r := range results {
			m.Probes = append(m.Probes, admin.IsolationProbe{Probe: r.Probe, TenantA: names[r.TenantA], TenantB: names[r.TenantB],
				Passed: r.Passed, Detail: r.Detail, Duration: (time.Duration(r.DurationUs) * time.Microsecond).String()})
		}
	}
	return s.render(c, http.StatusOK, page{Title: "Isolation", Nav: "isolation",
		Crumbs: []layouts.Crumb{{Label: "Isolation"}}, Content: admin.IsolationPage(m)})
}

func (s *Server) tenantSlugs(ctx context.Context, results []isolation.ProbeResult) (map[int64]string, error) {
	ids := map[int64]bool{}
	for _, r := range results {
		ids[r.TenantA], ids[r.TenantB] = true, true
	}
	out := map[int64]string{}
	for id := range ids {
		var slug string
		err := s.db.App.WithContext(ctx).Table("tenantry.tenants").Where("id = ?", id).Pluck("slug", &slug).Error
		if err != nil {
			return nil, err
		}
		if slug == "" {
			slug = "#" + strconv.FormatInt(id, 10)
		}
		out[id] = slug
	}
	return out, nil
}

// isolationRun runs the verifier now and reports the result.
func (s *Server) isolationRun(c echo.Context) error {
	run, err := s.verifier.Run(c.Request().Context(), "manual")
	switch {
	case errors.Is(err, isolation.ErrBreach):
		s.flash(c, "error", "Isolation breach: "+run.Summary()+" It has been recorded in the audit trail.")
	case err != nil:
		return err
	default:
		s.flash(c, "success", "Isolation verified: "+run.Summary())
	}
	return redirect(c, "/admin/isolation")
}

// IsolationProbes are the verifier's probes over HTTP: requests go through the whole server
// (middleware, authentication, handlers) in process, as a client's would.
func (s *Server) IsolationProbes() []isolation.Probe {
	return []isolation.Probe{
		{Name: "http: A's API key used as B's", Try: s.probeAPIKey},
		{Name: "http: A's portal session on B's portal", Try: s.probePortalSession},
	}
}

// probePortalSession forges the most dangerous cookie there is: a portal session bound to A
// that names one of B's own users (ids restart at 1 in every schema). B's portal must answer
// with its sign-in page, never with B's signed-in page.
func (s *Server) probePortalSession(ctx context.Context, a, b int64) error {
	var bSlug string
	if err := s.db.App.WithContext(ctx).Table("tenantry.tenants").Where("id = ?", b).Pluck("slug", &bSlug).Error; err != nil || bSlug == "" {
		return fmt.Errorf("tenant %d not found: %v", b, err)
	}
	uid, epoch := int64(1), 1
	row := s.db.OwnerPool.QueryRow(ctx, "SELECT id, session_epoch FROM "+db.TenantSchema(b)+".users ORDER BY id LIMIT 1")
	if err := row.Scan(&uid, &epoch); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read tenant %d's users: %v", b, err)
	}
	mint := httptest.NewRecorder()
	mc := s.echo.NewContext(httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil), mint)
	if err := s.startPortalSession(mc, a, map[any]any{keyPortalUser: uid, keyPortalEpoch: epoch}); err != nil {
		return fmt.Errorf("mint a session: %v", err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/t/"+bSlug, nil)
	req.RemoteAddr = "127.0.0.1:1"
	for _, ck := range mint.Result().Cookies() {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	body := rec.Body.String()
	if strings.Contains(body, `data-testid="portal-me"`) || strings.Contains(body, `data-testid="portal-users"`) {
		return fmt.Errorf("tenant %d's portal session opened tenant %d's portal (status %d)", a, b, rec.Code)
	}
	return nil
}

// probeAPIKey issues a temporary key for A, checks that it answers as A and that the same secret
// presented as B's is refused, then revokes the key.
func (s *Server) probeAPIKey(ctx context.Context, a, b int64) error {
	issued, err := s.apiKeys.Create(ctx, "system:isolation-verifier", a, "isolation verifier (temporary)", nil)
	if errors.Is(err, apikeys.ErrTenantNotServing) {
		// A tenant that is not serving has no usable key to misuse: the API refuses all of its
		// keys (proven in internal/apikeys), so there is nothing for this probe to try.
		return nil
	}
	if err != nil {
		return fmt.Errorf("could not issue a probe key for tenant %d: %v", a, err)
	}
	defer func() {
		if _, err := s.apiKeys.Revoke(context.WithoutCancel(ctx), "system:isolation-verifier", a, issued.ID); err != nil {
			s.log.Error("revoke isolation probe key", "tenant", a, "err", err)
		}
	}()
	call := func(key string) (int, map[string]any) {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/tenant", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var body map[string]any
		dec := json.NewDecoder(rec.Body)
		dec.UseNumber() // a tenant id must keep its digits: as a float it prints like 2.06e+12
		_ = dec.Decode(&body)
		return rec.Code, body
	}
	status, body := call(issued.FullKey)
	if status == http.StatusOK && fmt.Sprint(body["id"]) != strconv.FormatInt(a, 10) {
		return fmt.Errorf("tenant %d's key answered as tenant %v", a, body["id"])
	}
	forged := strings.Replace(issued.FullKey, fmt.Sprintf("tnt_%d_", a), fmt.Sprintf("tnt_%d_", b), 1)
	if forged == issued.FullKey {
		return fmt.Errorf("probe cannot forge the key: unexpected key format")
	}
	if status, body := call(forged); status != http.StatusUnauthorized {
		return fmt.Errorf("tenant %d's secret presented as tenant %d's got %d %v, want 401", a, b, status, body)
	}
	return nil
}
