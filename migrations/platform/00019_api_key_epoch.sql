-- A counter per tenant that changes whenever one of its API keys stops working (revoked). Nodes
-- remember keys they have checked together with the epoch they saw; reading the tenant row, which
-- every API call does anyway, tells them at once whether that memory is still good. So a key check
-- costs one primary-key read instead of a transaction in the tenant's schema, and a revocation on
-- any node takes effect on every node with the next request.

-- +goose Up
ALTER TABLE tenants ADD COLUMN api_key_epoch bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tenants DROP COLUMN api_key_epoch;
