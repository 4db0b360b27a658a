//! Channel connections as the operator manages them: validate, seal secrets, check
//! permission, save with an audit note. The CLI and the console both go through here.

use crate::catalog::{Catalog, ChannelType};
use crate::logbus::LogBus;
use crate::model::validation::{self, FieldError, Form, Report, SecretInput};
use crate::model::{Connection, DesiredState, EnvVar, LogLine, NewConnection, Tenant};
use crate::model::{destinations, inputs};
use crate::permission::{Denied, Operator};
use crate::secrets::{MasterKey, SecretString, SecretsError};
use crate::store::{AuditNote, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Settings key holding the id of the master key that sealed the stored secrets.
pub const KEY_ID_SETTING: &str = "secrets.key_id";

/// The whole form as the operator left it. Secrets hold only values typed just now:
/// a secret field absent here keeps its stored value.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub type_key: String,
    pub name: String,
    pub description: String,
    pub fields: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretString>,
    /// Optional secret fields to empty.
    pub clear_secrets: BTreeSet<String>,
    pub env: Vec<EnvVar>,
}

impl Draft {
    /// A draft holding what `c` holds, for editing.
    pub fn from_connection(c: &Connection) -> Draft {
        Draft {
            type_key: c.type_key.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            fields: c.fields.clone(),
            secrets: BTreeMap::new(),
            clear_secrets: BTreeSet::new(),
            env: c.env.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{}", describe_report(.0))]
    Invalid(Report),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    NotFound(String),
}

fn describe_report(r: &Report) -> String {
    r.errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A saved connection and the warnings its form produced.
#[derive(Debug)]
pub struct Saved {
    pub connection: Connection,
    pub warnings: Vec<String>,
}

#[derive(Clone)]
pub struct Channels {
    store: Arc<dyn Store>,
    tenant: Tenant,
    operator: Operator,
    key: Result<Arc<MasterKey>, SecretsError>,
    bus: LogBus,
    log_keep: u32,
    wake: Arc<tokio::sync::Notify>,
}

impl Channels {
    pub fn new(
        store: Arc<dyn Store>,
        tenant: Tenant,
        operator: Operator,
        key: Result<Arc<MasterKey>, SecretsError>,
    ) -> Channels {
        Channels {
            store,
            tenant,
            operator,
            key,
            bus: LogBus::default(),
            log_keep: 5000,
            wake: Arc::default(),
        }
    }

    /// The same service for another tenant (its own wake-up signal).
    pub fn for_tenant(&self, tenant: Tenant) -> Channels {
        Channels {
            tenant,
            wake: Arc::default(),
            ..self.clone()
        }
    }

    /// Notified on every change a runtime in this process should look at now.
    pub fn wake_handle(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// How many log lines each connection keeps in the store (`logs.keep_per_connection`).
    pub fn set_log_keep(&mut self, keep: u32) {
        self.log_keep = keep.max(1);
    }

    pub fn bus(&self) -> &LogBus {
        &self.bus
    }

    /// Writes one line to a connection's log (store and live bus). Operator actions go
    /// here too, so the Logs pane tells the whole story of an incident. A failure to
    /// log never fails the action itself.
    pub async fn log(&self, connection_id: i64, level: &str, message: impl Into<String>) {
        let line = LogLine {
            connection_id,
            at: crate::model::now_millis(),
            level: level.to_string(),
            message: message.into(),
        };
        if let Err(e) = self
            .store
            .append_logs(std::slice::from_ref(&line), self.log_keep)
            .await
        {
            tracing::warn!("could not store a log line of connection {connection_id}: {e}");
        }
        self.bus.publish(line);
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    pub fn key(&self) -> Result<&MasterKey, &SecretsError> {
        self.key.as_deref()
    }

    /// The Settings › Channels list: not the types configured elsewhere (an agent's
    /// Web Widget connection).
    pub async fn list(&self) -> Result<Vec<Connection>, ServiceError> {
        let all = self.store.list_connections(self.tenant.id).await?;
        let catalog = crate::catalog::Catalog::get();
        Ok(all
            .into_iter()
            .filter(|c| catalog.find(&c.type_key).is_none_or(|t| t.listed))
            .collect())
    }

    pub async fn find(&self, name: &str) -> Result<Connection, ServiceError> {
        self.store
            .connection_by_name(self.tenant.id, name)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no connection named '{name}' in tenant '{}': `flametree channels list` shows them",
                    self.tenant.name
                ))
            })
    }

    pub async fn add(&self, draft: &Draft) -> Result<Saved, ServiceError> {
        self.operator
            .require_editor(&format!("add connection '{}'", draft.name.trim()))?;
        let ty = channel_type(&draft.type_key)?;
        if !ty.listed {
            return Err(ServiceError::Invalid(single_error(
                "type",
                format!(
                    "{} is not created in Settings › Channels: {}",
                    ty.name,
                    ty.not_listed_reason.as_deref().unwrap_or("")
                ),
            )));
        }
        let report = self.check(ty, draft, None);
        if !report.is_ok() {
            return Err(ServiceError::Invalid(report));
        }
        if draft.secrets.values().any(|v| !v.is_empty()) {
            self.sealing_key().await?;
        }
        let secrets = self.seal_new(ty, draft, &BTreeMap::new())?;
        let new = NewConnection {
            tenant_id: self.tenant.id,
            type_key: ty.key.clone(),
            name: inputs::normalize_name(&draft.name),
            description: draft.description.trim().to_string(),
            fields: normalized_fields(ty, &draft.fields),
            secrets,
            env: normalized_env(&draft.env),
        };
        let note = AuditNote::new(&self.operator.name, "create", format!("type {}", ty.key));
        let connection = self
            .store
            .insert_connection(&new, &note)
            .await
            .map_err(duplicate_as_field_error)?;
        self.note_key(&connection).await?;
        self.log(
            connection.id,
            "INFO",
            format!("Created by {} ({})", self.operator.name, ty.name),
        )
        .await;
        Ok(Saved {
            connection,
            warnings: report.warnings,
        })
    }

    /// Saves `draft` over `existing`, refusing if someone saved it in between.
    pub async fn edit(&self, existing: &Connection, draft: &Draft) -> Result<Saved, ServiceError> {
        self.operator
            .require_editor(&format!("change connection '{}'", existing.name))?;
        let ty = channel_type(&existing.type_key)?;
        let report = self.check(ty, draft, Some(existing));
        if !report.is_ok() {
            return Err(ServiceError::Invalid(report));
        }
        if draft.secrets.values().any(|v| !v.is_empty()) {
            self.sealing_key().await?;
        }
        let mut kept = existing.secrets.clone();
        for f in &draft.clear_secrets {
            kept.remove(f);
        }
        let mut updated = existing.clone();
        updated.name = inputs::normalize_name(&draft.name);
        updated.description = draft.description.trim().to_string();
        updated.fields = normalized_fields(ty, &draft.fields);
        updated.secrets = self.seal_new(ty, draft, &kept)?;
        updated.env = normalized_env(&draft.env);
        let changed = changed_parts(existing, &updated, draft);
        if changed == ["nothing"] {
            // A version that changes nothing would only mark a running channel
            // restart-pending and fill the audit.
            return Ok(Saved {
                connection: existing.clone(),
                warnings: report.warnings,
            });
        }
        let note = AuditNote::new(
            &self.operator.name,
            "update",
            format!("changed: {}", changed.join(", ")),
        );
        let connection = self
            .store
            .update_connection(&updated, &note)
            .await
            .map_err(duplicate_as_field_error)?;
        self.note_key(&connection).await?;
        let restart = if connection.restart_pending() {
            " — Stop, then Start to apply"
        } else {
            ""
        };
        self.log(
            connection.id,
            "INFO",
            format!(
                "Configuration saved by {} (version {}): changed {}{restart}",
                self.operator.name,
                connection.version,
                changed.join(", ")
            ),
        )
        .await;
        Ok(Saved {
            connection,
            warnings: report.warnings,
        })
    }

    pub async fn delete(&self, existing: &Connection) -> Result<(), ServiceError> {
        self.operator
            .require_editor(&format!("delete connection '{}'", existing.name))?;
        let note = AuditNote::new(
            &self.operator.name,
            "delete",
            format!("type {}", existing.type_key),
        );
        self.store
            .delete_connection(existing.id, existing.version, &note)
            .await?;
        self.wake.notify_one();
        self.forget_at_provider(existing).await;
        Ok(())
    }

    /// What Start registered at the provider for a connection now deleted (Bird's webhook
    /// subscription): removed, best effort; a failure is a warning, not a lost delete.
    async fn forget_at_provider(&self, c: &Connection) {
        let env = |name: &str| {
            c.env
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.value.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(org) = env("BIRD_ORGANIZATION_ID").filter(|_| c.type_key == "bird") else {
            return;
        };
        let Ok(Some(key)) = self.reveal(c, "access_key") else {
            return;
        };
        let api = env("BIRD_API_URL").unwrap_or_else(|| "https://api.bird.com".into());
        let workspace = c.fields.get("workspace_id").cloned().unwrap_or_default();
        let http = crate::connectors::http_client();
        match crate::connectors::bird::forget_subscriptions(
            &http,
            &api,
            &org,
            &workspace,
            key.expose(),
            &c.hook_id,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("'{}': removed {n} Bird webhook subscription(s)", c.name),
            Err(e) => tracing::warn!(
                "'{}' was deleted, but its Bird webhook subscription could not be removed ({e}): \
                 remove it in Bird's dashboard",
                c.name
            ),
        }
    }

    /// Records Start or Stop; the runtime reconciles the channel toward it.
    pub async fn set_desired(
        &self,
        existing: &Connection,
        desired: DesiredState,
    ) -> Result<(), ServiceError> {
        let verb = match desired {
            DesiredState::Running => "start",
            DesiredState::Stopped => "stop",
        };
        self.operator
            .require_editor(&format!("{verb} connection '{}'", existing.name))?;
        let note = AuditNote::new(&self.operator.name, verb, "");
        self.store
            .set_desired_state(existing.id, desired, &note)
            .await?;
        self.wake.notify_one();
        let word = if verb == "start" { "Start" } else { "Stop" };
        self.log(
            existing.id,
            "INFO",
            format!("{word} requested by {}", self.operator.name),
        )
        .await;
        Ok(())
    }

    /// Validation plus the checks that need the store's view (secrets kept from before).
    pub fn check(&self, ty: &ChannelType, draft: &Draft, existing: Option<&Connection>) -> Report {
        let mut secrets = BTreeMap::new();
        for spec in ty.fields.iter().filter(|f| f.secret) {
            let key = spec.key.as_str();
            let input = match (
                draft.secrets.get(key),
                existing.and_then(|c| c.secrets.get(key)),
            ) {
                (Some(new), _) if !new.is_empty() => SecretInput::New(new.expose()),
                (_, Some(old)) if !draft.clear_secrets.contains(key) => {
                    SecretInput::Kept { count: old.count }
                }
                _ => SecretInput::Unset,
            };
            secrets.insert(key, input);
        }
        let mut report = validation::validate(
            ty,
            &Form {
                name: &draft.name,
                description: &draft.description,
                fields: &draft.fields,
                secrets,
                env: &draft.env,
            },
        );
        if let Some(old) = existing {
            let moved = destinations::changed_destinations(
                ty,
                &old.fields,
                &old.env,
                &draft.fields,
                &draft.env,
            );
            let kept = old
                .secrets
                .keys()
                .map(String::as_str)
                .filter(|k| !draft.clear_secrets.contains(*k));
            let retyped = |k: &str| draft.secrets.get(k).is_some_and(|v| !v.is_empty());
            report
                .errors
                .extend(destinations::redirected_secrets(ty, &moved, kept, retyped));
        }
        for key in draft.secrets.keys().chain(draft.clear_secrets.iter()) {
            if !ty.field(key).is_some_and(|f| f.secret) {
                report.errors.push(FieldError {
                    field: key.clone(),
                    message: format!("{} has no secret field '{key}'", ty.name),
                });
            }
        }
        report
    }

    fn seal_new(
        &self,
        ty: &ChannelType,
        draft: &Draft,
        kept: &BTreeMap<String, crate::secrets::SealedSecret>,
    ) -> Result<BTreeMap<String, crate::secrets::SealedSecret>, ServiceError> {
        let mut out = kept.clone();
        for (field, value) in draft.secrets.iter().filter(|(_, v)| !v.is_empty()) {
            let Some(spec) = ty.field(field) else {
                continue;
            };
            let key = self.key.as_deref().map_err(|e| e.clone())?;
            let parts = validation::split_values(spec, value.expose());
            let normalized = SecretString::new(parts.join(","));
            out.insert(field.clone(), key.seal(field, &normalized, parts.len()));
        }
        Ok(out)
    }

    /// Remembers which key sealed the database's secrets, so a lost key file is
    /// noticed at the next start instead of silently replaced by a new key.
    async fn note_key(&self, c: &Connection) -> Result<(), ServiceError> {
        if !c.secrets.is_empty() {
            self.note_key_id().await?;
        }
        Ok(())
    }

    pub(crate) async fn note_key_id(&self) -> Result<(), ServiceError> {
        if let Ok(key) = self.key.as_deref()
            && self.store.setting(KEY_ID_SETTING).await?.as_deref() != Some(key.id())
        {
            self.store.put_setting(KEY_ID_SETTING, key.id()).await?;
        }
        Ok(())
    }

    /// The key to seal a new secret with: refused when the database's secrets are
    /// sealed under another one, which would leave some secrets that no single key opens.
    pub(crate) async fn sealing_key(&self) -> Result<&MasterKey, ServiceError> {
        let key = self.key.as_deref().map_err(|e| e.clone())?;
        if let Some(stored) = self.store.setting(KEY_ID_SETTING).await?
            && stored != key.id()
            && self.store.count_sealed_secrets().await? > 0
        {
            return Err(SecretsError::MixedKeys {
                stored,
                in_use: key.id().to_string(),
                source_desc: key.source().to_string(),
            }
            .into());
        }
        Ok(key)
    }

    /// Opens one secret field for the runtime. `what` in errors names connection and field.
    pub fn reveal(
        &self,
        c: &Connection,
        field: &str,
    ) -> Result<Option<SecretString>, ServiceError> {
        let Some(sealed) = c.secrets.get(field) else {
            return Ok(None);
        };
        let label = channel_type(&c.type_key)
            .ok()
            .and_then(|t| t.field(field))
            .map(|f| f.label.clone())
            .unwrap_or_else(|| field.to_string());
        let key = self.key.as_deref().map_err(|e| e.clone())?;
        Ok(Some(key.open(
            field,
            sealed,
            &format!("{label} of '{}'", c.name),
        )?))
    }

    /// Tries to open every secret; returns one line per field that cannot be opened.
    pub async fn undecryptable(&self) -> Result<Vec<String>, ServiceError> {
        let mut problems = Vec::new();
        for c in self.list().await? {
            for field in c.secrets.keys() {
                if let Err(e) = self.reveal(&c, field) {
                    problems.push(e.to_string());
                }
            }
        }
        for a in self.store.list_agents(self.tenant.id).await? {
            if let Err(e) = crate::agents::responder::open_api_key(self, &a) {
                problems.push(e.to_string());
            }
            if let Err(e) = crate::agents::speech::open_key(self, &a) {
                problems.push(e.to_string());
            }
        }
        Ok(problems)
    }
}

pub fn channel_type(key: &str) -> Result<&'static ChannelType, ServiceError> {
    Catalog::get()
        .lookup(key)
        .map_err(|m| ServiceError::Invalid(single_error("type", m)))
}

fn single_error(field: &str, message: String) -> Report {
    Report {
        errors: vec![FieldError {
            field: field.to_string(),
            message,
        }],
        warnings: Vec::new(),
    }
}

fn duplicate_as_field_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Duplicate { .. } => ServiceError::Invalid(single_error("name", e.to_string())),
        other => ServiceError::Store(other),
    }
}

