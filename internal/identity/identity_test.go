package identity_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestPasswordHash(t *testing.T) {
	h, err := identity.HashPassword("s3cret-enough")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id with the expected parameters", h)
	}
	h2, _ := identity.HashPassword("s3cret-enough")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	for pw, want := range map[string]bool{"s3cret-enough": true, "s3cret-enougH": false, "": false} {
		if ok, err := identity.CheckPassword(h, pw); err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	if _, err := identity.CheckPassword("$2a$10$bcrypt", "x"); err == nil {
		t.Error("a non-argon2id hash was accepted")
	}
}

func TestCreateValidates(t *testing.T) {
	svc := identity.NewService(dbtest.Open(t).App)
	ctx := context.Background()
	// Executives only: TestSetupFirstAdminOnce needs a database without admins.
	if _, err := svc.Create(ctx, "t", identity.NewUser{Email: "dup@example.com", Name: "D", Role: identity.RoleExecutive, Password: "long-enough-pw"}); err != nil {
		t.Fatal(err)
	}
	for field, in := range map[string]identity.NewUser{
		"email":    {Email: "not-an-email", Name: "N", Role: identity.RoleAdmin, Password: "long-enough-pw"},
		"name":     {Email: "n@example.com", Role: identity.RoleAdmin, Password: "long-enough-pw"},
		"role":     {Email: "r@example.com", Name: "N", Role: "owner", Password: "long-enough-pw"},
		"password": {Email: "p@example.com", Name: "N", Role: identity.RoleAdmin, Password: "short"},
	} {
		if _, err := svc.Create(ctx, "t", in); validation.Fields(err)[field] == "" {
			t.Errorf("%s: err = %v, want a message at %s", field, err, field)
		}
	}
	_, err := svc.Create(ctx, "t", identity.NewUser{Email: "DUP@example.com", Name: "D", Role: identity.RoleAdmin, Password: "long-enough-pw"})
	if validation.Fields(err)["email"] == "" {
		t.Errorf("duplicate e-mail (other case): %v", err)
	}
}

func TestSignInThrottlesPerAddress(t *testing.T) {
	svc := identity.NewService(dbtest.Open(t).App)
	ctx := context.Background()
	u, err := svc.Create(ctx, "t", identity.NewUser{Email: "victim@example.com", Name: "V", Role: identity.RoleExecutive, Password: "long-enough-pw"})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "203.0.113.9"
	for i := 0; i < identity.MaxFailuresPerAddr; i++ { // spraying many accounts from one address
		_, err := svc.SignIn(ctx, fmt.Sprintf("guess%d@example.com", i), "whatever-pw", addr)
		if !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var th *identity.ThrottledError
	if _, err := svc.SignIn(ctx, u.Email, "long-enough-pw", addr); !errors.As(err, &th) || th.RetryAfter <= 0 {
		t.Fatalf("after %d failures from one address: %v, want throttled", identity.MaxFailuresPerAddr, err)
	}
	if _, err := svc.SignIn(ctx, u.Email, "long-enough-pw", "203.0.113.10"); err != nil {
		t.Fatalf("another address is throttled too: %v", err)
	}
}

func TestSetupFirstAdminOnce(t *testing.T) {
	d := dbtest.Open(t)
	svc := identity.NewService(d.App)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc.SetupFirstAdmin(ctx, identity.NewUser{Email: fmt.Sprintf("first%d@example.com", i), Name: "First", Password: "long-enough-pw"}, "setup")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, identity.ErrSetupDone):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent first-run setups succeeded, want exactly 1", won)
	}
	if created, err := svc.EnsureAdmin(ctx, "env@example.com", "long-enough-pw"); err != nil || created {
		t.Fatalf("EnsureAdmin with an admin present: created=%v err=%v", created, err)
	}
}
