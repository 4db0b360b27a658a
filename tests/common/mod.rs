//! Test harness: a fresh database per test, and the real binary with a private data dir.
#![allow(dead_code)]

use sqlx::Connection;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod hooks;
pub mod mail;
pub mod pg_cluster;
pub mod runtime;

/// The test URL: FLAMETREE_TEST_POSTGRES_URL, else the machine's PostgreSQL.
pub fn configured_postgres_url() -> String {
    std::env::var("FLAMETREE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The admin URL of the PostgreSQL the tests use: the server at the test URL when one
/// answers there, else a private cluster that this test binary starts once from the
/// installed server binaries and stops when it exits (see `pg_cluster`). The machine's
/// server is also passed over when it answers but refuses the tests (a stock install wants
/// a password); a server named by FLAMETREE_TEST_POSTGRES_URL is not. Panics with one line
/// when none can be had.
pub fn postgres_admin_url() -> String {
    static RESOLVED: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    RESOLVED
        .get_or_init(resolve_postgres)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn resolve_postgres() -> Result<String, String> {
    let url = configured_postgres_url();
    let chosen = std::env::var_os("FLAMETREE_TEST_POSTGRES_URL").is_some();
    let why = match probe_postgres(&url) {
        Ok(()) => return Ok(url),
        Err(Ok(why)) => why,
        Err(Err(e)) if chosen => {
            return Err(format!(
                "PostgreSQL at {url} (FLAMETREE_TEST_POSTGRES_URL) answered but the tests \
                 cannot use it: {e}"
            ));
        }
        Err(Err(e)) => format!("it refused the tests: {e}"),
    };
    let cluster = pg_cluster::shared()
        .map_err(|e| format!("no usable PostgreSQL at {url} ({why}), and {e}"))?;
    eprintln!(
        "note: no usable PostgreSQL at {url} ({why}): the tests use a private {} cluster at {}",
        cluster.version,
        cluster.admin_url()
    );
    Ok(cluster.admin_url())
}

/// A connection error meaning no server is there (as opposed to one that refused us).
fn nobody_there(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | NotFound | AddrNotAvailable | HostUnreachable | NetworkUnreachable
    )
}

/// Ok when a server at `url` accepts a connection; Err(Ok(why)) when nothing answers there,
/// Err(Err(error)) when a server answered but refused.
fn probe_postgres(url: &str) -> Result<(), Result<String, String>> {
    let url = url.to_string();
    // Called from inside tests' runtimes: probe on a thread and runtime of its own.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let limit = std::time::Duration::from_secs(10);
            match tokio::time::timeout(limit, sqlx::PgConnection::connect(&url)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    Ok(())
                }
                Ok(Err(sqlx::Error::Io(e))) if nobody_there(&e) => Err(Ok(e.to_string())),
                Ok(Err(e)) => Err(Err(e.to_string())),
                Err(_) => Err(Ok(format!("no answer in {} s", limit.as_secs()))),
            }
        })
    })
    .join()
    .unwrap()
}

