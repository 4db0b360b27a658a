//! The runtime: reconciles each connection's desired state (Start/Stop) into a running
//! task, records every transition, and stops everything cleanly on shutdown.
//!
//! The console and `flametree serve` run the same runtime. A connection is run by one
//! process at a time: the one holding its lease — granted, renewed and expired on the
//! database's clock, with a generation every write of the task carries, so a process
//! that lost its lease can write nothing more.

mod answer;
pub mod dial;
pub mod host;
pub mod logs;
pub mod memory;
pub mod pipeline;
pub mod presence;
pub mod retention;
mod task;
pub mod writer;

pub use pipeline::Pipeline;
pub use presence::{Presence, RunChannels};
pub use task::{open_config_with, webhook_url};

use crate::channels::Channels;
use crate::model::DesiredState;
use crate::store::{Fence, ProcessInfo};
use futures::FutureExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a lease lasts without renewal; another process may take over after it.
const LEASE_MS: i64 = 15_000;
/// A task stops itself when its lease could not be renewed for this long: before
/// anyone else may take the connection over.
const SELF_STOP: Duration = Duration::from_millis(LEASE_MS as u64 - 5_000);
/// A process renews its leases with each look around (every `PRESENCE_EVERY` passes,
/// about 3 s); on its own, a pass renews only when the last renewal is this old (the
/// look around failed, or came late).
const RENEW_LATE: Duration = Duration::from_secs(4);
/// In a pass that starts many connections (which the supervisor waits for), leases are
/// renewed this often.
const RENEW_DURING_START: Duration = Duration::from_secs(3);
/// How long a task gets to stop before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Recorded messages handed to their connection's task per sweep.
const SWEEP: u32 = 1_000;
/// Heartbeats and the look at the other processes, every so many passes.
const PRESENCE_EVERY: u32 = 3;
/// A full look at every connection at least this often, changes or not.
const FULL_PASS: Duration = Duration::from_secs(30);
/// The same where the database announces every change (PostgreSQL): then the full look
/// is only a safety net, and at 100,000 connections it was most of an idle database's
/// rows read (a lost notice channel resynchronizes at once anyway).
const FULL_PASS_LIVE: Duration = Duration::from_secs(300);

/// What a runtime needs besides the store.
#[derive(Debug, Clone)]
pub struct Options {
    /// After this long failing to reach the provider, a starting connection shows
    /// ERROR with the cause while it keeps trying.
    pub start_timeout: Duration,
    /// `http.public_url` (or derived from the ingress address): webhook URLs live under it.
    pub public_base: String,
    /// Opens a connection's connector: the registry (tests put other connectors here).
    pub open: crate::connectors::Opener,
    /// `console` or `serve`, as other processes see this one.
    pub role: &'static str,
    pub run_channels: RunChannels,
    /// Changes announced by the database (PostgreSQL); without it, a cheap change check
    /// every second tells the supervisor when to look at the connections again.
    pub feed: Option<crate::store::feed::ChangeFeed>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            start_timeout: Duration::from_secs(60),
            public_base: "http://127.0.0.1:8787".into(),
            open: crate::connectors::open,
            role: "serve",
            run_channels: RunChannels::Always,
            feed: None,
        }
    }
}

impl Options {
    pub fn from_config(
        cfg: &crate::config::Config,
        bound: Option<std::net::SocketAddr>,
        role: &'static str,
        run_channels: RunChannels,
    ) -> Options {
        Options {
            start_timeout: Duration::from_secs(cfg.runtime.start_timeout_secs.max(1)),
            public_base: cfg.http.public_base(bound),
            open: crate::connectors::open,
            role,
            run_channels,
            feed: None,
        }
    }
}

