-- Live across processes: every change of a connection, an agent or a connection's log
-- is announced on the `flametree` channel. The payload says what changed, never the
-- data: `c:<tenant>:<connection id>`, `l:<connection id>`, `a:<tenant>`. PostgreSQL
-- delivers one notification per distinct payload per transaction, so a batch of log
-- lines costs one per connection.
CREATE FUNCTION flametree_notify_connection() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('flametree', 'c:' || OLD.tenant_id || ':' || OLD.id);
    ELSE
        PERFORM pg_notify('flametree', 'c:' || NEW.tenant_id || ':' || NEW.id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER connections_notify AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION flametree_notify_connection();

CREATE FUNCTION flametree_notify_log() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flametree', 'l:' || NEW.connection_id);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER connection_logs_notify AFTER INSERT ON connection_logs
    FOR EACH ROW EXECUTE FUNCTION flametree_notify_log();

CREATE FUNCTION flametree_notify_agent() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('flametree', 'a:' || OLD.tenant_id);
    ELSE
        PERFORM pg_notify('flametree', 'a:' || NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION flametree_notify_agent();
