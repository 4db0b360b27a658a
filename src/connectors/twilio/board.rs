//! Where an agent's words for a call wait for the webhook that speaks them. Twilio asks
//! for the next TwiML in the response to its webhook, but the answer is made by the
//! runtime's pipeline (ledger, claim, agent) and leaves through `Connector::send`; the
//! two meet here, by the connection's webhook path and the ledger key. It is per process: the ingress that
//! receives a call's webhooks must be in the process that runs the connection (one
//! `serve`, or a load balancer that sends `/hooks/<id>` to it).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The agent's reply.
    Reply(String),
    /// Nobody may answer (no inbound agent): the caller is told so.
    Nobody,
}

/// A reply is kept this long: a retried webhook or a late Redirect still finds it.
const KEEP: Duration = Duration::from_secs(30 * 60);

#[derive(Default)]
struct Board {
    answers: Mutex<HashMap<String, (Instant, Answer)>>,
    posted: Notify,
}

static BOARD: LazyLock<Board> = LazyLock::new(Board::default);

fn slot(connection: &str, key: &str) -> String {
    format!("{connection}/{key}")
}

pub fn post(connection: &str, key: &str, answer: Answer) {
    {
        let mut answers = BOARD.answers.lock().expect("board lock");
        answers.retain(|_, (at, _)| at.elapsed() < KEEP);
        answers.insert(slot(connection, key), (Instant::now(), answer));
    }
    BOARD.posted.notify_waiters();
}

fn get(slot: &str) -> Option<Answer> {
    BOARD
        .answers
        .lock()
        .expect("board lock")
        .get(slot)
        .map(|(_, a)| a.clone())
}

/// The answer for this turn, once posted, or None after `within`.
pub async fn wait(connection: &str, key: &str, within: Duration) -> Option<Answer> {
    let slot = slot(connection, key);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let posted = BOARD.posted.notified();
        tokio::pin!(posted);
        // Registered before looking, so a post between the look and the wait wakes us.
        posted.as_mut().enable();
        if let Some(a) = get(&slot) {
            return Some(a);
        }
        if tokio::time::timeout_at(deadline, posted).await.is_err() {
            return get(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_gets_what_is_posted_later_and_only_its_own() {
        let waiter = tokio::spawn(wait("hook-a", "CA1:1", Duration::from_secs(5)));
        tokio::task::yield_now().await;
        post("hook-a", "CA1:2", Answer::Reply("other turn".into()));
        post("hook-b", "CA1:1", Answer::Reply("other connection".into()));
        post("hook-a", "CA1:1", Answer::Reply("mine".into()));
        assert_eq!(waiter.await.unwrap(), Some(Answer::Reply("mine".into())));
        assert_eq!(
            wait("hook-a", "CA1:3", Duration::from_millis(20)).await,
            None,
            "nothing posted: None once the time is up"
        );
    }
}
