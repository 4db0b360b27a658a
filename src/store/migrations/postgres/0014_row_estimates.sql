-- The elements of a JSON array, as the batch statements read their rows (a batch's rows
-- travel as one JSON parameter). PostgreSQL guesses 100 rows for json_to_recordset, and
-- a statement planned while the ledger was new (the plan is kept for the connection's
-- life) then joined by reading the whole ledger: in a steady 100 messages/s the final
-- mark of each reply read every inbound_ledger row (1,400 rows a message, a third of a
-- core). With a guess of 1 every such join is a lookup by primary key, even in a plan
-- made for an empty table. The SET clause keeps the planner from inlining the body,
-- which would bring back the guess of 100.
CREATE FUNCTION flametree_rows(j json) RETURNS SETOF json
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1
    SET search_path = pg_catalog
    AS $$ SELECT json_array_elements(j) $$;
