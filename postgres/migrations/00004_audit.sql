-- The audit log, as in SQLite: append-only events in chains, one per account
-- and one (account_id '') for the operator, each storing its chain's previous
-- hash and its own; seq numbers each chain from 1 without gaps. audit_chains
-- holds each chain's head: appending locks that row (FOR UPDATE), so
-- instances writing to one chain at once take turns and never fork it.
-- details is text, not jsonb, so it stays byte for byte what was hashed.

-- +goose Up
CREATE TABLE audit_events (
    id         text COLLATE "C" PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,
    time       timestamptz NOT NULL,
    type       text NOT NULL,
    actor_kind text NOT NULL,
    actor_id   text NOT NULL,
    key_id     text COLLATE "C" NOT NULL,
    source_ip  text NOT NULL,
    user_agent text NOT NULL,
    request_id text NOT NULL,
    details    text NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    UNIQUE (account_id, seq)
);
CREATE INDEX audit_events_account ON audit_events (account_id, id);
CREATE INDEX audit_events_key ON audit_events (key_id, id) WHERE key_id <> '';

CREATE TABLE audit_chains (
    chain     text COLLATE "C" PRIMARY KEY,
    seq       bigint NOT NULL,
    head_hash text NOT NULL
);

-- +goose Down
DROP TABLE audit_chains;
DROP TABLE audit_events;
