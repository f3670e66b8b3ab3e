-- Operator tokens can be scoped to one account, expire and be revoked; their
-- update time lets caches catch up on revocations whose message was lost.

-- +goose Up
ALTER TABLE operator_tokens ADD COLUMN account_id text COLLATE "C" REFERENCES accounts (id);
ALTER TABLE operator_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE operator_tokens ADD COLUMN revoked_at timestamptz;
ALTER TABLE operator_tokens ADD COLUMN updated_at timestamptz;
UPDATE operator_tokens SET updated_at = created_at;
ALTER TABLE operator_tokens ALTER COLUMN updated_at SET NOT NULL;
CREATE INDEX operator_tokens_updated_at ON operator_tokens (updated_at);

-- +goose Down
DROP INDEX operator_tokens_updated_at;
ALTER TABLE operator_tokens DROP COLUMN updated_at, DROP COLUMN revoked_at, DROP COLUMN expires_at, DROP COLUMN account_id;
