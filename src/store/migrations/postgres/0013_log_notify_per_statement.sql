-- A batch of log lines announces each connection once per statement, not once per row:
-- the per-row trigger ran a PL/pgSQL call and a pg_notify for every line (two a
-- message in a burst). Listeners only learn that a connection's log changed.
CREATE FUNCTION flametree_notify_logs() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flametree', 'l:' || d.connection_id)
        FROM (SELECT DISTINCT connection_id FROM new_lines) AS d;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DROP TRIGGER connection_logs_notify ON connection_logs;
DROP FUNCTION flametree_notify_log();

CREATE TRIGGER connection_logs_notify AFTER INSERT ON connection_logs
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION flametree_notify_logs();
