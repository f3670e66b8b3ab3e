-- Times are Unix microseconds (UTC); lists are JSON arrays.

-- +goose Up
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    plan           TEXT NOT NULL,
    allowed_scopes TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE keys (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL,
    hash           BLOB NOT NULL UNIQUE,
    hint           TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    allowed_cidrs  TEXT NOT NULL,
    rate_limits    TEXT,
    quota          TEXT,
    metadata       TEXT NOT NULL,
    enabled        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    last_used_at   INTEGER,
    rolled_from_id TEXT,
    rolled_to_id   TEXT
) STRICT;

CREATE INDEX keys_account_id ON keys (account_id, id);

CREATE TABLE operator_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE operator_tokens;
DROP TABLE keys;
DROP TABLE accounts;
