package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
)

// A portal session idle for longer than the tenant's security.session_timeout is ended; a
// recent one is kept. The session cookie is minted with the server's own keys, as sign-in
// would, with its last-activity time set in the past.
func TestPortalIdleTimeout(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	srv, err := New(ctx, Config{DB: d, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := tenant.NewService(d, slog.New(slog.DiscardHandler))
	tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "idle-co", Name: "Idle Co", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := tenantauth.NewService(d).CreateUser(ctx, tn.ID, "test", tenantauth.NewUser{Email: "idle@idle.example", Name: "Idle", Role: tenantauth.RoleAdmin, Password: "correct-horse-battery"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settings.NewService(d.App, ts).Set(ctx, "test", &tn, "security.session_timeout", "30m", false); err != nil {
		t.Fatal(err)
	}
	get := func(idleFor time.Duration) *httptest.ResponseRecorder {
		values := map[any]any{keyPortalTenant: tn.ID, keyPortalUser: u.ID, keyPortalEpoch: u.SessionEpoch,
			keyPortalSeen: time.Now().Add(-idleFor).Unix()}
		enc, err := securecookie.EncodeMulti(portalSessionName, values, srv.sessions.Codecs...)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/t/idle-co", nil)
		req.RemoteAddr = "127.0.0.1:1"
		req.AddCookie(&http.Cookie{Name: portalSessionName, Value: enc})
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := get(10 * time.Minute); rec.Code != http.StatusOK {
		t.Fatalf("session idle 10m under a 30m policy: %d, want the home page", rec.Code)
	}
	rec := get(45 * time.Minute)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/t/idle-co/login" {
		t.Fatalf("session idle 45m under a 30m policy: %d %s, want the sign-in page", rec.Code, rec.Header().Get("Location"))
	}
}
