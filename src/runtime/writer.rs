//! Group commit: every connection's ledger, cursor and log writes go through one
//! writer that applies whatever has queued up in one transaction, so durability costs
//! one commit per batch, not several per message.

use crate::model::LogLine;
use crate::store::{RuntimeStore, StoreError, StoreResult, WriteOp, WriteResult};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most ops in one transaction.
const MAX_BATCH: usize = 2_000;
/// Log lines alone wait this long for company: nobody waits on them.
const LOG_LINGER: Duration = Duration::from_millis(100);
/// Queue depth; awaited writes wait for room, log lines beyond it are dropped (counted).
const QUEUE: usize = 100_000;
/// Log lines kept for a retry while the database is unreachable.
const HELD_LOGS: usize = 50_000;
/// Ops nobody waits for (log lines, final marks, outbound records) that go into a
/// transaction carrying awaited ones (claims, received messages); the rest follow in
/// the next. In a burst the background ops were most of a batch, and every claim, each
/// of which a reply waits for, waited for them to be written first.
const BACKGROUND_WITH_AWAITED: usize = 120;
/// Background ops that may wait while awaited ones keep coming; beyond it each
/// transaction also writes the excess. A burst of 5,000 messages makes ~20,000 (two log
/// lines, a mark and an outbound record each): held until the claims are through, they
/// are written after it, where each took a share of every claim's transaction before.
const BACKLOG: usize = 25_000;

struct Request {
    op: WriteOp,
    reply: Option<oneshot::Sender<StoreResult<WriteResult>>>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    dropped: Arc<AtomicU64>,
    /// When a transaction last carried more than log lines (`now_millis`).
    busy_at: Arc<AtomicU64>,
    slow: Arc<SlowCommits>,
}

/// Commits that kept every waiting reply waiting: a database or disk that stalls shows
/// here (and in a warning), not as a mystery in the replies' latency.
#[derive(Default)]
pub struct SlowCommits {
    count: AtomicU64,
    slowest_ms: AtomicU64,
    /// When the slowest ended (`now_millis`).
    slowest_at: AtomicU64,
    warned_at: AtomicU64,
}

/// A commit this slow is counted.
const SLOW_COMMIT: Duration = Duration::from_millis(250);
/// A commit this slow is also a warning (at most one a minute).
const STALLED_COMMIT: Duration = Duration::from_secs(1);

impl SlowCommits {
    fn note(&self, took: Duration, ops: usize) {
        if took < SLOW_COMMIT {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = crate::model::now_millis() as u64;
        let ms = took.as_millis() as u64;
        if self.slowest_ms.fetch_max(ms, Ordering::Relaxed) < ms {
            self.slowest_at.store(now, Ordering::Relaxed);
        }
        let last = self.warned_at.load(Ordering::Relaxed);
        if took >= STALLED_COMMIT
            && now.saturating_sub(last) >= 60_000
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "flametree::writer",
                "the database took {:.1} s to commit {ops} writes; every reply waited for it \
                 (a slow disk or a busy database server)",
                took.as_secs_f64()
            );
        }
    }

    /// Commits that took 250 ms or more, the slowest (ms), and when it ended.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.slowest_ms.load(Ordering::Relaxed),
            self.slowest_at.load(Ordering::Relaxed),
        )
    }
}

impl Writer {
    /// Starts the writer task; it ends when every `Writer` clone is dropped, after
    /// writing what was queued.
    pub fn start(
        store: Arc<dyn RuntimeStore>,
        log_keep: u32,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let busy_at: Arc<AtomicU64> = Arc::default();
        let slow: Arc<SlowCommits> = Arc::default();
        let handle = tokio::spawn(run(store, rx, log_keep, busy_at.clone(), slow.clone()));
        (
            Writer {
                tx,
                dropped: Arc::default(),
                busy_at,
                slow,
            },
            handle,
        )
    }

