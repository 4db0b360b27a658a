//! Test harness: a fresh database per test, and the real binary with a private data dir.
#![allow(dead_code)]

use sqlx::Connection;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The machine's PostgreSQL, as an admin URL; override with FLAMETREE_TEST_POSTGRES_URL.
pub fn postgres_admin_url() -> String {
    std::env::var("FLAMETREE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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
    use flametree::permission::{Operator, Role};
    use flametree::secrets::{KeySource, MasterKey};
    flametree::runtime::logs::install_layer();
    let dir = tempfile::tempdir().unwrap();
    let pg = match be {
        Be::Sqlite => None,
        Be::Postgres => Some(PgDb::create().await),
    };
    let url = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/flametree.db", dir.path().display()),
    };
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