struct Task {
    name: String,
    stop: CancellationToken,
    /// Set when another process takes over: the task ends without recording a status.
    quiet: Arc<AtomicBool>,
    /// Set as the task's future returns, a moment before `handle` says it finished: the
    /// supervisor, woken by `some_ended`, must not miss it in that moment.
    ended: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Task {
    fn finished(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.handle.is_finished()
    }
}

pub struct Runtime {
    inner: Arc<Inner>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    channels: Arc<Channels>,
    pipe: Arc<Pipeline>,
    options: Options,
    owner: String,
    host: String,
    tasks: Mutex<HashMap<i64, Task>>,
    /// Connections this process is stopping: their task has left `tasks`, but the lease
    /// stays theirs until STOPPED is written. Locked after `tasks`.
    stopping: Mutex<HashSet<i64>>,
    tracker: TaskTracker,
    running: Arc<AtomicUsize>,
    /// Set by a task as it ends: the supervisor looks for ended tasks only then (each
    /// second it asked every task, 10,000 of them).
    some_ended: Arc<AtomicBool>,
    /// When the leases were last renewed: by the supervisor, and in the middle of a long
    /// start (10,000 connections took 30 s to start, twice a lease's life).
    renewed_at: Mutex<Instant>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    presence: watch::Sender<Presence>,
    started_at: crate::model::Millis,
}

impl Runtime {
    /// Starts a runtime with its own pipeline (log lines kept: `keep` per connection)
    /// and default options.
    pub fn launch(channels: Arc<Channels>, keep: u32) -> Runtime {
        let pipe = Pipeline::start(channels, keep);
        Runtime::start(pipe, Options::default())
    }

    /// Starts the supervisor on a pipeline the webhook ingress may share.
    pub fn start(pipe: Arc<Pipeline>, options: Options) -> Runtime {
        let channels = pipe.channels.clone();
        Runtime::start_for(pipe, channels, options)
    }

    /// Starts a supervisor for `channels`' tenant on a shared pipeline (`serve
    /// --all-tenants` runs one per tenant).
    pub fn start_for(pipe: Arc<Pipeline>, channels: Arc<Channels>, options: Options) -> Runtime {
        let host = whoami::hostname().unwrap_or_else(|_| "host".into());
        let owner = presence::owner_name(&host);
        let (presence, _) = watch::channel(Presence::default());
        let inner = Arc::new(Inner {
            wake: channels.wake_handle(),
            some_ended: Arc::default(),
            renewed_at: Mutex::new(Instant::now()),
            channels,
            pipe,
            options,
            owner,
            host,
            tasks: Mutex::default(),
            stopping: Mutex::default(),
            tracker: TaskTracker::new(),
            running: Arc::default(),
            shutdown: CancellationToken::new(),
            presence,
            started_at: crate::model::now_millis(),
        });
        let handle = tokio::spawn(supervise(inner.clone()));
        Runtime {
            inner,
            supervisor: Mutex::new(Some(handle)),
        }
    }

    /// Cancelled when the runtime shuts down: for work that lives as long as it.
    pub fn stopping(&self) -> CancellationToken {
        self.inner.shutdown.child_token()
    }

    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.inner.pipe.clone()
    }

    /// How many channels this process runs right now.
    pub fn running_here(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }

    pub fn running_counter(&self) -> Arc<AtomicUsize> {
        self.inner.running.clone()
    }

    /// Whether channels run here, and which other processes work on the database.
    pub fn presence(&self) -> watch::Receiver<Presence> {
        self.inner.presence.subscribe()
    }

    /// This process's name as a lease owner (`host:pid:started`).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Looks at the desired states now instead of at the next tick.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops every task this process runs (STOPPING → STOPPED recorded), waits for each,
    /// and writes the last log lines. Desired states are left alone, so the next start
    /// resumes them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let supervisor = self.supervisor.lock().expect("supervisor lock").take();
        if let Some(h) = supervisor {
            let _ = h.await;
        }
        let ids = task_ids(&self.inner);
        let stops = ids
            .into_iter()
            .map(|id| stop_task(self.inner.clone(), id, "flametree is shutting down"));
        futures::future::join_all(stops).await;
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        let _ = self
            .inner
            .channels
            .store()
            .forget_process(&self.inner.owner)
            .await;
        self.inner.pipe.flush().await;
    }
}

