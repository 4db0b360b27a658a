//! The visitors connected to this process, by widget: where a reply is pushed, where
//! it waits while its visitor reloads the page, and how many are live.
//!
//! Keyed by the widget's public id (its connection's hook id): unique across
//! databases, so two runtimes in one process never share an entry.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Frames queued for one open socket before it counts as stuck (and drops some).
const SOCKET_QUEUE: usize = 64;
/// Replies kept for a visitor with no open socket (reloading, or a flaky network).
const PENDING_MAX: usize = 20;
const PENDING_TTL: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Hub {
    widgets: Mutex<HashMap<String, Arc<Widget>>>,
}

static HUB: LazyLock<Hub> = LazyLock::new(Hub::default);

pub fn hub() -> &'static Hub {
    &HUB
}

impl Hub {
    pub fn widget(&self, public_id: &str) -> Arc<Widget> {
        self.widgets
            .lock()
            .expect("widgets lock")
            .entry(public_id.to_string())
            .or_default()
            .clone()
    }

    /// The widget if anyone ever connected to it here.
    pub fn find(&self, public_id: &str) -> Option<Arc<Widget>> {
        self.widgets
            .lock()
            .expect("widgets lock")
            .get(public_id)
            .cloned()
    }
}

#[derive(Default)]
struct Visitor {
    sockets: Vec<(u64, mpsc::Sender<String>)>,
    pending: VecDeque<(Instant, String)>,
}

#[derive(Default)]
pub struct Widget {
    /// This process runs the widget's connection (its agent is started here).
    running_here: AtomicBool,
    /// Bumped when it starts or stops here: what was looked up before is stale.
    epoch: AtomicU64,
    visitors: Mutex<HashMap<String, Visitor>>,
    next_socket: AtomicU64,
    /// Replies kept for absent visitors so far: every `SWEEP_EVERY`th, the visitors who
    /// never came back for theirs are forgotten.
    kept: AtomicU64,
}

const SWEEP_EVERY: u64 = 512;

/// One open socket of a visitor.
pub struct Joined {
    pub socket: u64,
    pub frames: mpsc::Receiver<String>,
    /// Replies that arrived while the visitor had no socket open.
    pub pending: Vec<String>,
}

impl Widget {
    pub fn running_here(&self) -> bool {
        self.running_here.load(Ordering::SeqCst)
    }

    pub fn set_running_here(&self, on: bool) {
        self.running_here.store(on, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn join(&self, visitor: &str) -> Joined {
        let socket = self.next_socket.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::channel(SOCKET_QUEUE);
        let mut all = self.visitors.lock().expect("visitors lock");
        let v = all.entry(visitor.to_string()).or_default();
        v.sockets.push((socket, tx));
        let pending = v
            .pending
            .drain(..)
            .filter(|(at, _)| at.elapsed() < PENDING_TTL)
            .map(|(_, f)| f)
            .collect();
        Joined {
            socket,
            frames,
            pending,
        }
    }

    pub fn leave(&self, visitor: &str, socket: u64) {
        let mut all = self.visitors.lock().expect("visitors lock");
        if let Some(v) = all.get_mut(visitor) {
            v.sockets.retain(|(id, _)| *id != socket);
            if v.sockets.is_empty() && v.pending.is_empty() {
                all.remove(visitor);
            }
        }
    }

    /// Pushes a frame to every open socket of the visitor, or keeps it for their next
    /// connection. True when a socket took it.
    pub fn deliver(&self, visitor: &str, frame: String) -> bool {
        let mut all = self.visitors.lock().expect("visitors lock");
        let v = all.entry(visitor.to_string()).or_default();
        v.sockets.retain(|(_, tx)| !tx.is_closed());
        let mut taken = false;
        for (_, tx) in &v.sockets {
            taken |= tx.try_send(frame.clone()).is_ok();
        }
        if !taken {
            v.pending.retain(|(at, _)| at.elapsed() < PENDING_TTL);
            if v.pending.len() >= PENDING_MAX {
                v.pending.pop_front();
            }
            v.pending.push_back((Instant::now(), frame));
            if self.kept.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                all.retain(|_, v| {
                    !v.sockets.is_empty()
                        || v.pending.iter().any(|(at, _)| at.elapsed() < PENDING_TTL)
                });
            }
        }
        taken
    }

    /// A frame for every open socket (the widget went online or offline).
    pub fn broadcast(&self, frame: &str) {
        let all = self.visitors.lock().expect("visitors lock");
        for v in all.values() {
            for (_, tx) in &v.sockets {
                let _ = tx.try_send(frame.to_string());
            }
        }
    }

    /// Visitors with at least one open socket here.
    pub fn live_visitors(&self) -> usize {
        self.visitors
            .lock()
            .expect("visitors lock")
            .values()
            .filter(|v| !v.sockets.is_empty())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_waits_for_a_visitor_who_is_reloading() {
        let w = Widget::default();
        assert!(!w.deliver("v1", "first".into()));
        let mut j = w.join("v1");
        assert_eq!(j.pending, ["first"]);
        assert_eq!(w.live_visitors(), 1);
        assert!(w.deliver("v1", "second".into()));
        assert_eq!(j.frames.recv().await.as_deref(), Some("second"));
        w.leave("v1", j.socket);
        assert_eq!(w.live_visitors(), 0);
        for i in 0..PENDING_MAX + 5 {
            w.deliver("v1", format!("m{i}"));
        }
        let j = w.join("v1");
        assert_eq!(j.pending.len(), PENDING_MAX);
        assert_eq!(j.pending[0], "m5");
    }
}
