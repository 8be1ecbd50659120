-- Quotas: the catalogue of dimensions, each plan's default limits, each tenant's limits with the
-- counter that enforces them, the idempotency record of every consume, and the append-only usage
-- events kept for analytics and billing (never read for enforcement).
--
-- A tenant's limit row is created lazily, from its plan's default, the first time it is consumed,
-- reported or edited: existing tenants and dimensions added later need no backfill, and until
-- then the plan default is what Limits shows.

-- +goose Up
CREATE TABLE quota_dimensions (
    key          text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    name         text NOT NULL,
    unit         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('counter', 'gauge')),
    reset_period text NOT NULL CHECK (reset_period IN ('none', 'hourly', 'daily', 'monthly')),
    category     text NOT NULL CHECK (category IN ('compute', 'storage', 'network', 'api', 'seats', 'feature')),
    position     int  NOT NULL,
    -- A gauge is a level reported by the service; it never resets.
    CHECK (kind = 'counter' OR reset_period = 'none')
);
INSERT INTO quota_dimensions (key, name, unit, kind, reset_period, category, position) VALUES
    ('compute_vcpu_hours', 'Compute', 'vCPU-hours', 'counter', 'monthly', 'compute', 1),
    ('storage_gb', 'Storage', 'GB', 'gauge', 'none', 'storage', 2),
    ('network_egress_gb', 'Network egress', 'GB', 'counter', 'monthly', 'network', 3),
    ('api_requests', 'API requests', 'requests', 'counter', 'daily', 'api', 4),
    ('seats', 'Seats', 'users', 'gauge', 'none', 'seats', 5),
    ('projects', 'Projects', 'projects', 'gauge', 'none', 'feature', 6);

CREATE TABLE plan_quota_defaults (
    plan_key   text NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    dimension  text NOT NULL REFERENCES quota_dimensions (key) ON DELETE CASCADE,
    soft_limit bigint NOT NULL,
    hard_limit bigint NOT NULL,
    PRIMARY KEY (plan_key, dimension),
    CHECK (0 <= soft_limit AND soft_limit <= hard_limit)
);
INSERT INTO plan_quota_defaults (plan_key, dimension, soft_limit, hard_limit) VALUES
    ('free', 'compute_vcpu_hours', 80, 100),
    ('free', 'storage_gb', 4, 5),
    ('free', 'network_egress_gb', 8, 10),
    ('free', 'api_requests', 8000, 10000),
    ('free', 'seats', 3, 3),
    ('free', 'projects', 2, 3),
    ('starter', 'compute_vcpu_hours', 800, 1000),
    ('starter', 'storage_gb', 80, 100),
    ('starter', 'network_egress_gb', 80, 100),
    ('starter', 'api_requests', 80000, 100000),
    ('starter', 'seats', 10, 10),
    ('starter', 'projects', 8, 10),
    ('professional', 'compute_vcpu_hours', 8000, 10000),
    ('professional', 'storage_gb', 800, 1000),
    ('professional', 'network_egress_gb', 800, 1000),
    ('professional', 'api_requests', 800000, 1000000),
    ('professional', 'seats', 40, 50),
    ('professional', 'projects', 40, 50),
    ('enterprise', 'compute_vcpu_hours', 80000, 100000),
    ('enterprise', 'storage_gb', 8000, 10000),
    ('enterprise', 'network_egress_gb', 8000, 10000),
    ('enterprise', 'api_requests', 8000000, 10000000),
    ('enterprise', 'seats', 400, 500),
    ('enterprise', 'projects', 400, 500);

-- The truth for enforcement. Consume is one guarded UPDATE of this row; period_start moves
-- forward in the same statement, resetting used when a new period has begun. used may exceed
-- hard_limit only when an admin lowers the limit below it or a gauge reports a level above it.
-- fillfactor leaves room for HOT updates of the hot counter.
CREATE TABLE quota_limits (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dimension    text   NOT NULL REFERENCES quota_dimensions (key) ON DELETE CASCADE,
    soft_limit   bigint NOT NULL,
    hard_limit   bigint NOT NULL,
    used         bigint NOT NULL DEFAULT 0,
    -- -infinity until the first consume starts the row's first period.
    period_start timestamptz NOT NULL DEFAULT '-infinity',
    -- When the level of a gauge was last reported: older reports arriving late are ignored.
    reported_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, dimension),
    CHECK (0 <= soft_limit AND soft_limit <= hard_limit),
    CHECK (used >= 0)
) WITH (fillfactor = 50);

-- One row per idempotency key and tenant, holding the answer given: a retry gets it again and
-- consumes nothing. Denials are kept too, so a key always has one answer.
CREATE TABLE quota_consumptions (
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key text   NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    dimension       text   NOT NULL REFERENCES quota_dimensions (key),
    amount          bigint NOT NULL CHECK (amount > 0),
    allowed         boolean NOT NULL,
    used_after      bigint NOT NULL,
    soft_limit      bigint NOT NULL,
    hard_limit      bigint NOT NULL,
    period_start    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX quota_consumptions_created_at ON quota_consumptions (created_at);

-- Append-only: granted consumes and reported counters (value = amount) and gauges (value = level).
CREATE TABLE usage_events (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dimension   text   NOT NULL REFERENCES quota_dimensions (key),
    value       bigint NOT NULL CHECK (value >= 0),
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_tenant ON usage_events (tenant_id, dimension, occurred_at);
REVOKE UPDATE, DELETE, TRUNCATE ON usage_events FROM tenantry_app;

-- Row-level security as in 00004: the platform works across tenants; a tenant's own role sees only
-- its rows, and only with app.tenant_id set to match.
GRANT SELECT ON quota_dimensions, plan_quota_defaults TO tenant_base;
GRANT SELECT ON quota_limits, quota_consumptions, usage_events TO tenant_base;

ALTER TABLE quota_limits ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON quota_limits TO tenantry_app USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON quota_limits FOR SELECT TO tenant_base
    USING (tenant_id = current_setting('app.tenant_id')::bigint AND current_user = 't_' || tenant_id);

ALTER TABLE quota_consumptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON quota_consumptions TO tenantry_app USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON quota_consumptions FOR SELECT TO tenant_base
    USING (tenant_id = current_setting('app.tenant_id')::bigint AND current_user = 't_' || tenant_id);

ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON usage_events TO tenantry_app USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON usage_events FOR SELECT TO tenant_base
    USING (tenant_id = current_setting('app.tenant_id')::bigint AND current_user = 't_' || tenant_id);

-- +goose Down
DROP TABLE usage_events;
DROP TABLE quota_consumptions;
DROP TABLE quota_limits;
DROP TABLE plan_quota_defaults;
DROP TABLE quota_dimensions;