async fn supervise(inner: Arc<Inner>) {
    let mut pass: u32 = 0;
    let mut runs = false;
    let mut changes = inner.options.feed.as_ref().map(|f| f.subscribe());
    let tenant_id = inner.channels.tenant().id;
    if let Some(feed) = &inner.options.feed {
        let stop = inner.shutdown.child_token();
        inner.pipe.routes.epoch.follow(feed, stop);
    }
    // Whether the connections must be read again: at start, on a change, on a wake.
    let mut dirty = true;
    let mut marker = None;
    let mut last_full = Instant::now();
    // Wanted here but leased by another process: looked at again when that lease lapses.
    let mut held_elsewhere: HashSet<i64> = HashSet::new();
    let mut trimmer = memory::Trimmer::default();
    // Notifications of queued calls may have been lost (or none came yet).
    let mut calls_missed = true;
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let presence_pass = pass.is_multiple_of(PRESENCE_EVERY);
        // Renewed in the look around's transaction: one commit every few seconds at
        // idle, not two; on its own only when that is late or failed.
        let renew_due = presence_pass || renewed_ago(&inner) >= RENEW_LATE;
        let renew_now = renew_due && !task_ids(&inner).is_empty();
        let mut renewal = None;
        if presence_pass {
            match look_around(
                &inner,
                !held_elsewhere.is_empty(),
                runs,
                pass == 0,
                renew_now,
            )
            .await
            {
                Ok((r, renewed)) => {
                    renewal = renewed.map(Ok);
                    if !held_elsewhere.is_empty() {
                        let p = inner.presence.borrow();
                        let lapsed = held_elsewhere
                            .iter()
                            .any(|id| p.leases.get(id).is_none_or(|l| l.expires_in_ms < 0));
                        if lapsed {
                            dirty = true;
                        }
                    }
                    if runs && !r {
                        hand_over(&inner, "a `flametree serve` runs the channels now").await;
                    }
                    if r && !runs {
                        dirty = true;
                    }
                    runs = r;
                }
                Err(e) => {
                    tracing::debug!("runtime: cannot look at the other processes: {e}");
                    if renew_now {
                        renewal = Some(Err(e));
                    }
                }
            }
        }
        pass = pass.wrapping_add(1);
        if renew_due {
            let renewed = match renewal {
                Some(Ok(n)) => renew(&inner, Some(n)).await,
                Some(Err(e)) => Err(e),
                None => renew(&inner, None).await,
            };
            if let Err(e) = renewed {
                tracing::warn!("runtime: cannot renew the leases: {e}");
                if renewed_ago(&inner) >= SELF_STOP {
                    hand_over(
                        &inner,
                        "the lease could not be renewed for 10 s (is the database reachable?); \
                         stopping here before another process may take over",
                    )
                    .await;
                    dirty = true;
                }
            }
        }
        // One statement a second: whether the connections or the agents changed (SQLite;
        // PostgreSQL announces it) and whether recorded messages wait for their task.
        let with_marker = runs && changes.is_none() && !dirty;
        let sweep_due = !inner.tasks.lock().expect("tasks lock").is_empty();
        let mut inbound_waiting = sweep_due;
        if with_marker || sweep_due {
            match inner.channels.store().pulse(tenant_id, with_marker).await {
                Ok(p) => {
                    if p.marker.is_some() && p.marker != marker {
                        marker = p.marker;
                        dirty = true;
                    }
                    if let Some(n) = p.agent_changes {
                        inner.pipe.routes.epoch.counter_read(n);
                    }
                    inbound_waiting &= p.inbound_waiting;
                }
                Err(e) => tracing::debug!("runtime: {e}"),
            }
        }
        if runs {
            let ended = inner.some_ended.swap(false, Ordering::AcqRel);
            let full_every = if changes.is_some() {
                FULL_PASS_LIVE
            } else {
                FULL_PASS
            };
            if dirty || ended || last_full.elapsed() >= full_every {
                match reconcile(&inner).await {
                    Ok(elsewhere) => {
                        held_elsewhere = elsewhere;
                        dirty = false;
                        last_full = Instant::now();
                        trimmer
                            .maybe_trim(
                                inner.running.load(Ordering::Relaxed),
                                inner.pipe.writer.quiet_for(),
                            )
                            .await;
                    }
                    Err(e) => {
                        if ended {
                            inner.some_ended.store(true, Ordering::Release);
                        }
                        tracing::warn!("runtime: {e}")
                    }
                }
            }
        }
        // Tasks this pass started were not asked about: their messages may be waiting.
        if !sweep_due && !inner.tasks.lock().expect("tasks lock").is_empty() {
            inbound_waiting = true;
        }
        if inbound_waiting && let Err(e) = sweep(&inner).await {
            tracing::debug!("runtime: cannot look for recorded messages: {e}");
        }
        // PostgreSQL announces each queued call; SQLite is looked at every pass.
        if changes.is_none() || calls_missed {
            match dial::pick_up(&inner.pipe).await {
                Ok(()) => calls_missed = false,
                Err(e) => tracing::debug!("runtime: cannot look for queued calls: {e}"),
            }
        }
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = inner.wake.notified() => { dirty = true; break; }
                _ = &mut tick => break,
                _ = inner.shutdown.cancelled() => return,
                change = crate::store::feed::next(&mut changes) => match change {
                    Some(crate::store::feed::Change::Connection { tenant_id: t, .. }) if t == tenant_id => {
                        dirty = true;
                    }
                    Some(crate::store::feed::Change::CallRequested { connection_id }) => {
                        dial::poke(&inner.pipe, connection_id);
                    }
                    Some(crate::store::feed::Change::Resync) => {
                        dirty = true;
                        calls_missed = true;
                    }
                    Some(_) => {}
                    None => changes = None,
                },
            }
        }
    }
}

