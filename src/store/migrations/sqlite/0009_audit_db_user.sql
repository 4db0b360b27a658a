-- Kept in step with PostgreSQL's audit_log; SQLite has no database users, so it stays
-- empty here.
ALTER TABLE audit_log ADD COLUMN db_user TEXT;
