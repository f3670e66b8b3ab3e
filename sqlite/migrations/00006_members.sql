-- Portal members, their invites and sessions. Times are Unix microseconds
-- (UTC). Passwords are argon2id PHC strings; invite and session tokens are
-- kept only as SHA-256 hashes.

-- +goose Up
CREATE TABLE members (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX members_account_id ON members (account_id, id);

CREATE TABLE member_invites (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    email      TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX member_invites_account_id ON member_invites (account_id, id);

CREATE TABLE member_sessions (
    id           TEXT PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,
    member_id    TEXT NOT NULL REFERENCES members (id),
    account_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX member_sessions_member_id ON member_sessions (member_id);

-- +goose Down
DROP TABLE member_sessions;
DROP TABLE member_invites;
DROP TABLE members;