    /// Applies `op` and returns once it is committed.
    pub async fn write(&self, op: WriteOp) -> StoreResult<WriteResult> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                op,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    /// Queues `op` without waiting for it (an outbound record, a final ledger mark).
    pub fn submit(&self, op: WriteOp) {
        if self.tx.try_send(Request { op, reply: None }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues log lines; dropped (and counted) when the database is far behind, rather
    /// than slowing a channel down.
    pub fn log(&self, lines: Vec<LogLine>) {
        self.submit(WriteOp::Logs(lines));
    }

    /// Returns once everything queued before it is committed.
    pub async fn flush(&self) {
        let _ = self.write(WriteOp::Logs(Vec::new())).await;
    }

    /// How long no messages have been recorded, claimed or marked: log lines alone do
    /// not count.
    pub fn quiet_for(&self) -> Duration {
        let at = self.busy_at.load(Ordering::Relaxed) as i64;
        Duration::from_millis((crate::model::now_millis() - at).max(0) as u64)
    }

    /// Writes lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn slow_commits(&self) -> &SlowCommits {
        &self.slow
    }
}

/// Lines written per connection since its log was last trimmed.
struct Trims {
    every: u32,
    since: std::collections::HashMap<i64, u32>,
}

impl Trims {
    fn new(keep: u32) -> Trims {
        Trims {
            // A log over its limit by a tenth at most, trimmed in one statement.
            every: (keep / 10).clamp(20, 500),
            since: Default::default(),
        }
    }

    /// The connections whose logs are due for trimming after this batch.
    fn due(&mut self, batch: &[Request]) -> Vec<i64> {
        for r in batch {
            if let WriteOp::Logs(lines) = &r.op {
                for l in lines {
                    *self.since.entry(l.connection_id).or_default() += 1;
                }
            }
        }
        let due: Vec<i64> = self
            .since
            .iter()
            .filter(|(_, n)| **n >= self.every)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.since.remove(id);
        }
        due
    }
}

async fn run(
    store: Arc<dyn RuntimeStore>,
    mut rx: mpsc::Receiver<Request>,
    keep: u32,
    busy_at: Arc<AtomicU64>,
    slow: Arc<SlowCommits>,
) {
    let mut held: Vec<LogLine> = Vec::new();
    let mut trims = Trims::new(keep);
    let mut batch: Vec<Request> = Vec::with_capacity(256);
    // Ops somebody waits on, and background ops not written yet (oldest first).
    let mut awaited: Vec<Request> = Vec::new();
    let mut later: VecDeque<Request> = VecDeque::new();
    loop {
        let fresh = later.is_empty();
        if fresh {
            give_back(&mut batch, &mut awaited, &mut later);
            let Some(first) = rx.recv().await else {
                flush_held(store.as_ref(), &mut held, keep).await;
                return;
            };
            sort(first, &mut awaited, &mut later);
        }
        drain(&mut rx, &mut awaited, &mut later);
        if fresh && awaited.is_empty() && later.iter().all(|r| matches!(r.op, WriteOp::Logs(_))) {
            let linger = tokio::time::sleep(LOG_LINGER);
            tokio::pin!(linger);
            loop {
                tokio::select! {
                    more = rx.recv() => match more {
                        Some(r) => {
                            sort(r, &mut awaited, &mut later);
                            drain(&mut rx, &mut awaited, &mut later);
                            // Somebody waits on this batch: commit now.
                            if !awaited.is_empty() || later.len() >= MAX_BATCH { break; }
                        }
                        None => break,
                    },
                    _ = &mut linger => break,
                }
            }
        }
        choose(&mut batch, &mut awaited, &mut later);
        let due = trims.due(&batch);
        if !due.is_empty() {
            batch.push(Request {
                op: WriteOp::TrimLogs(due),
                reply: None,
            });
        }
        if batch.iter().any(|r| !matches!(r.op, WriteOp::Logs(_))) {
            busy_at.store(crate::model::now_millis() as u64, Ordering::Relaxed);
        }
        commit(store.as_ref(), &mut batch, &mut held, keep, &slow).await;
    }
}

/// Empties the queues' room grown in a burst (a backlog of 20,000 ops holds 4 MiB) once
/// everything is written, before waiting for more: kept, it stayed with the process.
/// Queues that still hold ops keep their room.
fn give_back(batch: &mut Vec<Request>, awaited: &mut Vec<Request>, later: &mut VecDeque<Request>) {
    if later.is_empty() && later.capacity() > MAX_BATCH {
        *later = VecDeque::new();
    }
    if batch.is_empty() && batch.capacity() > MAX_BATCH {
        *batch = Vec::with_capacity(256);
    }
    if awaited.is_empty() && awaited.capacity() > MAX_BATCH {
        *awaited = Vec::new();
    }
}

