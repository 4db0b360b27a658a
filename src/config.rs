//! Configuration in layers: built-in defaults, then `config.toml`, then `FLAMETREE_*`
//! environment variables (`FLAMETREE_<SECTION>_<KEY>`, e.g. `FLAMETREE_DATABASE_URL`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub general: General,
    pub database: Database,
    pub secrets: Secrets,
    pub access: Access,
    pub meta: Meta,
    pub logs: Logs,
    pub ui: Ui,
    pub runtime: Runtime,
    pub http: Http,
    pub retention: Retention,
    pub widget: crate::widget::Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    pub tenant: String,
    pub data_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub connect_timeout_secs: u64,
    pub max_connections: u32,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub master_key: String,
    pub key_file: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "master_key",
                &if self.master_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("key_file", &self.key_file)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub operator: String,
    pub default_role: String,
    pub roles: BTreeMap<String, String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub app_id: String,
    pub app_secret: String,
    /// App Settings › Advanced › Client token: what Facebook Login for Devices asks for.
    pub client_token: String,
    /// Where the Graph API is (a sandbox in tests and the demo).
    pub graph_api_url: String,
    pub graph_api_version: String,
}

impl Meta {
    /// Advanced mode off (Meta sign-in) needs all three; without them only Advanced mode
    /// works.
    pub fn configured(&self) -> bool {
        !self.app_id.trim().is_empty()
            && !self.app_secret.trim().is_empty()
            && !self.client_token.trim().is_empty()
    }
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("app_id", &self.app_id)
            .field("graph_api_url", &self.graph_api_url)
            .field("graph_api_version", &self.graph_api_version)
            .field(
                "app_secret",
                &if self.app_secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub keep_per_connection: u32,
    pub ring_lines: u32,
    pub ring_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    pub mouse: bool,
    pub tick_ms: u64,
    /// Ask before Stop of a RUNNING connection and before a restart (both cut customers
    /// off for a while); false for operators who prefer speed.
    pub confirm_stop: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// After this long without reaching the provider, a starting connection shows
    /// ERROR with the last cause while it keeps retrying.
    pub start_timeout_secs: u64,
    /// `auto` (a console runs channels only while no `serve` is alive), `always`, `never`.
    pub run_channels: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address the webhook ingress listens on; empty turns the ingress off.
    pub listen: String,
    /// The address providers call; empty = derived from `listen`.
    pub public_url: String,
    /// Largest webhook body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
}

impl Http {
    /// `public_url`, or `http://<listen>` when it is empty, without a trailing slash.
    pub fn public_base(&self, bound: Option<std::net::SocketAddr>) -> String {
        let base = if self.public_url.trim().is_empty() {
            match bound {
                Some(a) => format!("http://{a}"),
                None => format!("http://{}", self.listen.trim()),
            }
        } else {
            self.public_url.trim().to_string()
        };
        base.trim_end_matches('/').to_string()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Ledger, unanswered messages, conversation turns and audit rows older than this
    /// many days are pruned.
    pub days: u32,
}

const DEFAULTS: &str = r#"
[general]
tenant = "default"
data_dir = ""

[database]
url = ""
connect_timeout_secs = 5
max_connections = 5

[secrets]
master_key = ""
key_file = ""

[access]
operator = ""
default_role = "editor"
roles = {}

[meta]
app_id = ""
app_secret = ""
client_token = ""
graph_api_url = "https://graph.facebook.com"
graph_api_version = "v21.0"

[logs]
keep_per_connection = 5000
ring_lines = 10000
ring_bytes = 4194304

[ui]
mouse = true
tick_ms = 1000
confirm_stop = true

[runtime]
start_timeout_secs = 60
run_channels = "auto"

[http]
listen = "127.0.0.1:8787"
public_url = ""
max_body_bytes = 1048576

[retention]
days = 30

[widget]
messages_per_visitor_per_minute = 20
messages_per_ip_per_minute = 120
connections_per_ip = 20
max_message_chars = 2000
"#;

/// The built-in defaults as a table, so tests can check the example file names every key.
pub fn defaults_table() -> toml::Table {
    toml::from_str(DEFAULTS).expect("built-in defaults parse")
}

/// What was loaded and from where; `flametree info` prints it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Environment variables that changed a setting.
    pub env_overrides: Vec<String>,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub key_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Where to look for the config file when none is named.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "flametree").map(|d| d.config_dir().join("config.toml"))
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "flametree")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".flametree"))
}

/// Loads the layers. `explicit` (from `--config` or `FLAMETREE_CONFIG`) must exist;
/// the default location is read only when present.
pub fn load(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut tree = defaults_table();
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => default_config_path().filter(|p| p.exists()),
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        let layer: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        merge(&mut tree, layer, "").map_err(|message| ConfigError::File {
            path: path.clone(),
            message,
        })?;
    }
    let env_overrides = apply_env(&mut tree, env)?;
    let config: Config = toml::Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
    finish(config, file, env_overrides)
}

