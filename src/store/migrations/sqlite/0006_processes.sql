-- Fenced leases: every takeover bumps the generation, and a task's writes carry the
-- generation it was granted, so a late write of an old owner is refused.
ALTER TABLE connection_leases ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;

-- The flametree processes working on this database, with a heartbeat on the database's
-- clock: who runs channels, and whether a connection's owner is still alive.
CREATE TABLE flametree_processes (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    role           TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    runs_channels  BIGINT NOT NULL DEFAULT 0,
    started_at     BIGINT NOT NULL,
    seen_at        BIGINT NOT NULL
);
