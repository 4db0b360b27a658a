//! The inbound pipeline, once for every connector: record each message durably
//! (deduplicated by the provider's id), route it to the inbound agent, send the reply
//! through the connector, record the outcome. received → sending → answered: a reply
//! is claimed in the ledger before it goes out, so a crash never answers twice.

use super::logs::LogRouter;
use super::writer::Writer;
use crate::channels::Channels;
use crate::connectors::retry::{self, Outcome, Policy};
use crate::connectors::{Connector, ConnectorError, Event, InboxSink, Outbound};
use crate::model::{Millis, Status};
use crate::store::{Fence, LedgerEntry, LedgerState, WriteOp, WriteResult};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What every connection's pipeline shares in one process: the runtime and the
/// webhook ingress both use it.
pub struct Pipeline {
    pub channels: Arc<Channels>,
    pub writer: Writer,
    pub http: reqwest::Client,
    pub router: Option<LogRouter>,
    /// Which router a task's span names (see `logs::install_router`).
    pub router_index: Option<usize>,
    /// The inboxes of the connections this process runs, for webhooks it receives.
    inboxes: Mutex<HashMap<i64, Arc<ConnInbox>>>,
    /// How many of `inboxes` dial queued calls: with none, the look for queued calls
    /// every second goes no further (it walked 10,000 chat inboxes each time).
    dialing: std::sync::atomic::AtomicUsize,
    /// The calls each voice connection holds in this process: one count shared by the
    /// running task's connector and the ingress's (which opens its own for webhooks).
    calls: Mutex<HashMap<i64, crate::connectors::Calls>>,
    /// Permits for messages on their way to a provider (`SENDS_AT_ONCE`).
    sending: tokio::sync::Semaphore,
    /// Which agents answer the connections' messages, looked up many at a time.
    pub routes: crate::agents::routing::RouteLoader,
}

/// Messages sent at once by one process. Each needs an HTTP connection of its own while
/// it is in flight (~25 KiB in hyper), and the pool keeps them: a burst to 1,000 bots
/// opened ~800 and kept them all. At a provider 100 ms away this still allows 2,500
/// messages a second.
const SENDS_AT_ONCE: usize = 256;

impl Pipeline {
    /// Starts the group-commit writer and the log router (lines kept: `keep` per connection).
    pub fn start(channels: Arc<Channels>, keep: u32) -> Arc<Pipeline> {
        let (writer, _) = Writer::start(channels.store().clone(), keep);
        let router = LogRouter::new(channels.bus().clone(), writer.clone());
        let index = super::logs::install_router(router.clone());
        Arc::new(Pipeline {
            routes: crate::agents::routing::RouteLoader::start(channels.clone()),
            channels,
            writer,
            http: crate::connectors::http_client(),
            router: Some(router),
            router_index: Some(index),
            inboxes: Mutex::default(),
            dialing: Default::default(),
            calls: Mutex::default(),
            sending: tokio::sync::Semaphore::new(SENDS_AT_ONCE),
        })
    }

    pub fn register(&self, inbox: Arc<ConnInbox>) {
        let mut inboxes = self.inboxes.lock().expect("inboxes lock");
        let replaced = inboxes.insert(inbox.connection_id, inbox.clone());
        self.forget_dialer(replaced.filter(|old| !Arc::ptr_eq(old, &inbox)));
    }

    pub fn unregister(&self, connection_id: i64) {
        let mut inboxes = self.inboxes.lock().expect("inboxes lock");
        let removed = inboxes.remove(&connection_id);
        self.forget_dialer(removed);
    }

