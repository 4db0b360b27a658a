//! Opens what every command needs — config, store, tenant, operator, master key — once.

use crate::channels::{Channels, KEY_ID_SETTING};
use crate::config::Loaded;
use crate::permission::{Operator, os_user};
use crate::secrets::{KeySource, MasterKey, SecretsError};
use crate::store::{self, StoreError};
use std::sync::Arc;

/// Overrides from the command line, applied over the loaded config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub tenant: Option<String>,
    pub read_only: bool,
    /// Whether the command may create its tenant. Commands that only read (and `serve`)
    /// may not: a mistyped `--tenant` is an error naming the known tenants.
    pub create_tenant: bool,
}

pub struct Context {
    pub loaded: Loaded,
    pub channels: Channels,
    /// Said once at start (files others can read, and how to fix them).
    pub warnings: Vec<String>,
}

impl Context {
    pub async fn open(mut loaded: Loaded, overrides: &Overrides) -> anyhow::Result<Context> {
        if let Some(url) = &overrides.database_url {
            loaded.database_url = url.clone();
        }
        if let Some(t) = &overrides.tenant {
            loaded.config.general.tenant = t.clone();
        }
        let db = &loaded.config.database;
        let store = store::open(
            &loaded.database_url,
            db.connect_timeout_secs,
            db.max_connections,
        )
        .await
        .map_err(|e| explain_open(e, &loaded))?;
        // The database's own word beats the client's: a user that may not change rows
        // is a viewer here, whatever role the config or the environment claims.
        let mut warnings = Vec::new();
        let mut read_only = overrides.read_only;
        if let Some((user, false)) = store.db_user().await? {
            read_only = true;
            warnings.push(format!(
                "the database user '{user}' may only read this database: working as a viewer"
            ));
        }
        let wanted = loaded.config.general.tenant.trim().to_string();
        let tenant = if overrides.create_tenant && !read_only {
            store.tenant(&wanted).await?
        } else {
            existing_tenant(store.as_ref(), &wanted).await?
        };
        let operator = Operator::resolve(&loaded.config.access, os_user(), read_only);
        let key = load_key(&loaded, store.as_ref()).await?;
        let mut channels = Channels::new(store, tenant, operator, key.map(Arc::new));
        channels.set_log_keep(loaded.config.logs.keep_per_connection);
        warnings.extend(crate::fsutil::exposure_warnings(&loaded));
        Ok(Context {
            loaded,
            channels,
            warnings,
        })
    }
}

/// The named tenant, without creating it — unless the database has no tenant at all
/// yet (a fresh database: the first command meets an empty default, not an error).
async fn existing_tenant(
    store: &dyn store::Store,
    name: &str,
) -> anyhow::Result<crate::model::Tenant> {
    let all = store.tenants().await?;
    if let Some(t) = all.iter().find(|t| t.name == name) {
        return Ok(t.clone());
    }
    if all.is_empty() {
        return Ok(store.tenant(name).await?);
    }
    let known: Vec<String> = all.iter().map(|t| format!("'{}'", t.name)).collect();
    anyhow::bail!(
        "there is no tenant '{name}' on this database; known tenants: {} (check --tenant or \
         general.tenant)",
        known.join(", ")
    )
}

fn explain_open(e: StoreError, loaded: &Loaded) -> anyhow::Error {
    let url = store::redact_url(&loaded.database_url);
    match &e {
        StoreError::Unavailable(m) => match tls_trouble(m, &loaded.database_url) {
            Some(why) => anyhow::anyhow!("cannot open the database {url}: {why}"),
            None => anyhow::anyhow!("cannot open the database {url}: {e}"),
        },
        _ => anyhow::anyhow!("cannot open the database {url}: {e}"),
    }
}

/// What to do about a TLS failure, which "check that it is running" would not fix.
fn tls_trouble(message: &str, url: &str) -> Option<String> {
    if message.contains("invalid peer certificate") {
        let hint = if message.contains("UnknownIssuer") {
            ": to trust the private CA that signed it, add sslrootcert=/path/to/ca.pem to the \
             database URL"
        } else {
            ""
        };
        return Some(format!(
            "the server's TLS certificate was refused ({message}){hint}"
        ));
    }
    // A missing sslrootcert file surfaces as a bare "No such file or directory".
    let parsed = url::Url::parse(url).ok()?;
    let (_, root) = parsed
        .query_pairs()
        .find(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))?;
    let inline = root.trim_start().starts_with("-----BEGIN");
    match std::fs::metadata(root.as_ref()) {
        Err(e) if !inline && message.contains(&e.to_string()) => {
            Some(format!("cannot read sslrootcert {root}: {e}"))
        }
        _ => None,
    }
}

/// The key comes from config when set there, else from the key file. A missing key
/// file is created only while the database holds no sealed secrets; otherwise the
/// operator is told which key is missing rather than handed a new, useless one.
async fn load_key(
    loaded: &Loaded,
    store: &dyn store::Store,
) -> anyhow::Result<Result<MasterKey, SecretsError>> {
    let configured = loaded.config.secrets.master_key.trim();
    if !configured.is_empty() {
        return Ok(MasterKey::from_base64(configured, KeySource::Config));
    }
    let sealed = store.count_sealed_secrets().await?;
    let key = MasterKey::load_or_create_file(&loaded.key_file, sealed == 0);
    if let (Err(SecretsError::NoKey(_)), Some(id)) = (&key, store.setting(KEY_ID_SETTING).await?) {
        return Ok(Err(SecretsError::NoKey(format!(
            "master key file {} does not exist, but the secrets of {sealed} connection(s) or agent(s) were \
             sealed with key {id}: restore that key file, or set FLAMETREE_SECRETS_MASTER_KEY",
            loaded.key_file.display()
        ))));
    }
    Ok(key)
}
