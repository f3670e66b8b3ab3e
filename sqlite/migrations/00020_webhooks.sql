-- Outbound webhooks: endpoints, the outbox (messages), one delivery per
-- message and endpoint, and every attempt. Times are Unix microseconds (UTC).
-- Secrets are stored sealed (AES-GCM) in a JSON array; never in plaintext.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    account_id      TEXT REFERENCES accounts (id), -- NULL: the operator's own endpoint
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    events          TEXT NOT NULL, -- JSON array; empty receives every event
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT NOT NULL,
    secrets         TEXT NOT NULL, -- JSON array of sealed secrets
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_endpoints_account_id ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_messages (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    payload    TEXT NOT NULL
) STRICT;

CREATE INDEX webhook_messages_created_at ON webhook_messages (created_at);

CREATE TABLE webhook_deliveries (
    message_id      TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    last_try        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claim           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, endpoint_id)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_id ON webhook_deliveries (endpoint_id, message_id);

CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    attempted_at INTEGER NOT NULL,
    status_code  INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL,
    response     TEXT NOT NULL,
    error        TEXT NOT NULL,
    FOREIGN KEY (message_id, endpoint_id) REFERENCES webhook_deliveries (message_id, endpoint_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (message_id, endpoint_id, id);

-- Names of events raised at most once (key.expiring, usage.daily, an
-- idempotency key), and when.
CREATE TABLE webhook_marks (
    mark       TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    raised_at  INTEGER NOT NULL
) STRICT;

-- How far each periodic scan (expiring keys, daily usage) has run.
CREATE TABLE webhook_schedules (
    name       TEXT PRIMARY KEY,
    done_until INTEGER NOT NULL
) STRICT;

-- The scan for keys about to expire, and expired.
CREATE INDEX keys_expires_at ON keys (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP INDEX keys_expires_at;
DROP TABLE webhook_schedules;
DROP TABLE webhook_marks;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_messages;
DROP TABLE webhook_endpoints;
