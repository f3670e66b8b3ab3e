-- Plans, as in SQLite. Names sort by bytes (COLLATE "C") so pages come out in
-- the order SQLite gives. accounts.plan names a plan without a foreign key:
-- the service validates plan names. The built-in plan "default" exists from
-- the start.

-- +goose Up
CREATE TABLE plans (
    name           text COLLATE "C" PRIMARY KEY,
    rate_limits    jsonb,
    quota          jsonb,
    max_keys       integer NOT NULL,
    allowed_scopes text[] NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

INSERT INTO plans (name, rate_limits, quota, max_keys, allowed_scopes, created_at, updated_at)
VALUES ('default', NULL, NULL, 25, ARRAY['*'], now(), now());

-- +goose Down
DROP TABLE plans;
