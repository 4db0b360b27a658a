//! One running connection, from STARTING to STOPPED or ERROR: open its configuration,
//! check the credentials (retrying what is transient, and saying so), then receive
//! and answer until stopped.

use super::answer::answer_loop;
use super::dial::dial_loop;
use super::pipeline::{ConnInbox, Pipeline};
use crate::connectors::retry::{self, Outcome, Policy};
use crate::connectors::{self, ConnConfig, Connector, ConnectorError, Receiver};
use crate::model::{Connection, DesiredState, Status};
use crate::store::AuditNote;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};

/// How long a connector gets to undo its provider-side setup on Stop.
const RELEASE_GRACE: Duration = Duration::from_secs(5);
/// How long outbound calls get, after the release, to record how they ended: with
/// the release, within the runtime's 10 s for a task to stop.
const CALLS_GRACE: Duration = Duration::from_secs(3);

pub struct TaskEnv {
    pub pipe: Arc<Pipeline>,
    pub start_timeout: Duration,
    pub public_base: String,
    pub open: connectors::Opener,
    /// The lease this task runs under; every ledger write carries it.
    pub fence: crate::store::Fence,
    /// Set when another process takes over: end without recording a status.
    pub quiet: Arc<std::sync::atomic::AtomicBool>,
}

/// Runs the connection; a panic in its connector ends as ERROR, never a restart loop.
///
/// Built from combinators, not as an async fn: an async fn keeps its arguments and
/// each future it awaits side by side, and this one is held by every connection for
/// its whole life (as an async fn it took 8 KiB a connection).
pub fn run(
    env: TaskEnv,
    c: Connection,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    use futures::FutureExt;
    let pipe = env.pipe.clone();
    let id = c.id;
    let span = pipe.span(id);
    // Caught here rather than through a task of its own: one task per connection fewer
    // (10,000 idle bots).
    std::panic::AssertUnwindSafe(lifecycle(env, c, stop).instrument(span.clone()))
        .catch_unwind()
        .then(move |ended| async move {
            let Err(payload) = ended else {
                return;
            };
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let why = format!("the connector crashed: {what}");
            fail(&pipe, id, &why).instrument(span).await;
        })
}

fn lifecycle(
    env: TaskEnv,
    c: Connection,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    use futures::FutureExt;
    // Starting holds much more than running does (the connection's whole row, the
    // credential check's retries), and a future is as large as its largest state: boxed,
    // it is freed once the connection runs, and 10,000 idle bots carry only `Running`.
    let starting = stop.clone();
    Box::pin(async move { start(env, c, &starting).await })
        .then(move |running| futures::future::OptionFuture::from(running.map(|r| r.run(stop))))
        .map(|_| ())
}

/// What a connection that passed its start needs while it runs.
struct Running {
    pipe: Arc<Pipeline>,
    id: i64,
    type_key: String,
    connector: Arc<dyn Connector>,
    inbox: Arc<ConnInbox>,
    calls: connectors::Calls,
    owner: String,
    quiet: Arc<std::sync::atomic::AtomicBool>,
}

