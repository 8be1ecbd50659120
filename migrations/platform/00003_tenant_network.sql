-- Network-level segregation: per-tenant IP allowlist (empty = any address) and an optional own
-- hostname for the tenant portal.

-- +goose Up
ALTER TABLE tenants
    ADD COLUMN ip_allowlist cidr[] NOT NULL DEFAULT '{}',
    ADD COLUMN hostname     text UNIQUE CHECK (hostname ~ '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$');

-- +goose Down
ALTER TABLE tenants DROP COLUMN ip_allowlist, DROP COLUMN hostname;
