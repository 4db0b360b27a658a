-- The agent's speech engines (an OpenAI-compatible transcription endpoint and speech
-- endpoint, with their sealed key): what a voice line (SIP) needs to hear and talk.
-- A document of its own beside `responder`: the responder answers text, this turns
-- audio into text and back, and either may change without the other.
ALTER TABLE agents ADD COLUMN speech JSONB NOT NULL DEFAULT '{}'::jsonb;
