//! Changes made by any process, as they happen: PostgreSQL's LISTEN/NOTIFY (triggers
//! in migration 0007 announce them). SQLite has none; its readers use the cheap change
//! check instead.

use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// What changed; the data itself is read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Connection {
        tenant_id: i64,
        id: i64,
    },
    Log {
        connection_id: i64,
    },
    Agents {
        tenant_id: i64,
    },
    /// An outbound call was queued for the connection (`flametree call`).
    CallRequested {
        connection_id: i64,
    },
    /// Notifications may have been lost (the connection dropped): read everything again.
    Resync,
}

impl Change {
    fn parse(payload: &str) -> Option<Change> {
        let mut parts = payload.split(':');
        match (parts.next()?, parts.next(), parts.next()) {
            ("c", Some(t), Some(id)) => Some(Change::Connection {
                tenant_id: t.parse().ok()?,
                id: id.parse().ok()?,
            }),
            ("l", Some(id), None) => Some(Change::Log {
                connection_id: id.parse().ok()?,
            }),
            ("a", Some(t), None) => Some(Change::Agents {
                tenant_id: t.parse().ok()?,
            }),
            ("q", Some(id), None) => Some(Change::CallRequested {
                connection_id: id.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// A process's subscription to changes; clone the sender's receivers freely.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Change>,
    /// LISTEN is in place: every change from now on will be announced.
    listening: Arc<AtomicBool>,
}

impl ChangeFeed {
    /// Listens on PostgreSQL; `None` for SQLite. The listener reconnects by itself
    /// and announces `Resync` once LISTEN is in place, first time and after each
    /// reconnection.
    pub async fn start(database_url: &str) -> Option<ChangeFeed> {
        let backend = super::Backend::from_url(database_url).ok()?;
        if backend != super::Backend::Postgres {
            return None;
        }
        let (tx, _) = broadcast::channel(4096);
        let feed = ChangeFeed {
            tx: tx.clone(),
            listening: Arc::default(),
        };
        let url = database_url.to_string();
        let listening = feed.listening.clone();
        tokio::spawn(async move { listen(url, tx, listening).await });
        Some(feed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Whether changes are being announced right now (false while reconnecting, when
    /// what happens is lost until the `Resync` that follows).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// The next announced change; never without a feed (`None` receiver), and `None` once
/// the feed is gone. A reader that fell behind gets `Resync`.
pub async fn next(changes: &mut Option<broadcast::Receiver<Change>>) -> Option<Change> {
    use broadcast::error::RecvError;
    match changes {
        Some(rx) => match rx.recv().await {
            Ok(c) => Some(c),
            Err(RecvError::Lagged(_)) => Some(Change::Resync),
            Err(RecvError::Closed) => None,
        },
        None => std::future::pending().await,
    }
}

/// After this long without a notification the feed checks that its connection answers.
const QUIET: Duration = Duration::from_secs(10);
/// A check unanswered this long ends the connection: a new one listens, and `Resync`.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

async fn listen(url: String, tx: broadcast::Sender<Change>, listening: Arc<AtomicBool>) {
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("change feed: cannot connect: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen("flametree").await {
            tracing::debug!("change feed: LISTEN failed: {e}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        // Also the first time: a reader that looked before LISTEN took effect (the
        // runtime's first pass starts at once) would otherwise miss what changed in
        // between until its next full pass.
        let _ = tx.send(Change::Resync);
        listening.store(true, Ordering::Release);
        loop {
            // try_recv: Ok(None) when the connection was lost. sqlx would reconnect on
            // the next call, but nobody would hear when LISTEN is back, and what was
            // announced until then is gone: reconnect here, and Resync once listening.
            let next = match tokio::time::timeout(QUIET, listener.try_recv()).await {
                Ok(next) => next,
                // A connection whose peer vanished without a word (a firewall's dropped
                // state, a host gone) says nothing either: ask it something.
                Err(_) => match tokio::time::timeout(
                    ANSWER_WITHIN,
                    sqlx::query("SELECT 1").execute(&mut listener),
                )
                .await
                {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => {
                        tracing::debug!("change feed: {e}; reconnecting");
                        break;
                    }
                    Err(_) => {
                        tracing::debug!(
                            "change feed: the connection did not answer in {} s; reconnecting",
                            ANSWER_WITHIN.as_secs()
                        );
                        break;
                    }
                },
            };
            match next {
                Ok(Some(n)) => {
                    if let Some(c) = Change::parse(n.payload()) {
                        let _ = tx.send(c);
                    }
                }
                Ok(None) => {
                    tracing::debug!("change feed: connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::debug!("change feed: {e}; reconnecting");
                    break;
                }
            }
        }
        listening.store(false, Ordering::Release);
        let _ = tx.send(Change::Resync);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_say_what_changed() {
        assert_eq!(
            Change::parse("c:1:42"),
            Some(Change::Connection {
                tenant_id: 1,
                id: 42
            })
        );
        assert_eq!(
            Change::parse("l:42"),
            Some(Change::Log { connection_id: 42 })
        );
        assert_eq!(Change::parse("a:3"), Some(Change::Agents { tenant_id: 3 }));
        assert_eq!(
            Change::parse("q:42"),
            Some(Change::CallRequested { connection_id: 42 })
        );
        assert_eq!(Change::parse("x:1"), None);
        assert_eq!(Change::parse("c:1"), None);
    }
}
