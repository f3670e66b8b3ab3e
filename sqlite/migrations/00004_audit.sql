-- The audit log: append-only events in chains, one per account and one
-- (account_id '') for the operator. Each event stores its chain's previous
-- hash and its own (see keyplane.AuditEvent.ComputeHash); seq numbers each
-- chain from 1 without gaps. audit_chains holds each chain's head, updated in
-- the transaction that appends, so deleting the last events shows too.
-- Times are Unix microseconds (UTC). details is kept as text, byte for byte
-- what was hashed.

-- +goose Up
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    type       TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    source_ip  TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    UNIQUE (account_id, seq)
) STRICT;
CREATE INDEX audit_events_account ON audit_events (account_id, id);
CREATE INDEX audit_events_key ON audit_events (key_id, id) WHERE key_id <> '';

CREATE TABLE audit_chains (
    chain     TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    head_hash TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE audit_chains;
DROP TABLE audit_events;
