-- Operator tokens can be scoped to one account, expire and be revoked; their
-- update time lets caches catch up on revocations whose message was lost.
-- Times are Unix microseconds (UTC).

-- +goose Up
ALTER TABLE operator_tokens ADD COLUMN account_id TEXT REFERENCES accounts (id);
ALTER TABLE operator_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE operator_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE operator_tokens ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE operator_tokens SET updated_at = created_at;
CREATE INDEX operator_tokens_updated_at ON operator_tokens (updated_at);

-- +goose Down
DROP INDEX operator_tokens_updated_at;
ALTER TABLE operator_tokens DROP COLUMN updated_at;
ALTER TABLE operator_tokens DROP COLUMN revoked_at;
ALTER TABLE operator_tokens DROP COLUMN expires_at;
ALTER TABLE operator_tokens DROP COLUMN account_id;
