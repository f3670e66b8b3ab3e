-- The same tables as SQLite's. Ids sort by bytes (COLLATE "C") so pages come
-- out in the order SQLite gives, whatever the database's collation. Metadata is
-- json, not jsonb, to keep the caller's bytes (key order, \u0000) as SQLite does.

-- +goose Up
CREATE TABLE accounts (
    id             text COLLATE "C" PRIMARY KEY,
    name           text NOT NULL,
    plan           text NOT NULL,
    allowed_scopes text[] NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE keys (
    id             text COLLATE "C" PRIMARY KEY,
    account_id     text COLLATE "C" NOT NULL REFERENCES accounts (id),
    name           text NOT NULL,
    environment    text NOT NULL,
    hash           bytea NOT NULL UNIQUE,
    hint           text NOT NULL,
    scopes         text[] NOT NULL,
    allowed_cidrs  text[] NOT NULL,
    rate_limits    jsonb,
    quota          jsonb,
    metadata       json NOT NULL,
    enabled        boolean NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz,
    rolled_from_id text COLLATE "C",
    rolled_to_id   text COLLATE "C"
);

CREATE INDEX keys_account_id ON keys (account_id, id);

CREATE TABLE operator_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE operator_tokens;
DROP TABLE keys;
DROP TABLE accounts;