/// STARTING: the configuration opened, the credentials checked (retried while the
/// provider cannot be reached). None when it ended there (failed, or stopped first).
async fn start(env: TaskEnv, c: Connection, stop: &CancellationToken) -> Option<Running> {
    let pipe = env.pipe.clone();
    let store = pipe.channels.store().clone();
    let id = c.id;
    let _ = store.set_status(id, Status::Starting, "").await;
    info!("starting (configuration version {})", c.version);
    let cfg = match open_config(&env, &c) {
        Ok(cfg) => cfg,
        Err(why) => return failed(&pipe, id, &why).await,
    };
    if let Some(r) = &pipe.router {
        for s in cfg.masked() {
            r.protect(id, s);
        }
    }
    let calls = cfg.calls.clone();
    let http = cfg.http.clone();
    let connector = match (env.open)(cfg) {
        Ok(c) => c,
        Err(e) => return failed(&pipe, id, &e.to_string()).await,
    };
    // After the line's own settings (those are the connection's to fix), before it
    // registers and takes calls.
    if let Some(why) = speech_missing(&pipe, &c, connector.as_ref(), http).await {
        return failed(&pipe, id, &why).await;
    }

    let began = Instant::now();
    let timeout = env.start_timeout;
    let verified = retry::retry(
        stop,
        Policy::FOREVER,
        |w| {
            warn!("{w}");
            let (status, message) = if began.elapsed() >= timeout {
                (
                    Status::Error,
                    format!("{w} (still trying; it starts by itself once this works)"),
                )
            } else {
                (Status::Starting, w.to_string())
            };
            let store = store.clone();
            tokio::spawn(async move {
                let _ = store.set_status(id, status, &message).await;
            });
        },
        || connector.verify(),
    )
    .await;
    let identity = match verified {
        Outcome::Done(identity) => identity,
        Outcome::Stopped if env.quiet.load(std::sync::atomic::Ordering::SeqCst) => return None,
        Outcome::Stopped => {
            record_stopped(&pipe, id).await;
            return None;
        }
        Outcome::Failed(e) => return failed(&pipe, id, &e.to_string()).await,
    };

    let inbox = ConnInbox::new(id, c.version, pipe.clone(), Some(env.fence.clone()));
    inbox.set_identity(&identity);
    inbox.set_calls(calls.clone());
    pipe.register(inbox.clone());
    report_interrupted(&pipe, id, connector.idempotent_replies()).await;
    Some(Running {
        pipe,
        id,
        type_key: c.type_key,
        connector,
        inbox,
        calls,
        owner: env.fence.owner.to_string(),
        quiet: env.quiet,
    })
}

impl Running {
    /// RUNNING: receive and answer (and place calls, for voice lines) until stopped.
    /// An async block that owns `self` and `stop` in place (see `run` above).
    #[allow(clippy::manual_async_fn)] // on purpose: `self` not held twice
    fn run(self, stop: CancellationToken) -> impl std::future::Future<Output = ()> + Send {
        async move {
            let receiver = Receiver {
                stop: stop.clone(),
                inbox: self.inbox.clone(),
            };
            let placing = TaskTracker::new();
            // Only voice lines hold and place calls: a chat bot's future has no room for
            // their loops.
            let received = if connectors::takes_calls(&self.type_key) {
                Box::pin(self.serve_voice(&receiver, &placing)).await
            } else {
                self.serve(&receiver).await
            };
            Box::pin(self.finish(received, placing)).await
        }
    }

