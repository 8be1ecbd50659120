-- Audit events record where a change came from: the request id and the client's address.

-- +goose Up
ALTER TABLE audit_events
    ADD COLUMN request_id  text NOT NULL DEFAULT '',
    ADD COLUMN source_addr text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_events DROP COLUMN request_id, DROP COLUMN source_addr;