/// Heartbeat, the other processes, dead owners on this host; returns whether channels
/// should run here. Every lease is read only when somebody looks at them (a console's
/// header and list, or `held_elsewhere` waiting for a lease to lapse); otherwise just
/// their owners: with 10,000 connections that read was most of an idle pass. All of it
/// is one transaction; the heartbeat says whether channels ran here until now, and is
/// written again at once when that changes.
async fn look_around(
    inner: &Arc<Inner>,
    need_leases: bool,
    ran: bool,
    first: bool,
    renew: bool,
) -> Result<(bool, Option<u64>), crate::store::StoreError> {
    use crate::store::LeaseRead;
    let store = inner.channels.store();
    let tenant = inner.channels.tenant().name.clone();
    let tenant_id = inner.channels.tenant().id;
    let said = match inner.options.run_channels {
        RunChannels::Always => true,
        RunChannels::Never => false,
        RunChannels::Auto => ran,
    };
    let me = |runs_channels| ProcessInfo {
        id: inner.owner.clone(),
        host: inner.host.clone(),
        pid: i64::from(std::process::id()),
        role: inner.options.role.to_string(),
        tenant: tenant.clone(),
        runs_channels,
        started_at: inner.started_at,
        seen_ms_ago: 0,
    };
    let want = if need_leases || inner.presence.receiver_count() > 0 {
        LeaseRead::All
    } else if said || (first && inner.options.run_channels == RunChannels::Auto) {
        LeaseRead::Holders
    } else {
        LeaseRead::Nothing
    };
    let round = store
        .presence_round(&me(said), tenant_id, want, renew.then_some(LEASE_MS))
        .await?;
    let renewed = round.renewed;
    let runs_now = match inner.options.run_channels {
        RunChannels::Always => true,
        RunChannels::Never => false,
        RunChannels::Auto => !presence::serve_alive(&round.processes, &inner.owner, &tenant),
    };
    if runs_now != said {
        store.heartbeat(&me(runs_now)).await?;
    }
    if runs_now {
        let owners: HashSet<String> = if want == LeaseRead::All {
            round
                .leases
                .iter()
                .filter(|l| l.expires_in_ms >= 0)
                .map(|l| l.owner.clone())
                .collect()
        } else {
            round.holders.into_iter().collect()
        };
        reclaim_dead(inner, owners).await?;
    }
    let others = round
        .processes
        .into_iter()
        .filter(|p| p.id != inner.owner && presence::alive(p))
        .collect();
    let leases = round
        .leases
        .into_iter()
        .map(|l| (l.connection_id, l))
        .collect();
    inner.presence.send_replace(Presence {
        runs_here: runs_now,
        others,
        leases,
        db_now: round.db_now,
    });
    Ok((runs_now, renewed))
}

