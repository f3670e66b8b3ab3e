-- Usage: per subject (a key id, or an account id for the sum of its keys),
-- endpoint and bucket, the counts of requests and an encoded DDSketch of
-- upstream latencies in milliseconds (NULL when none was measured). Each
-- flush adds to the minute, hour and day rows at once, so long ranges read
-- hours or days, never minutes. Times are Unix microseconds (UTC); the
-- bucket_start indexes serve the retention pruning. Totals per key (all
-- requests, last use) live apart from keys, so flushes never lock key rows.
-- The rejection columns follow keyplane.UsageRejectionCodes.

-- +goose Up
CREATE TABLE usage_minutes (
    subject            TEXT NOT NULL,
    bucket_start       INTEGER NOT NULL,
    endpoint           TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    successes          INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    revoked            INTEGER NOT NULL,
    expired            INTEGER NOT NULL,
    disabled           INTEGER NOT NULL,
    forbidden          INTEGER NOT NULL,
    insufficient_scope INTEGER NOT NULL,
    rate_limited       INTEGER NOT NULL,
    quota_exceeded     INTEGER NOT NULL,
    latency            BLOB,
    PRIMARY KEY (subject, bucket_start, endpoint)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_minutes_bucket_start ON usage_minutes (bucket_start);

CREATE TABLE usage_hours (
    subject            TEXT NOT NULL,
    bucket_start       INTEGER NOT NULL,
    endpoint           TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    successes          INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    revoked            INTEGER NOT NULL,
    expired            INTEGER NOT NULL,
    disabled           INTEGER NOT NULL,
    forbidden          INTEGER NOT NULL,
    insufficient_scope INTEGER NOT NULL,
    rate_limited       INTEGER NOT NULL,
    quota_exceeded     INTEGER NOT NULL,
    latency            BLOB,
    PRIMARY KEY (subject, bucket_start, endpoint)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_hours_bucket_start ON usage_hours (bucket_start);

CREATE TABLE usage_days (
    subject            TEXT NOT NULL,
    bucket_start       INTEGER NOT NULL,
    endpoint           TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    successes          INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    revoked            INTEGER NOT NULL,
    expired            INTEGER NOT NULL,
    disabled           INTEGER NOT NULL,
    forbidden          INTEGER NOT NULL,
    insufficient_scope INTEGER NOT NULL,
    rate_limited       INTEGER NOT NULL,
    quota_exceeded     INTEGER NOT NULL,
    latency            BLOB,
    PRIMARY KEY (subject, bucket_start, endpoint)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_days_bucket_start ON usage_days (bucket_start);

CREATE TABLE key_usage_totals (
    key_id       TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    requests     INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE key_usage_totals;
DROP TABLE usage_days;
DROP TABLE usage_hours;
DROP TABLE usage_minutes;
