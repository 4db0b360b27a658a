//! Turning rows into model values; the column lists live next to the decoders.

use super::{Db, DbRow, Ts, ms};
use crate::model::{
    Agent, AgentChannel, AuditEntry, Connection, DesiredState, LogLine, Millis, Status,
};
use crate::store::{ConnectionState, StoreError};
use sqlx::Row;
use sqlx::types::Json;

/// The connection columns, as a macro so queries stay `&'static str` (sqlx checks that).
macro_rules! connection_columns {
    () => {
        "id, tenant_id, type_key, name, description, config, version, desired_state, \
         status, status_message, status_since, running_version, updated_at, updated_by, hook_id"
    };
}
pub(crate) use connection_columns;

macro_rules! agent_columns {
    () => {
        "id, tenant_id, name, description, responder, widget, speech, desired_state, status, \
         version, running_version, updated_by"
    };
}
pub(crate) use agent_columns;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} cannot be read: {e}"))
}

/// A JSON column (JSONB on PostgreSQL, text on SQLite).
fn json<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> Result<T, StoreError> {
    let Json(value) = get::<Json<T>>(row, col)?;
    Ok(value)
}

/// A JSON column as the model keeps it: its text.
fn json_text(row: &DbRow, col: &str) -> Result<String, StoreError> {
    Ok(json::<serde_json::Value>(row, col)?.to_string())
}

fn get<'r, T: sqlx::Decode<'r, Db> + sqlx::Type<Db>>(
    row: &'r DbRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(|e| corrupt(col, e))
}

pub(crate) fn time(row: &DbRow, col: &str) -> Result<Millis, StoreError> {
    Ok(ms(get::<Ts>(row, col)?))
}

/// What the `config` column holds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct ConfigColumn {
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, crate::secrets::SealedSecret>,
    #[serde(default)]
    pub env: Vec<crate::model::EnvVar>,
}

pub fn connection(row: &DbRow) -> Result<Connection, StoreError> {
    let status: String = get(row, "status")?;
    let config: ConfigColumn = json(row, "config")?;
    let desired: String = get(row, "desired_state")?;
    Ok(Connection {
        id: get(row, "id")?,
        tenant_id: get(row, "tenant_id")?,
        type_key: get(row, "type_key")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        fields: config.fields,
        secrets: config.secrets,
        env: config.env,
        version: get(row, "version")?,
        desired: DesiredState::parse(&desired).ok_or_else(|| corrupt("desired_state", &desired))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        status_message: get(row, "status_message")?,
        status_since: time(row, "status_since")?,
        running_version: get(row, "running_version")?,
        updated_at: time(row, "updated_at")?,
        updated_by: get(row, "updated_by")?,
        hook_id: get::<Option<String>>(row, "hook_id")?.unwrap_or_default(),
    })
}

pub fn connection_state(row: &DbRow) -> Result<ConnectionState, StoreError> {
    let status: String = get(row, "status")?;
    let desired: String = get(row, "desired_state")?;
    Ok(ConnectionState {
        id: get(row, "id")?,
        desired: DesiredState::parse(&desired).ok_or_else(|| corrupt("desired_state", &desired))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
    })
}

pub fn agent(row: &DbRow) -> Result<Agent, StoreError> {
    let status: String = get(row, "status")?;
    let desired: String = get(row, "desired_state")?;
    Ok(Agent {
        id: get(row, "id")?,
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        responder: json_text(row, "responder")?,
        widget: json_text(row, "widget")?,
        speech: json_text(row, "speech")?,
        updated_by: get(row, "updated_by")?,
        desired: DesiredState::parse(&desired).ok_or_else(|| corrupt("desired_state", &desired))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        version: get(row, "version")?,
        running_version: get(row, "running_version")?,
    })
}

pub fn log_line(row: &DbRow) -> Result<LogLine, StoreError> {
    Ok(LogLine {
        connection_id: get(row, "connection_id")?,
        at: time(row, "at")?,
        level: get(row, "level")?,
        message: get(row, "message")?,
    })
}

pub fn audit(row: &DbRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: time(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target_kind: get(row, "target_kind")?,
        target_id: get(row, "target_id")?,
        target_name: get(row, "target_name")?,
        details: get(row, "details")?,
        db_user: get(row, "db_user")?,
    })
}

pub fn agent_channel(row: &DbRow) -> Result<AgentChannel, StoreError> {
    Ok(AgentChannel {
        agent_id: get(row, "agent_id")?,
        connection_id: get(row, "connection_id")?,
        inbound: get(row, "inbound")?,
        applied_inbound: get(row, "applied_inbound")?,
        detached: get(row, "detached")?,
    })
}
