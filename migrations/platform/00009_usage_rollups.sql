-- Hourly and daily rollups of usage_events, for charts and billing. A periodic job folds the
-- events recorded since its watermark into the buckets; the events themselves stay append-only.

-- +goose Up
CREATE TABLE usage_rollups (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dimension    text   NOT NULL REFERENCES quota_dimensions (key) ON DELETE CASCADE,
    granularity  text   NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket_start timestamptz NOT NULL,
    -- Sum of the values: for a counter, the amount used in the bucket.
    total        bigint NOT NULL,
    -- Largest value: for a gauge, the highest level reported in the bucket.
    peak         bigint NOT NULL,
    events       bigint NOT NULL,
    PRIMARY KEY (tenant_id, dimension, granularity, bucket_start)
);

-- The last usage_events id folded into the rollups; one row.
CREATE TABLE usage_rollup_progress (
    id            int PRIMARY KEY CHECK (id = 1),
    last_event_id bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO usage_rollup_progress (id, last_event_id) VALUES (1, 0);

GRANT SELECT ON usage_rollups TO tenant_base;
ALTER TABLE usage_rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform ON usage_rollups TO tenantry_app USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON usage_rollups FOR SELECT TO tenant_base
    USING (tenant_id = current_setting('app.tenant_id')::bigint AND current_user = 't_' || tenant_id);

-- +goose Down
DROP TABLE usage_rollup_progress;
DROP TABLE usage_rollups;