    /// Receiving and answering, side by side in this task (not one more task per
    /// connection). Made by a plain fn: the futures go straight into the join, not into
    /// locals the caller's future would keep as well.
    fn serve<'a>(
        &'a self,
        rx: &'a Receiver,
    ) -> impl std::future::Future<Output = Outcome<()>> + Send + 'a {
        use futures::FutureExt;
        futures::future::join(
            self.receiving(rx),
            answer_loop(
                &self.inbox,
                &self.type_key,
                self.connector.as_ref(),
                &rx.stop,
            ),
        )
        .map(|(received, ())| received)
    }

    async fn serve_voice(&self, rx: &Receiver, placing: &TaskTracker) -> Outcome<()> {
        let stop = &rx.stop;
        let counting = count_calls(&self.inbox, &self.calls, stop);
        self.inbox.set_dials();
        let dialing = dial_loop(
            self.inbox.clone(),
            self.connector.clone(),
            self.owner.clone(),
            stop.clone(),
            placing.clone(),
        );
        let (received, (), ()) = tokio::join!(self.serve(rx), counting, dialing);
        received
    }

    /// The connector's receive, retried while transient; Stop for the rest of the
    /// connection once it ends.
    fn receiving<'a>(
        &'a self,
        rx: &'a Receiver,
    ) -> impl std::future::Future<Output = Outcome<()>> + Send + 'a {
        use futures::FutureExt;
        let inbox = &self.inbox;
        let connector = &self.connector;
        let stop = &rx.stop;
        retry::retry(
            stop,
            Policy::FOREVER,
            move |w| {
                warn!("{w}");
                let inbox = inbox.clone();
                let message = w.to_string();
                tokio::spawn(async move {
                    use crate::connectors::InboxSink;
                    inbox.degraded(&message).await;
                });
            },
            move || async move {
                connector.receive(rx).await?;
                if stop.is_cancelled() {
                    Ok(())
                } else {
                    Err(ConnectorError::transient("the connector stopped receiving"))
                }
            },
        )
        .inspect(move |_| stop.cancel())
    }

    /// Undoes the provider-side setup, lets calls record how they ended, and records
    /// how the connection ended.
    async fn finish(self, received: Outcome<()>, placing: TaskTracker) {
        let (pipe, id) = (&self.pipe, self.id);
        pipe.unregister(id);
        if tokio::time::timeout(RELEASE_GRACE, self.connector.release())
            .await
            .is_err()
        {
            warn!(
                "the provider did not confirm the cleanup within {} s",
                RELEASE_GRACE.as_secs()
            );
        }
        // The release hung the calls up; what is left is writing how each ended.
        placing.close();
        if tokio::time::timeout(CALLS_GRACE, placing.wait())
            .await
            .is_err()
        {
            warn!(
                "{} outbound calls were still ending after {} s; their requests may not say \
                 how they ended",
                placing.len(),
                CALLS_GRACE.as_secs()
            );
        }
        let quiet = self.quiet.load(std::sync::atomic::Ordering::SeqCst);
        match received {
            Outcome::Failed(ConnectorError::Superseded(why)) => warn!("{why}"),
            _ if quiet => {}
            Outcome::Failed(e) => fail(pipe, id, &e.to_string()).await,
            _ => record_stopped(pipe, id).await,
        }
    }
}

/// Keeps the RUNNING message's calls in progress current until the connection stops
/// (its STOPPED or ERROR then replaces the message, calls and all).
async fn count_calls(inbox: &ConnInbox, calls: &connectors::Calls, stop: &CancellationToken) {
    // While calls are in progress, a look now and then for one whose end was lost.
    const SWEEP: Duration = Duration::from_secs(600);
    let mut count = calls.watch();
    loop {
        let busy = *count.borrow() > 0;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP), if busy => {
                calls.forget_older_than(connectors::calls::LONGEST_CALL);
            }
            changed = count.changed() => {
                if changed.is_err() {
                    return;
                }
                // On a busy line the timer may never fire: look at every change too.
                calls.forget_older_than(connectors::calls::LONGEST_CALL);
                inbox.calls_changed().await;
            }
        }
    }
}

/// A reply claimed by a process that died while sending it may or may not have reached
/// the customer. Where a repeat is recognised as the same reply (an email's Message-ID)
/// it is answered again; elsewhere it is not (that could answer twice), but not silently
/// either: each gets a warning the operator can act on.
async fn report_interrupted(pipe: &Pipeline, id: i64, idempotent: bool) {
    match pipe
        .channels
        .store()
        .settle_interrupted(id, idempotent)
        .await
    {
        Ok(left) => {
            for (key, customer) in left {
                if idempotent {
                    info!(
                        "message {key} from {customer}: flametree stopped while sending its \
                         reply; answering again (the reply keeps its identity, so the customer \
                         sees it once)"
                    );
                } else {
                    warn!(
                        "message {key} from {customer}: flametree stopped while sending its \
                         reply; it is not sent again, so the customer may have no answer"
                    );
                }
            }
        }
        Err(e) => warn!("could not look for replies interrupted by a crash: {e}"),
    }
}

