//! The store's queries, shared by both backends and compiled once for each (see
//! `postgres.rs` and `sqlite.rs`): `Db` is the backend's sqlx driver, `Ts` the type of
//! its timestamp columns, and the few spots where the dialects differ ask `BACKEND`.

mod agents;
mod calls;
mod leases;
pub(crate) mod migrate;
mod pipeline;
mod receive;
mod retention;
mod rows;
mod rowset;

pub(crate) use super::{BACKEND, Db, MIGRATOR, NOW, Ts, ms, ms_between, plus_ms, ts};

use crate::model::{
    Agent, AgentChannel, Attachment, AuditEntry, Connection, DesiredState, LogLine, Millis,
    NewConnection, Status, Tenant, format_millis, now_millis,
};
use crate::store::{
    AgentStore, AuditNote, Backend, ChangeMarker, ChannelStore, ConnectionState, LedgerState,
    LogStore, PruneCounts, RuntimeStore, Store, StoreError, StoreResult,
};
use async_trait::async_trait;
use rows::connection_columns;
use sqlx::types::Json;
use sqlx::{Pool, Row, Transaction};

pub(crate) type DbRow = <Db as sqlx::Database>::Row;
pub(crate) type Tx<'a> = Transaction<'a, Db>;

pub struct SqlStore {
    pub(crate) pool: Pool<Db>,
    /// The group-commit writer's own connection: in a burst it queued for the shared
    /// pool behind hundreds of answer tasks' reads, and every channel waits on it.
    pub(crate) writer_pool: Pool<Db>,
    described: String,
}

pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c == "57P01") =>
        {
            StoreError::Unavailable(db.message().to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// A failed first connection: whatever the cause, the database is not there for us.
pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    match classify(e) {
        StoreError::Other(m) => StoreError::Unavailable(m),
        other => other,
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl SqlStore {
    /// The store over migrated pools (sqlx's statement logging is off on both: its
    /// logger asks `tracing` whether each level is enabled without emitting an event,
    /// which leaves tracing-subscriber's per-layer filter state stale on that thread,
    /// and the next event on it — a channel's log line — was dropped).
    pub(crate) async fn ready(
        pool: Pool<Db>,
        writer_pool: Pool<Db>,
        described: String,
    ) -> StoreResult<SqlStore> {
        pipeline::fill_hook_ids(&pool).await?;
        Ok(SqlStore {
            pool,
            writer_pool,
            described,
        })
    }

    pub(super) async fn audit(
        tx: &mut Transaction<'_, Db>,
        tenant_id: i64,
        note: &AuditNote,
        kind: &str,
        target_id: i64,
        target_name: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, at, actor, action, target_kind, target_id, \
             target_name, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant_id)
        .bind(ts(now_millis()))
        .bind(&note.actor)
        .bind(&note.action)
        .bind(kind)
        .bind(target_id)
        .bind(target_name)
        .bind(&note.details)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn fetch_connection(
        &self,
        sql: &'static str,
        a: i64,
        b: Option<&str>,
    ) -> StoreResult<Option<Connection>> {
        let mut q = sqlx::query(sql).bind(a);
        if let Some(b) = b {
            q = q.bind(b.to_string());
        }
        let row: Option<DbRow> = q.fetch_optional(&self.pool).await.map_err(classify)?;
        row.as_ref().map(rows::connection).transpose()
    }

    /// The stored connection, or NotFound when someone deleted it.
    async fn existing(&self, id: i64) -> StoreResult<Connection> {
        self.connection(id).await?.ok_or(StoreError::NotFound {
            kind: "connection",
            name: format!("#{id}"),
        })
    }

    /// After an UPDATE/DELETE matched nothing: was it deleted, or changed by someone?
    async fn explain_miss(&self, id: i64, name: &str) -> StoreError {
        match self.connection(id).await {
            Ok(Some(current)) => StoreError::Conflict {
                name: current.name,
                by: current.updated_by,
                at: format_millis(current.updated_at),
            },
            Ok(None) => StoreError::NotFound {
                kind: "connection",
                name: name.to_string(),
            },
            Err(e) => e,
        }
    }
}

/// Decodes rows a thousand at a time and lets the scheduler run in between. A hundred
/// thousand connections take the better part of a second to decode; done in one go,
/// the worker thread doing it runs nothing else meanwhile — not the tasks queued behind
/// it, nor the timers it would drive — so the console's frames and the pool's new
/// connections waited for seconds on the benchmark machine.
async fn decode_yielding<T>(
    found: &[DbRow],
    decode: fn(&DbRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::with_capacity(found.len());
    for chunk in found.chunks(1000) {
        for row in chunk {
            out.push(decode(row)?);
        }
        tokio::task::yield_now().await;
    }
    Ok(out)
}

/// The `config` column: JSONB on PostgreSQL, JSON text on SQLite.
fn config_json(
    fields: &std::collections::BTreeMap<String, String>,
    secrets: &std::collections::BTreeMap<String, crate::secrets::SealedSecret>,
    env: &[crate::model::EnvVar],
) -> Json<rows::ConfigColumn> {
    Json(rows::ConfigColumn {
        fields: fields.clone(),
        secrets: secrets.clone(),
        env: env.to_vec(),
    })
}

// The change marker. On PostgreSQL: every write moves its row's changed_at forward by
// at least 1, even within one millisecond, so the checksum changes on every write. SQLite
// keeps a counter of those writes instead (migration 0013): one row read, not every
// connection.
const MARKER: [&str; 2] = [
    "SELECT COALESCE((SELECT changes FROM connection_changes WHERE tenant_id = $1), 0) AS n, \
     0 AS newest, 0 AS checksum",
    "SELECT COUNT(*) AS n, CAST(COALESCE(MAX(changed_at), 0) AS BIGINT) AS newest, \
     CAST(COALESCE(SUM(changed_at % 1000003), 0) AS BIGINT) AS checksum \
     FROM connections WHERE tenant_id = $1",
];
/// `pulse` with the marker: `MARKER` and the waiting check in one statement. SQLite's
/// also reads the agents' change counter of all tenants (migration 0014); PostgreSQL
/// announces agent changes.
const PULSE_WITH_MARKER: [&str; 2] = [
    "SELECT COALESCE((SELECT changes FROM connection_changes WHERE tenant_id = $1), 0) AS n, \
     0 AS newest, 0 AS checksum, \
     (SELECT COALESCE(SUM(changes), 0) FROM agent_changes) AS agents, \
     EXISTS (SELECT 1 FROM inbound_ledger WHERE state = 'received') AS waiting",
    "SELECT COUNT(*) AS n, CAST(COALESCE(MAX(changed_at), 0) AS BIGINT) AS newest, \
     CAST(COALESCE(SUM(changed_at % 1000003), 0) AS BIGINT) AS checksum, \
     EXISTS (SELECT 1 FROM inbound_ledger WHERE state = 'received') AS waiting \
     FROM connections WHERE tenant_id = $1",
];
/// `pulse` without the marker.
const PULSE: [&str; 2] = [
    "SELECT (SELECT COALESCE(SUM(changes), 0) FROM agent_changes) AS agents, \
     EXISTS (SELECT 1 FROM inbound_ledger WHERE state = 'received') AS waiting",
    "SELECT EXISTS (SELECT 1 FROM inbound_ledger WHERE state = 'received') AS waiting",
];

fn marker_dialect() -> usize {
    match BACKEND {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
    }
}

fn marker_of(row: &DbRow) -> StoreResult<ChangeMarker> {
    Ok((
        row.try_get("n").map_err(classify)?,
        row.try_get("newest").map_err(classify)?,
        row.try_get("checksum").map_err(classify)?,
    ))
}

#[async_trait]
impl ChannelStore for SqlStore {
    async fn tenant(&self, name: &str) -> StoreResult<Tenant> {
        sqlx::query(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(ts(now_millis()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        let row = sqlx::query("SELECT id, name FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(Tenant {
            id: row.try_get("id").map_err(classify)?,
            name: row.try_get("name").map_err(classify)?,
        })
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(Tenant {
                    id: r.try_get("id").map_err(classify)?,
                    name: r.try_get("name").map_err(classify)?,
                })
            })
            .collect()
    }

    async fn list_connections(&self, tenant_id: i64) -> StoreResult<Vec<Connection>> {
        let sql = concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE tenant_id = $1 ORDER BY name_key"
        );
        let found = sqlx::query(sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        decode_yielding(&found, rows::connection).await
    }

    async fn connection_states(&self, tenant_id: i64) -> StoreResult<Vec<ConnectionState>> {
        let found =
            sqlx::query("SELECT id, desired_state, status FROM connections WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        decode_yielding(&found, rows::connection_state).await
    }

    async fn first_connections(&self, tenant_id: i64, limit: u32) -> StoreResult<Vec<Connection>> {
        let sql = concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE tenant_id = $1 ORDER BY name_key LIMIT $2"
        );
        let found = sqlx::query(sql)
            .bind(tenant_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        found.iter().map(rows::connection).collect()
    }

    async fn change_marker(&self, tenant_id: i64) -> StoreResult<ChangeMarker> {
        let row = sqlx::query(MARKER[marker_dialect()])
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        marker_of(&row)
    }

    async fn connection(&self, id: i64) -> StoreResult<Option<Connection>> {
        let sql = concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE id = $1"
        );
        self.fetch_connection(sql, id, None).await
    }

    async fn connection_by_name(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> StoreResult<Option<Connection>> {
        let sql = concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE tenant_id = $1 AND name_key = $2"
        );
        self.fetch_connection(sql, tenant_id, Some(&name_key(name)))
            .await
    }

    async fn insert_connection(
        &self,
        new: &NewConnection,
        note: &AuditNote,
    ) -> StoreResult<Connection> {
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let inserted = sqlx::query(
            "INSERT INTO connections (tenant_id, type_key, name, name_key, description, config, \
             sealed_fields, status_since, created_at, created_by, updated_at, updated_by, changed_at, \
             hook_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $8, $9, $11, $10) RETURNING id",
        )
        .bind(new.tenant_id)
        .bind(&new.type_key)
        .bind(new.name.trim())
        .bind(name_key(&new.name))
        .bind(&new.description)
        .bind(config_json(&new.fields, &new.secrets, &new.env))
        .bind(new.secrets.len() as i64)
        .bind(ts(now))
        .bind(&note.actor)
        .bind(pipeline::new_hook_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(classify)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate {
                    kind: "connection",
                    name: new.name.trim().to_string(),
                });
            }
            Err(e) => return Err(classify(e)),
        };
        Self::audit(
            &mut tx,
            new.tenant_id,
            note,
            "connection",
            id,
            new.name.trim(),
        )
        .await?;
        tx.commit().await.map_err(classify)?;
        self.connection(id).await?.ok_or(StoreError::NotFound {
            kind: "connection",
            name: new.name.clone(),
        })
    }

    async fn update_connection(&self, c: &Connection, note: &AuditNote) -> StoreResult<Connection> {
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let updated = sqlx::query(
            "UPDATE connections SET name = $1, name_key = $2, description = $3, config = $4, \
             sealed_fields = $5, version = version + 1, updated_at = $6, updated_by = $7, \
             changed_at = CASE WHEN changed_at >= $10 THEN changed_at + 1 ELSE $10 END \
             WHERE id = $8 AND version = $9",
        )
        .bind(c.name.trim())
        .bind(name_key(&c.name))
        .bind(&c.description)
        .bind(config_json(&c.fields, &c.secrets, &c.env))
        .bind(c.secrets.len() as i64)
        .bind(ts(now))
        .bind(&note.actor)
        .bind(c.id)
        .bind(c.version)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match updated {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                drop(tx);
                return Err(self.explain_miss(c.id, &c.name).await);
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate {
                    kind: "connection",
                    name: c.name.trim().to_string(),
                });
            }
            Err(e) => return Err(classify(e)),
        }
        Self::audit(
            &mut tx,
            c.tenant_id,
            note,
            "connection",
            c.id,
            c.name.trim(),
        )
        .await?;
        tx.commit().await.map_err(classify)?;
        self.connection(c.id).await?.ok_or(StoreError::NotFound {
            kind: "connection",
            name: c.name.clone(),
        })
    }

    async fn delete_connection(&self, id: i64, version: i64, note: &AuditNote) -> StoreResult<()> {
        let current = self.existing(id).await?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query("DELETE FROM connections WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if done.rows_affected() != 1 {
            drop(tx);
            return Err(self.explain_miss(id, &current.name).await);
        }
        Self::audit(
            &mut tx,
            current.tenant_id,
            note,
            "connection",
            id,
            &current.name,
        )
        .await?;
        tx.commit().await.map_err(classify)
    }

    async fn set_desired_state(
        &self,
        id: i64,
        desired: DesiredState,
        note: &AuditNote,
    ) -> StoreResult<()> {
        let current = self.existing(id).await?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "UPDATE connections SET desired_state = $1, \
             changed_at = CASE WHEN changed_at >= $2 THEN changed_at + 1 ELSE $2 END WHERE id = $3",
        )
        .bind(desired.as_str())
        .bind(now_millis())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Self::audit(
            &mut tx,
            current.tenant_id,
            note,
            "connection",
            id,
            &current.name,
        )
        .await?;
        tx.commit().await.map_err(classify)
    }

    async fn set_status(&self, id: i64, status: Status, message: &str) -> StoreResult<()> {
        // From any status: one statement for both kinds of transition.
        self.set_status_from(id, &Status::ALL, status, message)
            .await
            .map(|_| ())
    }

    async fn set_status_from(
        &self,
        id: i64,
        from: &[Status],
        status: Status,
        message: &str,
    ) -> StoreResult<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let now = now_millis();
        let list: Vec<String> = (0..from.len()).map(|i| format!("${}", 6 + i)).collect();
        let sql = format!(
            "UPDATE connections SET status_since = CASE WHEN status = $1 THEN status_since ELSE $2 END, \
             status = $1, status_message = $3, \
             changed_at = CASE WHEN changed_at >= $5 THEN changed_at + 1 ELSE $5 END \
             WHERE id = $4 AND status IN ({})",
            list.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.as_str())
            .bind(ts(now))
            .bind(message)
            .bind(id)
            .bind(now);
        for s in from {
            q = q.bind(s.as_str());
        }
        let done = q.execute(&self.pool).await.map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_running_version(&self, id: i64, version: Option<i64>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE connections SET running_version = $1, \
             changed_at = CASE WHEN changed_at >= $2 THEN changed_at + 1 ELSE $2 END WHERE id = $3",
        )
        .bind(version)
        .bind(now_millis())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn audit_trail(&self, tenant_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let found = sqlx::query(
            "SELECT at, actor, action, target_kind, target_id, target_name, details, db_user FROM audit_log \
             WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        found.iter().map(rows::audit).collect()
    }

    async fn reseal(
        &self,
        connections: &[Connection],
        agents: &[Agent],
        key_id_setting: (&str, &str),
        note: &AuditNote,
    ) -> StoreResult<()> {
        let changed = |name: &str| {
            StoreError::Other(format!(
                "'{name}' was changed while its secrets were being re-sealed; nothing was \
                 written: run the rotation again"
            ))
        };
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for c in connections {
            let done = sqlx::query(
                "UPDATE connections SET config = $1, version = version + 1, \
                 running_version = CASE WHEN running_version = version THEN version + 1 \
                 ELSE running_version END, \
                 changed_at = CASE WHEN changed_at >= $2 THEN changed_at + 1 ELSE $2 END \
                 WHERE id = $3 AND version = $4",
            )
            .bind(config_json(&c.fields, &c.secrets, &c.env))
            .bind(now)
            .bind(c.id)
            .bind(c.version)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if done.rows_affected() != 1 {
                return Err(changed(&c.name));
            }
            Self::audit(&mut tx, c.tenant_id, note, "connection", c.id, &c.name).await?;
        }
        for a in agents {
            let responder: serde_json::Value = serde_json::from_str(&a.responder)
                .map_err(|e| StoreError::Other(format!("agent '{}': {e}", a.name)))?;
            let speech: serde_json::Value = serde_json::from_str(if a.speech.trim().is_empty() {
                "{}"
            } else {
                &a.speech
            })
            .map_err(|e| StoreError::Other(format!("agent '{}': {e}", a.name)))?;
            let done = sqlx::query(
                "UPDATE agents SET responder = $1, speech = $2, version = version + 1, \
                 running_version = CASE WHEN running_version = version THEN version + 1 \
                 ELSE running_version END WHERE id = $3 AND version = $4",
            )
            .bind(Json(responder))
            .bind(Json(speech))
            .bind(a.id)
            .bind(a.version)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if done.rows_affected() != 1 {
                return Err(changed(&a.name));
            }
            Self::audit(&mut tx, a.tenant_id, note, "agent", a.id, &a.name).await?;
        }
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key_id_setting.0)
        .bind(key_id_setting.1)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn db_user(&self) -> StoreResult<Option<(String, bool)>> {
        if BACKEND != Backend::Postgres {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT CAST(current_user AS TEXT) AS who, \
             has_table_privilege('connections', 'UPDATE') AS can_write",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(Some((
            row.try_get("who").map_err(classify)?,
            row.try_get("can_write").map_err(classify)?,
        )))
    }

    async fn grant_role(&self, name: &str, editor: bool) -> StoreResult<()> {
        if BACKEND != Backend::Postgres {
            return Err(StoreError::Config(
                "SQLite has no database users: whoever can read the database file can change \
                 it, so roles can only be enforced on PostgreSQL"
                    .into(),
            ));
        }
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Config(format!(
                "'{}' is not a database user name flametree creates: use lower-case letters, \
                 digits and _ (at most 63), starting with a letter",
                name.escape_debug()
            )));
        }
        // `name` is checked above, so it is safe inside the statements.
        let mut statements = vec![
            format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') \
                 THEN CREATE ROLE {name} LOGIN; END IF; END $$"
            ),
            format!(
                "DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {name}', \
                 current_database()); END $$"
            ),
            format!("GRANT USAGE ON SCHEMA public TO {name}"),
            format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {name}"),
            format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}"),
            // Every process says it is alive, viewers' consoles too.
            format!("GRANT INSERT, UPDATE, DELETE ON flametree_processes TO {name}"),
        ];
        // Tables a later migration creates (as the user granting now) come with the
        // same privileges, so an upgrade does not lock the role out of them.
        statements.push(format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {name}"
        ));
        statements.push(format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {name}"
        ));
        if editor {
            statements.push(format!(
                "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"
            ));
            statements.push(format!(
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"
            ));
            statements.push(format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public \
                 GRANT INSERT, UPDATE, DELETE ON TABLES TO {name}"
            ));
            statements.push(format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {name}"
            ));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for sql in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| match classify(e) {
                    StoreError::Other(m) => StoreError::Other(format!(
                        "{m} (granting needs a database user that may create roles and owns \
                         flametree's tables)"
                    )),
                    other => other,
                })?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn record_audit(
        &self,
        tenant_id: i64,
        note: &AuditNote,
        kind: &str,
        target_id: i64,
        target_name: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        Self::audit(&mut tx, tenant_id, note, kind, target_id, target_name).await?;
        tx.commit().await.map_err(classify)
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    // Connections count their sealed fields in a column; an agent's sealed API keys
    // live inside its responder and speech documents, and agents are few: read and looked at here.
    async fn count_sealed_secrets(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE sealed_fields > 0")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        // The speech engines' key is sealed in the `speech` document the same way.
        let documents: Vec<(Json<serde_json::Value>, Json<serde_json::Value>)> =
            sqlx::query_as("SELECT responder, speech FROM agents")
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        let sealed = |d: &serde_json::Value| d.get("api_key").is_some_and(|k| !k.is_null());
        let agents: usize = documents
            .iter()
            .map(|(Json(r), Json(s))| usize::from(sealed(r)) + usize::from(sealed(s)))
            .sum();
        Ok(n.max(0) as u64 + agents as u64)
    }

    async fn connection_by_hook(&self, hook_id: &str) -> StoreResult<Option<Connection>> {
        self.connection_by_hook_(hook_id).await
    }
}

