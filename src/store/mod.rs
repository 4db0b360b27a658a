//! Persistent state behind the store's role traits (`ChannelStore`, `LogStore`,
//! `RuntimeStore`, `AgentStore`; `Store` is all four). The database URL's scheme picks
//! the backend: `postgres://` for production, `sqlite://` (the default, a file in the
//! data directory) for a bare machine. Each backend is its own implementation on its
//! native sqlx driver, with its own `sqlx::migrate!` migrations and column types.

pub mod feed;
mod postgres;
mod roles;
mod sqlite;

pub use roles::{AgentStore, ChannelStore, LogStore, RuntimeStore, Store};

use crate::model::{LogLine, Millis};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(StoreError::Config(format!(
                "database URL '{}' has scheme '{scheme}': use postgres://user@host/db \
                 or sqlite:///path/to/file.db",
                redact_url(url)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// A database URL without its password, safe to show and log.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Who makes a change and what it was, recorded in the same transaction as the change.
#[derive(Debug, Clone)]
pub struct AuditNote {
    pub actor: String,
    pub action: String,
    /// Names of what changed, never values.
    pub details: String,
}

impl AuditNote {
    pub fn new(actor: &str, action: &str, details: impl Into<String>) -> AuditNote {
        AuditNote {
            actor: actor.to_string(),
            action: action.to_string(),
            details: details.into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("the database is unavailable ({0}); check that it is running and reachable")]
    Unavailable(String),
    #[error("a {kind} named '{name}' already exists in this tenant: choose another name")]
    Duplicate { kind: &'static str, name: String },
    #[error("{kind} '{name}' no longer exists: someone deleted it")]
    NotFound { kind: &'static str, name: String },
    #[error(
        "'{name}' was changed by {by} at {at} after you opened it; your changes were not saved. \
         Reload it and apply them again"
    )]
    Conflict {
        name: String,
        by: String,
        at: String,
    },
    #[error(
        "'{connection}' already answers inbound messages for agent '{agent}': a {type_name} \
         connection can have one inbound agent; detach it there first or use another connection"
    )]
    InboundTaken {
        connection: String,
        agent: String,
        type_name: String,
    },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Where an inbound event is: the ledger makes redelivery harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    /// Seen, not yet handled.
    Received,
    /// A reply is being sent; after a crash nobody knows whether it went out, so it is
    /// not sent again (never twice) and the log says so.
    Sending,
    Answered,
    /// Nothing to answer (not a text message, or nobody may answer it).
    Ignored,
}

impl LedgerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Received => "received",
            LedgerState::Sending => "sending",
            LedgerState::Answered => "answered",
            LedgerState::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> LedgerState {
        match s {
            "sending" => LedgerState::Sending,
            "answered" => LedgerState::Answered,
            "ignored" => LedgerState::Ignored,
            _ => LedgerState::Received,
        }
    }
}

/// A normalized inbound message as the ledger keeps it until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The provider's own id, prefixed with the account for multi-account types.
    pub key: String,
    pub account: String,
    pub customer: String,
    pub display_name: String,
    pub text: String,
    /// The provider's payload, for diagnosis; never shown by default.
    pub raw: String,
}

/// One write of the runtime; the group-commit writer applies many in one transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Records messages as received unless known, and moves the connector's cursor, in
    /// one transaction: the provider may be told "received" once this commits.
    Receive {
        connection_id: i64,
        /// Shared with the caller, who dispatches the new ones once they are recorded.
        entries: std::sync::Arc<Vec<LedgerEntry>>,
        cursor: Option<String>,
        /// The writer's lease, when a running task writes (the ingress writes without).
        fence: Option<Fence>,
    },
    /// received → sending, only if it is still received: whoever claims it answers it.
    Claim {
        connection_id: i64,
        key: String,
        fence: Option<Fence>,
    },
    Mark {
        connection_id: i64,
        key: String,
        state: LedgerState,
    },
    /// A message we sent, by the provider's id (boxed: the largest op would size every
    /// slot of the writer's queue, 20,000 of them after a burst).
    Outbound(Box<SentRecord>),
    /// Log lines; lines of a connection deleted meanwhile are dropped, not fatal.
    Logs(Vec<LogLine>),
    /// Trims these connections' logs to the kept number of lines.
    TrimLogs(Vec<i64>),
}

