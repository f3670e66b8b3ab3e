-- A plan's key policy (issue 17), as in SQLite: {require_expiry,
-- max_lifetime_days}, NULL for none.

-- +goose Up
ALTER TABLE plans ADD COLUMN key_policy jsonb;

-- +goose Down
ALTER TABLE plans DROP COLUMN key_policy;
