//! Giving memory back once a burst is over. Starting thousands of connections decodes
//! every connection row several times and opens thousands of sockets; glibc keeps the
//! pages those allocations freed in its arenas, so the process stayed ~100 MiB larger
//! than its heap (10,000 idle bots: 362 MiB resident for a 175 MiB heap at its peak).

use std::time::{Duration, Instant};

/// At most this often: a trim walks every arena's free lists.
const EVERY: Duration = Duration::from_secs(30);
/// No messages recorded or answered for this long before a trim.
const QUIET: Duration = Duration::from_secs(5);
/// Below this many running connections the arenas stay small; nothing to gain.
const WORTH_IT: usize = 100;

#[derive(Default)]
pub struct Trimmer {
    last: Option<Instant>,
}

impl Trimmer {
    /// Hands freed memory back to the system, when due and worth it, and only while
    /// no messages flow (`quiet_for`): a trim holds each malloc arena's lock while it
    /// walks it, and with two arenas every thread that allocates waits. Trimming in the
    /// middle of a burst froze the whole process for half a second.
    pub async fn maybe_trim(&mut self, running: usize, quiet_for: Duration) {
        if running < WORTH_IT || quiet_for < QUIET || self.last.is_some_and(|t| t.elapsed() < EVERY)
        {
            return;
        }
        self.last = Some(Instant::now());
        // Tens of milliseconds with a large heap: not on a runtime worker.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

/// At most two malloc arenas. glibc gives each thread that meets contention an arena of
/// its own (up to 8 per core), and every arena keeps what was freed in it: after a burst
/// of 5,000 messages through 1,000 bots the process held 57 MiB more with the default,
/// 40 MiB with two. The tokio workers are few and allocation is rarely contended, so
/// the cost is nothing measurable. Call before the async runtime's threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes glibc's allocator; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_trim_while_messages_flow() {
        let mut t = Trimmer::default();
        t.maybe_trim(1_000, Duration::from_millis(200)).await;
        assert!(t.last.is_none(), "busy a moment ago: not trimmed");
        t.maybe_trim(10, Duration::from_secs(60)).await;
        assert!(t.last.is_none(), "too few connections to be worth it");
        t.maybe_trim(1_000, QUIET).await;
        assert!(t.last.is_some(), "quiet long enough: trimmed");
    }
}
