//! PostgreSQL on its native driver: BOOLEAN, JSONB and TIMESTAMPTZ columns, the
//! server's clock for leases, and migrations of its own (`migrations/postgres`).
//! The query code is shared with SQLite (`sql/`) and compiled once per backend
//! against the items below, so each backend runs monomorphic code on its own driver.

use super::{Backend, StoreError, StoreResult, redact_url};
use crate::model::Millis;
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

// Deliberately the same files as the other backend's: one source, compiled per driver.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub(crate) use sql::SqlStore;

pub(crate) type Db = sqlx::Postgres;
pub(crate) const BACKEND: Backend = Backend::Postgres;

/// A point in time as the column type holds it.
pub(crate) type Ts = chrono::DateTime<chrono::Utc>;

pub(crate) fn ts(ms: Millis) -> Ts {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn ms(t: Ts) -> Millis {
    t.timestamp_millis()
}

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// The database's clock: leases and heartbeats never use a client's.
pub(crate) const NOW: &str = "clock_timestamp()";

/// `at` plus a bound number of milliseconds.
pub(crate) fn plus_ms(at: &str, param: &str) -> String {
    format!("({at} + CAST({param} AS DOUBLE PRECISION) * INTERVAL '1 millisecond')")
}

/// Milliseconds from `b` to `a`, as BIGINT.
pub(crate) fn ms_between(a: &str, b: &str) -> String {
    format!("CAST(EXTRACT(EPOCH FROM ({a} - {b})) * 1000 AS BIGINT)")
}

pub(crate) async fn connect(
    url: &str,
    connect_timeout_secs: u64,
    max_connections: u32,
) -> StoreResult<SqlStore> {
    // Without statement logging: see `sql::quiet` for why.
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("database URL '{}': {e}", redact_url(url))))?
        .disable_statement_logging();
    let pool_options = |max: u32| {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(connect_timeout_secs.max(1)))
    };
    let pool = pool_options(max_connections.max(1))
        .connect_with(options.clone())
        .await
        .map_err(sql::unavailable)?;
    sql::migrate::run(&pool).await?;
    // Opened on first use: processes that never run channels never open it.
    let writer_pool = pool_options(1).connect_lazy_with(options);
    SqlStore::ready(pool, writer_pool, redact_url(url)).await
}
