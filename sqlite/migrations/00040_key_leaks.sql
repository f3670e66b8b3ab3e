-- Leaked keys (issue #16): when a key was reported as leaked, by whom
-- ("github", "report") and where it was found. Times are Unix microseconds (UTC).
-- NULL leaked_at: never reported.

-- +goose Up
ALTER TABLE keys ADD COLUMN leaked_at INTEGER;
ALTER TABLE keys ADD COLUMN leak_source TEXT NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN leak_url TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE keys DROP COLUMN leak_url;
ALTER TABLE keys DROP COLUMN leak_source;
ALTER TABLE keys DROP COLUMN leaked_at;
