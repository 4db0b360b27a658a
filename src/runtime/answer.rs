//! Answering one connection's recorded messages: route each to the inbound agent,
//! claim it in the ledger (received → sending, so a crash never answers twice), send
//! the reply, record the outcome. The messages waiting together are claimed together:
//! one group commit for all of them instead of one each before every reply.

use super::pipeline::{ConnInbox, send};
use crate::agents::routing::AnswerEnv;
use crate::connectors::{Connector, Outbound};
use crate::store::{LedgerEntry, LedgerState, WriteOp, WriteResult};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Most messages claimed at once. A kill between a claim and its reply leaves the
/// message unanswered (never answered twice), so this bounds what one kill can cost.
const MAX_CLAIM: usize = 16;
/// Replies are gathered for a joint claim only while they come this fast; a slow
/// responder (a language model) sends each reply as soon as it has it.
const GATHER: Duration = Duration::from_millis(50);

/// A message with its reply, ready to be claimed and sent.
struct Ready {
    entry: LedgerEntry,
    reply: String,
    agent: String,
    who: String,
}

/// Answers what is queued for one connection until stopped.
pub async fn answer_loop(
    inbox: Arc<ConnInbox>,
    type_key: String,
    connector: Arc<dyn Connector>,
    stop: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            b = inbox.next_batch(MAX_CLAIM) => b,
            _ = stop.cancelled() => return,
        };
        // Boxed: answering's state is large, and the loop waits idle most of its life.
        Box::pin(answer_batch(
            &inbox,
            &type_key,
            connector.as_ref(),
            batch,
            &stop,
        ))
        .await;
    }
}

async fn answer_batch(
    inbox: &ConnInbox,
    type_key: &str,
    connector: &dyn Connector,
    batch: Vec<LedgerEntry>,
    stop: &CancellationToken,
) {
    let mut began = Instant::now();
    let mut ready = Vec::new();
    for entry in batch {
        match prepare(inbox, type_key, entry).await {
            Ok(r) => ready.push(r),
            Err(key) => inbox.done(&key),
        }
        if began.elapsed() >= GATHER {
            deliver(inbox, connector, std::mem::take(&mut ready), stop).await;
            began = Instant::now();
        }
    }
    deliver(inbox, connector, ready, stop).await;
}

/// The reply to one message; when nobody answers it, it is recorded as ignored and its
/// key returned.
async fn prepare(inbox: &ConnInbox, type_key: &str, e: LedgerEntry) -> Result<Ready, String> {
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
        channels: &pipe.channels,
        http: &pipe.http,
        connection_id: id,
        protect: &protect,
    };
    let customer_key = format!("{type_key}:{}", e.customer);
    match crate::agents::answer(&env, &customer_key, &e.text).await {
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

/// Claims every message of `ready` at once (the writer commits the claims together),
/// then sends the replies of those claimed, in order.
async fn deliver(
    inbox: &ConnInbox,
    connector: &dyn Connector,
    ready: Vec<Ready>,
    stop: &CancellationToken,
) {
    let pipe = &inbox.pipe;
    let id = inbox.connection_id;
    let claims = ready.iter().map(|r| {
        pipe.writer.write(WriteOp::Claim {
            connection_id: id,
            key: r.entry.key.clone(),
            fence: inbox.fence.clone(),
        })
    });
    let claimed = futures::future::join_all(claims).await;
    for (r, claim) in ready.into_iter().zip(claimed) {
        let key = &r.entry.key;
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
