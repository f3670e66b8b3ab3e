-- Usage, as in SQLite: per subject (a key id, or an account id), endpoint and
-- bucket, the counts and an encoded latency sketch; minute, hour and day rows
-- written by the same flushes; per-key totals apart from keys.

-- +goose Up
CREATE TABLE usage_minutes (
    subject            text COLLATE "C" NOT NULL,
    bucket_start       timestamptz NOT NULL,
    endpoint           text COLLATE "C" NOT NULL,
    account_id         text COLLATE "C" NOT NULL,
    requests           bigint NOT NULL,
    successes          bigint NOT NULL,
    errors             bigint NOT NULL,
    revoked            bigint NOT NULL,
    expired            bigint NOT NULL,
    disabled           bigint NOT NULL,
    forbidden          bigint NOT NULL,
    insufficient_scope bigint NOT NULL,
    rate_limited       bigint NOT NULL,
    quota_exceeded     bigint NOT NULL,
    latency            bytea,
    PRIMARY KEY (subject, bucket_start, endpoint)
);
CREATE INDEX usage_minutes_bucket_start ON usage_minutes (bucket_start);

CREATE TABLE usage_hours (
    subject            text COLLATE "C" NOT NULL,
    bucket_start       timestamptz NOT NULL,
    endpoint           text COLLATE "C" NOT NULL,
    account_id         text COLLATE "C" NOT NULL,
    requests           bigint NOT NULL,
    successes          bigint NOT NULL,
    errors             bigint NOT NULL,
    revoked            bigint NOT NULL,
    expired            bigint NOT NULL,
    disabled           bigint NOT NULL,
    forbidden          bigint NOT NULL,
    insufficient_scope bigint NOT NULL,
    rate_limited       bigint NOT NULL,
    quota_exceeded     bigint NOT NULL,
    latency            bytea,
    PRIMARY KEY (subject, bucket_start, endpoint)
);
CREATE INDEX usage_hours_bucket_start ON usage_hours (bucket_start);

CREATE TABLE usage_days (
    subject            text COLLATE "C" NOT NULL,
    bucket_start       timestamptz NOT NULL,
    endpoint           text COLLATE "C" NOT NULL,
    account_id         text COLLATE "C" NOT NULL,
    requests           bigint NOT NULL,
    successes          bigint NOT NULL,
    errors             bigint NOT NULL,
    revoked            bigint NOT NULL,
    expired            bigint NOT NULL,
    disabled           bigint NOT NULL,
    forbidden          bigint NOT NULL,
    insufficient_scope bigint NOT NULL,
    rate_limited       bigint NOT NULL,
    quota_exceeded     bigint NOT NULL,
    latency            bytea,
    PRIMARY KEY (subject, bucket_start, endpoint)
);
CREATE INDEX usage_days_bucket_start ON usage_days (bucket_start);

CREATE TABLE key_usage_totals (
    key_id       text COLLATE "C" PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL,
    requests     bigint NOT NULL,
    last_used_at timestamptz
);

-- +goose Down
DROP TABLE key_usage_totals;
DROP TABLE usage_days;
DROP TABLE usage_hours;
DROP TABLE usage_minutes;