/// A message we sent, to record: by the provider's id, to whom, in reply to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub connection_id: i64,
    pub provider_id: String,
    pub account: String,
    pub customer: String,
    pub in_reply_to: String,
}

/// What a `WriteOp` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// Per entry of a `Receive`: its state after the write (new ones are `Received`)
    /// and whether it was new.
    Received(Vec<(LedgerState, bool)>),
    Claimed(bool),
    /// Refused: the fence's lease is no longer the writer's (another process took over).
    Fenced,
    Done,
}

/// A lease, as the database's clock sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub connection_id: i64,
    pub owner: String,
    pub generation: i64,
    /// Negative once expired.
    pub expires_in_ms: i64,
    /// When it expires (or expired), on the database's clock.
    pub expires_at: Millis,
}

/// What a presence round reads of the tenant's leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRead {
    /// Every lease (a console shows them).
    All,
    /// Only the owners of unexpired leases, of every tenant (to find dead ones on this
    /// host: a dead process's leases are given back whole).
    Holders,
    Nothing,
}

/// What a process learns in one presence round.
#[derive(Debug, Clone)]
pub struct PresenceRound {
    /// How many leases were renewed, when asked to.
    pub renewed: Option<u64>,
    pub processes: Vec<ProcessInfo>,
    /// With `LeaseRead::All`.
    pub leases: Vec<LeaseInfo>,
    /// With `LeaseRead::Holders`.
    pub holders: Vec<String>,
    pub db_now: Millis,
}

/// A flametree process working on this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The lease owner name: `host:pid:started`.
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// `console` or `serve`.
    pub role: String,
    /// The tenant it works on (`*` for every tenant).
    pub tenant: String,
    pub runs_channels: bool,
    pub started_at: Millis,
    /// How long ago its last heartbeat was (database clock); 0 when writing one.
    pub seen_ms_ago: i64,
}

/// The lease a task was granted: its writes are refused once another process took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Shared: every op a task queues carries it, and the writer's queue is sized by
    /// its largest op.
    pub owner: std::sync::Arc<str>,
    pub generation: i64,
}

/// A message we sent earlier, found by the provider's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub account: String,
    pub customer: String,
    pub in_reply_to: String,
    pub sent_at: Millis,
}

/// How many rows one retention call deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Inbound ledger rows (answered or ignored only).
    pub ledger: u64,
    pub unanswered: u64,
    pub turns: u64,
    pub audit: u64,
    /// Records of sent messages (matched to delivery reports).
    pub outbound: u64,
    /// Outbound call requests that have ended.
    pub calls: u64,
}

impl PruneCounts {
    pub fn total(&self) -> u64 {
        self.ledger + self.unanswered + self.turns + self.audit + self.outbound + self.calls
    }
}

/// What the runtime reconciles on: a connection without its name or configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionState {
    pub id: i64,
    pub desired: crate::model::DesiredState,
    pub status: crate::model::Status,
}

/// Moves whenever a tenant's connections change: on PostgreSQL their count, newest
/// change and a checksum of change times; on SQLite a counter of writes, kept by triggers.
pub type ChangeMarker = (i64, i64, i64);

/// A runtime's look at the database each second (`RuntimeStore::pulse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    pub marker: Option<ChangeMarker>,
    /// SQLite: a counter that moves with every write of any tenant's agents (attaching
    /// or detaching a channel writes its agent). `None` on PostgreSQL, which announces
    /// agent changes instead.
    pub agent_changes: Option<i64>,
    /// A message is recorded and not yet claimed.
    pub inbound_waiting: bool,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens the database the URL names, creating an SQLite file and its directory if needed,
/// and runs that backend's migrations.
pub async fn open(
    url: &str,
    connect_timeout_secs: u64,
    max_connections: u32,
) -> StoreResult<Arc<dyn Store>> {
    Ok(match Backend::from_url(url)? {
        Backend::Postgres => {
            Arc::new(postgres::connect(url, connect_timeout_secs, max_connections).await?)
        }
        Backend::Sqlite => {
            Arc::new(sqlite::connect(url, connect_timeout_secs, max_connections).await?)
        }
    })
}
