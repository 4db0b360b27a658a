-- Whether a tenant's agents changed, as one counter the triggers below move on every
-- insert, update and delete of an agent row. Attaching and detaching a channel update
-- the agent too (its version moves), so the counter covers which agent answers which
-- connection. Each runtime reads it with its pulse, once a second, and keeps the
-- routes it looked up until it moves. SQLite only: PostgreSQL announces agent changes
-- (migration 0007).
CREATE TABLE agent_changes (
    tenant_id  INTEGER PRIMARY KEY,
    changes    BIGINT NOT NULL
);

INSERT INTO agent_changes (tenant_id, changes)
    SELECT tenant_id, COUNT(*) FROM agents GROUP BY tenant_id;

CREATE TRIGGER agent_changes_insert AFTER INSERT ON agents
BEGIN
    INSERT INTO agent_changes (tenant_id, changes) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET changes = changes + 1;
END;

CREATE TRIGGER agent_changes_delete AFTER DELETE ON agents
BEGIN
    UPDATE agent_changes SET changes = changes + 1 WHERE tenant_id = OLD.tenant_id;
END;

CREATE TRIGGER agent_changes_update AFTER UPDATE ON agents
BEGIN
    INSERT INTO agent_changes (tenant_id, changes) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET changes = changes + 1;
    UPDATE agent_changes SET changes = changes + 1
        WHERE tenant_id = OLD.tenant_id AND OLD.tenant_id IS NOT NEW.tenant_id;
END;
