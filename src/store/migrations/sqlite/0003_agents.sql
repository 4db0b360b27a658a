-- Agents answer customers. An attachment's inbound setting takes effect when its agent
-- (re)starts: `applied_inbound` is what the running agent uses, `inbound` what was
-- saved; a detached attachment lingers (detached = 1) until the agent restarts.
ALTER TABLE agent_channels ADD COLUMN applied_inbound BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_channels ADD COLUMN detached BIGINT NOT NULL DEFAULT 0;

-- Web Widget settings live on the agent (it is configured on the agent's page).
ALTER TABLE agents ADD COLUMN widget TEXT NOT NULL DEFAULT '{}';

-- Per-customer conversation history for responders that need context.
CREATE TABLE conversation_turns (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    customer       TEXT NOT NULL,
    role           TEXT NOT NULL,
    content        TEXT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX conversation_turns_by_customer ON conversation_turns (agent_id, connection_id, customer, id);

-- Inbound messages nobody may answer, kept so nothing is silently lost.
CREATE TABLE unanswered_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    customer       TEXT NOT NULL,
    text           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    at             BIGINT NOT NULL
);
