-- Quota usage: one count per subject (a key id, or an account id for shared
-- quotas) and period. period_start is the period's first instant in Unix
-- microseconds (UTC); used never goes below 0: refunds clamp. Rows of past
-- periods stay until something prunes them.

-- +goose Up
CREATE TABLE quota_usage (
    subject      TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    used         INTEGER NOT NULL CHECK (used >= 0),
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (subject, period_start)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE quota_usage;
