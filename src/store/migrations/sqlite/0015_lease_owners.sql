-- A process's leases live as long as its row here: renewing them writes this one row,
-- not one per connection (10,000 running bots: 10,000 row updates every 3 s). A
-- connection's lease row now says who holds it and since which generation; while held
-- its expires_at is the year 3000 (in ms), and it is held while both its own row and
-- its owner's have not expired.
CREATE TABLE lease_owners (
    owner       TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

INSERT INTO lease_owners (owner, expires_at)
    SELECT owner, MAX(expires_at) FROM connection_leases
    WHERE expires_at >= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
    GROUP BY owner;

UPDATE connection_leases SET expires_at = 32503680000000
    WHERE expires_at >= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER);

-- Renewals no longer rewrite the lease rows, so the expiry can join the owner in the
-- index: counting the leases a process holds reads the index alone.
DROP INDEX connection_leases_owner;
CREATE INDEX connection_leases_owner ON connection_leases (owner, expires_at);
