//! A database made by the flametree of schema version 8 (commit 8b21ffe: the sqlx Any
//! driver, BIGINT timestamps and flags, JSON as TEXT) opens in this flametree and
//! migrates forward without losing anything: what the old binary printed about it is
//! what the new one prints, its secrets still open, its agents still answer, and it
//! takes new writes. `tests/fixtures/legacy-v8/make.sh` says how the fixture was made.

mod common;

use common::{Be, Cli, PgDb};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy-v8")
        .join(name)
}

/// The demo's master key (base64), which sealed the fixture's secrets.
fn legacy_key() -> String {
    std::fs::read_to_string(fixture("master.key"))
        .expect("fixture key")
        .trim()
        .to_string()
}

/// The legacy database, ready to open: the SQLite file copied, or the PostgreSQL dump
/// loaded into a fresh database.
async fn legacy_database(be: Be, dir: &Path) -> (String, Option<PgDb>) {
    match be {
        Be::Sqlite => {
            let path = dir.join("flametree.db");
            std::fs::copy(fixture("flametree.db"), &path).unwrap();
            (format!("sqlite://{}", path.display()), None)
        }
        Be::Postgres => {
            use sqlx::Connection;
            let db = PgDb::create().await;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let dump = std::fs::read_to_string(fixture("postgres.sql")).unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
                .execute(&mut conn)
                .await
                .expect("the legacy dump loads");
            (db.url.clone(), Some(db))
        }
    }
}

/// The CLI as the fixture's outputs were printed: the default webhook base (the
/// commands here only read, nothing listens).
fn cli(dir: &Path, url: &str) -> Cli {
    Cli::new(dir)
        .with_database(url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", &legacy_key())
        .env("FLAMETREE_HTTP_LISTEN", "127.0.0.1:8787")
}

/// `new` has every field `old` has, with the same value (new fields may be added).
fn assert_superset(old: &Value, new: &Value, path: &str) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let got = n
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is gone after the upgrade"));
                assert_superset(v, got, &format!("{path}.{k}"));
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(
                o.len(),
                n.len(),
                "{path} has another length after the upgrade"
            );
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                assert_superset(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(old, new, "{path} changed in the upgrade"),
    }
}

async fn what_the_old_binary_printed_is_printed_after_the_upgrade(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = legacy_database(be, dir.path()).await;
    let cli = cli(dir.path(), &url);

    let old: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("channels.json")).unwrap()).unwrap();
    let new = cli.json(&["channels", "list"]);
    assert!(
        old.as_array().is_some_and(|a| a.len() >= 5),
        "the fixture holds the demo's connections"
    );
    assert_superset(&old, &new, "channels");

    let old: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("agents.json")).unwrap()).unwrap();
    assert_superset(&old, &cli.json(&["agents", "list"]), "agents");

    // Every log line with its time to the millisecond (TIMESTAMPTZ on PostgreSQL now).
    let logs = std::fs::read_to_string(fixture("logs.jsonl")).unwrap();
    let mut by_connection: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for line in logs.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        by_connection
            .entry(v["connection"].as_str().unwrap().to_string())
            .or_default()
            .push(v["line"].clone());
    }
    assert!(by_connection.values().map(Vec::len).sum::<usize>() > 20);
    for (name, old_lines) in by_connection {
        let out = cli.ok(
            &["channels", "logs", &name, "--lines", "500", "--json"],
            None,
        );
        let new_lines: Vec<Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Lines written after the fixture was made would come last; there are none.
        assert_eq!(old_lines.len(), new_lines.len(), "log of {name}");
        for (o, n) in old_lines.iter().zip(&new_lines) {
            assert_eq!(o["message"], n["message"], "log of {name}");
            assert_eq!(o["level"], n["level"], "log of {name}");
            assert_eq!(millis(&o["at"]), millis(&n["at"]), "log time of {name}");
        }
    }
}

/// A log line's time in milliseconds, whether printed as a number or as RFC 3339.
fn millis(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis(),
        other => panic!("a log time of {other}"),
    }
}

