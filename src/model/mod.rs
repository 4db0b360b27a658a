//! The domain: connections, their status, agents and attachments.

pub mod calls;
pub mod destinations;
pub mod inputs;
pub mod validation;

pub use calls::{CallProgress, CallRequest, CallState};

use crate::secrets::SealedSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Milliseconds since the Unix epoch; what every timestamp column holds.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Formats a timestamp for people, in UTC so operators in different places agree.
pub fn format_millis(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "unknown time".into())
}

pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A connection's actual state, as the portal's status dot shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Stopping,
    Error,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Stopped,
        Status::Starting,
        Status::Running,
        Status::Stopping,
        Status::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "STOPPED",
            Status::Starting => "STARTING",
            Status::Running => "RUNNING",
            Status::Stopping => "STOPPING",
            Status::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator asked for with Start/Stop; the runtime reconciles toward it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "RUNNING",
            DesiredState::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<DesiredState> {
        match s {
            "RUNNING" => Some(DesiredState::Running),
            "STOPPED" => Some(DesiredState::Stopped),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
}

/// A stored channel connection. Secret fields are sealed; nothing here can print them.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: i64,
    pub tenant_id: i64,
    pub type_key: String,
    pub name: String,
    pub description: String,
    /// Non-secret field values, by catalog field key.
    pub fields: BTreeMap<String, String>,
    /// Secret field values, each sealed on its own so one can be replaced without the others.
    pub secrets: BTreeMap<String, SealedSecret>,
    pub env: Vec<EnvVar>,
    /// Bumped by every saved edit; a save carrying an older version is refused.
    pub version: i64,
    pub desired: DesiredState,
    pub status: Status,
    pub status_message: String,
    pub status_since: Millis,
    /// The config version the running task was started with, if any.
    pub running_version: Option<i64>,
    pub updated_at: Millis,
    pub updated_by: String,
    /// The unguessable path of its webhook URL (`<public_url>/hooks/<hook_id>`).
    pub hook_id: String,
}

impl Connection {
    /// Saved after the running task started: the spec's "restart the channel so your changes take effect".
    pub fn restart_pending(&self) -> bool {
        matches!(self.status, Status::Running | Status::Starting)
            && self.running_version.is_some_and(|v| v < self.version)
    }
}

/// What the store needs to create a connection.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub tenant_id: i64,
    pub type_key: String,
    pub name: String,
    pub description: String,
    pub fields: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SealedSecret>,
    pub env: Vec<EnvVar>,
}

/// One line of a connection's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub connection_id: i64,
    pub at: Millis,
    pub level: String,
    pub message: String,
}

/// Who did what, for the audit trail. Details name fields, never values.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: i64,
    pub target_name: String,
    pub details: String,
    /// The database user that wrote it (PostgreSQL's `current_user`); None on SQLite
    /// and for rows older than the column.
    pub db_user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub description: String,
    /// Responder settings as JSON (`agents::ResponderConfig`).
    pub responder: String,
    /// Web Widget settings as JSON: the widget is configured on the agent's page.
    pub widget: String,
    /// Speech engines as JSON (`agents::speech::SpeechConfig`): what SIP calls need.
    pub speech: String,
    pub desired: DesiredState,
    pub status: Status,
    pub version: i64,
    pub running_version: Option<i64>,
    pub updated_by: String,
}

impl Agent {
    /// Saved or re-attached since it started: the spec's "restart the agent".
    pub fn restart_pending(&self) -> bool {
        self.status == Status::Running && self.running_version.is_some_and(|v| v < self.version)
    }
}

/// One connection on an agent's Communication channels card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentChannel {
    pub agent_id: i64,
    pub connection_id: i64,
    /// As saved.
    pub inbound: bool,
    /// As the running agent uses it (set when the agent starts).
    pub applied_inbound: bool,
    /// Detached, but the running agent keeps it until it restarts.
    pub detached: bool,
}

/// A connection attached to an agent; `inbound` lets the agent answer incoming messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub agent_id: i64,
    pub connection_id: i64,
    pub inbound: bool,
}
