//! Retention: prunes the inbound ledger (finished events only), unanswered messages,
//! conversation turns and the audit log once they are older than `[retention] days`.
//!
//! A pass deletes in chunks of at most [`CHUNK`] rows per table and goes on at once
//! (after yielding) while any table's chunk came back full, so a large backlog drains
//! in short statements that never hold a lock for long. Passes run at start and then
//! every [`INTERVAL`].

use crate::model::now_millis;
use crate::store::{PruneCounts, RuntimeStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Time between passes.
pub const INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Rows deleted per table per statement.
pub const CHUNK: u32 = 1_000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Prunes once at start, then every [`INTERVAL`], until `stop` is cancelled; returns
/// at once when `days` is 0 (retention off). Errors are logged and retried at the next
/// pass; they never end the loop.
pub async fn prune_loop(store: Arc<dyn RuntimeStore>, days: u32, stop: CancellationToken) {
    if days == 0 {
        tracing::info!("retention is off ([retention] days = 0): nothing is pruned");
        return;
    }
    loop {
        let cutoff = now_millis().saturating_sub(i64::from(days) * DAY_MS);
        let (deleted, error) = prune_pass(store.as_ref(), cutoff, &stop).await;
        if deleted.total() > 0 {
            tracing::info!(
                ledger = deleted.ledger,
                unanswered = deleted.unanswered,
                turns = deleted.turns,
                audit = deleted.audit,
                outbound = deleted.outbound,
                calls = deleted.calls,
                "retention: pruned {} rows older than {days} days",
                deleted.total()
            );
        }
        if let Some(e) = error {
            tracing::warn!("retention: pruning failed, retrying in 10 minutes: {e}");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Chunk after chunk until none comes back full, an error, or `stop`. Returns what was
/// deleted (also when it ended early) and the error, if any.
async fn prune_pass(
    store: &dyn RuntimeStore,
    cutoff_ms: i64,
    stop: &CancellationToken,
) -> (PruneCounts, Option<StoreError>) {
    let mut total = PruneCounts::default();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.cancelled() => return (total, None),
            chunk = store.prune_older_than(cutoff_ms, CHUNK) => chunk,
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return (total, Some(e)),
        };
        total.ledger += chunk.ledger;
        total.unanswered += chunk.unanswered;
        total.turns += chunk.turns;
        total.audit += chunk.audit;
        total.outbound += chunk.outbound;
        total.calls += chunk.calls;
        let full = [
            chunk.ledger,
            chunk.unanswered,
            chunk.turns,
            chunk.audit,
            chunk.outbound,
            chunk.calls,
        ]
        .iter()
        .any(|n| *n >= u64::from(CHUNK));
        if !full {
            return (total, None);
        }
        tokio::task::yield_now().await;
    }
}
