package web

import (
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/apikeys"
)

// openAPI is the REST API's contract, written by hand; api_test.go checks that it parses and that
// every path it documents is served.
//
//go:embed openapi.yaml
var openAPI []byte

const ctxPrincipal = "tenantry.api.principal"

// apiRoutes is the REST API's route table, under /api/v1. There is no session and no CSRF: the
// credential is a tenant's API key in the Authorization header, checked per route, so unknown
// addresses answer 404 without asking for a key.
func (s *Server) apiRoutes(g *echo.Group) {
	g.GET("/openapi.yaml", s.apiOpenAPI)
	g.GET("/tenant", s.apiTenant, s.requireAPIKey)
	g.GET("/quota", s.apiQuota, s.requireAPIKey)
	g.POST("/quota/consume", s.apiQuotaConsume, s.requireAPIKey)
	g.POST("/usage", s.apiUsage, s.requireAPIKey)
	s.apiSettingsRoutes(g)
	s.billingAPIRoutes(g) // POST /invoices/{id}/payments (api_billing.go)
	g.RouteNotFound("/*", func(echo.Context) error { return echo.ErrNotFound })
}

// apiError is an API failure as the client sees it: status, a stable code and a message.
type apiError struct {
	Status  int
	Code    string
	Message string
	// Err is the cause, for the log only.
	Err error
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code
}

func (e *apiError) Unwrap() error { return e.Err }

// apiErrorBody is the JSON every API error answers with.
type apiErrorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

func isAPIRequest(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/api/")
}

// writeAPIError is the error handler's answer on /api/ paths: JSON instead of a page. Errors that
// are not apiErrors get their status and message from problemFor, as pages do.
func (s *Server) writeAPIError(c echo.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		p := problemFor(err)
		ae = &apiError{Status: p.Status, Code: apiCodes[p.Status], Message: p.Message}
		if ae.Code == "" {
			ae.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(p.Status), " ", "_"))
		}
	}
	if ae.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tenantry"`)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	var body apiErrorBody
	body.Error.Code, body.Error.Message, body.Error.RequestID = ae.Code, ae.Message, requestID(c)
	if err := c.JSON(ae.Status, body); err != nil {
		s.log.Error("write API error", "id", body.Error.RequestID, "err", err)
	}
}

var apiCodes = map[int]string{
	http.StatusBadRequest:          "bad_request",
	http.StatusUnauthorized:        "unauthorized",
	http.StatusForbidden:           "forbidden",
	http.StatusNotFound:            "not_found",
	http.StatusMethodNotAllowed:    "method_not_allowed",
	http.StatusUnprocessableEntity: "invalid",
	http.StatusInternalServerError: "internal",
	http.StatusServiceUnavailable:  "unavailable",
}

// requireAPIKey authenticates the request's bearer key and puts whom it acts for in the context.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		key, ok := bearerToken(c.Request())
		if !ok {
			return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "This endpoint needs an API key: send it as the header Authorization: Bearer <key>."}
		}
		addr := clientAddr(c)
		p, err := s.apiKeys.Authenticate(c.Request().Context(), key, addr)
		var ns *apikeys.NotServingError
		switch {
		case errors.Is(err, apikeys.ErrRevoked):
			return &apiError{Status: http.StatusUnauthorized, Code: "key_revoked", Message: "This API key has been revoked. Ask the tenant's administrator for a new one.", Err: err}
		case errors.Is(err, apikeys.ErrExpired):
			return &apiError{Status: http.StatusUnauthorized, Code: "key_expired", Message: "This API key has expired. Ask the tenant's administrator for a new one.", Err: err}
		case errors.Is(err, apikeys.ErrUnauthorized):
			return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "The API key is not valid.", Err: err}
		case errors.Is(err, apikeys.ErrForbiddenAddr):
			return &apiError{Status: http.StatusForbidden, Code: "address_not_allowed", Err: err,
				Message: fmt.Sprintf("This tenant accepts API calls only from its IP allowlist, and %s is not on it.", addrText(addr))}
		case errors.As(err, &ns):
			return s.lifecycleNotServing(c, ns) // names the reason and a contact (lifecycle_guard.go)
		case err != nil:
			return err
		}
		c.Set(ctxPrincipal, p)
		if err := s.lifecycleAPIGuard(c, p); err != nil { // read-only while decommissioning (lifecycle_guard.go)
			return err
		}
		return next(c)
	}
}

// currentPrincipal is the API key's holder of a request that passed requireAPIKey.
func currentPrincipal(c echo.Context) (apikeys.Principal, bool) {
	p, ok := c.Get(ctxPrincipal).(apikeys.Principal)
	return p, ok
}

// bearerToken reads "Authorization: Bearer <token>" (the scheme is case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// clientAddr is the address the IP allowlist is checked against. Forwarding headers are
// trusted only when the server was given an IPExtractor for its proxies; otherwise anyone could
// claim an allowed address in X-Forwarded-For. An unparsable address is the zero Addr, which no
// non-empty allowlist allows.
func clientAddr(c echo.Context) netip.Addr {
	ip := echo.ExtractIPDirect()(c.Request())
	if c.Echo().IPExtractor != nil {
		ip = c.RealIP()
	}
	addr, _ := netip.ParseAddr(ip)
	return addr.Unmap()
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "your address"
	}
	return a.String()
}

// apiTenantBody is the tenant as GET /api/v1/tenant shows it.
type apiTenantBody struct {
	ID    int64  `json:"id"`
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	State string `json:"state"`
	Plan  string `json:"plan"`
}

// apiTenant answers with the key's tenant.
func (s *Server) apiTenant(c echo.Context) error {
	p, ok := currentPrincipal(c)
	if !ok {
		return echo.ErrUnauthorized
	}
	t := p.Tenant
	return c.JSON(http.StatusOK, apiTenantBody{ID: t.ID, Slug: t.Slug, Name: t.Name, State: t.State, Plan: t.PlanKey})
}

// apiOpenAPI serves the API's OpenAPI document; it is public.
func (s *Server) apiOpenAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/yaml", openAPI)
}