async fn the_upgraded_database_keeps_working(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = legacy_database(be, dir.path()).await;
    let store = flametree::store::open(&url, 5, 4)
        .await
        .expect("opens and migrates");
    let tenant = store.tenant("default").await.unwrap();
    let connections = store.list_connections(tenant.id).await.unwrap();

    // Sealed secrets open with the legacy key.
    let key = flametree::secrets::MasterKey::from_base64(
        &legacy_key(),
        flametree::secrets::KeySource::Config,
    )
    .unwrap();
    let sealed = connections.iter().map(|c| c.secrets.len()).sum::<usize>();
    assert!(sealed >= 3, "the demo seals its tokens");
    for c in &connections {
        for (field, s) in &c.secrets {
            key.open(field, s, field).expect("a legacy secret opens");
        }
    }

    // Agents keep their channels and flags.
    let agents = store.list_agents(tenant.id).await.unwrap();
    let mut inbound = 0;
    for a in &agents {
        assert!(serde_json::from_str::<Value>(&a.responder).is_ok());
        inbound += store
            .agent_channels(a.id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.inbound && c.applied_inbound)
            .count();
    }
    assert!(inbound > 0, "the demo's agents answer some channels");

    // New writes, and the runtime's statements on the converted columns.
    let c = &connections[0];
    store
        .set_status(c.id, flametree::model::Status::Error, "after upgrade")
        .await
        .unwrap();
    let again = store.connection(c.id).await.unwrap().unwrap();
    assert_eq!(again.status_message, "after upgrade");
    assert!(again.status_since >= c.status_since);
    let generation = store
        .acquire_lease(c.id, "upgrade-test", 10_000)
        .await
        .unwrap();
    assert!(
        generation.is_some(),
        "the lease of a dead legacy process expired"
    );
    let now = store.db_now().await.unwrap();
    let lease = store
        .leases(tenant.id)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.connection_id == c.id)
        .unwrap();
    assert!(
        (lease.expires_at - now - 10_000).abs() < 2_000,
        "{lease:?} at {now}"
    );
    let pruned = store.prune_older_than(now + 1, 10_000).await.unwrap();
    assert!(
        pruned.total() > 0,
        "old rows are found by their converted times"
    );

    // An older flametree reads only its own table: it now finds a version it does not
    // know and refuses the database instead of misreading it.
    drop(store);
    let expected = if be == Be::Postgres { 16 } else { 15 };
    assert_eq!(recorded_version(&url).await, expected);
}

async fn recorded_version(url: &str) -> i64 {
    use sqlx::Connection;
    let q = "SELECT MAX(version) FROM flametree_migrations";
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
    }
}

on_both!(
    what_the_old_binary_printed_is_printed_after_the_upgrade,
    the_upgraded_database_keeps_working,
);

/// PostgreSQL only (SQLite looks each JSON row up by key by itself): a batch's rows come
/// from `flametree_rows` (migration 0014), which the planner counts as one row, so even
/// a statement planned while the ledger was empty, and kept for the connection's life,
/// finds each row by its key. With `json_to_recordset` (guessed at 100 rows) the final
/// mark of every reply read the whole ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_on_postgres_find_ledger_rows_by_key_in_a_plan_made_when_it_was_empty() {
    use sqlx::Connection;
    let env = common::channels_env_on(Be::Postgres).await;
    let mut c = sqlx::PgConnection::connect(&env.url).await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut c)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN UPDATE inbound_ledger AS l SET state = 'answered' \
         FROM (SELECT (e->>'c')::bigint AS c, (e->>'k')::text AS k \
         FROM flametree_rows($1::json) AS e) AS r \
         WHERE l.connection_id = r.c AND l.provider_id = r.k",
    )
    .bind(r#"[{"c": 1, "k": "7"}]"#)
    .fetch_all(&mut c)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using inbound_ledger_pkey") && !plan.contains("Seq Scan"),
        "{plan}"
    );
}
