-- Portal members, their invites and sessions, as in SQLite. Passwords are
-- argon2id PHC strings; invite and session tokens are kept only as SHA-256
-- hashes.

-- +goose Up
CREATE TABLE members (
    id            text COLLATE "C" PRIMARY KEY,
    account_id    text COLLATE "C" NOT NULL REFERENCES accounts (id),
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE INDEX members_account_id ON members (account_id, id);

CREATE TABLE member_invites (
    id         text COLLATE "C" PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL REFERENCES accounts (id),
    email      text NOT NULL,
    role       text NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX member_invites_account_id ON member_invites (account_id, id);

CREATE TABLE member_sessions (
    id           text COLLATE "C" PRIMARY KEY,
    hash         bytea NOT NULL UNIQUE,
    member_id    text COLLATE "C" NOT NULL REFERENCES members (id),
    account_id   text COLLATE "C" NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE INDEX member_sessions_member_id ON member_sessions (member_id);

-- +goose Down
DROP TABLE member_sessions;
DROP TABLE member_invites;
DROP TABLE members;