/// A process that died on this host (its pid is gone) gives its leases back at once,
/// instead of leaving its customers unanswered for the whole lease time.
async fn reclaim_dead(
    inner: &Arc<Inner>,
    owners: HashSet<String>,
) -> Result<(), crate::store::StoreError> {
    let store = inner.channels.store();
    for owner in owners {
        if presence::dead_on_this_host(&owner, &inner.host, &inner.owner) {
            let n = store.expire_leases_of(&owner).await?;
            tracing::info!(
                "runtime: took back {n} lease(s) of {owner}, a flametree process on this host that is gone"
            );
        }
    }
    Ok(())
}

/// The connections this process runs now.
fn task_ids(inner: &Inner) -> Vec<i64> {
    inner
        .tasks
        .lock()
        .expect("tasks lock")
        .keys()
        .copied()
        .collect()
}

/// Renews every lease of this process in one statement; a task whose lease was not
/// renewed (another process took over) stops without a word to the store. Which ones
/// were renewed is read only when their number is not the number of tasks here: a
/// lease lost at the very moment another is held past its task (a stop finishing)
/// is then noticed one renewal later. `counted`: the leases were just renewed (with the
/// look around), so many of them.
async fn renew(inner: &Arc<Inner>, counted: Option<u64>) -> Result<(), crate::store::StoreError> {
    let ours = task_ids(inner);
    let now = Instant::now();
    if ours.is_empty() {
        *inner.renewed_at.lock().expect("renewal lock") = now;
        return Ok(());
    }
    let store = inner.channels.store();
    let renewed = match counted {
        Some(n) => n,
        None => store.renew_leases_counted(&inner.owner, LEASE_MS).await?,
    };
    *inner.renewed_at.lock().expect("renewal lock") = now;
    if renewed == ours.len() as u64 {
        return Ok(());
    }
    let renewed: HashSet<i64> = store
        .renew_leases(&inner.owner, LEASE_MS)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for id in ours {
        if !renewed.contains(&id) {
            inner.pipe.span(id).in_scope(|| {
                tracing::warn!("lost the lease: another process runs this connection now")
            });
            detach_task(inner, id);
        }
    }
    Ok(())
}

fn renewed_ago(inner: &Inner) -> Duration {
    inner.renewed_at.lock().expect("renewal lock").elapsed()
}

/// Stops every task here without recording a status, and gives the leases back, so
/// another process takes over at once.
async fn hand_over(inner: &Arc<Inner>, why: &str) {
    let ids = task_ids(inner);
    for id in ids {
        inner
            .pipe
            .span(id)
            .in_scope(|| tracing::info!("handing over: {why}"));
        // Given back first: whoever watches this process sees no task without a lease.
        let _ = inner.channels.store().release_lease(id, &inner.owner).await;
        detach_task(inner, id);
    }
}

/// Hands messages recorded by any process (a webhook received elsewhere, a crash
/// before the answer) to the task of their connection, if it runs here.
async fn sweep(inner: &Arc<Inner>) -> Result<(), crate::store::StoreError> {
    if inner.tasks.lock().expect("tasks lock").is_empty() {
        return Ok(());
    }
    for (id, entry) in inner.channels.store().waiting_inbound(SWEEP).await? {
        if let Some(inbox) = inner.pipe.inbox(id) {
            inbox.dispatch(entry);
        }
    }
    Ok(())
}

