-- Outbound calls asked for by `flametree call` through a line whose user agent lives in
-- another process (SIP: its registration and socket belong to whichever process runs
-- the connection). The request is queued here; that process claims it (queued →
-- dialing, one claimer only), dials, and writes how it goes; the command reads it back.
-- `opening` is what the agent says first: conversation content, like a message's text.
CREATE TABLE call_requests (
    id             BIGSERIAL PRIMARY KEY,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    callee         TEXT NOT NULL,
    opening        TEXT,
    requested_by   TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'dialing',
                       'ringing', 'answered', 'completed', 'busy', 'no-answer', 'failed',
                       'canceled')),
    -- The provider's words for how it ended ("486 Busy Here").
    reason         TEXT NOT NULL DEFAULT '',
    -- SIP's Call-ID once dialed.
    call_id        TEXT NOT NULL DEFAULT '',
    duration_secs  BIGINT,
    claimed_by     TEXT,
    requested_at   TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    answered_at    TIMESTAMPTZ,
    ended_at       TIMESTAMPTZ
);

-- What the owners look for: the queued requests of their connections.
CREATE INDEX call_requests_queued ON call_requests (connection_id) WHERE state = 'queued';
-- Retention goes by age.
CREATE INDEX call_requests_requested_at ON call_requests (requested_at);

-- A new request is announced at once (`q:<connection id>`), so the process running the
-- connection dials within a moment instead of at its next look.
CREATE FUNCTION flametree_notify_call_request() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flametree', 'q:' || NEW.connection_id);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER call_requests_notify AFTER INSERT ON call_requests
    FOR EACH ROW EXECUTE FUNCTION flametree_notify_call_request();