/// A database created for one test and dropped when it ends.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        let admin = postgres_admin_url();
        let name = format!("flametree_test_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is needed for this test (set FLAMETREE_TEST_POSTGRES_URL): {e}")
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        PgDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl PgDb {
    /// The server's "host:port", for a test that relays or cuts the connection.
    pub fn addr(&self) -> String {
        let url = url::Url::parse(&self.url).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = postgres_admin_url();
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee, so clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The `flametree` binary with its own data dir and config, isolated from the user's.
pub struct Cli {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

impl Cli {
    pub fn new(data_dir: &Path) -> Cli {
        Cli {
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            extra_env: Vec::new(),
        }
    }

    pub fn with_database(mut self, url: &str) -> Cli {
        self.database_url = Some(url.to_string());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cli {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flametree"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.data_dir)
            .env("XDG_CONFIG_HOME", self.data_dir.join("config"))
            .env("FLAMETREE_GENERAL_DATA_DIR", &self.data_dir)
            .env("FLAMETREE_ACCESS_OPERATOR", "tester")
            // Tests run side by side: each ingress on a port of its own.
            .env("FLAMETREE_HTTP_LISTEN", "127.0.0.1:0");
        if let Some(url) = &self.database_url {
            cmd.env("FLAMETREE_DATABASE_URL", url);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs with `stdin` piped in (empty when None).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flametree binary runs");
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(pipe);
        Run(child.wait_with_output().unwrap())
    }

    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let r = self.run(args, stdin);
        assert_eq!(r.code(), 0, "flametree {args:?} failed:\n{}", r.all());
        r.stdout()
    }

    /// `channels add` of a Telegram bot holding `TG_TOKEN`, its secret on stdin.
    pub fn add_telegram_bot(&self, name: &str) {
        self.ok(
            &[
                "channels",
                "add",
                "--type",
                "telegram",
                "--name",
                name,
                "--secrets-stdin",
            ],
            Some(&format!("# the bot\nbot_token={TG_TOKEN}\n")),
        );
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(&self.ok(&with_json, None)).expect("valid JSON")
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }
}

pub const TG_TOKEN: &str = "123456789:AAEplantedSecretTokenValue0123456789";

/// The master key the runtime and agents tests share with the `flametree` processes
/// they start (as FLAMETREE_SECRETS_MASTER_KEY).
pub const KEY_B64: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Which database a test runs on: whatever touches the store or the runtime runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Be {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Be)` as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::common::Be::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::common::Be::Postgres).await;
            }
        }
    )*};
}

/// A private store with the operations layer on it, as operator "tester".
pub struct ChannelsEnv {
    pub dir: tempfile::TempDir,
    pub channels: std::sync::Arc<flametree::channels::Channels>,
    /// The database URL, for `flametree` processes the test starts.
    pub url: String,
    pub pg: Option<PgDb>,
}

pub async fn channels_env() -> ChannelsEnv {
    channels_env_on(Be::Sqlite).await
}

pub async fn channels_env_on(be: Be) -> ChannelsEnv {
    let dir = tempfile::tempdir().unwrap();
    let pg = match be {
        Be::Sqlite => None,
        Be::Postgres => Some(PgDb::create().await),
    };
    let url = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/flametree.db", dir.path().display()),
    };
    channels_env_at(dir, url, pg).await
}

/// The same on a database the test made itself (e.g. on a private cluster).
pub async fn channels_env_at(dir: tempfile::TempDir, url: String, pg: Option<PgDb>) -> ChannelsEnv {
    use flametree::permission::{Operator, Role};
    use flametree::secrets::{KeySource, MasterKey};
    flametree::runtime::logs::install_layer();
    let store = flametree::store::open(&url, 5, 4).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let op = Operator {
        name: "tester".into(),
        role: Role::Editor,
        role_reason: "test".into(),
    };
    let key = MasterKey::from_base64(KEY_B64, KeySource::Config).unwrap();
    let channels =
        flametree::channels::Channels::new(store, tenant, op, Ok(std::sync::Arc::new(key)));
    ChannelsEnv {
        dir,
        channels: std::sync::Arc::new(channels),
        url,
        pg,
    }
}

/// A Telegram connection on the given Bot API (the sandbox), polling with a short timeout.
pub fn telegram_draft(name: &str, token: &str, api: &str) -> flametree::channels::Draft {
    use flametree::model::EnvVar;
    let mut draft = flametree::channels::Draft {
        type_key: "telegram".into(),
        name: name.into(),
        env: vec![
            EnvVar {
                name: "TELEGRAM_API_URL".into(),
                value: api.into(),
            },
            EnvVar {
                name: "TELEGRAM_POLL_TIMEOUT".into(),
                value: "1".into(),
            },
        ],
        ..Default::default()
    };
    draft.secrets.insert(
        "bot_token".into(),
        flametree::secrets::SecretString::new(token),
    );
    draft
}
