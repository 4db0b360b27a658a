-- Timestamps are milliseconds since the Unix epoch (BIGINT) in both backends.
-- Booleans are BIGINT 0/1 so one query text serves PostgreSQL and SQLite alike.

CREATE TABLE tenants (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE connections (
    id              BIGSERIAL PRIMARY KEY,
    tenant_id       BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type_key        TEXT NOT NULL,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    -- {"fields": {...}, "secrets": {field: sealed}, "env": [...]} in one column: the
    -- list loads every row, and each column read costs per row.
    config          TEXT NOT NULL DEFAULT '{}',
    -- How many secret fields are sealed in config: tells whether a new master key
    -- may be created without reading every row.
    sealed_fields   BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL DEFAULT 1,
    desired_state   TEXT NOT NULL DEFAULT 'STOPPED',
    status          TEXT NOT NULL DEFAULT 'STOPPED',
    status_message  TEXT NOT NULL DEFAULT '',
    status_since    BIGINT NOT NULL,
    running_version BIGINT,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    -- Moves on every write (status and desired state too), so a watcher can tell
    -- "something changed" from one cheap query.
    changed_at      BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, name_key)
);
CREATE INDEX connections_changed ON connections (tenant_id, changed_at);

CREATE TABLE connection_logs (
    id              BIGSERIAL PRIMARY KEY,
    connection_id   BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    at              BIGINT NOT NULL,
    level           TEXT NOT NULL,
    message         TEXT NOT NULL
);
CREATE INDEX connection_logs_recent ON connection_logs (connection_id, id);

CREATE TABLE agents (
    id              BIGSERIAL PRIMARY KEY,
    tenant_id       BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    responder       TEXT NOT NULL DEFAULT '{}',
    desired_state   TEXT NOT NULL DEFAULT 'STOPPED',
    status          TEXT NOT NULL DEFAULT 'STOPPED',
    status_message  TEXT NOT NULL DEFAULT '',
    status_since    BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1,
    running_version BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    UNIQUE (tenant_id, name_key)
);

-- exclusive_inbound is copied from the catalog when the row is written, so the
-- database itself enforces "one inbound agent per connection" for those types.
CREATE TABLE agent_channels (
    agent_id          BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id     BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    inbound           BIGINT NOT NULL DEFAULT 0,
    exclusive_inbound BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (agent_id, connection_id)
);
CREATE UNIQUE INDEX one_inbound_agent_per_connection
    ON agent_channels (connection_id) WHERE inbound = 1 AND exclusive_inbound = 1;

CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target_id    BIGINT NOT NULL,
    target_name  TEXT NOT NULL,
    details      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
