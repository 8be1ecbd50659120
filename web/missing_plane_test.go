package web_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tenantry/tenantry/internal/identity"
)

// A tenant without its own schema (purged, or provisioning interrupted) still has readable tabs:
// they say there is nothing rather than failing. Its id is one no database gives a role to, so
// neither its schema nor its role exists.
func TestTabsOfATenantWithoutPlane(t *testing.T) {
	b := withKeys(t)
	if _, err := b.db.OwnerPool.Exec(context.Background(),
		"INSERT INTO tenantry.tenants (id, slug, name, plan_key, state) VALUES (987654321, 'no-plane', 'No Plane', 'free', 'purged')"); err != nil {
		t.Fatal(err)
	}
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	for _, tab := range []string{"security", "audit", "users", "api-keys", "settings", "quotas"} {
		if res, body := c.get("/admin/tenants/no-plane/" + tab); res.StatusCode != http.StatusOK {
			t.Errorf("%s tab of a tenant without a schema: %d\n%.300s", tab, res.StatusCode, body)
		}
	}
}
