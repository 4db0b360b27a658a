//! The runtime: reconciles each connection's desired state (Start/Stop) into a running
//! task, records every transition, and stops everything cleanly on shutdown.
//!
//! The console and `flametree serve` run the same runtime. A connection is run by one
//! process at a time: the one holding its lease, renewed every second while it runs.

pub mod host;
pub mod logs;
pub mod pipeline;
mod task;
pub mod writer;

pub use pipeline::Pipeline;
pub use task::{open_config_with, webhook_url};
pub mod retention;

use crate::channels::Channels;
use crate::model::DesiredState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A lease outlives this many missed renewals before another process may take over.
const LEASE_MS: i64 = 15_000;
/// How long a task gets to stop before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Recorded messages handed to their connection's task per sweep.
const SWEEP: u32 = 1_000;

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
}

impl Default for Options {
    fn default() -> Options {
        Options {
            start_timeout: Duration::from_secs(60),
            public_base: "http://127.0.0.1:8787".into(),
            open: crate::connectors::open,
        }
    }
}

impl Options {
    pub fn from_config(
        cfg: &crate::config::Config,
        bound: Option<std::net::SocketAddr>,
    ) -> Options {
        Options {
            start_timeout: Duration::from_secs(cfg.runtime.start_timeout_secs.max(1)),
            public_base: cfg.http.public_base(bound),
            open: crate::connectors::open,
        }
    }
}

struct Task {
    name: String,
    stop: CancellationToken,
    handle: JoinHandle<()>,
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
    tasks: Mutex<HashMap<i64, Task>>,
    tracker: TaskTracker,
    running: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
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
        let owner = format!(
            "{}:{}:{}",
            whoami::hostname().unwrap_or_else(|_| "host".into()),
            std::process::id(),
            crate::model::now_millis()
        );
        let inner = Arc::new(Inner {
            wake: pipe.channels.wake_handle(),
            channels: pipe.channels.clone(),
            pipe,
            options,
            owner,
            tasks: Mutex::default(),
            tracker: TaskTracker::new(),
            running: Arc::default(),
            shutdown: CancellationToken::new(),
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
        let ids: Vec<i64> = self
            .inner
            .tasks
            .lock()
            .expect("tasks lock")
            .keys()
            .copied()
            .collect();
        let stops = ids
            .into_iter()
            .map(|id| stop_task(self.inner.clone(), id, "flametree is shutting down"));
        futures::future::join_all(stops).await;
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.pipe.flush().await;
    }
}

async fn supervise(inner: Arc<Inner>) {
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = reconcile(&inner).await {
            tracing::warn!("runtime: {e}");
        }
        if let Err(e) = sweep(&inner).await {
            tracing::debug!("runtime: cannot look for recorded messages: {e}");
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = inner.shutdown.cancelled() => return,
        }
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

/// One pass: start what should run, stop what should not, renew leases, notice ends.
async fn reconcile(inner: &Arc<Inner>) -> Result<(), crate::store::StoreError> {
    let store = inner.channels.store();
    let all = store.list_connections(inner.channels.tenant().id).await?;
    let by_id: HashMap<i64, &crate::model::Connection> = all.iter().map(|c| (c.id, c)).collect();

    let finished: Vec<i64> = {
        let tasks = inner.tasks.lock().expect("tasks lock");
        tasks
            .iter()
            .filter(|(_, t)| t.handle.is_finished())
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
    let running: Vec<i64> = inner
        .tasks
        .lock()
        .expect("tasks lock")
        .keys()
        .copied()
        .collect();
    for id in running {
        match by_id.get(&id) {
            Some(c) if c.desired == DesiredState::Running => {
                if !store.acquire_lease(id, &inner.owner, LEASE_MS).await? {
                    tracing::warn!(
                        "runtime: lost the lease on connection {id}; another process runs it now"
                    );
                    detach_task(inner, id);
                }
            }
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
    for c in &all {
        let here = inner.tasks.lock().expect("tasks lock").contains_key(&c.id);
        if c.desired == DesiredState::Running
            && !here
            && !inner.shutdown.is_cancelled()
            && store.acquire_lease(c.id, &inner.owner, LEASE_MS).await?
        {
            start_task(inner, c.clone()).await;
        }
    }
    Ok(())
}

async fn start_task(inner: &Arc<Inner>, c: crate::model::Connection) {
    // Not a child of `shutdown`: shutdown stops each task itself, saying why.
    let stop = CancellationToken::new();
    let id = c.id;
    let name = c.name.clone();
    let handle = tokio::spawn(task::run(
        task::TaskEnv {
            pipe: inner.pipe.clone(),
            start_timeout: inner.options.start_timeout,
            public_base: inner.options.public_base.clone(),
            open: inner.options.open,
        },
        c,
        stop.clone(),
    ));
    inner
        .tasks
        .lock()
        .expect("tasks lock")
        .insert(id, Task { name, stop, handle });
    inner.running.fetch_add(1, Ordering::Relaxed);
}

/// Lets go of a task that another process now owns, without touching its status.
fn detach_task(inner: &Arc<Inner>, id: i64) {
    if let Some(task) = inner.tasks.lock().expect("tasks lock").remove(&id) {
        task.stop.cancel();
        task.handle.abort();
        inner.running.fetch_sub(1, Ordering::Relaxed);
    }
    inner.pipe.unregister(id);
}

/// STOPPING, ask the task to stop, wait (abort after the grace period), STOPPED.
async fn stop_task(inner: Arc<Inner>, id: i64, why: &'static str) {
    let Some(task) = inner.tasks.lock().expect("tasks lock").remove(&id) else {
        return;
    };
    inner.running.fetch_sub(1, Ordering::Relaxed);
    let span = inner.pipe.span(id);
    let mut handle = task.handle;
    if !handle.is_finished() {
        let _ = inner
            .channels
            .store()
            .set_status(id, crate::model::Status::Stopping, "")
            .await;
        span.in_scope(|| tracing::info!("stopping: {why}"));
    }
    task.stop.cancel();
    if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_err() {
        handle.abort();
        span.in_scope(|| {
            tracing::warn!(
                "'{}' did not stop within {} s; it was aborted",
                task.name,
                STOP_GRACE.as_secs()
            )
        });
        task::record_stopped(&inner.pipe, id).await;
    }
    inner.pipe.unregister(id);
    let _ = inner.channels.store().release_lease(id, &inner.owner).await;
    if let Some(r) = &inner.pipe.router {
        r.forget(id);
    }
}
