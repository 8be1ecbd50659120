// Package web is Tenantry's HTTP server: the route table, middleware, the render helper, the
// central error handler and the handlers of the admin portal.
package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/credentials"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/isolation"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/static"
)

// Server holds the handlers' dependencies.
type Server struct {
	echo    *echo.Echo
	log     *slog.Logger
	db      *db.DB
	users   *identity.Service
	tenants *tenant.Service
	apiKeys *apikeys.Service
	quotas  *quota.Service
	// leaser serves hot tenant-dimensions' consumes from per-node leases; nil: none.
	leaser *quota.Leaser
	// keys and credentials are nil when the server runs without a master key (some CLI uses).
	keys        *keys.Service
	credentials *credentials.Service
	sessions    *sessions.CookieStore
	metrics     *metrics
	cssHref     string

	verifier          *isolation.Verifier
	isolationInterval time.Duration
	lifecycle         *lifecycle.Service    // decommissioning (admin_lifecycle.go)
	provisioning      *provisioning.Service // provisioning runs (admin_provisioning.go)
	mailDelivery      string
}

// Config is what the server needs from the process.
type Config struct {
	DB  *db.DB
	Log *slog.Logger
	// SessionKey signs and encrypts cookies; empty means the key kept in the database.
	SessionKey []byte
	// Keys encrypts tenant secrets and gives new tenants their keysets.
	Keys *keys.Service
	// IsolationInterval is how often the scheduled verifier runs (shown on the Isolation page).
	IsolationInterval time.Duration
	// Master signs certificates of data destruction (it wraps the signing key); nil: none.
	Master keys.Master
	// ExportDir keeps tenants' export archives; empty means lifecycle.DefaultExportDir.
	ExportDir string
	// MailDelivery describes where the outbox is delivered; empty when SMTP is not configured.
	MailDelivery string
}

// New builds the server and its routes.
func New(ctx context.Context, cfg Config) (*Server, error) {
	s := &Server{
		echo:    echo.New(),
		log:     cfg.Log,
		db:      cfg.DB,
		users:   identity.NewService(cfg.DB.App),
		tenants: tenant.NewService(cfg.DB, cfg.Log, tenant.WithKeys(cfg.Keys)),
		apiKeys: apikeys.NewService(cfg.DB),
		quotas:  quota.NewService(cfg.DB),
		keys:    cfg.Keys,

		verifier:          isolation.New(cfg.DB, cfg.Log),
		isolationInterval: cfg.IsolationInterval,
		mailDelivery:      cfg.MailDelivery,
	}
	if s.isolationInterval <= 0 {
		s.isolationInterval = time.Hour
	}
	s.verifier.Add(s.IsolationProbes()...)
	s.lifecycle = newLifecycle(cfg, s.tenants)
	s.provisioning = newProvisioning(cfg)
	if cfg.Keys != nil {
		s.credentials = credentials.NewService(cfg.DB, cfg.Keys)
	}
	key := cfg.SessionKey
	if len(key) == 0 {
		var err error
		if key, err = s.users.SessionKey(ctx); err != nil {
			return nil, err
		}
	}
	s.sessions = newSessionStore(key)
	s.metrics = newMetrics(cfg.DB)
	css, err := fs.ReadFile(static.FS, "css/app.css")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(css)
	s.cssHref = "/static/css/app.css?v=" + hex.EncodeToString(sum[:6])

	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	s.routes()
	return s, nil
}

// Verifier is the isolation verifier with the server's HTTP probes, for the scheduled job.
func (s *Server) Verifier() *isolation.Verifier { return s.verifier }

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Registry exposes the server's Prometheus registry (for tests).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }
