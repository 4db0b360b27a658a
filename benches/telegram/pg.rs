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
