-- Outbound webhooks, as in SQLite: endpoints, the outbox (messages), one
-- delivery per message and endpoint, and every attempt. Secrets are stored
-- sealed (AES-GCM) in a JSON array; never in plaintext.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id              text COLLATE "C" PRIMARY KEY,
    account_id      text COLLATE "C" REFERENCES accounts (id), -- NULL: the operator's own endpoint
    url             text NOT NULL,
    description     text NOT NULL,
    events          text[] NOT NULL, -- empty receives every event
    enabled         boolean NOT NULL,
    disabled_reason text NOT NULL,
    secrets         jsonb NOT NULL,
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX webhook_endpoints_account_id ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_messages (
    id         text COLLATE "C" PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL,
    type       text NOT NULL,
    created_at timestamptz NOT NULL,
    payload    text NOT NULL
);

CREATE INDEX webhook_messages_created_at ON webhook_messages (created_at);

CREATE TABLE webhook_deliveries (
    message_id      text COLLATE "C" NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id     text COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status          text NOT NULL,
    attempts        integer NOT NULL,
    round           integer NOT NULL,
    last_try        boolean NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    claim           text NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (message_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_id ON webhook_deliveries (endpoint_id, message_id);

CREATE TABLE webhook_attempts (
    id           text COLLATE "C" PRIMARY KEY,
    message_id   text COLLATE "C" NOT NULL,
    endpoint_id  text COLLATE "C" NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer NOT NULL,
    duration_us  bigint NOT NULL,
    response     text NOT NULL,
    error        text NOT NULL,
    FOREIGN KEY (message_id, endpoint_id) REFERENCES webhook_deliveries (message_id, endpoint_id) ON DELETE CASCADE
);

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (message_id, endpoint_id, id);

-- Names of events raised at most once (key.expiring, usage.daily, an
-- idempotency key), and when.
CREATE TABLE webhook_marks (
    mark       text COLLATE "C" PRIMARY KEY,
    message_id text COLLATE "C" NOT NULL,
    raised_at  timestamptz NOT NULL
);

-- How far each periodic scan (expiring keys, daily usage) has run.
CREATE TABLE webhook_schedules (
    name       text COLLATE "C" PRIMARY KEY,
    done_until timestamptz NOT NULL
);

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
