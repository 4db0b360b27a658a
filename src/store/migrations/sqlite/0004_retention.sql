-- Retention prunes by age in small chunks; each chunk is an index range scan.

-- Only final rows (answered or ignored) are ever pruned, so only they are indexed:
-- events in flight (received, sending) are never deleted, whatever their age.
CREATE INDEX inbound_ledger_final_by_age ON inbound_ledger (updated_at)
    WHERE state IN ('answered', 'ignored');

CREATE INDEX unanswered_messages_by_age ON unanswered_messages (at);
CREATE INDEX conversation_turns_by_age ON conversation_turns (at);
CREATE INDEX audit_log_by_age ON audit_log (at);