/// What this transaction writes: when somebody waits, every awaited op and the oldest
/// background ones (`BACKGROUND_WITH_AWAITED`, more once over `BACKLOG` are held);
/// otherwise the oldest background ops, up to `MAX_BATCH`. Background ops keep their
/// order. A flush (awaited, empty `Logs`) writes everything before it.
fn choose(batch: &mut Vec<Request>, awaited: &mut Vec<Request>, later: &mut VecDeque<Request>) {
    let barrier = awaited.iter().any(|r| matches!(r.op, WriteOp::Logs(_)));
    let take = if barrier {
        later.len()
    } else if awaited.is_empty() {
        later.len().min(MAX_BATCH)
    } else {
        BACKGROUND_WITH_AWAITED.max(later.len().saturating_sub(BACKLOG))
    };
    batch.extend(later.drain(..take.min(later.len())));
    batch.append(awaited);
}

fn sort(r: Request, awaited: &mut Vec<Request>, later: &mut VecDeque<Request>) {
    if r.reply.is_some() {
        awaited.push(r);
    } else {
        later.push_back(r);
    }
}

/// Everything queued, up to `MAX_BATCH` awaited ops and `QUEUE` background ones: an
/// op somebody waits on is never left in the queue behind a crowd of log lines.
fn drain(
    rx: &mut mpsc::Receiver<Request>,
    awaited: &mut Vec<Request>,
    later: &mut VecDeque<Request>,
) {
    while awaited.len() < MAX_BATCH && later.len() < QUEUE {
        match rx.try_recv() {
            Ok(r) => sort(r, awaited, later),
            Err(_) => break,
        }
    }
}

