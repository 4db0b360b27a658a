-- The inbound pipeline: the ledger holds each normalized message until the lease owner
-- answers it, so a webhook received by any process is answered by the owner; outbound
-- messages keep the provider's id, so a later delivery failure is matched to them.
ALTER TABLE inbound_ledger ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound_ledger ADD COLUMN customer TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound_ledger ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound_ledger ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound_ledger ADD COLUMN raw TEXT NOT NULL DEFAULT '';
CREATE INDEX inbound_ledger_waiting ON inbound_ledger (received_at) WHERE state = 'received';

CREATE TABLE outbound_messages (
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    provider_id    TEXT NOT NULL,
    account        TEXT NOT NULL DEFAULT '',
    customer       TEXT NOT NULL,
    in_reply_to    TEXT NOT NULL DEFAULT '',
    sent_at        BIGINT NOT NULL,
    PRIMARY KEY (connection_id, provider_id)
);
CREATE INDEX outbound_messages_sent ON outbound_messages (sent_at);

-- The unguessable path of a connection's webhook URL (<public_url>/hooks/<hook_id>);
-- filled by flametree when a connection is created (and for older rows at start).
ALTER TABLE connections ADD COLUMN hook_id TEXT;
CREATE UNIQUE INDEX connections_hook ON connections (hook_id);
