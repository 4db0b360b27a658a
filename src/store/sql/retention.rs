//! Retention: deletes rows older than a cutoff, a bounded chunk per table per call, so
//! each call is short and never holds a lock for long. Each chunk is one statement
//! (its own transaction) over an index on the table's time column (migration 0004).

use super::{BACKEND, SqlStore, classify, ts};
use crate::store::{Backend, PruneCounts, StoreResult};

// Each statement deletes the rows its subquery picks: at most `{limit}` (the chunk
// size) older than `$1` (the cutoff), found through the time index.
//
// The limit is written into the text rather than bound: PostgreSQL may plan a prepared
// statement once for any parameters, and with an unknown LIMIT it expects a tenth of
// the table and hash-joins the whole table (a full scan per chunk); with a known one it
// looks up each row of the chunk by its key.
//
// The ledger checks the state again on the delete itself, so a row is deleted only if
// it is still finished: `received` and `sending` rows are never pruned, and a message
// in flight is neither lost nor answered twice. Its rows are matched by key: the
// primary key on PostgreSQL; on SQLite the rowid, because SQLite matches a row value
// `(connection_id, provider_id) IN (...)` by scanning the table.
const LEDGER_POSTGRES: &str = "DELETE FROM inbound_ledger WHERE state IN ('answered', 'ignored') \
     AND (connection_id, provider_id) IN (SELECT connection_id, provider_id FROM inbound_ledger \
     WHERE state IN ('answered', 'ignored') AND updated_at < $1 ORDER BY updated_at LIMIT {limit})";

const LEDGER_SQLITE: &str = "DELETE FROM inbound_ledger WHERE state IN ('answered', 'ignored') \
     AND rowid IN (SELECT rowid FROM inbound_ledger \
     WHERE state IN ('answered', 'ignored') AND updated_at < $1 ORDER BY updated_at LIMIT {limit})";

const UNANSWERED: &str = "DELETE FROM unanswered_messages WHERE id IN \
     (SELECT id FROM unanswered_messages WHERE at < $1 ORDER BY at LIMIT {limit})";

const TURNS: &str = "DELETE FROM conversation_turns WHERE id IN \
     (SELECT id FROM conversation_turns WHERE at < $1 ORDER BY at LIMIT {limit})";

// Outbound call requests once they have ended (their opening words are conversation
// content); one still queued or in progress is never pruned.
const CALLS: &str = "DELETE FROM call_requests WHERE state IN ('completed', 'busy', 'no-answer', \
     'failed', 'canceled') AND id IN (SELECT id FROM call_requests WHERE requested_at < $1 \
     AND state IN ('completed', 'busy', 'no-answer', 'failed', 'canceled') \
     ORDER BY requested_at LIMIT {limit})";

const AUDIT: &str = "DELETE FROM audit_log WHERE id IN \
     (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT {limit})";

// Outbound records are matched to delivery reports, which come within days.
const OUTBOUND_POSTGRES: &str = "DELETE FROM outbound_messages \
     WHERE (connection_id, provider_id) IN (SELECT connection_id, provider_id FROM outbound_messages \
     WHERE sent_at < $1 ORDER BY sent_at LIMIT {limit})";

const OUTBOUND_SQLITE: &str = "DELETE FROM outbound_messages WHERE rowid IN \
     (SELECT rowid FROM outbound_messages WHERE sent_at < $1 ORDER BY sent_at LIMIT {limit})";

impl SqlStore {
    pub(super) async fn prune_older_than_(
        &self,
        cutoff_ms: i64,
        limit_per_table: u32,
    ) -> StoreResult<PruneCounts> {
        if limit_per_table == 0 {
            return Ok(PruneCounts::default());
        }
        let (ledger, outbound) = match BACKEND {
            Backend::Postgres => (LEDGER_POSTGRES, OUTBOUND_POSTGRES),
            Backend::Sqlite => (LEDGER_SQLITE, OUTBOUND_SQLITE),
        };
        Ok(PruneCounts {
            ledger: self.prune_chunk(ledger, cutoff_ms, limit_per_table).await?,
            unanswered: self
                .prune_chunk(UNANSWERED, cutoff_ms, limit_per_table)
                .await?,
            turns: self.prune_chunk(TURNS, cutoff_ms, limit_per_table).await?,
            audit: self.prune_chunk(AUDIT, cutoff_ms, limit_per_table).await?,
            outbound: self
                .prune_chunk(outbound, cutoff_ms, limit_per_table)
                .await?,
            calls: self.prune_chunk(CALLS, cutoff_ms, limit_per_table).await?,
        })
    }

    async fn prune_chunk(&self, template: &str, cutoff_ms: i64, limit: u32) -> StoreResult<u64> {
        // A number, so safe to write into the statement.
        let sql = template.replace("{limit}", &limit.to_string());
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(cutoff_ms))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
