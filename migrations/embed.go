// Package migrations holds the versioned SQL migrations, embedded in the binary:
// platform/ for the control plane (schema tenantry), tenant/ for every tenant schema.
package migrations

import "embed"

// Platform holds the control-plane migrations, applied by goose in order.
//
//go:embed platform/*.sql
var Platform embed.FS

// Tenant holds the migrations applied to every tenant schema, each with its own version table.
//
//go:embed tenant/*.sql
var Tenant embed.FS
