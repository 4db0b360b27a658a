//! Forward-only migrations, one list per backend, applied in a transaction each.

use super::{Backend, StoreError};
use sqlx::AnyPool;

struct Migration {
    version: i64,
    sql: &'static str,
}

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/postgres/0002_runtime.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/postgres/0003_agents.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("migrations/postgres/0004_retention.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("migrations/postgres/0005_pipeline.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("migrations/postgres/0006_processes.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("migrations/postgres/0007_notify.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("migrations/postgres/0008_route_index.sql"),
    },
];

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/sqlite/0002_runtime.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/sqlite/0003_agents.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("migrations/sqlite/0004_retention.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("migrations/sqlite/0005_pipeline.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("migrations/sqlite/0006_processes.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("migrations/sqlite/0007_notify.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("migrations/sqlite/0008_route_index.sql"),
    },
];

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration(e.to_string());
    let list = match backend {
        Backend::Postgres => POSTGRES,
        Backend::Sqlite => SQLITE,
    };
    let mut tx = pool.begin().await.map_err(fail)?;
    if backend == Backend::Postgres {
        // Two processes starting at once must not both migrate.
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(7406141)) AS locked")
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS flametree_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM flametree_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
    let newest_known = list.last().map(|m| m.version).unwrap_or(0);
    if let Some(newer) = applied.iter().copied().filter(|v| *v > newest_known).max() {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {newer}, newer than this flametree knows \
             ({newest_known}): upgrade flametree"
        )));
    }
    for m in list.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query("INSERT INTO flametree_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(m.version)
            .bind(crate::model::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}