/// A line that carries calls as audio cannot serve them without its agent's speech
/// engines: better ERROR naming what to set than a registered line that answers
/// callers with nothing. The agents that run it are asked (desired Running); if none
/// is, every attached one.
async fn speech_missing(
    pipe: &Pipeline,
    c: &Connection,
    connector: &dyn crate::connectors::Connector,
    http: reqwest::Client,
) -> Option<String> {
    let needs = crate::catalog::Catalog::get()
        .find(&c.type_key)
        .is_some_and(|t| t.needs_speech);
    if !needs {
        return None;
    }
    let agents = match pipe.channels.store().connection_agents(c.id).await {
        Ok(list) => list,
        Err(e) => return Some(format!("cannot read the agent of this line: {e}")),
    };
    let attached: Vec<_> = agents
        .into_iter()
        .filter(|(_, ch)| !ch.detached)
        .map(|(a, _)| a)
        .collect();
    let running: Vec<_> = attached
        .iter()
        .filter(|a| a.desired == DesiredState::Running)
        .collect();
    let asked = if running.is_empty() {
        attached.iter().collect()
    } else {
        running
    };
    if let Some(why) = asked
        .iter()
        .copied()
        .find_map(crate::agents::speech::not_ready)
    {
        return Some(why);
    }
    // The key must open (a wrong master key is said now, not mid-call), and is masked
    // in this line's log from here on, as the connection's own secrets are.
    for a in &asked {
        match crate::agents::speech::open_key(&pipe.channels, a) {
            Ok(Some(key)) => {
                if let Some(r) = &pipe.router {
                    r.protect(c.id, key.expose());
                }
            }
            Ok(None) => {}
            Err(e) => return Some(e.to_string()),
        }
    }
    // The line speaks with the first of them (one inbound agent per line).
    if let Some(a) = asked.first() {
        match crate::agents::speech_client::SpeechClient::for_agent(&pipe.channels, a, http) {
            Ok(speech) => connector.use_speech(speech),
            Err(e) => return Some(e.to_string()),
        }
    }
    None
}

fn open_config(env: &TaskEnv, c: &Connection) -> Result<ConnConfig, String> {
    open_config_with(&env.pipe, &env.public_base, c)
}

/// Every secret field opened, each failure naming the field; the webhook URL built.
pub fn open_config_with(
    pipe: &Pipeline,
    public_base: &str,
    c: &Connection,
) -> Result<ConnConfig, String> {
    let mut secrets = BTreeMap::new();
    for field in c.secrets.keys() {
        match pipe.channels.reveal(c, field) {
            Ok(Some(v)) => {
                secrets.insert(field.clone(), v);
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut cfg = ConnConfig::new(
        c.clone(),
        secrets,
        webhook_url(public_base, &c.hook_id),
        pipe.http.clone(),
    );
    if crate::connectors::takes_calls(&c.type_key) {
        cfg.calls = pipe.calls(c.id);
    }
    Ok(cfg)
}

/// Where a connection's webhooks are delivered.
pub fn webhook_url(public_base: &str, hook_id: &str) -> String {
    format!("{}/hooks/{hook_id}", public_base.trim_end_matches('/'))
}

pub async fn record_stopped(pipe: &Pipeline, id: i64) {
    let store = pipe.channels.store();
    let _ = store.set_status(id, Status::Stopped, "").await;
    let _ = store.set_running_version(id, None).await;
    info!("stopped");
}

/// `fail`, for a start that ends there.
async fn failed(pipe: &Pipeline, id: i64, why: &str) -> Option<Running> {
    fail(pipe, id, why).await;
    None
}

/// A permanent failure: ERROR with the reason, and the desired state back to STOPPED
/// so it is not retried in a loop — the operator fixes it and starts it again.
async fn fail(pipe: &Pipeline, id: i64, why: &str) {
    error!("{why}");
    let store = pipe.channels.store();
    // The desired state first: whoever sees ERROR also sees that it is not retried.
    let note = AuditNote::new("runtime", "stop", format!("failed: {why}"));
    let _ = store
        .set_desired_state(id, DesiredState::Stopped, &note)
        .await;
    let _ = store.set_running_version(id, None).await;
    let _ = store.set_status(id, Status::Error, why).await;
    pipe.unregister(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned<A, B, C, R>(_: impl Fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_running_connection_holds_a_small_future() {
        // Every connection holds this for its whole life (10,000 idle bots): written as
        // nested async fns it was 8 KiB in a release build.
        let size = returned(run);
        assert!(
            size <= 2048,
            "a connection's task future is {size} bytes: an async fn in its chain keeps its \
             arguments and awaited futures twice"
        );
    }
}
