//! Answering one connection's recorded messages: route each to the inbound agent,
//! claim it in the ledger (received → sending, so a crash never answers twice), send
//! the reply, record the outcome. Each message is claimed just before its reply
//! leaves: claiming a connection's waiting messages together would leave every one
//! not yet sent unanswered after a kill (a test kills `serve` mid-batch).

use super::pipeline::{ConnInbox, send};
use crate::agents::routing::AnswerEnv;
use crate::connectors::{Connector, Outbound};
use crate::store::{LedgerEntry, LedgerState, WriteOp, WriteResult};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Most messages taken from the queue at once.
const TAKE: usize = 16;

/// A message with its reply, ready to be claimed and sent.
struct Ready {
    entry: LedgerEntry,
    reply: String,
    agent: String,
    who: String,
}

/// Answers what is queued for one connection until stopped.
pub async fn answer_loop(
    inbox: &ConnInbox,
    type_key: &str,
    connector: &dyn Connector,
    stop: &CancellationToken,
) {
    let at_once = connector.answers_at_once();
    if at_once > 1 {
        return Box::pin(side_by_side(inbox, type_key, connector, stop, at_once)).await;
    }
    loop {
        let batch = tokio::select! {
            b = inbox.next_batch(TAKE) => b,
            _ = stop.cancelled() => return,
        };
        // Boxed: answering's state is large, and the loop waits idle most of its life.
        Box::pin(answer_batch(inbox, type_key, connector, batch, stop)).await;
    }
}

async fn answer_batch(
    inbox: &ConnInbox,
    type_key: &str,
    connector: &dyn Connector,
    batch: Vec<LedgerEntry>,
    stop: &CancellationToken,
) {
    for entry in batch {
        answer_one(inbox, type_key, connector, entry, stop).await;
    }
}

/// Up to `at_once` messages answered at the same time, for connectors whose customers
/// wait on the line (a call each): one caller's slow answer does not hold up another's.
async fn side_by_side(
    inbox: &ConnInbox,
    type_key: &str,
    connector: &dyn Connector,
    stop: &CancellationToken,
    at_once: usize,
) {
    use futures::StreamExt;
    let mut running = futures::stream::FuturesUnordered::new();
    let mut queued: std::collections::VecDeque<LedgerEntry> = Default::default();
    loop {
        while running.len() < at_once
            && let Some(entry) = queued.pop_front()
        {
            running.push(answer_one(inbox, type_key, connector, entry, stop));
        }
        tokio::select! {
            b = inbox.next_batch(TAKE), if queued.is_empty() => queued.extend(b),
            Some(()) = running.next(), if !running.is_empty() => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn answer_one(
    inbox: &ConnInbox,
    type_key: &str,
    connector: &dyn Connector,
    entry: LedgerEntry,
    stop: &CancellationToken,
) {
    let ours = connector.started_by_us(&entry.raw);
    match prepare(inbox, type_key, entry, ours).await {
        Ok(r) => deliver(inbox, connector, r, stop).await,
        Err(key) => {
            connector.unanswered(&key);
            inbox.done(&key);
        }
    }
}

/// The reply to one message; when nobody answers it, it is recorded as ignored and its
/// key returned. `ours`: it continues a conversation flametree started (an outbound call).
async fn prepare(
    inbox: &ConnInbox,
    type_key: &str,
    e: LedgerEntry,
    ours: bool,
) -> Result<Ready, String> {
    let pipe = &inbox.pipe;
    let id = inbox.connection_id;
    let who = if e.account.is_empty() {
        e.customer.clone()
    } else {
        format!("{} (to {})", e.customer, e.account)
    };
    info!("message {} from {who}", e.key);
    let router = pipe.router.clone();
    let protect = move |secret: &str| {
        if let Some(r) = &router {
            r.protect(id, secret);
        }
    };
    let env = AnswerEnv {
        routes: &inbox.routes,
        loader: &pipe.routes,
        channels: &pipe.channels,
        http: &pipe.http,
        connection_id: id,
        protect: &protect,
    };
    let customer_key = format!("{type_key}:{}", e.customer);
    match crate::agents::answer(&env, &customer_key, &e.text, ours).await {
        Some((reply, agent)) => Ok(Ready {
            entry: e,
            reply,
            agent,
            who,
        }),
        None => {
            let mark = WriteOp::Mark {
                connection_id: id,
                key: e.key.clone(),
                state: LedgerState::Ignored,
            };
            if let Err(err) = pipe.writer.write(mark).await {
                warn!("could not record message {} as not answered: {err}", e.key);
            }
            Err(e.key)
        }
    }
}

/// Claims the message, then sends its reply if the claim was granted.
async fn deliver(inbox: &ConnInbox, connector: &dyn Connector, r: Ready, stop: &CancellationToken) {
    let key = &r.entry.key;
    let claim = inbox
        .pipe
        .writer
        .write(WriteOp::Claim {
            connection_id: inbox.connection_id,
            key: key.clone(),
            fence: inbox.fence.clone(),
        })
        .await;
    match claim {
        Ok(WriteResult::Claimed(true)) => reply(inbox, connector, &r, stop).await,
        Ok(WriteResult::Fenced) => {
            info!("message {key}: another process runs this connection now; it answers")
        }
        Ok(_) => debug!("message {key} is answered by another process"),
        // Still `received`: it is picked up again once the database answers.
        Err(err) => {
            warn!("message {key}: cannot record the reply as sending ({err}); will try again")
        }
    }
    inbox.done(key);
}

/// Sends one claimed reply and records how it went.
async fn reply(inbox: &ConnInbox, connector: &dyn Connector, r: &Ready, stop: &CancellationToken) {
    let pipe = &inbox.pipe;
    let id = inbox.connection_id;
    let e = &r.entry;
    let out = Outbound {
        account: &e.account,
        to: &e.customer,
        text: &r.reply,
        in_reply_to: Some(&e.key),
        context: Some(&e.raw),
    };
    let state = match send(pipe, id, connector, &out, stop).await {
        Ok(sent) => {
            info!("agent '{}' replied to {} (message {sent})", r.agent, r.who);
            LedgerState::Answered
        }
        Err(err) => {
            warn!(
                "message {}: the reply to {} was not sent: {err}",
                e.key, r.who
            );
            LedgerState::Ignored
        }
    };
    pipe.writer.submit(WriteOp::Mark {
        connection_id: id,
        key: e.key.clone(),
        state,
    });
}
