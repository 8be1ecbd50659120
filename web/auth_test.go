package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/identity"
)

func TestSignIn(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)

	t.Run("anonymous is sent to sign in and back", func(t *testing.T) {
		c := b.client(t)
		res, _ := c.get("/admin/tenants?state=active")
		if got := res.Header.Get("Location"); got != "/login?next=%2Fadmin%2Ftenants%3Fstate%3Dactive" {
			t.Fatalf("redirect = %q", got)
		}
		form := url.Values{"email": {admin.Email}, "password": {password}, "_csrf": {c.token("/login")}, "next": {"/admin/tenants?state=active"}}
		res, _ = c.post("/login", form)
		if got := res.Header.Get("Location"); got != "/admin/tenants?state=active" {
			t.Fatalf("after sign-in, redirect = %q", got)
		}
	})
	t.Run("next cannot leave the portal", func(t *testing.T) {
		c := b.client(t)
		form := url.Values{"email": {admin.Email}, "password": {password}, "_csrf": {c.token("/login")}, "next": {"//evil.example/admin"}}
		res, _ := c.post("/login", form)
		if got := res.Header.Get("Location"); got != "/admin" {
			t.Fatalf("redirect = %q, want /admin", got)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := b.client(t)
		form := url.Values{"email": {admin.Email}, "password": {"wrong-password"}, "_csrf": {c.token("/login")}}
		res, body := c.post("/login", form)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", res.StatusCode)
		}
		if msg := parse(t, body).Find(`[data-testid="signin-error"]`).Text(); msg != "Wrong e-mail or password." {
			t.Fatalf("message %q", msg)
		}
		if got := parse(t, body).Find(`input[name="email"]`).AttrOr("value", ""); got != admin.Email {
			t.Fatalf("e-mail not kept: %q", got)
		}
	})
}

func TestSignInThrottledPerAccount(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	for i := 0; i < identity.MaxFailuresPerEmail; i++ {
		res, _ := c.post("/login", url.Values{"email": {admin.Email}, "password": {"nope-nope-nope"}, "_csrf": {c.token("/login")}})
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, res.StatusCode)
		}
	}
	// Even the right password is refused now, with a clear message.
	res, body := c.post("/login", url.Values{"email": {admin.Email}, "password": {password}, "_csrf": {c.token("/login")}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", res.StatusCode)
	}
	if msg := parse(t, body).Find(`[data-testid="signin-error"]`).Text(); !strings.Contains(msg, "try again in 15 minutes") {
		t.Fatalf("message %q", msg)
	}
	// Another account from another address is unaffected.
	other := b.user(t, identity.RoleExecutive)
	b.client(t).signIn(other.Email)
}

func TestSignOutEverywhere(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	laptop, phone := b.client(t), b.client(t)
	laptop.signIn(admin.Email)
	phone.signIn(admin.Email)

	res, _ := laptop.post("/logout-all", url.Values{"_csrf": {laptop.token("/admin/users")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout-all: status %d", res.StatusCode)
	}
	for name, c := range map[string]*client{"laptop": laptop, "phone": phone} {
		if res, _ := c.get("/admin"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
			t.Errorf("%s still signed in after sign-out everywhere: %d %s", name, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

func TestExecutiveIsReadOnly(t *testing.T) {
	b := setup(t)
	exec := b.user(t, identity.RoleExecutive)
	c := b.client(t)
	c.signIn(exec.Email)

	res, body := c.get("/admin/tenants")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("list: %d", res.StatusCode)
	}
	if parse(t, body).Find(`a[href="/admin/tenants/new"]`).Length() != 0 {
		t.Fatal("executive sees the New tenant button")
	}
	res, _ = c.post("/admin/tenants", url.Values{"name": {"Exec"}, "slug": {"exec-made"}, "plan": {"free"}, "_csrf": {c.token("/admin/users")}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive POST: status %d, want 403", res.StatusCode)
	}
	if countTenants(t, b.db, "exec-made") != 0 {
		t.Fatal("executive created a tenant")
	}
	res, _ = c.post("/admin/users", url.Values{"name": {"X"}, "email": {"x@example.com"}, "role": {"admin"}, "password": {password}, "_csrf": {c.token("/admin/users")}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("executive adding a user: status %d, want 403", res.StatusCode)
	}
}

func TestFirstRunSetupOnlyWithoutAdmin(t *testing.T) {
	b := setup(t)
	b.user(t, identity.RoleAdmin)
	c := b.client(t)
	if res, _ := c.get("/setup"); res.Header.Get("Location") != "/login" {
		t.Fatalf("/setup with an admin present: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, _ := c.post("/setup", url.Values{"name": {"Intruder"}, "email": {"intruder@example.com"}, "password": {password}, "_csrf": {c.token("/login")}})
	if res.Header.Get("Location") != "/login" {
		t.Fatalf("POST /setup with an admin present: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := b.users.SignIn(t.Context(), "intruder@example.com", password, "198.51.100.1"); err == nil {
		t.Fatal("setup created a second admin")
	}
}
