package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/tenantry/tenantry/static"
)

// routes is the route table, one block per area.
func (s *Server) routes() {
	e := s.echo
	e.Use(
		middleware.RequestID(),
		auditOrigin,
		s.metrics.middleware(),
		s.logRequests(),
		s.recoverPanics(),
		middleware.SecureWithConfig(middleware.SecureConfig{
			XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
			ReferrerPolicy:        "same-origin",
			ContentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
		}),
	)

	// Operations: no session, no CSRF.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metrics.handler())
	assets := e.Group("/static", cacheStatic)
	assets.StaticFS("/", static.FS)

	// REST API: no session, no CSRF; an API key is the credential (see api.go).
	s.apiRoutes(e.Group("/api/v1"))

	// Browser pages: session, CSRF on every state-changing request.
	web := e.Group("", s.csrf(), s.loadUser)
	web.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin") })
	web.GET("/login", s.signInForm)
	web.POST("/login", s.signIn)
	web.POST("/logout", s.signOut)
	web.POST("/logout-all", s.signOutEverywhere, s.requireUser)
	web.GET("/setup", s.setupForm)
	web.POST("/setup", s.setup)
	s.portalRoutes(web) // tenant portal: /t/{slug}/... and tenants' own host names (portal.go)
	s.signupRoutes(web) // self-service signup: /signup/{brand}, verification, progress (signup.go)

	// Platform admin portal: signed in; executives may only read.
	admin := web.Group("/admin", s.requireUser, s.readOnlyForExecutives)
	admin.GET("", s.dashboard)
	s.signupAdminRoutes(admin) // Brands and Approvals (admin_brands.go, admin_approvals.go)
	admin.GET("/tenants", s.tenantList)
	s.provisioningRoutes(admin, web) // runs, bulk CSV, invitation links (admin_provisioning.go)
	admin.GET("/tenants/new", s.tenantNew)
	admin.GET("/quotas", s.quotaOverview)
	admin.GET("/settings", s.platformSettings)
	admin.GET("/settings/diff", s.settingsDiff)
	for _, base := range []string{"/settings", "/tenants/:slug/settings"} {
		admin.GET(base+"/:key", s.settingShow)
		admin.GET(base+"/:key/edit", s.settingEdit)
		admin.POST(base+"/:key", s.settingSave)
		admin.POST(base+"/:key/reset", s.settingReset)
	}
	admin.GET("/tree", s.treePage)
	admin.GET("/tree/children/:id", s.treeChildren)
	admin.GET("/tenants/:slug/move", s.tenantMoveForm)
	admin.POST("/tenants/:slug/move", s.tenantMove)
	admin.POST("/tenants", s.tenantCreate)
	admin.GET("/tenants/:slug", s.tenantShow)
	admin.GET("/tenants/:slug/:tab", s.tenantShow)
	admin.GET("/tenants/:slug/quotas/:dimension", s.quotaShow)
	admin.GET("/tenants/:slug/quotas/:dimension/edit", s.quotaEdit)
	admin.POST("/tenants/:slug/quotas/:dimension", s.quotaSave)
	s.quotaDynamicsRoutes(admin) // grants, burst, pools, alerts, scaling rules, charts (admin_quotas_dynamics.go)
	admin.POST("/tenants/:slug/api-keys", s.apiKeyCreate)
	admin.POST("/tenants/:slug/api-keys/:id/revoke", s.apiKeyRevoke)
	admin.GET("/isolation", s.isolationPage)
	admin.POST("/isolation/run", s.isolationRun)
	admin.POST("/tenants/:slug/network", s.tenantNetworkSave)
	admin.POST("/tenants/:slug/keys/rotate", s.tenantKeyRotate)
	admin.GET("/tenants/:slug/keys/rotation", s.tenantKeyRotation)
	admin.POST("/tenants/:slug/credentials", s.tenantCredentialSet)
	admin.GET("/tenants/:slug/audit/verify", s.tenantAuditVerify)
	admin.GET("/audit", s.auditList)
	admin.GET("/audit.csv", s.auditCSV)
	admin.GET("/audit/verify", s.auditVerify)
	admin.GET("/tenants/:slug/audit.csv", s.auditCSV)
	admin.GET("/users", s.userList)
	admin.POST("/users", s.userCreate)
	s.billingRoutes(admin)        // invoices, plans & prices, tenant Billing tab (admin_billing.go)
	s.templateRoutes(admin)       // provisioning templates, tenant Template section, /media/images (admin_templates.go)
	s.lifecycleRoutes(web, admin) // Lifecycle tab, tenant portal export, public /verify (admin_lifecycle.go)
	s.outboxRoutes(admin)         // e-mail outbox (admin_outbox.go)

	web.RouteNotFound("/*", func(c echo.Context) error { return echo.ErrNotFound })
}

func cacheStatic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return next(c)
	}
}