    /// Called with the inboxes locked, as `ConnInbox::set_dials` counts: an inbox
    /// replaced while it began dialing is counted once and forgotten once.
    fn forget_dialer(&self, gone: Option<Arc<ConnInbox>>) {
        if gone.is_some_and(|i| i.dials()) {
            self.dialing
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The connection's calls count in this process (made on first use: voice
    /// connections only, so idle chat bots pay nothing).
    pub fn calls(&self, connection_id: i64) -> crate::connectors::Calls {
        self.calls
            .lock()
            .expect("calls lock")
            .entry(connection_id)
            .or_default()
            .clone()
    }

    /// The inbox of a connection this process runs.
    pub fn inbox(&self, connection_id: i64) -> Option<Arc<ConnInbox>> {
        self.inboxes
            .lock()
            .expect("inboxes lock")
            .get(&connection_id)
            .cloned()
    }

    /// The connections run here that dial queued outbound calls.
    pub fn dialers(&self) -> Vec<Arc<ConnInbox>> {
        if self.dialing.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        self.inboxes
            .lock()
            .expect("inboxes lock")
            .values()
            .filter(|i| i.dials())
            .cloned()
            .collect()
    }

    pub fn running_ids(&self) -> Vec<i64> {
        self.inboxes
            .lock()
            .expect("inboxes lock")
            .keys()
            .copied()
            .collect()
    }

    /// A line in a connection's log from outside its task (the ingress).
    pub fn log(&self, connection_id: i64, level: &str, message: String) {
        match &self.router {
            Some(r) => r.route(connection_id, level, message),
            None => tracing::warn!("connection {connection_id}: {message}"),
        }
    }

    /// The span a connection's work runs in: its events become the connection's log.
    pub fn span(&self, connection_id: i64) -> tracing::Span {
        let router = self.router_index.map(|i| i as u64).unwrap_or(u64::MAX);
        tracing::info_span!(
            super::logs::SPAN,
            connection_id = connection_id,
            router = router
        )
    }

    /// Waits until every queued write is committed.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// One running connection's end of the pipeline: connectors submit here, and the
/// runtime's sweeper hands over what other processes' webhooks recorded.
pub struct ConnInbox {
    pub connection_id: i64,
    version: i64,
    pub(super) pipe: Arc<Pipeline>,
    /// Recorded messages waiting for an answer. A queue that allocates nothing until
    /// used: a tokio channel's first block (32 entries) cost ~5 KiB per idle connection.
    waiting: Mutex<Waiting>,
    /// Wakes the answer loop when `waiting` gets an entry.
    ready: Notify,
    /// What the credential check found ("polling as @sales_bot"): the RUNNING message.
    identity: Mutex<String>,
    /// The RUNNING message last recorded, without the calls (None until running): the
    /// calls count is added to it whenever either changes.
    shown: Mutex<Option<String>>,
    /// The calls a voice connector holds (see `connectors::Calls`).
    calls: Mutex<Option<crate::connectors::Calls>>,
    /// The lease this process was granted; every ledger write carries it.
    pub(super) fence: Option<Fence>,
    pub(super) routes: crate::agents::routing::RouteCache,
    /// A voice line: it dials the outbound calls queued for it (`runtime::dial`).
    dials: std::sync::atomic::AtomicBool,
    /// Wakes the dial loop when a call may be queued for this connection.
    pub(super) calls_queued: Notify,
}

/// Queued entries, and the keys of every entry queued or being answered (so the
/// sweeper's redelivery of a message already in hand is not answered twice here).
#[derive(Default)]
struct Waiting {
    queue: VecDeque<LedgerEntry>,
    keys: HashSet<String>,
}

impl ConnInbox {
    /// Where this connection's connector reports its calls.
    pub fn set_calls(&self, calls: crate::connectors::Calls) {
        *self.calls.lock().expect("calls lock") = Some(calls);
    }

    /// The message with the calls in progress, remembering it as the one shown.
    fn with_calls(&self, message: &str) -> String {
        *self.shown.lock().expect("shown lock") = Some(message.to_string());
        let n = self
            .calls
            .lock()
            .expect("calls lock")
            .as_ref()
            .map_or(0, |c| c.count());
        match (message.is_empty(), crate::connectors::in_progress(n)) {
            (_, calls) if calls.is_empty() => message.to_string(),
            (true, calls) => calls,
            (false, calls) => format!("{message} · {calls}"),
        }
    }

    /// A call started or ended: the RUNNING message says so (every console sees it
    /// through the change feed). Nothing before the connection is running.
    pub async fn calls_changed(&self) {
        let Some(shown) = self.shown.lock().expect("shown lock").clone() else {
            return;
        };
        self.degraded(&shown).await;
    }

    pub fn set_identity(&self, identity: &str) {
        *self.identity.lock().expect("identity lock") = identity.to_string();
    }

    pub fn new(
        connection_id: i64,
        version: i64,
        pipe: Arc<Pipeline>,
        fence: Option<Fence>,
    ) -> Arc<ConnInbox> {
        Arc::new(ConnInbox {
            connection_id,
            version,
            pipe,
            waiting: Mutex::default(),
            ready: Notify::new(),
            identity: Mutex::default(),
            shown: Mutex::default(),
            calls: Mutex::default(),
            fence,
            routes: Default::default(),
            dials: Default::default(),
            calls_queued: Notify::new(),
        })
    }

    /// This connection dials the outbound calls queued for it.
    /// Counted only while this inbox is the registered one (under the same lock as
    /// registering): one replaced or removed before it got here is never forgotten, so
    /// counting it would leave the count high for good.
    pub fn set_dials(&self) {
        let inboxes = self.pipe.inboxes.lock().expect("inboxes lock");
        let registered = inboxes
            .get(&self.connection_id)
            .is_some_and(|i| std::ptr::eq(Arc::as_ptr(i), self));
        if !self.dials.swap(true, std::sync::atomic::Ordering::Relaxed) && registered {
            self.pipe
                .dialing
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn dials(&self) -> bool {
        self.dials.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A call may be queued for this connection: its dial loop looks.
    pub fn call_queued(&self) {
        self.calls_queued.notify_one();
    }

    /// Queues a recorded message for an answer unless it is queued already.
    pub fn dispatch(&self, entry: LedgerEntry) {
        let mut w = self.waiting.lock().expect("waiting lock");
        if w.keys.insert(entry.key.clone()) {
            w.queue.push_back(entry);
            drop(w);
            self.ready.notify_one();
        }
    }

    /// Everything queued (at most `max`), waiting until there is something.
    pub(super) async fn next_batch(&self, max: usize) -> Vec<LedgerEntry> {
        loop {
            {
                let mut w = self.waiting.lock().expect("waiting lock");
                if !w.queue.is_empty() {
                    let n = w.queue.len().min(max);
                    let batch = w.queue.drain(..n).collect();
                    if w.queue.is_empty() {
                        // A thousand connections each kept the room of their largest
                        // burst (half a MiB in all after five messages each).
                        w.queue = VecDeque::new();
                    }
                    return batch;
                }
            }
            // `notify_one` keeps a permit when nobody waits: no wake-up is lost.
            self.ready.notified().await;
        }
    }

    /// The entry is answered (or given up): a later redelivery may queue it again.
    pub(super) fn done(&self, key: &str) {
        let mut w = self.waiting.lock().expect("waiting lock");
        w.keys.remove(key);
        if w.keys.is_empty() {
            w.keys = HashSet::new();
        }
    }
}

fn entry(m: crate::connectors::Inbound) -> LedgerEntry {
    LedgerEntry {
        key: m.key(),
        account: m.account,
        customer: m.customer,
        display_name: m.display_name,
        text: m.text,
        raw: m.raw,
    }
}

/// Records the messages among `events` (and the cursor with them); returns the ones
/// to answer now. The messages are taken out of `events`: what stays is for
/// `describe_event`.
pub async fn record(
    writer: &Writer,
    connection_id: i64,
    events: &mut Vec<Event>,
    cursor: Option<String>,
    fence: Option<Fence>,
) -> Result<Vec<LedgerEntry>, ConnectorError> {
    let (messages, others): (Vec<Event>, Vec<Event>) = std::mem::take(events)
        .into_iter()
        .partition(|e| matches!(e, Event::Message(_)));
    *events = others;
    let entries: Vec<LedgerEntry> = messages
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(entry(m)),
            _ => None,
        })
        .collect();
    if entries.is_empty() && cursor.is_none() {
        return Ok(Vec::new());
    }
    // Shared with the writer rather than copied: a burst's payloads were held twice.
    let entries = Arc::new(entries);
    let result = writer
        .write(WriteOp::Receive {
            connection_id,
            entries: entries.clone(),
            cursor,
            fence,
        })
        .await
        .map_err(|e| ConnectorError::transient(format!("cannot record incoming messages: {e}")))?;
    let entries = Arc::try_unwrap(entries).unwrap_or_else(|shared| (*shared).clone());
    let states = match result {
        WriteResult::Received(states) => states,
        WriteResult::Fenced => {
            return Err(ConnectorError::Superseded(
                "another process took this connection over (its lease moved on); stopping here"
                    .into(),
            ));
        }
        _ => return Ok(Vec::new()),
    };
    let mut fresh = Vec::new();
    for (entry, (state, _new)) in entries.into_iter().zip(states) {
        match state {
            LedgerState::Received => fresh.push(entry),
            // Its reply is on its way (a redelivery crossed it). One a crash interrupted
            // is reported when the connection's task starts (`task::report_interrupted`).
            LedgerState::Sending => {
                debug!(
                    "message {} arrived again while its reply is being sent; answered once",
                    entry.key
                );
            }
            LedgerState::Answered | LedgerState::Ignored => {
                debug!("message {} was handled before; skipped", entry.key);
            }
        }
    }
    Ok(fresh)
}

/// A provider event that is not a customer's message: one line, never an answer.
/// Returns the level and the line, for callers outside a connection's span.
pub async fn describe_event(
    channels: &Channels,
    connection_id: i64,
    event: &Event,
) -> Option<(&'static str, String)> {
    match event {
        Event::Message(_) => None,
        Event::Echo { note } => Some(("INFO", format!("{note}; not answered"))),
        Event::Ignored { note } => Some(("INFO", note.clone())),
        Event::Delivery(d) if d.failed => {
            let about = match channels
                .store()
                .outbound(connection_id, &d.provider_message_id)
                .await
            {
                Ok(Some(o)) if !o.in_reply_to.is_empty() => format!(
                    "the reply to {} (answering {}) sent at {}",
                    o.customer,
                    o.in_reply_to,
                    crate::model::format_millis(o.sent_at)
                ),
                Ok(Some(o)) => format!(
                    "the message to {} sent at {}",
                    o.customer,
                    crate::model::format_millis(o.sent_at)
                ),
                _ => "a message this connection has no record of".to_string(),
            };
            Some((
                "WARN",
                format!(
                    "{about} was not delivered ({}, message {}): {}",
                    d.status, d.provider_message_id, d.detail
                ),
            ))
        }
        Event::Delivery(d) => Some((
            "DEBUG",
            format!("message {}: {}", d.provider_message_id, d.status),
        )),
    }
}

#[async_trait]
impl InboxSink for ConnInbox {
    async fn submit(
        &self,
        mut events: Vec<Event>,
        cursor: Option<String>,
    ) -> Result<(), ConnectorError> {
        let fresh = record(
            &self.pipe.writer,
            self.connection_id,
            &mut events,
            cursor,
            self.fence.clone(),
        )
        .await?;
        for e in &events {
            if let Some((level, line)) =
                describe_event(&self.pipe.channels, self.connection_id, e).await
            {
                match level {
                    "WARN" => warn!("{line}"),
                    "DEBUG" => debug!("{line}"),
                    _ => info!("{line}"),
                }
            }
        }
        for entry in fresh {
            self.dispatch(entry);
        }
        Ok(())
    }

    async fn cursor(&self) -> Option<(String, Millis)> {
        self.pipe
            .channels
            .store()
            .cursor_since(self.connection_id)
            .await
            .ok()
            .flatten()
    }

    async fn running(&self, message: &str) {
        let identity = self.identity.lock().expect("identity lock").clone();
        let message = if message.is_empty() {
            identity.as_str()
        } else {
            message
        };
        let message = self.with_calls(message);
        let store = self.pipe.channels.store();
        // The version first: whoever sees RUNNING also sees which version runs.
        if let Err(e) = store
            .set_running_version(self.connection_id, Some(self.version))
            .await
        {
            warn!("could not record the running version: {e}");
        }
        if let Err(e) = store
            .set_status(self.connection_id, Status::Running, &message)
            .await
        {
            warn!("could not record status RUNNING: {e}");
        }
    }

    /// RUNNING with `message` and the calls in progress (a degraded poll's warning, or
    /// the running message again when the call count changes).
    async fn degraded(&self, message: &str) {
        let message = self.with_calls(message);
        if let Err(e) = self
            .pipe
            .channels
            .store()
            .set_status(self.connection_id, Status::Running, &message)
            .await
        {
            warn!("could not record the status message: {e}");
        }
    }
}

/// Sends a text through a connector with the reply retry policy and records the
/// provider's id of what went out: the one path of agents' replies and `flametree send`.
pub async fn send(
    pipe: &Pipeline,
    connection_id: i64,
    connector: &dyn Connector,
    out: &Outbound<'_>,
    stop: &CancellationToken,
) -> Result<String, ConnectorError> {
    let outcome = retry::retry(
        stop,
        Policy::REPLY,
        |w| warn!("reply to {}: {w}", out.to),
        // A permit per try: nobody holds one while waiting to try again.
        || async {
            let _permit = pipe.sending.acquire().await;
            connector.send(out).await
        },
    )
    .await;
    match outcome {
        Outcome::Done(sent) => {
            pipe.writer
                .submit(WriteOp::Outbound(Box::new(crate::store::SentRecord {
                    connection_id,
                    provider_id: sent.clone(),
                    account: out.account.to_string(),
                    customer: out.to.to_string(),
                    in_reply_to: out.in_reply_to.unwrap_or("").to_string(),
                })));
            Ok(sent)
        }
        Outcome::Stopped => Err(ConnectorError::Permanent(
            "stopped before the reply could be sent".into(),
        )),
        Outcome::Failed(e) => Err(e),
    }
}
