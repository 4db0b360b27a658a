-- Outbound calls asked for by `flametree call`, dialed by whichever process runs the
-- connection (see PostgreSQL's 0012). Times are INTEGER milliseconds; SQLite has no
-- notifications, so the owners look for queued requests once a second.
CREATE TABLE call_requests (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    callee         TEXT NOT NULL,
    opening        TEXT,
    requested_by   TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'dialing',
                       'ringing', 'answered', 'completed', 'busy', 'no-answer', 'failed',
                       'canceled')),
    reason         TEXT NOT NULL DEFAULT '',
    call_id        TEXT NOT NULL DEFAULT '',
    duration_secs  BIGINT,
    claimed_by     TEXT,
    requested_at   BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    answered_at    BIGINT,
    ended_at       BIGINT
);

CREATE INDEX call_requests_queued ON call_requests (connection_id) WHERE state = 'queued';
CREATE INDEX call_requests_requested_at ON call_requests (requested_at);
