//! The benchmark's PostgreSQL database: created fresh, seeded in one statement, watched
//! through the server's statistics, dropped at the end.

use flametree::channels::{Channels, Draft};
use flametree::permission::{Operator, Role};
use flametree::secrets::{KeySource, MasterKey, SecretString};
// The database name is the benchmark's own (letters, digits, underscores), never input.
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row};
use std::sync::Arc;

pub struct BenchDb {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

/// The server's counters for one database (pg_stat_database).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    pub commits: i64,
    pub rows_returned: i64,
    pub rows_fetched: i64,
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("BENCH_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl BenchDb {
    pub async fn create(admin_url: &str, name: &str) -> sqlx::Result<BenchDb> {
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        Ok(BenchDb {
            admin_url: admin_url.to_string(),
            name: name.to_string(),
            url: database_url(admin_url, name),
        })
    }

    pub async fn drop_it(&self) -> sqlx::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await?;
        Ok(())
    }

    /// Migrates, then writes `n` connections of six types in one INSERT … SELECT over
    /// generate_series (the notify trigger fires per row, with nobody listening yet).
    /// Telegram rows carry a real sealed bot token and two variables, so the list
    /// decodes what a real tenant's rows hold. Every fifth connection is in ERROR.
    /// Returns the id of the first connection by name ("Channel 000000 telegram").
    pub async fn seed(&self, n: usize, key: [u8; 32]) -> anyhow::Result<i64> {
        let store = flametree::store::open(&self.url, 5, 2).await?;
        let tenant = store.tenant("default").await?;
        let operator = Operator {
            name: "bench".into(),
            role: Role::Editor,
            role_reason: "bench".into(),
        };
        let channels = Channels::new(
            store,
            tenant,
            operator,
            Ok(Arc::new(MasterKey::from_bytes(key, KeySource::Config))),
        );
        let mut draft = Draft {
            type_key: "telegram".into(),
            name: "template".into(),
            env: vec![flametree::model::EnvVar {
                name: "TELEGRAM_POLL_TIMEOUT".into(),
                value: "10".into(),
            }],
            ..Default::default()
        };
        draft.secrets.insert(
            "bot_token".into(),
            SecretString::new("123456:bench-token-never-used-anywhere"),
        );
        let template = channels.add(&draft).await?.connection;
        let mut db = PgConnection::connect(&self.url).await?;
        sqlx::query(
            "INSERT INTO connections (tenant_id, type_key, name, name_key, description, config, \
               sealed_fields, status, status_message, status_since, created_at, created_by, \
               updated_at, updated_by, changed_at, hook_id) \
             SELECT t.tenant_id, ty, nm, lower(nm), 'benchmark connection', \
               CASE WHEN ty = 'telegram' THEN t.config ELSE '{}' END, \
               CASE WHEN ty = 'telegram' THEN t.sealed_fields ELSE 0 END, \
               CASE WHEN i % 5 = 2 THEN 'ERROR' ELSE 'STOPPED' END, \
               CASE WHEN i % 5 = 2 THEN 'the provider rejected the credentials (401)' ELSE '' END, \
               now(), now(), 'bench', now(), 'bench', 0, md5(random()::text || i::text) \
             FROM connections t, generate_series(0, $1 - 1) AS i, \
               LATERAL (SELECT (ARRAY['telegram','email','whatsapp','facebook','infobip','messagebird'])[i % 6 + 1] AS ty) AS types, \
               LATERAL (SELECT 'Channel ' || lpad(i::text, 6, '0') || ' ' || ty AS nm) AS names \
             WHERE t.id = $2",
        )
        .bind(n as i64)
        .bind(template.id)
        .execute(&mut db)
        .await?;
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(template.id)
            .execute(&mut db)
            .await?;
        // The whole database, catalogs included: the seeding's and the migrations' own
        // clean-up is then not counted as idle work later.
        sqlx::query("VACUUM ANALYZE").execute(&mut db).await?;
        let first: i64 = sqlx::query_scalar(
            "SELECT id FROM connections WHERE name_key = 'channel 000000 telegram'",
        )
        .fetch_one(&mut db)
        .await?;
        Ok(first)
    }

    pub async fn counters(&self) -> sqlx::Result<DbCounters> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        // A fresh look at the counters, not the snapshot of an earlier read.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut admin)
            .await?;
        let row = sqlx::query(
            "SELECT xact_commit, tup_returned, tup_fetched FROM pg_stat_database WHERE datname = $1",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await?;
        Ok(DbCounters {
            commits: row.try_get("xact_commit")?,
            rows_returned: row.try_get("tup_returned")?,
            rows_fetched: row.try_get("tup_fetched")?,
        })
    }

    /// Whether a `serve` has announced itself (its heartbeat), so consoles started now
    /// leave the channels to it.
    pub async fn serve_alive(&self) -> sqlx::Result<bool> {
        let mut db = PgConnection::connect(&self.url).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM flametree_processes WHERE role = 'serve' AND runs_channels",
        )
        .fetch_one(&mut db)
        .await?;
        Ok(n > 0)
    }
}

/// A base64 master key made for this run; it is handed to the processes through the
/// environment and never printed.
pub fn run_key() -> ([u8; 32], String) {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    (bytes, b64)
}
