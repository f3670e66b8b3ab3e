-- Quota usage, as in SQLite: one count per subject (a key id, or an account id
-- for shared quotas) and period; used never goes below 0. Subjects sort by
-- bytes like the ids they are.

-- +goose Up
CREATE TABLE quota_usage (
    subject      text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    used         bigint NOT NULL CHECK (used >= 0),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (subject, period_start)
);

-- +goose Down
DROP TABLE quota_usage;
