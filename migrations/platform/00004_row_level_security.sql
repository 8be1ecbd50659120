-- Row-level security on every control-plane table that carries tenant_id.
--
-- Platform code runs as tenantry_app (NOBYPASSRLS, not the owner): its policy lets it work across
-- tenants, as the platform admin must. Tenant-context code runs as the tenant's own role t_<id>
-- (db.InTenant), which reaches the control plane only through tenant_base, and only the rows whose
-- tenant_id matches BOTH app.tenant_id and the role itself: a forged setting or a wrong role
-- alone sees nothing. current_setting without missing_ok: an unset tenant errors, failing closed.

-- +goose Up
-- +goose StatementBegin
DO $$ BEGIN
    CREATE ROLE tenant_base NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA tenantry TO tenant_base;
GRANT SELECT ON audit_events TO tenant_base;

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON audit_events TO tenantry_app USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON audit_events FOR SELECT TO tenant_base
    USING (tenant_id = current_setting('app.tenant_id')::bigint AND current_user = 't_' || tenant_id);

ALTER TABLE tenant_keysets ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON tenant_keysets TO tenantry_app USING (true) WITH CHECK (true);

ALTER TABLE key_rotations ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON key_rotations TO tenantry_app USING (true) WITH CHECK (true);

-- +goose Down
DROP POLICY platform ON key_rotations;
ALTER TABLE key_rotations DISABLE ROW LEVEL SECURITY;
DROP POLICY platform ON tenant_keysets;
ALTER TABLE tenant_keysets DISABLE ROW LEVEL SECURITY;
DROP POLICY own_tenant ON audit_events;
DROP POLICY platform ON audit_events;
ALTER TABLE audit_events DISABLE ROW LEVEL SECURITY;
REVOKE SELECT ON audit_events FROM tenant_base;
REVOKE USAGE ON SCHEMA tenantry FROM tenant_base;
