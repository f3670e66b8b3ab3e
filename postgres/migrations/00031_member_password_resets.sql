-- Password reset links (issue 17), as in SQLite: single-use, short-lived,
-- only the SHA-256 of the link's token is kept.

-- +goose Up
CREATE TABLE member_password_resets (
    id         text COLLATE "C" PRIMARY KEY,
    member_id  text COLLATE "C" NOT NULL REFERENCES members (id),
    account_id text COLLATE "C" NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX member_password_resets_member_id ON member_password_resets (member_id);

-- +goose Down
DROP TABLE member_password_resets;
