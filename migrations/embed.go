// Package migrations holds the versioned SQL migrations, embedded in the binary:
// platform/ for the control plane (schema tenantry), tenant/ for every tenant schema.
package migrations

import "embed"

// Platform holds the control-plane migrations, applied by goose in order.
//
//go:embed platform/*.sql
var Platform embed.FS