async fn commit(
    store: &dyn RuntimeStore,
    batch: &mut Vec<Request>,
    held: &mut Vec<LogLine>,
    keep: u32,
    slow: &SlowCommits,
) {
    // The ops move into the statement list (a burst's carry raw payloads and log lines:
    // copying them doubled the writer's allocations); their replies wait beside it.
    let mut ops: Vec<WriteOp> = Vec::with_capacity(batch.len() + 1);
    if !held.is_empty() {
        ops.push(WriteOp::Logs(std::mem::take(held)));
    }
    let offset = ops.len();
    let mut replies: Vec<Option<oneshot::Sender<StoreResult<WriteResult>>>> =
        Vec::with_capacity(batch.len());
    for r in batch.drain(..) {
        ops.push(r.op);
        replies.push(r.reply);
    }
    let began = std::time::Instant::now();
    let written = store.write_batch(&ops, keep).await;
    // Only a batch that was written: an unreachable database has messages of its own.
    if written.is_ok() {
        slow.note(began.elapsed(), ops.len());
    }
    match written {
        Ok(results) => {
            // Before anyone hears: a caller takes back what it shared with its op.
            drop(ops);
            for (reply, result) in replies.into_iter().zip(results.into_iter().skip(offset)) {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(result));
                }
            }
        }
        Err(e) if e.is_unavailable() => {
            // Nothing was written: callers hear it and retry; log lines wait for the
            // database to come back.
            let mut ops = ops.into_iter();
            if offset > 0
                && let Some(WriteOp::Logs(lines)) = ops.next()
            {
                held.extend(lines);
            }
            for (reply, op) in replies.into_iter().zip(ops) {
                match (reply, op) {
                    (Some(reply), _) => {
                        let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
                    }
                    (None, WriteOp::Logs(lines)) => held.extend(lines),
                    (None, _) => {}
                }
            }
            if held.len() > HELD_LOGS {
                let extra = held.len() - HELD_LOGS;
                held.drain(..extra);
            }
        }
        Err(_) => {
            // One bad op must not cost the others their write: apply each on its own.
            if offset > 0 {
                let _ = store.write_batch(&ops[..offset], keep).await;
            }
            for (reply, op) in replies.into_iter().zip(&ops[offset..]) {
                let result = store
                    .write_batch(std::slice::from_ref(op), keep)
                    .await
                    .map(|mut r| r.pop().unwrap_or(WriteResult::Done));
                if let Err(e) = &result
                    && reply.is_none()
                {
                    tracing::warn!(target: "flametree::writer", "a runtime write failed: {e}");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn flush_held(store: &dyn RuntimeStore, held: &mut Vec<LogLine>, keep: u32) {
    if !held.is_empty() {
        let _ = store
            .write_batch(&[WriteOp::Logs(std::mem::take(held))], keep)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_op_stays_small() {
        // A burst of 5,000 messages leaves ~20,000 background ops queued at once: every
        // slot is as large as the largest op (120 bytes before the sent record was boxed).
        assert!(
            std::mem::size_of::<Request>() <= 80,
            "{} bytes",
            std::mem::size_of::<Request>()
        );
    }

    #[test]
    fn only_commits_of_a_quarter_second_or_more_count_as_slow() {
        let slow = SlowCommits::default();
        slow.note(Duration::from_millis(249), 10);
        assert_eq!(slow.read().0, 0);
        slow.note(Duration::from_millis(700), 10);
        slow.note(Duration::from_millis(300), 10);
        let (n, slowest, at) = slow.read();
        assert_eq!(
            (n, slowest),
            (2, 700),
            "two slow commits, the slowest 700 ms"
        );
        assert!(at > 0, "the slowest has its time");
    }

    #[test]
    fn the_room_a_burst_grew_is_given_back_once_written() {
        let mut later: VecDeque<Request> = (0..5_000).map(|_| line()).collect();
        let mut batch = Vec::with_capacity(MAX_BATCH * 2);
        let mut awaited = Vec::with_capacity(MAX_BATCH * 2);
        give_back(&mut batch, &mut awaited, &mut later);
        assert!(later.capacity() >= 5_000, "still queued: kept");
        later.clear();
        give_back(&mut batch, &mut awaited, &mut later);
        assert!(later.capacity() <= MAX_BATCH && batch.capacity() <= MAX_BATCH);
        assert!(awaited.capacity() <= MAX_BATCH);
    }

    fn line() -> Request {
        Request {
            op: WriteOp::Logs(Vec::new()),
            reply: None,
        }
    }

    fn claim() -> (Request, oneshot::Receiver<StoreResult<WriteResult>>) {
        let (reply, rx) = oneshot::channel();
        let op = WriteOp::Claim {
            connection_id: 1,
            key: "1:1".into(),
            fence: None,
        };
        (
            Request {
                op,
                reply: Some(reply),
            },
            rx,
        )
    }

    fn gather(rx: &mut mpsc::Receiver<Request>, later: &mut VecDeque<Request>) -> Vec<Request> {
        let (mut awaited, mut batch) = (Vec::new(), Vec::new());
        drain(rx, &mut awaited, later);
        choose(&mut batch, &mut awaited, later);
        batch
    }

    /// A reply waits on its claim: queued behind more log lines than a transaction
    /// takes, it still goes into the next one, with only a few of them.
    #[test]
    fn a_claim_behind_thousands_of_log_lines_is_written_next() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        for _ in 0..3 * MAX_BATCH {
            tx.try_send(line()).unwrap();
        }
        let (c, _answer) = claim();
        tx.try_send(c).unwrap();
        let mut later = VecDeque::new();
        let batch = gather(&mut rx, &mut later);
        assert!(batch.iter().any(|r| matches!(r.op, WriteOp::Claim { .. })));
        assert_eq!(batch.len(), BACKGROUND_WITH_AWAITED + 1);
        assert_eq!(later.len(), 3 * MAX_BATCH - BACKGROUND_WITH_AWAITED);
        // Nobody waits: the held lines go, oldest first, a transaction's worth at a time.
        let batch = gather(&mut rx, &mut later);
        assert_eq!(batch.len(), MAX_BATCH);
        assert!(batch.iter().all(|r| r.reply.is_none()));
    }

    /// The lines held while claims keep coming are bounded: beyond `BACKLOG` each
    /// transaction with a claim also writes the excess.
    #[test]
    fn held_log_lines_are_bounded() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut later: VecDeque<Request> = (0..BACKLOG + 500).map(|_| line()).collect();
        let (c, _answer) = claim();
        tx.try_send(c).unwrap();
        let batch = gather(&mut rx, &mut later);
        assert_eq!(batch.len(), 500 + 1);
        assert_eq!(later.len(), BACKLOG);
    }

    /// A flush (an awaited empty `Logs`) writes everything queued before it.
    #[test]
    fn a_flush_writes_everything_held() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut later: VecDeque<Request> = (0..5_000).map(|_| line()).collect();
        let (reply, _answer) = oneshot::channel();
        tx.try_send(Request {
            op: WriteOp::Logs(Vec::new()),
            reply: Some(reply),
        })
        .unwrap();
        let batch = gather(&mut rx, &mut later);
        assert_eq!(batch.len(), 5_001);
        assert!(later.is_empty());
    }
}
