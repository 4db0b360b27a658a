//! PostgreSQL for the flametree rows: a fresh database per run (dropped at the end),
//! and the server's own counters (pg_stat_database, pg_stat_user_tables) read before
//! and after a load, to tell what each message cost the database.

use sqlx::{Connection, PgConnection, Row};
use std::collections::BTreeMap;

pub struct Pg {
    admin: String,
    created: Vec<String>,
}

impl Pg {
    /// None (and why, on stderr) when the server cannot be reached.
    pub async fn connect() -> Option<Pg> {
        let admin = std::env::var("BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        match PgConnection::connect(&admin).await {
            Ok(c) => {
                let _ = c.close().await;
                Some(Pg {
                    admin,
                    created: Vec::new(),
                })
            }
            Err(e) => {
                eprintln!("PostgreSQL at {admin} is not reachable ({e}); its rows are skipped");
                None
            }
        }
    }

    /// Creates `flametree_bench_<pid>_<k>` and returns its URL.
    pub async fn create(&mut self) -> String {
        let name = format!(
            "flametree_bench_{}_{}",
            std::process::id(),
            self.created.len()
        );
        let mut c = PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
        self.created.push(name.clone());
        // The admin URL's options (e.g. `?sslmode=disable`) apply to the new database too.
        let (path, query) = match self.admin.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (self.admin.as_str(), String::new()),
        };
        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap();
        format!("{base}/{name}{query}")
    }

    /// Drops every database this run created.
    pub async fn drop_all(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let Ok(mut c) = PgConnection::connect(&self.admin).await else {
            eprintln!("cannot drop the bench databases {:?}", self.created);
            return;
        };
        for name in self.created.drain(..) {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await {
                eprintln!("cannot drop {name}: {e}");
            }
        }
        let _ = c.close().await;
    }
}

/// Counters of one database: `db.<column>` and `<table>.<column>`.
pub type Counters = BTreeMap<String, i64>;

pub async fn counters(url: &str) -> Counters {
    let mut out = Counters::new();
    let Ok(mut c) = PgConnection::connect(url).await else {
        return out;
    };
    if let Ok(row) = sqlx::query(
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, \
         tup_returned, tup_fetched FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut c)
    .await
    {
        for col in [
            "xact_commit",
            "xact_rollback",
            "tup_inserted",
            "tup_updated",
            "tup_deleted",
            "tup_returned",
            "tup_fetched",
        ] {
            out.insert(format!("db.{col}"), row.try_get(col).unwrap_or(0));
        }
    }
    if let Ok(rows) = sqlx::query(
        "SELECT relname::text AS t, COALESCE(seq_scan, 0) AS seq_scan, \
         COALESCE(seq_tup_read, 0) AS seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan, \
         n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables",
    )
    .fetch_all(&mut c)
    .await
    {
        for r in rows {
            let t: String = r.try_get("t").unwrap_or_default();
            for col in [
                "seq_scan",
                "seq_tup_read",
                "idx_scan",
                "n_tup_ins",
                "n_tup_upd",
                "n_tup_del",
            ] {
                out.insert(format!("{t}.{col}"), r.try_get(col).unwrap_or(0));
            }
        }
    }
    let _ = c.close().await;
    out
}

/// What changed between two readings, per message, skipping what did not move.
pub fn per_message(before: &Counters, after: &Counters, messages: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0);
        if d != 0 {
            lines.push(format!(
                "{k:<40} {d:>10}  {:>8.2} per message",
                d as f64 / messages.max(1) as f64
            ));
        }
    }
    lines
}

impl Drop for Pg {
    /// After a panic too: the databases go on a thread of their own.
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let mut rest = Pg {
            admin: self.admin.clone(),
            created: std::mem::take(&mut self.created),
        };
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(rest.drop_all());
            }
        })
        .join();
    }
}

/// What the database's active backends were doing, sampled every few ms during a
/// load (BENCH_PG_WAITS=1): the share of samples per statement and wait event, and
/// the stretches in which one backend's COMMIT kept waiting. A reply waits for two
/// commits, so a COMMIT that waits for the WAL to reach the disk shows up here.
pub struct WaitWatch {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<WaitSamples>,
}

#[derive(Default)]
pub struct WaitSamples {
    every: std::time::Duration,
    polls: u64,
    seen: BTreeMap<(String, String), u64>,
    /// A COMMIT's waiting stretches of 10 ms or more: (its length, ms since the load began).
    long_commits: Vec<(f64, f64)>,
}

impl WaitWatch {
    pub async fn start(url: &str, every: std::time::Duration) -> Option<WaitWatch> {
        let mut c = PgConnection::connect(url).await.ok()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let cancel = stop.clone();
        let task = tokio::spawn(async move {
            let began = std::time::Instant::now();
            let mut out = WaitSamples {
                every,
                ..WaitSamples::default()
            };
            // pid → when its current COMMIT was first seen waiting, and last seen.
            let mut open: BTreeMap<i32, (std::time::Instant, std::time::Instant)> = BTreeMap::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !cancel.is_cancelled() {
                tick.tick().await;
                let Ok(rows) = sqlx::query(
                    "SELECT pid, COALESCE(wait_event_type || '/' || wait_event, 'running') AS w, \
                     upper(split_part(ltrim(query), ' ', 1)) AS verb FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND state = 'active'",
                )
                .fetch_all(&mut c)
                .await
                else {
                    break;
                };
                let now = std::time::Instant::now();
                out.polls += 1;
                let mut committing = Vec::new();
                for r in rows {
                    let pid: i32 = r.try_get("pid").unwrap_or(0);
                    let w: String = r.try_get("w").unwrap_or_default();
                    let verb: String = r.try_get("verb").unwrap_or_default();
                    if verb == "COMMIT" && w != "running" {
                        committing.push(pid);
                        open.entry(pid).or_insert((now, now)).1 = now;
                    }
                    *out.seen.entry((verb, w)).or_default() += 1;
                }
                open.retain(|pid, (first, last)| {
                    if committing.contains(pid) {
                        return true;
                    }
                    let took = (*last - *first + every).as_secs_f64() * 1000.0;
                    if took >= 10.0 {
                        let at = (*first - began).as_secs_f64() * 1000.0;
                        out.long_commits.push((took, at));
                    }
                    false
                });
            }
            let _ = c.close().await;
            out
        });
        Some(WaitWatch { stop, task })
    }

    pub async fn finish(self) -> WaitSamples {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

impl WaitSamples {
    pub fn print(&self) {
        if self.polls == 0 {
            return;
        }
        eprintln!(
            "  the database's active backends, {} samples {} ms apart (share of samples):",
            self.polls,
            self.every.as_millis()
        );
        let mut seen: Vec<_> = self.seen.iter().collect();
        seen.sort_by(|a, b| b.1.cmp(a.1));
        for ((verb, wait), n) in seen.into_iter().take(12) {
            eprintln!(
                "    {:<8} {:<24} {:>6.2} %",
                verb,
                wait,
                *n as f64 * 100.0 / self.polls as f64
            );
        }
        let mut long = self.long_commits.clone();
        long.sort_by(|a, b| b.0.total_cmp(&a.0));
        let longest: Vec<String> = long
            .iter()
            .take(8)
            .map(|(ms, at)| format!("{ms:.0} ms at +{:.1} s", at / 1000.0))
            .collect();
        eprintln!(
            "  COMMITs seen waiting 10 ms or more: {}{}{}",
            long.len(),
            if long.is_empty() { "" } else { "; longest: " },
            longest.join(", ")
        );
    }
}
