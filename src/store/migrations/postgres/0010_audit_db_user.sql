-- Who made a change as the database knows it (`current_user`), next to the operator the
-- process claims. Rows from before stay empty: nobody recorded it then.
ALTER TABLE audit_log ADD COLUMN db_user TEXT;
ALTER TABLE audit_log ALTER COLUMN db_user SET DEFAULT current_user;
