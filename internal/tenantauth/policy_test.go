package tenantauth_test

import (
	"context"
	"testing"

	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

// The password rule set for a parent applies to new users of its children.
func TestPasswordPolicyApplies(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	parent := b.tenant(t, "pol-parent")
	ts := b.tenants
	child, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "pol-child-" + parent.Slug, Name: "Child", PlanKey: "free", ParentSlug: parent.Slug})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settings.NewService(b.db.App, ts).Set(ctx, "ops", &parent, "security.password_min_length", "16", false); err != nil {
		t.Fatal(err)
	}
	svc := b.svc
	_, err = svc.CreateUser(ctx, child.ID, "test", tenantauth.NewUser{Email: "short@child.example", Name: "S", Role: tenantauth.RoleMember, Password: "twelve-chars"})
	if msg := validation.Fields(err)["password"]; msg != "This tenant's policy asks for at least 16 characters." {
		t.Fatalf("short password under the inherited policy: %v", err)
	}
	if _, err := svc.CreateUser(ctx, child.ID, "test", tenantauth.NewUser{Email: "long@child.example", Name: "L", Role: tenantauth.RoleMember, Password: "sixteen-chars-ok"}); err != nil {
		t.Fatalf("long enough password refused: %v", err)
	}
	// Another tenant keeps the platform default of 10.
	other := b.tenant(t, "pol-other")
	if _, err := svc.CreateUser(ctx, other.ID, "test", tenantauth.NewUser{Email: "x@other.example", Name: "X", Role: tenantauth.RoleMember, Password: "twelve-chars"}); err != nil {
		t.Fatalf("default policy: %v", err)
	}
}
