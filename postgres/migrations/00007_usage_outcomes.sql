-- Usage counts verifications and the upstream outcomes reported of them
-- apart, as in SQLite (see its 00007): valid is the old successes + errors,
-- the requests let through; upstream_errors the 5xx reported.

-- +goose Up
UPDATE usage_minutes SET successes = successes + errors;
ALTER TABLE usage_minutes RENAME COLUMN successes TO valid;
ALTER TABLE usage_minutes RENAME COLUMN errors TO upstream_errors;
UPDATE usage_hours SET successes = successes + errors;
ALTER TABLE usage_hours RENAME COLUMN successes TO valid;
ALTER TABLE usage_hours RENAME COLUMN errors TO upstream_errors;
UPDATE usage_days SET successes = successes + errors;
ALTER TABLE usage_days RENAME COLUMN successes TO valid;
ALTER TABLE usage_days RENAME COLUMN errors TO upstream_errors;

-- +goose Down
ALTER TABLE usage_days RENAME COLUMN upstream_errors TO errors;
ALTER TABLE usage_days RENAME COLUMN valid TO successes;
UPDATE usage_days SET successes = successes - errors;
ALTER TABLE usage_hours RENAME COLUMN upstream_errors TO errors;
ALTER TABLE usage_hours RENAME COLUMN valid TO successes;
UPDATE usage_hours SET successes = successes - errors;
ALTER TABLE usage_minutes RENAME COLUMN upstream_errors TO errors;
ALTER TABLE usage_minutes RENAME COLUMN valid TO successes;
UPDATE usage_minutes SET successes = successes - errors;
