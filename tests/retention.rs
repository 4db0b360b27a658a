//! Retention: old rows go, recent rows and events in flight stay, and pruning works in
//! bounded chunks. Every scenario runs on SQLite and on a fresh PostgreSQL database.
//!
//! Rows are written through the store; "old" ones then get their timestamps moved back
//! with a direct UPDATE over a connection of the test's own.

mod common;

use flametree::model::{NewConnection, now_millis};
use flametree::store::{self, AuditNote, LedgerState, PruneCounts, Store};
use sqlx::{Connection, PgConnection, SqliteConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Runs a scenario `async fn name(url: &str)` as `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/flametree.db", dir.path().display());
                super::$scenario(&url).await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = crate::common::PgDb::create().await;
                super::$scenario(&db.url).await;
            }
        }
    )*};
}

on_both_backends!(
    old_rows_go_recent_rows_stay,
    events_in_flight_are_never_pruned,
    chunks_are_bounded_and_repeated_calls_finish,
    the_loop_drains_a_backlog_larger_than_a_chunk_and_stops_on_cancel,
    the_loop_is_off_when_days_is_zero,
);

/// The store under test and a connection of the test's own to the same database.
struct Db {
    store: Arc<dyn Store>,
    sql: Direct,
    tenant_id: i64,
    connection_id: i64,
    agent_id: i64,
}

impl Db {
    async fn open(url: &str) -> Db {
        let store = store::open(url, 5, 4).await.expect("store opens");
        let sql = if url.starts_with("postgres") {
            Direct::Postgres(PgConnection::connect(url).await.expect("direct connection"))
        } else {
            Direct::Sqlite(
                SqliteConnection::connect(url)
                    .await
                    .expect("direct connection"),
            )
        };
        let tenant_id = store.tenant("default").await.unwrap().id;
        let connection_id = store
            .insert_connection(
                &NewConnection {
                    tenant_id,
                    type_key: "telegram".into(),
                    name: "Bot".into(),
                    description: String::new(),
                    fields: Default::default(),
                    secrets: Default::default(),
                    env: Vec::new(),
                },
                &note(),
            )
            .await
            .unwrap()
            .id;
        let agent_id = store
            .create_agent(tenant_id, "Support", &note())
            .await
            .unwrap()
            .id;
        Db {
            store,
            sql,
            tenant_id,
            connection_id,
            agent_id,
        }
    }

    async fn exec(&mut self, sql: &str) -> u64 {
        let text = || sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        match &mut self.sql {
            Direct::Postgres(c) => text().execute(c).await.map(|r| r.rows_affected()),
            Direct::Sqlite(c) => text().execute(c).await.map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn count(&mut self, sql: &str) -> i64 {
        let text = || sqlx::AssertSqlSafe(sql.to_string());
        match &mut self.sql {
            Direct::Postgres(c) => sqlx::query_scalar(text()).fetch_one(c).await,
            Direct::Sqlite(c) => sqlx::query_scalar(text()).fetch_one(c).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A point in time as SQL of the backend: TIMESTAMPTZ on PostgreSQL, milliseconds
    /// on SQLite.
    fn time(&self, ms: i64) -> String {
        match self.sql {
            Direct::Postgres(_) => {
                format!("(TIMESTAMPTZ 'epoch' + {ms} * INTERVAL '1 millisecond')")
            }
            Direct::Sqlite(_) => ms.to_string(),
        }
    }

    /// A finished (or in-flight) inbound event.
    async fn ledger(&self, provider_id: &str, state: LedgerState) {
        let s = &self.store;
        s.ledger_receive(self.connection_id, provider_id)
            .await
            .unwrap();
        if state != LedgerState::Received {
            s.ledger_mark(self.connection_id, provider_id, state)
                .await
                .unwrap();
        }
    }

    async fn unanswered(&self, customer: &str) {
        self.store
            .record_unanswered(self.connection_id, customer, "hello?", "no agent")
            .await
            .unwrap();
    }

    async fn turn(&self, customer: &str) {
        self.store
            .add_turn(
                self.agent_id,
                self.connection_id,
                customer,
                "user",
                "hello",
                100,
            )
            .await
            .unwrap();
    }

    /// An audit row with this action: every Start/Stop request is audited.
    async fn audit(&self, action: &str) {
        self.store
            .set_desired_state(
                self.connection_id,
                flametree::model::DesiredState::Stopped,
                &AuditNote::new("tester", action, ""),
            )
            .await
            .unwrap();
    }

    /// Moves rows matched by `filter` back to `at` in the table's time column.
    async fn age(&mut self, table: &str, filter: &str, at: i64) {
        let column = match table {
            "inbound_ledger" => "updated_at",
            "call_requests" => "requested_at",
            _ => "at",
        };
        let at = self.time(at);
        let n = self
            .exec(&format!(
                "UPDATE {table} SET {column} = {at} WHERE {filter}"
            ))
            .await;
        assert!(n > 0, "nothing in {table} matched {filter}");
    }
}

/// The test's own connection to the database under test.
enum Direct {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

fn note() -> AuditNote {
    AuditNote::new("tester", "create", "")
}

async fn old_rows_go_recent_rows_stay(url: &str) {
    let mut db = Db::open(url).await;
    let now = now_millis();
    let cutoff = now - 30 * DAY_MS;
    let old = now - 31 * DAY_MS;

    db.ledger("old-answered", LedgerState::Answered).await;
    db.ledger("old-ignored", LedgerState::Ignored).await;
    db.ledger("new-answered", LedgerState::Answered).await;
    db.age(
        "inbound_ledger",
        "provider_id IN ('old-answered', 'old-ignored')",
        old,
    )
    .await;
    // Exactly at the cutoff is not older than it.
    db.ledger("edge-answered", LedgerState::Answered).await;
    db.age("inbound_ledger", "provider_id = 'edge-answered'", cutoff)
        .await;

    for c in ["old-1", "old-2", "new-1"] {
        db.unanswered(c).await;
        db.turn(c).await;
    }
    db.age("unanswered_messages", "customer LIKE 'old-%'", old)
        .await;
    db.age("conversation_turns", "customer LIKE 'old-%'", old)
        .await;

    // Call requests go once they have ended; one still queued is never pruned.
    let s = db.store.clone();
    let ended = flametree::model::CallProgress::to(flametree::model::CallState::Busy);
    for callee in ["+31600000001", "+31600000002", "+31600000003"] {
        let id = s
            .request_call(db.connection_id, callee, Some("Hi"), "tester")
            .await
            .unwrap();
        if callee != "+31600000002" {
            s.update_call(id, &ended).await.unwrap();
        }
    }
    db.age(
        "call_requests",
        "callee IN ('+31600000001', '+31600000002')",
        old,
    )
    .await;

    db.audit("old-stop").await;
    db.audit("new-stop").await;
    db.age("audit_log", "action = 'old-stop'", old).await;
    let audit_before = db.count("SELECT COUNT(*) FROM audit_log").await;

    let pruned = db.store.prune_older_than(cutoff, 1000).await.unwrap();
    assert_eq!(
        pruned,
        PruneCounts {
            ledger: 2,
            unanswered: 2,
            turns: 2,
            audit: 1,
            outbound: 0,
            calls: 1,
        }
    );
    assert_eq!(pruned.total(), 8);
    let calls = db
        .count("SELECT COUNT(*) FROM call_requests WHERE callee <> '+31600000001'")
        .await;
    assert_eq!(
        calls, 2,
        "the queued old request and the recent ended one stay"
    );

    let ledger = db
        .count("SELECT COUNT(*) FROM inbound_ledger WHERE provider_id LIKE 'old-%'")
        .await;
    assert_eq!(ledger, 0);
    // The kept events are still known: a redelivery is not answered again.
    for kept in ["new-answered", "edge-answered"] {
        assert_eq!(
            db.store
                .ledger_receive(db.connection_id, kept)
                .await
                .unwrap(),
            LedgerState::Answered,
            "{kept}"
        );
    }

    let unanswered = db.store.unanswered(db.connection_id, 100).await.unwrap();
    let customers: Vec<&str> = unanswered.iter().map(|u| u.1.as_str()).collect();
    assert_eq!(customers, ["new-1"]);
    for (customer, left) in [("old-1", 0), ("old-2", 0), ("new-1", 1)] {
        let turns = db
            .store
            .turns(db.agent_id, db.connection_id, customer, 10)
            .await
            .unwrap();
        assert_eq!(turns.len(), left, "{customer}");
    }
    let trail = db.store.audit_trail(db.tenant_id, 100).await.unwrap();
    assert_eq!(trail.len() as i64, audit_before - 1);
    assert!(trail.iter().all(|e| e.action != "old-stop"));
    assert!(trail.iter().any(|e| e.action == "new-stop"));

    // Nothing is left to prune.
    assert_eq!(
        db.store.prune_older_than(cutoff, 1000).await.unwrap(),
        PruneCounts::default()
    );
}

async fn events_in_flight_are_never_pruned(url: &str) {
    let mut db = Db::open(url).await;
    db.ledger("received", LedgerState::Received).await;
    db.ledger("sending", LedgerState::Sending).await;
    db.ledger("answered", LedgerState::Answered).await;
    db.age("inbound_ledger", "1 = 1", 1).await;

    // Whatever the cutoff, even one in the future.
    let pruned = db
        .store
        .prune_older_than(now_millis() + DAY_MS, 1000)
        .await
        .unwrap();
    assert_eq!(pruned.ledger, 1, "only the answered event goes");
    let left = db
        .count("SELECT COUNT(*) FROM inbound_ledger WHERE provider_id IN ('received', 'sending')")
        .await;
    assert_eq!(left, 2);
    assert_eq!(
        db.store
            .ledger_receive(db.connection_id, "sending")
            .await
            .unwrap(),
        LedgerState::Sending
    );
    assert_eq!(
        db.store
            .prune_older_than(now_millis() + DAY_MS, 1000)
            .await
            .unwrap()
            .ledger,
        0
    );
}

async fn chunks_are_bounded_and_repeated_calls_finish(url: &str) {
    let mut db = Db::open(url).await;
    for i in 0..5 {
        db.ledger(&format!("event-{i}"), LedgerState::Answered)
            .await;
        db.unanswered(&format!("customer-{i}")).await;
        db.turn(&format!("customer-{i}")).await;
    }
    // Db::open audited a connection and an agent: 3 more make 5.
    for _ in 0..3 {
        db.audit("stop").await;
    }
    let old = now_millis() - 40 * DAY_MS;
    for table in [
        "inbound_ledger",
        "unanswered_messages",
        "conversation_turns",
        "audit_log",
    ] {
        db.age(table, "1 = 1", old).await;
    }
    // One recent row each, which no call may take.
    db.ledger("recent", LedgerState::Answered).await;
    db.unanswered("recent").await;
    db.turn("recent").await;
    db.audit("recent").await;

    let cutoff = now_millis() - 30 * DAY_MS;
    let each = |n| PruneCounts {
        ledger: n,
        unanswered: n,
        turns: n,
        audit: n,
        outbound: 0,
        calls: 0,
    };
    for expected in [2, 2, 1, 0] {
        assert_eq!(
            db.store.prune_older_than(cutoff, 2).await.unwrap(),
            each(expected)
        );
    }
    assert_eq!(
        db.store.prune_older_than(cutoff, 0).await.unwrap(),
        each(0),
        "a limit of 0 deletes nothing"
    );
    for table in [
        "inbound_ledger",
        "unanswered_messages",
        "conversation_turns",
        "audit_log",
    ] {
        let n = db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(n, 1, "{table} keeps its recent row");
    }
}

/// More old rows than one chunk (1,000): the loop's first pass takes them all, then
/// the loop waits for its next pass and ends at once when cancelled.
async fn the_loop_drains_a_backlog_larger_than_a_chunk_and_stops_on_cancel(url: &str) {
    let mut db = Db::open(url).await;
    db.unanswered("recent").await;
    let old = db.time(now_millis() - 8 * DAY_MS);
    // Written directly: 2,500 rows through the store would only slow the test down.
    db.exec(&format!(
        "INSERT INTO unanswered_messages (connection_id, customer, text, reason, at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         SELECT {}, 'old', 'hello?', 'no agent', {old} FROM n",
        db.connection_id
    ))
    .await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM unanswered_messages").await,
        2501
    );

    let stop = CancellationToken::new();
    let pruning = tokio::spawn(flametree::runtime::retention::prune_loop(
        db.store.clone(),
        7,
        stop.clone(),
    ));
    // Poll (with a deadline) until the first pass is done.
    tokio::time::timeout(Duration::from_secs(30), async {
        while db.count("SELECT COUNT(*) FROM unanswered_messages").await != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first pass drains the whole backlog");
    assert!(!pruning.is_finished(), "the loop waits for its next pass");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), pruning)
        .await
        .expect("the loop ends when cancelled")
        .unwrap();
    let left = db.store.unanswered(db.connection_id, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "recent");
}

async fn the_loop_is_off_when_days_is_zero(url: &str) {
    let mut db = Db::open(url).await;
    db.unanswered("ancient").await;
    db.age("unanswered_messages", "1 = 1", 1).await;
    let stop = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        flametree::runtime::retention::prune_loop(db.store.clone(), 0, stop),
    )
    .await
    .expect("returns at once, without being cancelled");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM unanswered_messages").await,
        1
    );
}
