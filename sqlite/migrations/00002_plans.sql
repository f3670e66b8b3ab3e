-- Plans: the tiers accounts name. rate_limits and quota are JSON, NULL for
-- unlimited and none; allowed_scopes is a JSON array. Accounts keep naming
-- their plan in accounts.plan without a foreign key: the service validates
-- plan names, and a verify of an account whose plan is missing still works.
-- The built-in plan "default" exists from the start.

-- +goose Up
CREATE TABLE plans (
    name           TEXT PRIMARY KEY,
    rate_limits    TEXT,
    quota          TEXT,
    max_keys       INTEGER NOT NULL,
    allowed_scopes TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- 'now' is fixed for the whole statement, so both times are equal.
INSERT INTO plans (name, rate_limits, quota, max_keys, allowed_scopes, created_at, updated_at)
VALUES ('default', NULL, NULL, 25, '["*"]',
        CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER));

-- +goose Down
DROP TABLE plans;
