-- The route of an inbound message looks up the agents of one connection.
CREATE INDEX agent_channels_by_connection ON agent_channels (connection_id);
