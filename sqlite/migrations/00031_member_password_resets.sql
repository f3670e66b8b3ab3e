-- Password reset links (issue 17): single-use, short-lived, only the
-- SHA-256 of the link's token is kept. Deleting a member deletes its links.

-- +goose Up
CREATE TABLE member_password_resets (
    id         TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members (id),
    account_id TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX member_password_resets_member_id ON member_password_resets (member_id);

-- +goose Down
DROP TABLE member_password_resets;
