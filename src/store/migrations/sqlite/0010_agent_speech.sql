-- The agent's speech engines (an OpenAI-compatible transcription endpoint and speech
-- endpoint, with their sealed key), as JSON text; PostgreSQL's 0011 keeps it as JSONB.
ALTER TABLE agents ADD COLUMN speech TEXT NOT NULL DEFAULT '{}';
