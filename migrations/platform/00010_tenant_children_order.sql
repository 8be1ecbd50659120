-- The tree browser lists a parent's children by name, a page at a time: one index serves both the
-- filter and the order, so a parent with thousands of children answers without a sort and the
-- planner is not tempted to walk the whole name index looking for them.

-- +goose Up
CREATE INDEX tenants_children_by_name ON tenants (parent_id, lower(name), id);

-- +goose Down
DROP INDEX tenants_children_by_name;