fn finish(
    config: Config,
    file: Option<PathBuf>,
    env_overrides: Vec<String>,
) -> Result<Loaded, ConfigError> {
    let role = config.access.default_role.as_str();
    if crate::permission::Role::parse(role).is_none() {
        return Err(ConfigError::Invalid(format!(
            "access.default_role '{role}' is not a role: use \"editor\" or \"viewer\""
        )));
    }
    for (who, role) in &config.access.roles {
        if crate::permission::Role::parse(role).is_none() {
            return Err(ConfigError::Invalid(format!(
                "access.roles.{who} = '{role}' is not a role: use \"editor\" or \"viewer\""
            )));
        }
    }
    if config.general.tenant.trim().is_empty() {
        return Err(ConfigError::Invalid(
            "general.tenant is empty: name the tenant (e.g. \"default\")".into(),
        ));
    }
    let data_dir = if config.general.data_dir.is_empty() {
        default_data_dir()
    } else {
        PathBuf::from(&config.general.data_dir)
    };
    let database_url = if config.database.url.is_empty() {
        format!("sqlite://{}", data_dir.join("flametree.db").display())
    } else {
        config.database.url.clone()
    };
    let key_file = if config.secrets.key_file.is_empty() {
        data_dir.join("master.key")
    } else {
        PathBuf::from(&config.secrets.key_file)
    };
    Ok(Loaded {
        config,
        file,
        env_overrides,
        data_dir,
        database_url,
        key_file,
    })
}

/// Overlays `layer` onto `base`, refusing keys the defaults don't have, so a typo in
/// the file is reported instead of silently ignored.
fn merge(base: &mut toml::Table, layer: toml::Table, prefix: &str) -> Result<(), String> {
    for (key, value) in layer {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (None, _) => {
                return Err(format!(
                    "unknown setting '{path}' (see config.example.toml)"
                ));
            }
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) if path == "access.roles" => {
                b.extend(l);
            }
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l, &path)?,
            (Some(slot), value) => {
                if std::mem::discriminant(slot) != std::mem::discriminant(&value) {
                    return Err(format!(
                        "setting '{path}' should be a {}, not a {}",
                        slot.type_str(),
                        value.type_str()
                    ));
                }
                *slot = value;
            }
        }
    }
    Ok(())
}

/// `FLAMETREE_<SECTION>_<KEY>`: the section is the first word, the key the rest.
fn apply_env(tree: &mut toml::Table, env: &[(String, String)]) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("FLAMETREE_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let (section, key) = (section.to_lowercase(), key.to_lowercase());
        let Some(toml::Value::Table(table)) = tree.get_mut(&section) else {
            continue;
        };
        let Some(slot) = table.get_mut(&key) else {
            continue;
        };
        let bad = |what: &str| ConfigError::Env {
            name: name.clone(),
            message: format!("'{raw}' is not {what}"),
        };
        *slot = match slot {
            toml::Value::Integer(_) => {
                toml::Value::Integer(raw.trim().parse().map_err(|_| bad("a whole number"))?)
            }
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(match raw.trim().to_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => return Err(bad("true or false")),
                })
            }
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            _ => continue,
        };
        applied.push(name.clone());
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[general]\ntenant = \"acme\"\n[logs]\nkeep_per_connection = 10\n",
        )
        .unwrap();
        let loaded = load(
            Some(&file),
            &env(&[("FLAMETREE_LOGS_KEEP_PER_CONNECTION", "20"), ("HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(loaded.config.general.tenant, "acme");
        assert_eq!(loaded.config.logs.keep_per_connection, 20);
        assert_eq!(loaded.config.ui.tick_ms, 1000);
        assert_eq!(
            loaded.env_overrides,
            vec!["FLAMETREE_LOGS_KEEP_PER_CONNECTION"]
        );
    }

    #[test]
    fn a_typo_in_the_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[database]\nurll = \"x\"\n").unwrap();
        let err = load(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn a_bad_env_value_is_named() {
        let err = load(None, &env(&[("FLAMETREE_UI_MOUSE", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FLAMETREE_UI_MOUSE") && err.contains("true or false"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_in_the_data_dir_is_the_default() {
        let loaded = load(
            None,
            &env(&[("FLAMETREE_GENERAL_DATA_DIR", "/tmp/ft-data")]),
        )
        .unwrap();
        assert_eq!(loaded.database_url, "sqlite:///tmp/ft-data/flametree.db");
        assert_eq!(loaded.key_file, PathBuf::from("/tmp/ft-data/master.key"));
    }

    #[test]
    fn unknown_role_is_refused() {
        let err = load(None, &env(&[("FLAMETREE_ACCESS_DEFAULT_ROLE", "admin")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("editor") && err.contains("viewer"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let loaded = load(
            None,
            &env(&[
                (
                    "FLAMETREE_SECRETS_MASTER_KEY",
                    "c2VjcmV0LWtleS1tYXRlcmlhbA==",
                ),
                ("FLAMETREE_META_APP_SECRET", "meta-secret-value"),
            ]),
        )
        .unwrap();
        let shown = format!("{loaded:?}");
        assert!(!shown.contains("c2VjcmV0") && !shown.contains("meta-secret-value"));
    }
}
