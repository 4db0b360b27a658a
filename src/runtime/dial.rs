//! Outbound calls queued by `flametree call` for a line whose user agent lives here
//! (SIP: the registration and socket belong to the process running the connection).
//! A connection's dial loop claims its queued requests — only this process holds its
//! lease, and the claim is one statement, so no request is dialed twice — hands each
//! to the connector, and writes every step back to the request, where the command
//! that asked reads it.
//!
//! What wakes it: on PostgreSQL the insert's notification (`q:<id>`), on SQLite the
//! supervisor's look at the queued requests once a second (`pick_up`), and its own
//! look when the connection starts.

use super::pipeline::{ConnInbox, Pipeline};
use crate::connectors::Connector;
use crate::model::{CallProgress, CallRequest, CallState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

/// A request nobody dialed within this long is canceled rather than dialed: a call
/// placed long after it was asked for (the line was down) would surprise both sides.
pub const QUEUED_AT_MOST: Duration = Duration::from_secs(300);

/// Claims and places the connection's queued calls until the connection stops. The
/// calls go on in `calls`: the task waits for them after the connector's release has
/// hung them up, so each one's last step is written before the connection (or the
/// process) is reported stopped.
pub async fn dial_loop(
    inbox: Arc<ConnInbox>,
    connector: Arc<dyn Connector>,
    owner: String,
    stop: CancellationToken,
    calls: TaskTracker,
) {
    let store = inbox.pipe.channels.store().clone();
    let id = inbox.connection_id;
    // This process holds the lease now: a call another process still shows in progress
    // lost its process mid-call (a clean stop ends its calls before letting go).
    match store.end_orphaned_calls(id, &owner).await {
        Ok(orphans) => {
            for request in orphans {
                warn!("{}: failed ({})", who(&request), request.reason);
            }
        }
        Err(e) => warn!("cannot look for calls left by a stopped process: {e}"),
    }
    loop {
        loop {
            let claimed = store
                .claim_call(id, &owner, QUEUED_AT_MOST.as_millis() as i64)
                .await;
            match claimed {
                Ok(Some(request)) => {
                    let call = place(inbox.pipe.clone(), connector.clone(), request);
                    calls.spawn(call.in_current_span());
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("cannot look for queued calls: {e}");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = inbox.calls_queued.notified() => {}
        }
    }
}

/// How the log names a request.
fn who(request: &CallRequest) -> String {
    format!(
        "outbound call to {} (request {}, by {})",
        request.callee, request.id, request.requested_by
    )
}

/// One claimed request: dialed, each step written, the outcome logged.
async fn place(pipe: Arc<Pipeline>, connector: Arc<dyn Connector>, request: CallRequest) {
    let store = pipe.channels.store().clone();
    let who = who(&request);
    info!("{who}: dialing");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<CallProgress>();
    let record = async {
        let mut last: Option<CallProgress> = None;
        while let Some(step) = rx.recv().await {
            if let Err(e) = store.update_call(request.id, &step).await {
                warn!("{who}: cannot record that it is {} ({e})", step.state);
            }
            last = Some(step);
        }
        last
    };
    let (placed, last) = tokio::join!(connector.place_call(&request, tx), record);
    let outcome = match (placed, last) {
        (Err(e), _) => CallProgress::to(CallState::Failed).because(e.to_string()),
        (Ok(()), Some(last)) if last.state.ended() => last,
        // A connector that returned without saying how it ended.
        (Ok(()), _) => {
            CallProgress::to(CallState::Failed).because("the call ended without an outcome")
        }
    };
    if let Err(e) = store.update_call(request.id, &outcome).await {
        warn!("{who}: cannot record how it ended ({e})");
    }
    let reason = if outcome.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", outcome.reason)
    };
    match outcome.state {
        CallState::Completed => info!(
            "{who}: completed after {} s{reason}",
            outcome.duration_secs.unwrap_or(0)
        ),
        state => warn!("{who}: {state}{reason}"),
    }
}

/// The supervisor's look for queued calls (SQLite, and after a lost notification on
/// PostgreSQL): wakes the dial loop of each connection run here that has one. Costs
/// nothing while no voice line runs here.
pub async fn pick_up(pipe: &Pipeline) -> Result<(), crate::store::StoreError> {
    let dialers = pipe.dialers();
    if dialers.is_empty() {
        return Ok(());
    }
    let queued = pipe.channels.store().queued_call_connections().await?;
    for inbox in dialers {
        if queued.contains(&inbox.connection_id) {
            inbox.call_queued();
        }
    }
    Ok(())
}

/// A notification named the connection: its dial loop looks, if it runs here.
pub fn poke(pipe: &Pipeline, connection_id: i64) {
    if let Some(inbox) = pipe.inbox(connection_id).filter(|i| i.dials()) {
        inbox.call_queued();
    }
}
