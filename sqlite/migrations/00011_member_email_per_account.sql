-- Member emails are unique within an account, not across the deployment: a
-- global constraint told an account's owner, inviting an email, that it was
-- a member elsewhere. SQLite cannot drop a column's UNIQUE, so the table is
-- rebuilt (same columns, same rows). Its one child, member_sessions, is set
-- aside and rebuilt after it: with foreign keys on (they are, on keyplane's
-- connections), dropping a parent that still has children fails, and
-- renaming one would carry the children's references along to the old table.

-- +goose Up
CREATE TABLE members_new (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (account_id, email)
) STRICT;
INSERT INTO members_new (id, account_id, email, password_hash, role, status, created_at, updated_at)
    SELECT id, account_id, email, password_hash, role, status, created_at, updated_at FROM members;

CREATE TABLE member_sessions_kept AS SELECT * FROM member_sessions;
DROP TABLE member_sessions;
DROP TABLE members;
ALTER TABLE members_new RENAME TO members;
CREATE INDEX members_account_id ON members (account_id, id);
-- Sign-in looks an email up in every account.
CREATE INDEX members_email ON members (email, id);

CREATE TABLE member_sessions (
    id           TEXT PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,
    member_id    TEXT NOT NULL REFERENCES members (id),
    account_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
INSERT INTO member_sessions (id, hash, member_id, account_id, created_at, last_seen_at, expires_at)
    SELECT id, hash, member_id, account_id, created_at, last_seen_at, expires_at FROM member_sessions_kept;
DROP TABLE member_sessions_kept;
CREATE INDEX member_sessions_member_id ON member_sessions (member_id);

-- +goose Down
-- Fails if an email has become a member of several accounts.
CREATE TABLE members_old (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
INSERT INTO members_old (id, account_id, email, password_hash, role, status, created_at, updated_at)
    SELECT id, account_id, email, password_hash, role, status, created_at, updated_at FROM members;

CREATE TABLE member_sessions_kept AS SELECT * FROM member_sessions;
DROP TABLE member_sessions;
DROP TABLE members;
ALTER TABLE members_old RENAME TO members;
CREATE INDEX members_account_id ON members (account_id, id);

CREATE TABLE member_sessions (
    id           TEXT PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,
    member_id    TEXT NOT NULL REFERENCES members (id),
    account_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
INSERT INTO member_sessions (id, hash, member_id, account_id, created_at, last_seen_at, expires_at)
    SELECT id, hash, member_id, account_id, created_at, last_seen_at, expires_at FROM member_sessions_kept;
DROP TABLE member_sessions_kept;
CREATE INDEX member_sessions_member_id ON member_sessions (member_id);