#[async_trait]
impl LogStore for SqlStore {
    async fn append_logs(&self, lines: &[LogLine], keep: u32) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for line in lines {
            sqlx::query("INSERT INTO connection_logs (connection_id, at, level, message) VALUES ($1, $2, $3, $4)")
                .bind(line.connection_id)
                .bind(ts(line.at))
                .bind(&line.level)
                .bind(&line.message)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let mut ids: Vec<i64> = lines.iter().map(|l| l.connection_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            sqlx::query(
                "DELETE FROM connection_logs WHERE connection_id = $1 AND id < \
                 (SELECT MIN(id) FROM (SELECT id FROM connection_logs WHERE connection_id = $1 \
                 ORDER BY id DESC LIMIT $2) AS newest)",
            )
            .bind(id)
            .bind(i64::from(keep.max(1)))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn last_log_id(&self, connection_id: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM connection_logs WHERE connection_id = $1",
        )
        .bind(connection_id)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)
    }

    async fn recent_logs(&self, connection_id: i64, limit: u32) -> StoreResult<Vec<LogLine>> {
        let found = sqlx::query(
            "SELECT connection_id, at, level, message FROM connection_logs WHERE connection_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(connection_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut lines = found
            .iter()
            .map(rows::log_line)
            .collect::<StoreResult<Vec<_>>>()?;
        lines.reverse();
        Ok(lines)
    }

    async fn logs_after(
        &self,
        connection_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LogLine)>> {
        let found = sqlx::query(
            "SELECT id, connection_id, at, level, message FROM connection_logs \
             WHERE connection_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(connection_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        found
            .iter()
            .map(|r| Ok((r.try_get("id").map_err(classify)?, rows::log_line(r)?)))
            .collect()
    }
}

#[async_trait]
impl RuntimeStore for SqlStore {
    async fn db_now(&self) -> StoreResult<Millis> {
        self.db_now_().await
    }

    async fn presence_round(
        &self,
        me: &crate::store::ProcessInfo,
        tenant_id: i64,
        want: crate::store::LeaseRead,
        renew_ttl_ms: Option<i64>,
    ) -> StoreResult<crate::store::PresenceRound> {
        self.presence_round_(me, tenant_id, want, renew_ttl_ms)
            .await
    }

    async fn acquire_lease(
        &self,
        connection_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<i64>> {
        self.acquire_lease_(connection_id, owner, ttl_ms).await
    }

    async fn renew_leases(&self, owner: &str, ttl_ms: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.renew_leases_(owner, ttl_ms).await
    }

    async fn renew_leases_counted(&self, owner: &str, ttl_ms: i64) -> StoreResult<u64> {
        self.renew_leases_counted_(owner, ttl_ms).await
    }

    async fn release_lease(&self, connection_id: i64, owner: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM connection_leases WHERE connection_id = $1 AND owner = $2")
            .bind(connection_id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn expire_leases_of(&self, owner: &str) -> StoreResult<u64> {
        self.expire_leases_of_(owner).await
    }

    async fn leases(&self, tenant_id: i64) -> StoreResult<Vec<crate::store::LeaseInfo>> {
        self.leases_(tenant_id).await
    }

    async fn lease_holders(&self) -> StoreResult<Vec<String>> {
        self.lease_holders_().await
    }

    async fn heartbeat(&self, p: &crate::store::ProcessInfo) -> StoreResult<()> {
        self.heartbeat_(p).await
    }

    async fn processes(&self) -> StoreResult<Vec<crate::store::ProcessInfo>> {
        self.processes_().await
    }

    async fn forget_process(&self, id: &str) -> StoreResult<()> {
        self.forget_process_(id).await
    }

    async fn cursor(&self, connection_id: i64) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT cursor FROM connection_cursors WHERE connection_id = $1")
            .bind(connection_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn cursor_since(&self, connection_id: i64) -> StoreResult<Option<(String, Millis)>> {
        let row = sqlx::query(
            "SELECT cursor, updated_at FROM connection_cursors WHERE connection_id = $1",
        )
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            Ok((
                r.try_get("cursor").map_err(classify)?,
                ms(r.try_get("updated_at").map_err(classify)?),
            ))
        })
        .transpose()
    }

    async fn set_cursor(&self, connection_id: i64, cursor: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connection_cursors (connection_id, cursor, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(connection_id)
        .bind(cursor)
        .bind(ts(now_millis()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn ledger_receive(
        &self,
        connection_id: i64,
        provider_id: &str,
    ) -> StoreResult<LedgerState> {
        let now = now_millis();
        // One statement: inserts a new event, or touches nothing but returns the known one.
        let state: String = sqlx::query_scalar(
            "INSERT INTO inbound_ledger (connection_id, provider_id, state, received_at, updated_at) \
             VALUES ($1, $2, 'received', $3, $3) ON CONFLICT (connection_id, provider_id) \
             DO UPDATE SET state = inbound_ledger.state RETURNING state",
        )
        .bind(connection_id)
        .bind(provider_id)
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(LedgerState::parse(&state))
    }

    async fn ledger_mark(
        &self,
        connection_id: i64,
        provider_id: &str,
        state: LedgerState,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE inbound_ledger SET state = $1, updated_at = $2 WHERE connection_id = $3 AND provider_id = $4",
        )
        .bind(state.as_str())
        .bind(ts(now_millis()))
        .bind(connection_id)
        .bind(provider_id)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn write_batch(
        &self,
        ops: &[crate::store::WriteOp],
        log_keep: u32,
    ) -> StoreResult<Vec<crate::store::WriteResult>> {
        self.write_batch_(ops, log_keep).await
    }

    async fn waiting_inbound(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<(i64, crate::store::LedgerEntry)>> {
        self.waiting_inbound_(limit).await
    }

    async fn pulse(&self, tenant_id: i64, with_marker: bool) -> StoreResult<crate::store::Pulse> {
        let sqlite = BACKEND == Backend::Sqlite;
        let query = match with_marker {
            true => sqlx::query(PULSE_WITH_MARKER[marker_dialect()]).bind(tenant_id),
            false => sqlx::query(PULSE[marker_dialect()]),
        };
        let row = query.fetch_one(&self.pool).await.map_err(classify)?;
        Ok(crate::store::Pulse {
            marker: match with_marker {
                true => Some(marker_of(&row)?),
                false => None,
            },
            agent_changes: match sqlite {
                true => Some(row.try_get("agents").map_err(classify)?),
                false => None,
            },
            inbound_waiting: row.try_get("waiting").map_err(classify)?,
        })
    }

    async fn settle_interrupted(
        &self,
        connection_id: i64,
        retry: bool,
    ) -> StoreResult<Vec<(String, String)>> {
        self.settle_interrupted_(connection_id, retry).await
    }

    async fn ledger_state(
        &self,
        connection_id: i64,
        key: &str,
    ) -> StoreResult<Option<LedgerState>> {
        self.ledger_state_(connection_id, key).await
    }

    async fn outbound(
        &self,
        connection_id: i64,
        provider_id: &str,
    ) -> StoreResult<Option<crate::store::OutboundRecord>> {
        self.outbound_(connection_id, provider_id).await
    }

    async fn request_call(
        &self,
        connection_id: i64,
        callee: &str,
        opening: Option<&str>,
        requested_by: &str,
    ) -> StoreResult<i64> {
        self.request_call_(connection_id, callee, opening, requested_by)
            .await
    }

    async fn call_request(&self, id: i64) -> StoreResult<Option<crate::model::CallRequest>> {
        self.call_request_(id).await
    }

    async fn queued_call_connections(&self) -> StoreResult<Vec<i64>> {
        self.queued_call_connections_().await
    }

    async fn claim_call(
        &self,
        connection_id: i64,
        owner: &str,
        max_age_ms: i64,
    ) -> StoreResult<Option<crate::model::CallRequest>> {
        self.claim_call_(connection_id, owner, max_age_ms).await
    }

    async fn update_call(&self, id: i64, progress: &crate::model::CallProgress) -> StoreResult<()> {
        self.update_call_(id, progress).await
    }

    async fn cancel_queued_call(&self, id: i64, reason: &str) -> StoreResult<bool> {
        self.cancel_queued_call_(id, reason).await
    }

    async fn end_orphaned_calls(
        &self,
        connection_id: i64,
        owner: &str,
    ) -> StoreResult<Vec<crate::model::CallRequest>> {
        self.end_orphaned_calls_(connection_id, owner).await
    }

    async fn end_abandoned_call(&self, id: i64, claimer: &str) -> StoreResult<bool> {
        self.end_abandoned_call_(id, claimer).await
    }

    async fn prune_older_than(
        &self,
        cutoff_ms: i64,
        limit_per_table: u32,
    ) -> StoreResult<PruneCounts> {
        self.prune_older_than_(cutoff_ms, limit_per_table).await
    }
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn create_agent(
        &self,
        tenant_id: i64,
        name: &str,
        note: &AuditNote,
    ) -> StoreResult<Agent> {
        self.create_agent_(tenant_id, name, note).await
    }

    async fn list_agents(&self, tenant_id: i64) -> StoreResult<Vec<Agent>> {
        self.list_agents_(tenant_id).await
    }

    async fn agent(&self, id: i64) -> StoreResult<Option<Agent>> {
        self.agent_(id).await
    }

    async fn agent_by_name(&self, tenant_id: i64, name: &str) -> StoreResult<Option<Agent>> {
        self.agent_by_name_(tenant_id, name).await
    }

    async fn update_agent(&self, a: &Agent, note: &AuditNote) -> StoreResult<Agent> {
        self.update_agent_(a, note).await
    }

    async fn delete_agent(&self, id: i64, note: &AuditNote) -> StoreResult<()> {
        self.delete_agent_(id, note).await
    }

    async fn start_agent(&self, id: i64, note: &AuditNote) -> StoreResult<Agent> {
        self.start_agent_(id, note).await
    }

    async fn stop_agent(&self, id: i64, note: &AuditNote) -> StoreResult<Agent> {
        self.stop_agent_(id, note).await
    }

    async fn attach(
        &self,
        att: &Attachment,
        exclusive_inbound: bool,
        note: &AuditNote,
    ) -> StoreResult<()> {
        self.attach_(
            att.agent_id,
            att.connection_id,
            att.inbound,
            exclusive_inbound,
            note,
        )
        .await
    }

    async fn detach(&self, agent_id: i64, connection_id: i64, note: &AuditNote) -> StoreResult<()> {
        self.detach_(agent_id, connection_id, note).await
    }

    async fn attachments_of_connection(&self, connection_id: i64) -> StoreResult<Vec<Attachment>> {
        Ok(self
            .connection_agents_(connection_id)
            .await?
            .into_iter()
            .filter(|(_, ch)| !ch.detached)
            .map(|(_, ch)| Attachment {
                agent_id: ch.agent_id,
                connection_id: ch.connection_id,
                inbound: ch.inbound,
            })
            .collect())
    }

    async fn agent_channels(&self, agent_id: i64) -> StoreResult<Vec<AgentChannel>> {
        self.agent_channels_(agent_id).await
    }

    async fn connection_agents(
        &self,
        connection_id: i64,
    ) -> StoreResult<Vec<(Agent, AgentChannel)>> {
        self.connection_agents_(connection_id).await
    }

    async fn connection_agents_many(
        &self,
        connection_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<(Agent, AgentChannel)>>> {
        self.connection_agents_many_(connection_ids).await
    }

    async fn add_turn(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        role: &str,
        content: &str,
        keep: u32,
    ) -> StoreResult<()> {
        self.add_turn_(agent_id, connection_id, customer, role, content, keep)
            .await
    }

    async fn turns(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, String)>> {
        self.turns_(agent_id, connection_id, customer, limit).await
    }

    async fn record_unanswered(
        &self,
        connection_id: i64,
        customer: &str,
        text: &str,
        reason: &str,
    ) -> StoreResult<()> {
        self.record_unanswered_(connection_id, customer, text, reason)
            .await
    }

    async fn unanswered(
        &self,
        connection_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Millis, String, String, String)>> {
        self.unanswered_(connection_id, limit).await
    }
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

/// Uniqueness is case-insensitive and by NFC: "Sales bot" and "sales bot" are the
/// same name, and so is "Café" however its é was typed.
pub(super) fn name_key(name: &str) -> String {
    crate::model::inputs::normalize_name(name).to_lowercase()
}
