-- Runtime state: who runs a connection, where each connector's cursor is, and every
-- inbound event seen (so a restart neither loses nor double-answers a message).

-- One process owns a running connection; it renews the lease while it runs it.
CREATE TABLE connection_leases (
    connection_id  BIGINT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    owner          TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);

-- A connector's resume point (Telegram: the next update offset).
CREATE TABLE connection_cursors (
    connection_id  BIGINT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    cursor         TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Inbound events by the provider's own id. state: received → sending → answered
-- (or ignored); written before the event is acknowledged or answered.
CREATE TABLE inbound_ledger (
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    provider_id    TEXT NOT NULL,
    state          TEXT NOT NULL,
    received_at    BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, provider_id)
);
