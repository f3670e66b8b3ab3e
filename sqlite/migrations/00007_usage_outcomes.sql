-- Usage counts verifications and the upstream outcomes reported of them
-- apart (issue #14). successes held the requests let through less the 5xx
-- reported, and went negative when a 5xx was reported without its
-- verification. Now valid holds the requests let through and
-- upstream_errors the 5xx reported, both only ever added to; successes and
-- errors are read from them (keyplane.UsageCounts). As each flush added its
-- 5xx to errors and took them from successes, successes + errors is
-- exactly the requests let through, and Down restores what was.

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