/// One pass: start what should run, stop what should not, notice ends. Returns the
/// connections another process holds that this one would act on once the lease lapses
/// (start them, or record the stop of an abandoned one).
async fn reconcile(inner: &Arc<Inner>) -> Result<HashSet<i64>, crate::store::StoreError> {
    let store = inner.channels.store();
    let tenant_id = inner.channels.tenant().id;
    let all = store.connection_states(tenant_id).await?;
    let by_id: HashMap<i64, &crate::store::ConnectionState> =
        all.iter().map(|c| (c.id, c)).collect();

    let finished: Vec<i64> = {
        let tasks = inner.tasks.lock().expect("tasks lock");
        tasks
            .iter()
            .filter(|(_, t)| t.finished())
            .map(|(id, _)| *id)
            .collect()
    };
    for id in finished {
        if inner
            .tasks
            .lock()
            .expect("tasks lock")
            .remove(&id)
            .is_some()
        {
            inner.running.fetch_sub(1, Ordering::Relaxed);
        }
        inner.pipe.unregister(id);
        let _ = store.release_lease(id, &inner.owner).await;
    }
    let running = task_ids(inner);
    for id in running {
        match by_id.get(&id) {
            Some(c) if c.desired == DesiredState::Running => {}
            Some(_) => {
                inner
                    .tracker
                    .spawn(stop_task(inner.clone(), id, "Stop requested"));
            }
            None => {
                inner
                    .tracker
                    .spawn(stop_task(inner.clone(), id, "the connection was deleted"));
            }
        }
    }
    // Those whose lease still runs are looked at again when it lapses.
    let mut elsewhere = settle_abandoned(inner, &all).await?;
    let to_start: Vec<i64> = {
        let tasks = inner.tasks.lock().expect("tasks lock");
        all.iter()
            .filter(|c| c.desired == DesiredState::Running && !tasks.contains_key(&c.id))
            .map(|c| c.id)
            .collect()
    };
    for c in full_rows(&**store, tenant_id, &to_start).await? {
        let here = inner.tasks.lock().expect("tasks lock").contains_key(&c.id);
        if c.desired != DesiredState::Running || here || inner.shutdown.is_cancelled() {
            continue;
        }
        // The supervisor waits for this pass: leases taken at its start would lapse
        // before it ends, and their tasks stop as if another process had taken them.
        if renewed_ago(inner) >= RENEW_DURING_START
            && let Err(e) = renew(inner, None).await
        {
            tracing::warn!("runtime: cannot renew the leases: {e}");
        }
        match store.acquire_lease(c.id, &inner.owner, LEASE_MS).await? {
            Some(generation) => {
                let fence = Fence {
                    owner: inner.owner.as_str().into(),
                    generation,
                };
                start_task(inner, c, fence).await;
            }
            None => {
                elsewhere.insert(c.id);
            }
        }
    }
    Ok(elsewhere)
}

/// The whole rows of the connections `ids` (read again: one may have changed or gone
/// since its state was read). A few are read one by one; more, with all the others.
async fn full_rows(
    store: &dyn crate::store::Store,
    tenant_id: i64,
    ids: &[i64],
) -> Result<Vec<crate::model::Connection>, crate::store::StoreError> {
    const ONE_BY_ONE: usize = 16;
    if ids.len() > ONE_BY_ONE {
        let wanted: HashSet<i64> = ids.iter().copied().collect();
        let mut all = store.list_connections(tenant_id).await?;
        all.retain(|c| wanted.contains(&c.id));
        return Ok(all);
    }
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        found.extend(store.connection(*id).await?);
    }
    Ok(found)
}

/// Connections asked to stop whose process ended without stopping them (killed, or
/// its terminal hung up): they still show the live status it last wrote, and nothing
/// else would write STOPPED. The process that can take the lease — free, expired or
/// taken back from a dead owner — records it; a live owner still stopping one keeps
/// its lease until it has written STOPPED itself. Returns those whose lease is held.
async fn settle_abandoned(
    inner: &Arc<Inner>,
    all: &[crate::store::ConnectionState],
) -> Result<HashSet<i64>, crate::store::StoreError> {
    use crate::model::Status;
    let live = [Status::Starting, Status::Running, Status::Stopping];
    let store = inner.channels.store();
    let mut held = HashSet::new();
    for c in all {
        if c.desired == DesiredState::Running || !live.contains(&c.status) {
            continue;
        }
        // One this process runs or is stopping is not abandoned: its lease is already
        // ours, so taking it would succeed and record the stop before the task ends.
        let here = {
            let tasks = inner.tasks.lock().expect("tasks lock");
            tasks.contains_key(&c.id)
                || inner
                    .stopping
                    .lock()
                    .expect("stopping lock")
                    .contains(&c.id)
        };
        if here {
            continue;
        }
        if store
            .acquire_lease(c.id, &inner.owner, LEASE_MS)
            .await?
            .is_none()
        {
            held.insert(c.id);
            continue;
        }
        if store
            .set_status_from(c.id, &live, Status::Stopped, "")
            .await?
        {
            let _ = store.set_running_version(c.id, None).await;
            inner.pipe.span(c.id).in_scope(|| {
                tracing::info!(
                    "stopped: the process that ran it ended without stopping it ({} until then)",
                    c.status
                )
            });
        }
        store.release_lease(c.id, &inner.owner).await?;
    }
    Ok(held)
}

