//! The runtime: reconciles each connection's desired state (Start/Stop) into a running
//! task, records every transition, and stops everything cleanly on shutdown.
//!
//! The console and `flametree serve` run the same runtime. A connection is run by one
//! process at a time: the one holding its lease, renewed every second while it runs.

pub mod logs;
pub mod retention;

use crate::channels::Channels;
use crate::connectors::{self, ConnectorError, Shared, TaskContext};
use crate::model::{Connection, DesiredState, Status};
use crate::store::AuditNote;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A lease outlives this many missed renewals before another process may take over.
const LEASE_MS: i64 = 15_000;
/// How long a task gets to stop before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);

struct Task {
    name: String,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

pub struct Runtime {
    inner: Arc<Inner>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    channels: Arc<Channels>,
    owner: String,
    tasks: Mutex<HashMap<i64, Task>>,
    running: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    shared: Shared,
    router: Option<(usize, logs::LogRouter)>,
}

impl Runtime {
    /// Starts the supervisor, with the tasks' log lines going to the connection logs
    /// (store, in batches, keeping `keep` lines each; and the live bus).
    pub fn launch(channels: Arc<Channels>, keep: u32) -> Runtime {
        let router = logs::LogRouter::start(channels.store().clone(), channels.bus().clone(), keep);
        let index = logs::install_router(router.clone());
        Runtime::start(channels, Some((index, router)))
    }

    /// Starts the supervisor. `router` routes the tasks' log lines (None: not logged).
    pub fn start(channels: Arc<Channels>, router: Option<(usize, logs::LogRouter)>) -> Runtime {
        let owner = format!(
            "{}:{}:{}",
            whoami::hostname().unwrap_or_else(|_| "host".into()),
            std::process::id(),
            crate::model::now_millis()
        );
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            wake: channels.wake_handle(),
            channels,
            owner,
            tasks: Mutex::default(),
            running: Arc::default(),
            shutdown,
            shared: Shared::new(),
            router,
        });
        let handle = tokio::spawn(supervise(inner.clone()));
        Runtime {
            inner,
            supervisor: Mutex::new(Some(handle)),
        }
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

    /// Stops every task this process runs (STOPPING → STOPPED recorded) and the
    /// supervisor. Desired states are left alone, so the next start resumes them.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
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
    }
}

async fn supervise(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = reconcile(&inner).await {
            tracing::warn!("runtime: {e}");
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass: start what should run, stop what should not, renew leases, notice ends.
async fn reconcile(inner: &Arc<Inner>) -> Result<(), crate::store::StoreError> {
    let store = inner.channels.store();
    let all = store.list_connections(inner.channels.tenant().id).await?;
    let by_id: HashMap<i64, &Connection> = all.iter().map(|c| (c.id, c)).collect();

    let finished: Vec<i64> = {
        let tasks = inner.tasks.lock().expect("tasks lock");
        tasks
            .iter()
            .filter(|(_, t)| t.handle.is_finished())
            .map(|(id, _)| *id)
            .collect()
    };
    for id in finished {
        inner.tasks.lock().expect("tasks lock").remove(&id);
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
                tokio::spawn(stop_task(inner.clone(), id, "Stop requested"));
            }
            None => {
                tokio::spawn(stop_task(inner.clone(), id, "the connection was deleted"));
            }
        }
    }
    for c in &all {
        let wanted = c.desired == DesiredState::Running;
        let has_lifecycle = crate::catalog::Catalog::get()
            .find(&c.type_key)
            .is_some_and(|t| t.has_start_stop());
        let here = inner.tasks.lock().expect("tasks lock").contains_key(&c.id);
        if wanted
            && has_lifecycle
            && !here
            && store.acquire_lease(c.id, &inner.owner, LEASE_MS).await?
        {
            start_task(inner, c.clone()).await;
        }
    }
    inner.running.store(
        inner.tasks.lock().expect("tasks lock").len(),
        Ordering::Relaxed,
    );
    Ok(())
}

async fn start_task(inner: &Arc<Inner>, c: Connection) {
    let ch = &inner.channels;
    let _ = ch.store().set_status(c.id, Status::Starting, "").await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = TaskContext {
        connection: c.clone(),
        channels: ch.clone(),
        router: inner.router.as_ref().map(|(_, r)| r.clone()),
        stop: stop_rx,
        shared: inner.shared.clone(),
    };
    let span = task_span(inner, c.id);
    let task_inner = inner.clone();
    let (id, version) = (c.id, c.version);
    let handle = tokio::spawn(
        async move {
            tracing::info!("starting (configuration version {version})");
            let result = connectors::run(ctx).await;
            finish(&task_inner, id, result).await;
        }
        .instrument(span),
    );
    inner.tasks.lock().expect("tasks lock").insert(
        c.id,
        Task {
            name: c.name.clone(),
            stop: stop_tx,
            handle,
        },
    );
    inner.running.fetch_add(1, Ordering::Relaxed);
}

/// A task ended by itself: a permanent error goes to ERROR and the desired state back
/// to STOPPED, so it is not retried in a loop — the operator fixes it and starts it.
async fn finish(inner: &Arc<Inner>, id: i64, result: Result<(), ConnectorError>) {
    let store = inner.channels.store();
    if let Err(ConnectorError::Permanent(why)) = result {
        tracing::error!("{why}");
        let _ = store.set_status(id, Status::Error, &why).await;
        let _ = store.set_running_version(id, None).await;
        let note = AuditNote::new("runtime", "stop", format!("failed: {why}"));
        let _ = store
            .set_desired_state(id, DesiredState::Stopped, &note)
            .await;
        if let Some((_, r)) = &inner.router {
            r.forget(id);
        }
    }
}

/// The span a connection's task runs in: its events become the connection's log.
fn task_span(inner: &Inner, id: i64) -> tracing::Span {
    let router = inner
        .router
        .as_ref()
        .map(|(i, _)| *i as u64)
        .unwrap_or(u64::MAX);
    tracing::info_span!(logs::SPAN, connection_id = id, router = router)
}

/// Lets go of a task that another process now owns, without touching its status.
fn detach_task(inner: &Arc<Inner>, id: i64) {
    if let Some(task) = inner.tasks.lock().expect("tasks lock").remove(&id) {
        let _ = task.stop.send(true);
        task.handle.abort();
        inner.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// STOPPING, ask the task to stop, wait (abort after the grace period), STOPPED.
async fn stop_task(inner: Arc<Inner>, id: i64, why: &'static str) {
    let Some(task) = inner.tasks.lock().expect("tasks lock").remove(&id) else {
        return;
    };
    inner.running.fetch_sub(1, Ordering::Relaxed);
    let store = inner.channels.store();
    let span = task_span(&inner, id);
    let errored = store
        .connection(id)
        .await
        .ok()
        .flatten()
        .is_some_and(|c| c.status == Status::Error);
    if !task.handle.is_finished() {
        let _ = store.set_status(id, Status::Stopping, "").await;
        span.in_scope(|| tracing::info!("stopping: {why}"));
    }
    let _ = task.stop.send(true);
    let mut handle = task.handle;
    if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_err() {
        handle.abort();
        span.in_scope(|| {
            tracing::warn!(
                "'{}' did not stop within {} s; it was aborted",
                task.name,
                STOP_GRACE.as_secs()
            )
        });
    }
    if !errored {
        let _ = store.set_status(id, Status::Stopped, "").await;
        span.in_scope(|| tracing::info!("stopped"));
    }
    let _ = store.set_running_version(id, None).await;
    let _ = store.release_lease(id, &inner.owner).await;
    if let Some((_, r)) = &inner.router {
        r.forget(id);
    }
}
