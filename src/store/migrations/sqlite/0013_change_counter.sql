-- Whether a tenant's connections changed, as one counter the triggers below move on
-- every insert, delete and write of a connection row (every write moves `changed_at`).
-- Each runtime and each console asks once a second; counting and summing the change
-- times of 10,000 connections cost 1.6 ms every time, the largest of an idle process's
-- reads. SQLite only: on PostgreSQL the runtime is told of changes (LISTEN), and one
-- counter row per tenant would make concurrent writers of connections wait on it.
CREATE TABLE connection_changes (
    tenant_id  INTEGER PRIMARY KEY,
    changes    BIGINT NOT NULL
);

INSERT INTO connection_changes (tenant_id, changes)
    SELECT tenant_id, COUNT(*) FROM connections GROUP BY tenant_id;

CREATE TRIGGER connection_changes_insert AFTER INSERT ON connections
BEGIN
    INSERT INTO connection_changes (tenant_id, changes) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET changes = changes + 1;
END;

CREATE TRIGGER connection_changes_delete AFTER DELETE ON connections
BEGIN
    UPDATE connection_changes SET changes = changes + 1 WHERE tenant_id = OLD.tenant_id;
END;

CREATE TRIGGER connection_changes_update AFTER UPDATE ON connections
    WHEN OLD.changed_at IS NOT NEW.changed_at OR OLD.tenant_id IS NOT NEW.tenant_id
BEGIN
    INSERT INTO connection_changes (tenant_id, changes) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET changes = changes + 1;
    UPDATE connection_changes SET changes = changes + 1
        WHERE tenant_id = OLD.tenant_id AND OLD.tenant_id IS NOT NEW.tenant_id;
END;