fn normalized_fields(
    ty: &ChannelType,
    fields: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|(k, v)| {
            let spec = ty.field(k)?;
            let v = validation::split_values(spec, v).join(",");
            (!v.is_empty()).then(|| (k.clone(), v))
        })
        .collect()
}

fn normalized_env(env: &[EnvVar]) -> Vec<EnvVar> {
    env.iter()
        .map(|e| EnvVar {
            name: e.name.trim().to_string(),
            value: e.value.trim().to_string(),
        })
        .filter(|e| !e.name.is_empty())
        .collect()
}

/// Names of what an edit changed, for the audit trail; secret values are never compared
/// or shown, only whether a new one was typed.
fn changed_parts(old: &Connection, new: &Connection, draft: &Draft) -> Vec<String> {
    let mut changed = Vec::new();
    if old.name != new.name {
        changed.push("name".to_string());
    }
    if old.description != new.description {
        changed.push("description".to_string());
    }
    let keys: BTreeSet<&String> = old.fields.keys().chain(new.fields.keys()).collect();
    for k in keys {
        if old.fields.get(k) != new.fields.get(k) {
            changed.push(k.clone());
        }
    }
    for k in draft
        .secrets
        .keys()
        .filter(|k| !draft.secrets[*k].is_empty())
    {
        changed.push(format!("{k} (secret replaced)"));
    }
    for k in &draft.clear_secrets {
        if old.secrets.contains_key(k) {
            changed.push(format!("{k} (secret cleared)"));
        }
    }
    let value = |env: &[EnvVar], name: &str| {
        env.iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value.clone())
    };
    let names: BTreeSet<&String> = old.env.iter().chain(&new.env).map(|e| &e.name).collect();
    for name in names {
        if value(&old.env, name) != value(&new.env, name) {
            changed.push(format!("{name} (variable)"));
        }
    }
    if changed.is_empty() {
        changed.push("nothing".to_string());
    }
    changed
}