async fn start_task(inner: &Arc<Inner>, c: crate::model::Connection, fence: Fence) {
    // Not a child of `shutdown`: shutdown stops each task itself, saying why.
    let stop = CancellationToken::new();
    let quiet = Arc::new(AtomicBool::new(false));
    let id = c.id;
    let name = c.name.clone();
    let ended = Arc::new(AtomicBool::new(false));
    let (this_ended, some_ended) = (ended.clone(), inner.some_ended.clone());
    let handle = tokio::spawn(
        task::run(
            task::TaskEnv {
                pipe: inner.pipe.clone(),
                start_timeout: inner.options.start_timeout,
                public_base: inner.options.public_base.clone(),
                open: inner.options.open,
                fence,
                quiet: quiet.clone(),
            },
            c,
            stop.clone(),
        )
        .map(move |()| {
            this_ended.store(true, Ordering::Release);
            some_ended.store(true, Ordering::Release);
        }),
    );
    inner.tasks.lock().expect("tasks lock").insert(
        id,
        Task {
            name,
            stop,
            quiet,
            ended,
            handle,
        },
    );
    inner.running.fetch_add(1, Ordering::Relaxed);
}

/// Lets go of a task that another process takes over: it stops without recording a
/// status (the new owner records its own).
fn detach_task(inner: &Arc<Inner>, id: i64) {
    if let Some(task) = inner.tasks.lock().expect("tasks lock").remove(&id) {
        task.quiet.store(true, Ordering::SeqCst);
        task.stop.cancel();
        inner.running.fetch_sub(1, Ordering::Relaxed);
        let span = inner.pipe.span(id);
        inner.tracker.spawn(async move {
            end_within_grace(task.handle, &task.name, &span).await;
        });
    }
    inner.pipe.unregister(id);
}

/// Waits for a task told to stop; aborts it (and says so in its log) after the grace
/// period. False when it had to be aborted.
async fn end_within_grace(mut handle: JoinHandle<()>, name: &str, span: &tracing::Span) -> bool {
    if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_ok() {
        return true;
    }
    handle.abort();
    span.in_scope(|| {
        tracing::warn!(
            "'{name}' did not stop within {} s; it was aborted",
            STOP_GRACE.as_secs()
        )
    });
    false
}

/// STOPPING, ask the task to stop, wait (abort after the grace period), STOPPED.
async fn stop_task(inner: Arc<Inner>, id: i64, why: &'static str) {
    let task = {
        let mut tasks = inner.tasks.lock().expect("tasks lock");
        let task = tasks.remove(&id);
        if task.is_some() {
            inner.stopping.lock().expect("stopping lock").insert(id);
        }
        task
    };
    let Some(task) = task else {
        return;
    };
    inner.running.fetch_sub(1, Ordering::Relaxed);
    let span = inner.pipe.span(id);
    let handle = task.handle;
    if !handle.is_finished() {
        // Only over a live status: a task that failed has just written ERROR (and set
        // the desired state to STOPPED, which is what brought us here); STOPPING over
        // it would stay, as nothing else writes a status for an ended task.
        use crate::model::Status;
        let _ = inner
            .channels
            .store()
            .set_status_from(
                id,
                &[Status::Starting, Status::Running],
                Status::Stopping,
                "",
            )
            .await;
        span.in_scope(|| tracing::info!("stopping: {why}"));
    }
    task.stop.cancel();
    if !end_within_grace(handle, &task.name, &span).await {
        task::record_stopped(&inner.pipe, id).await;
    }
    inner.pipe.unregister(id);
    let _ = inner.channels.store().release_lease(id, &inner.owner).await;
    inner.stopping.lock().expect("stopping lock").remove(&id);
    if let Some(r) = &inner.pipe.router {
        r.forget(id);
    }
}
