-- Lease owners by name: a process renews, gives back or takes back the leases of one
-- owner, and looks at which owners hold leases every few seconds. Without it each of
-- these read every lease (10,000 running connections: most of an idle process's
-- database work). expires_at stays out of it, so a renewal does not rewrite the index.
CREATE INDEX connection_leases_owner ON connection_leases (owner);
