-- Caches catch up on changes a broken subscription lost by reading the rows
-- updated since shortly before the break: keys are many, so their update
-- time is indexed (accounts and plans are few).

-- +goose Up
CREATE INDEX keys_updated_at ON keys (updated_at);

-- +goose Down
DROP INDEX keys_updated_at;
