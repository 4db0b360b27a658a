//! The calls a voice connection holds right now, as its connector reports them. The
//! runtime turns the count into the connection's RUNNING message ("answering +1415… ·
//! 2 calls in progress"), which every console sees through the store's change feed —
//! consoles are often other processes than the one holding the calls.
//!
//! A connector takes `cfg.calls.clone()` in its `open` and says, with the call's own id
//! (Twilio's CallSid, SIP's Call-ID):
//!
//! ```ignore
//! calls.started(call_id); // the call is answered (or an outbound call connects)
//! calls.ended(call_id);   // BYE, hang-up, or the provider says it is over
//! ```
//!
//! Both are idempotent per id (a retried webhook counts once; ending twice is harmless),
//! cheap (a lock and a watch send), and never block. A call whose end never arrives is
//! forgotten after `LONGEST_CALL`. The count is per connection and per process
//! (`Pipeline::calls`): the running task's connector and the webhook ingress's share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A call reported as started but never as ended is forgotten after this long: Twilio
/// ends every call at 4 h (its default time limit), and an end that was never delivered
/// (a lost status callback) must not show a call in progress for ever.
pub const LONGEST_CALL: Duration = Duration::from_secs(4 * 3600);

#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

struct Inner {
    /// Call id → when it started.
    live: Mutex<HashMap<String, Instant>>,
    count: watch::Sender<usize>,
}

impl Default for Calls {
    fn default() -> Calls {
        Calls {
            inner: Arc::new(Inner {
                live: Mutex::default(),
                count: watch::Sender::new(0),
            }),
        }
    }
}

impl Calls {
    /// The calls of a connection that carries none (every type but the voice lines,
    /// which get their own from the runtime): one instance shared by all of them, as a
    /// count nobody changes cost each of 1,000 bots a third of a KiB.
    pub fn none() -> Calls {
        static NONE: std::sync::OnceLock<Calls> = std::sync::OnceLock::new();
        NONE.get_or_init(Calls::default).clone()
    }

    /// A call is in progress from now on (again: no change).
    pub fn started(&self, call_id: &str) {
        let mut live = self.inner.live.lock().expect("calls lock");
        if !live.contains_key(call_id) {
            live.insert(call_id.to_string(), Instant::now());
            self.inner.count.send_replace(live.len());
        }
    }

    /// The call is over (unknown or already ended: no change).
    pub fn ended(&self, call_id: &str) {
        let mut live = self.inner.live.lock().expect("calls lock");
        if live.remove(call_id).is_some() {
            self.inner.count.send_replace(live.len());
        }
    }

    /// Forgets the calls that started more than `age` ago (their end was lost).
    pub fn forget_older_than(&self, age: Duration) {
        let mut live = self.inner.live.lock().expect("calls lock");
        let before = live.len();
        live.retain(|_, started| started.elapsed() < age);
        if live.len() != before {
            self.inner.count.send_replace(live.len());
        }
    }

    /// Calls in progress.
    pub fn count(&self) -> usize {
        *self.inner.count.borrow()
    }

    /// Follows the count: each change is seen (the latest when several came at once).
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.inner.count.subscribe()
    }
}

/// The status words for a count: nothing when idle, so a quiet line's message stays as
/// it was.
pub fn in_progress(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "1 call in progress".into(),
        n => format!("{n} calls in progress"),
    }
}

/// The calls in progress a status message reports (`in_progress`'s words at its end):
/// what a console shows, read back from the store.
pub fn count_in(message: &str) -> usize {
    let Some(rest) = message
        .strip_suffix(" calls in progress")
        .or_else(|| message.strip_suffix(" call in progress"))
    else {
        return 0;
    };
    let digits = rest.rsplit([' ', '·']).next().unwrap_or("");
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_call_once_and_ends_only_known_ones() {
        let calls = Calls::default();
        let seen = calls.watch();
        calls.started("CA1");
        calls.started("CA1");
        calls.started("CA2");
        assert_eq!(calls.count(), 2);
        calls.ended("CA9");
        calls.ended("CA1");
        calls.ended("CA1");
        assert_eq!(calls.count(), 1);
        assert_eq!(*seen.borrow(), 1);
        calls.forget_older_than(LONGEST_CALL);
        assert_eq!(calls.count(), 1, "a young call stays");
        calls.forget_older_than(Duration::ZERO);
        assert_eq!(calls.count(), 0, "a call whose end was lost goes");
        assert_eq!(in_progress(0), "");
        assert_eq!(in_progress(1), "1 call in progress");
        assert_eq!(in_progress(3), "3 calls in progress");
        assert_eq!(count_in("answering +1415 · 3 calls in progress"), 3);
        assert_eq!(count_in("1 call in progress"), 1);
        assert_eq!(count_in("answering +1415"), 0);
        assert_eq!(count_in("a call in progress"), 0);
    }
}
