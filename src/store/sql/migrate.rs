//! Migrations with `sqlx::migrate!`, one directory per backend. Databases made before
//! flametree used sqlx's migrator recorded their schema version in
//! `flametree_migrations`; their migrations are marked applied in sqlx's table (the
//! files are unchanged, so the checksums match) and the newer ones then run as usual.
//! The newest version is written back to `flametree_migrations` so an older flametree,
//! which reads only that table, refuses the database instead of misreading it.

use super::{BACKEND, Db, MIGRATOR};
use crate::model::now_millis;
use crate::store::{Backend, StoreError};
use sqlx::Pool;

pub(crate) async fn run(pool: &Pool<Db>) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration(e.to_string());
    let newest_known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let mut conn = pool.acquire().await.map_err(fail)?;
    if BACKEND == Backend::Postgres {
        // Two processes starting at once must not both adopt or migrate.
        sqlx::query("SELECT pg_advisory_lock(7406141)")
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
    }
    let result = adopt_and_migrate(&mut conn, newest_known).await;
    if BACKEND == Backend::Postgres {
        let _ = sqlx::query("SELECT pg_advisory_unlock(7406141)")
            .execute(&mut *conn)
            .await;
    }
    result
}

/// The newest migration sqlx recorded as applied, if it keeps a record here.
async fn applied_version(
    conn: &mut sqlx::pool::PoolConnection<Db>,
) -> Result<Option<i64>, sqlx::Error> {
    let exists = match BACKEND {
        Backend::Postgres => "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
        Backend::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '_sqlx_migrations')"
        }
    };
    let exists: bool = sqlx::query_scalar(exists).fetch_one(&mut **conn).await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut **conn)
        .await
}

async fn adopt_and_migrate(
    conn: &mut sqlx::pool::PoolConnection<Db>,
    newest_known: i64,
) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration(e.to_string());
    // Up to date: nothing is written, so a database user that may only read (or only
    // change rows, not tables) opens the database as well as its owner does.
    if applied_version(conn).await.map_err(fail)? == Some(newest_known) {
        return Ok(());
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS flametree_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut **conn)
    .await
    .map_err(fail)?;
    let recorded: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM flametree_migrations")
        .fetch_one(&mut **conn)
        .await
        .map_err(fail)?;
    if let Some(newer) = recorded.filter(|v| *v > newest_known) {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {newer}, newer than this flametree knows \
             ({newest_known}): upgrade flametree"
        )));
    }
    let migrated = |e: sqlx::migrate::MigrateError| StoreError::Migration(e.to_string());
    if let Some(legacy) = recorded {
        // Marks 1..=legacy applied where sqlx has no record of them yet; a database
        // sqlx already migrated is left as it is.
        MIGRATOR
            .run_direct(Some(legacy), &mut **conn, true)
            .await
            .map_err(migrated)?;
    }
    MIGRATOR
        .run_direct(None, &mut **conn, false)
        .await
        .map_err(migrated)?;
    sqlx::query(
        "INSERT INTO flametree_migrations (version, applied_at) VALUES ($1, $2) \
         ON CONFLICT (version) DO NOTHING",
    )
    .bind(newest_known)
    .bind(now_millis())
    .execute(&mut **conn)
    .await
    .map_err(fail)?;
    Ok(())
}
