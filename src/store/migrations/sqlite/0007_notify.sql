-- SQLite has no notifications: other processes notice changes with a cheap change
-- check (the connections' `changed_at` marker). Nothing to create.
SELECT 1;
