-- Native types: flametree now runs on sqlx's PostgreSQL driver instead of its Any
-- driver, which knew only BIGINT and TEXT. Timestamps become TIMESTAMPTZ, flags
-- BOOLEAN and JSON documents JSONB; existing values are converted in place.
-- `connections.changed_at` stays BIGINT: it is a change counter (it moves by at least
-- one on every write, even within a millisecond), not a point in time.

-- Milliseconds since the epoch, exactly (interval arithmetic is in whole microseconds).
CREATE FUNCTION flametree_ms_to_timestamptz(ms BIGINT) RETURNS TIMESTAMPTZ
    LANGUAGE SQL IMMUTABLE AS $$ SELECT TIMESTAMPTZ 'epoch' + ms * INTERVAL '1 millisecond' $$;

ALTER TABLE tenants
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(created_at);

ALTER TABLE connections
    ALTER COLUMN config DROP DEFAULT,
    ALTER COLUMN config TYPE JSONB USING config::jsonb,
    ALTER COLUMN config SET DEFAULT '{}'::jsonb,
    ALTER COLUMN status_since TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(status_since),
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(updated_at);

ALTER TABLE connection_logs
    ALTER COLUMN at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(at);

ALTER TABLE agents
    ALTER COLUMN responder DROP DEFAULT,
    ALTER COLUMN responder TYPE JSONB USING responder::jsonb,
    ALTER COLUMN responder SET DEFAULT '{}'::jsonb,
    ALTER COLUMN widget DROP DEFAULT,
    ALTER COLUMN widget TYPE JSONB USING widget::jsonb,
    ALTER COLUMN widget SET DEFAULT '{}'::jsonb,
    ALTER COLUMN status_since TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(status_since),
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(created_at),
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(updated_at);

-- The partial unique index names the flags in its predicate: rebuilt on the booleans.
DROP INDEX one_inbound_agent_per_connection;
ALTER TABLE agent_channels
    ALTER COLUMN inbound DROP DEFAULT,
    ALTER COLUMN inbound TYPE BOOLEAN USING inbound <> 0,
    ALTER COLUMN inbound SET DEFAULT FALSE,
    ALTER COLUMN exclusive_inbound DROP DEFAULT,
    ALTER COLUMN exclusive_inbound TYPE BOOLEAN USING exclusive_inbound <> 0,
    ALTER COLUMN exclusive_inbound SET DEFAULT FALSE,
    ALTER COLUMN applied_inbound DROP DEFAULT,
    ALTER COLUMN applied_inbound TYPE BOOLEAN USING applied_inbound <> 0,
    ALTER COLUMN applied_inbound SET DEFAULT FALSE,
    ALTER COLUMN detached DROP DEFAULT,
    ALTER COLUMN detached TYPE BOOLEAN USING detached <> 0,
    ALTER COLUMN detached SET DEFAULT FALSE,
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(created_at);
CREATE UNIQUE INDEX one_inbound_agent_per_connection
    ON agent_channels (connection_id) WHERE inbound AND exclusive_inbound;

ALTER TABLE audit_log
    ALTER COLUMN at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(at);

ALTER TABLE connection_leases
    ALTER COLUMN expires_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(expires_at);

ALTER TABLE connection_cursors
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(updated_at);

ALTER TABLE inbound_ledger
    ALTER COLUMN received_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(received_at),
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(updated_at);

ALTER TABLE conversation_turns
    ALTER COLUMN at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(at);

ALTER TABLE unanswered_messages
    ALTER COLUMN at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(at);

ALTER TABLE outbound_messages
    ALTER COLUMN sent_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(sent_at);

ALTER TABLE flametree_processes
    ALTER COLUMN runs_channels DROP DEFAULT,
    ALTER COLUMN runs_channels TYPE BOOLEAN USING runs_channels <> 0,
    ALTER COLUMN runs_channels SET DEFAULT FALSE,
    ALTER COLUMN started_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(started_at),
    ALTER COLUMN seen_at TYPE TIMESTAMPTZ USING flametree_ms_to_timestamptz(seen_at);

DROP FUNCTION flametree_ms_to_timestamptz(BIGINT);
