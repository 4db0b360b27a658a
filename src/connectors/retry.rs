//! The one retry helper of every connector and of replies: capped exponential backoff
//! with jitter (backon's), the provider's own `retry_after` when it gives one, and no
//! waiting at all once Stop is requested.

use super::ConnectorError;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub first: Duration,
    pub cap: Duration,
    /// `None`: until it works or Stop.
    pub attempts: Option<u32>,
}

impl Policy {
    /// Connecting and polling: keep trying, 1 s doubling to a minute.
    pub const FOREVER: Policy = Policy {
        first: Duration::from_secs(1),
        cap: Duration::from_secs(60),
        attempts: None,
    };
    /// A reply to one customer: a few tries within about a minute.
    pub const REPLY: Policy = Policy {
        first: Duration::from_secs(1),
        cap: Duration::from_secs(16),
        attempts: Some(5),
    };
}

/// A failed attempt that will be retried, for the status line and the log.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The attempt that comes next (2 after the first failure).
    pub next_attempt: u32,
    pub wait: Duration,
    /// The provider's words, short.
    pub why: String,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; retry {} in {}",
            self.why,
            self.next_attempt,
            short_duration(self.wait)
        )
    }
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", s.round() as u64)
    }
}

/// What `retry` ended with.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    /// Stop was requested while waiting or trying.
    Stopped,
    /// A permanent error, or the attempts ran out (the last transient error).
    Failed(ConnectorError),
}

/// Runs `op` until it succeeds, fails permanently, the policy's attempts run out, or
/// `stop` is cancelled. `on_wait` hears about each wait before it starts.
// An async fn's future keeps its arguments twice (see the body).
#[allow(clippy::manual_async_fn)]
pub fn retry<'a, T, F, Fut>(
    stop: &'a CancellationToken,
    policy: Policy,
    mut on_wait: impl FnMut(&Waiting) + 'a,
    mut op: F,
) -> impl Future<Output = Outcome<T>> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<T, ConnectorError>> + 'a,
{
    // An async block rather than an async fn: an async fn's future keeps its arguments
    // twice, and every idle poll of 10,000 bots sits inside one of these.
    async move {
        // Boxed and made at the first failure: most waits never fail.
        let mut delays: Option<Box<backon::ExponentialBackoff>> = None;
        let mut attempt = 1u32;
        loop {
            let result = tokio::select! {
                r = op() => r,
                _ = stop.cancelled() => return Outcome::Stopped,
            };
            let (why, after) = match result {
                Ok(v) => return Outcome::Done(v),
                Err(ConnectorError::Transient { why, retry_after }) => (why, retry_after),
                Err(e) => return Outcome::Failed(e),
            };
            if policy.attempts.is_some_and(|max| attempt >= max) {
                return Outcome::Failed(ConnectorError::Transient {
                    why: format!("{why} (gave up after {attempt} attempts)"),
                    retry_after: None,
                });
            }
            let backoff = delays
                .get_or_insert_with(|| {
                    Box::new(
                        ExponentialBuilder::default()
                            .with_min_delay(policy.first)
                            .with_max_delay(policy.cap)
                            .with_jitter()
                            .without_max_times()
                            .build(),
                    )
                })
                .next()
                .unwrap_or(policy.cap);
            let wait = after
                .map(|a| a.min(Duration::from_secs(3600)))
                .unwrap_or(backoff);
            attempt += 1;
            on_wait(&Waiting {
                next_attempt: attempt,
                wait,
                why,
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return Outcome::Stopped,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient(after: Option<Duration>) -> ConnectorError {
        ConnectorError::Transient {
            why: "cannot reach it (connection refused)".into(),
            retry_after: after,
        }
    }

    const FAST: Policy = Policy {
        first: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        attempts: Some(4),
    };

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = Arc::new(AtomicU32::new(0));
        let mut notes = Vec::new();
        let c = calls.clone();
        let out = retry(
            &CancellationToken::new(),
            FAST,
            |w| notes.push(w.to_string()),
            || {
                let c = c.clone();
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(transient(None))
                    } else {
                        Ok(7)
                    }
                }
            },
        )
        .await;
        assert!(matches!(out, Outcome::Done(7)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("cannot reach it (connection refused); retry 2 in "));
        assert!(notes[1].contains("retry 3 in "));
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Outcome<()> = retry(
            &CancellationToken::new(),
            FAST,
            |_| {},
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ConnectorError::Permanent("bad token".into())) }
            },
        )
        .await;
        assert!(matches!(out, Outcome::Failed(ConnectorError::Permanent(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_policy_s_attempts() {
        let calls = AtomicU32::new(0);
        let out: Outcome<()> = retry(
            &CancellationToken::new(),
            FAST,
            |_| {},
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(transient(None)) }
            },
        )
        .await;
        match out {
            Outcome::Failed(e) => assert!(e.to_string().contains("gave up after 4 attempts")),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn honours_the_provider_s_retry_after() {
        let mut waits = Vec::new();
        let calls = AtomicU32::new(0);
        let _ = retry(
            &CancellationToken::new(),
            FAST,
            |w| waits.push(w.wait),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(transient(Some(Duration::from_millis(30))))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        assert_eq!(waits, vec![Duration::from_millis(30)]);
    }

    #[tokio::test]
    async fn stop_ends_the_wait_at_once() {
        let stop = CancellationToken::new();
        let policy = Policy {
            first: Duration::from_secs(3600),
            cap: Duration::from_secs(3600),
            attempts: None,
        };
        let s = stop.clone();
        let task = tokio::spawn(async move {
            retry(
                &s,
                policy,
                |_| {},
                || async { Err::<(), _>(transient(None)) },
            )
            .await
        });
        tokio::task::yield_now().await;
        stop.cancel();
        let out = task.await.expect("retry task");
        assert!(matches!(out, Outcome::Stopped));
    }
}
