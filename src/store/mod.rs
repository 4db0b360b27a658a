//! Persistent state behind one `Store` trait. The database URL's scheme picks the
//! backend: `postgres://` for production, `sqlite://` (the default, a file in the data
//! directory) for a bare machine. Each backend has its own migrations, run at open.

mod agents_sql;
pub mod feed;
mod leases_sql;
mod migrate;
mod pipeline_sql;
mod receive_sql;
mod retention;
mod rows;
mod sql;

pub use sql::SqlStore;

use crate::model::{
    Agent, AgentChannel, Attachment, AuditEntry, Connection, DesiredState, LogLine, Millis,
    NewConnection, Status, Tenant,
};
use async_trait::async_trait;
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

#[derive(Debug, thiserror::Error)]
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
        entries: Vec<LedgerEntry>,
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
    /// A message we sent, by the provider's id.
    Outbound {
        connection_id: i64,
        provider_id: String,
        account: String,
        customer: String,
        in_reply_to: String,
    },
    /// Log lines; lines of a connection deleted meanwhile are dropped, not fatal.
    Logs(Vec<LogLine>),
    /// Trims these connections' logs to the kept number of lines.
    TrimLogs(Vec<i64>),
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
    pub owner: String,
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
}

impl PruneCounts {
    pub fn total(&self) -> u64 {
        self.ledger + self.unanswered + self.turns + self.audit + self.outbound
    }
}

/// Count, newest change and a checksum of change times of a tenant's connections.
pub type ChangeMarker = (i64, i64, i64);

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// The URL with any password masked.
    fn describe(&self) -> String;

    /// Returns the tenant, creating it on first use.
    async fn tenant(&self, name: &str) -> StoreResult<Tenant>;
    /// Every tenant, by name.
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;

    async fn list_connections(&self, tenant_id: i64) -> StoreResult<Vec<Connection>>;
    /// The first `limit` connections by name: enough to fill a screen while the rest loads.
    async fn first_connections(&self, tenant_id: i64, limit: u32) -> StoreResult<Vec<Connection>>;
    /// Changes whenever any connection of the tenant is written, added or deleted:
    /// one cheap query tells a watcher whether to reload.
    async fn change_marker(&self, tenant_id: i64) -> StoreResult<ChangeMarker>;
    async fn connection(&self, id: i64) -> StoreResult<Option<Connection>>;
    /// Names match case-insensitively, as uniqueness does.
    async fn connection_by_name(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> StoreResult<Option<Connection>>;
    async fn insert_connection(
        &self,
        new: &NewConnection,
        note: &AuditNote,
    ) -> StoreResult<Connection>;
    /// Saves `c` if the stored version is still `c.version`; the result has the next version.
    async fn update_connection(&self, c: &Connection, note: &AuditNote) -> StoreResult<Connection>;
    /// Deletes the connection if it is still at `version`.
    async fn delete_connection(&self, id: i64, version: i64, note: &AuditNote) -> StoreResult<()>;
    async fn set_desired_state(
        &self,
        id: i64,
        desired: DesiredState,
        note: &AuditNote,
    ) -> StoreResult<()>;
    /// Records an actual-state transition; `since` moves only when the status changes.
    async fn set_status(&self, id: i64, status: Status, message: &str) -> StoreResult<()>;
    /// Which config version the running task uses (`None` once it stops).
    async fn set_running_version(&self, id: i64, version: Option<i64>) -> StoreResult<()>;

    /// Appends lines and trims each connection's history to `keep` lines.
    async fn append_logs(&self, lines: &[LogLine], keep: u32) -> StoreResult<()>;
    /// The newest `limit` lines, oldest first.
    async fn recent_logs(&self, connection_id: i64, limit: u32) -> StoreResult<Vec<LogLine>>;
    /// The id of the connection's newest log line (0 when it has none).
    async fn last_log_id(&self, connection_id: i64) -> StoreResult<i64>;
    /// Lines after the one with id `after`, oldest first, with their ids (for following).
    async fn logs_after(
        &self,
        connection_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LogLine)>>;

    async fn audit_trail(&self, tenant_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;
    /// How many connections hold at least one sealed secret; a new master key may be
    /// created only while this is zero.
    async fn count_sealed_secrets(&self) -> StoreResult<u64>;

    /// The database's clock, in milliseconds: leases and heartbeats use it, never the
    /// clocks of the machines flametree runs on.
    async fn db_now(&self) -> StoreResult<Millis>;
    /// Takes the lease on a connection for `owner` until the database's now + `ttl_ms`
    /// when it is free, expired or already `owner`'s; returns its generation (bumped on
    /// every change of owner), or None when another owner holds it.
    async fn acquire_lease(
        &self,
        connection_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<i64>>;
    /// Renews every unexpired lease of `owner` in one statement; returns the renewed
    /// connections with their generations.
    async fn renew_leases(&self, owner: &str, ttl_ms: i64) -> StoreResult<Vec<(i64, i64)>>;
    async fn release_lease(&self, connection_id: i64, owner: &str) -> StoreResult<()>;
    /// Expires every lease of `owner` (a process known to be dead).
    async fn expire_leases_of(&self, owner: &str) -> StoreResult<u64>;
    /// The tenant's leases as the database's clock sees them now.
    async fn leases(&self, tenant_id: i64) -> StoreResult<Vec<LeaseInfo>>;
    /// The owners of the tenant's unexpired leases: all a process without a console
    /// needs to know every few seconds (one row each, not one per connection).
    async fn lease_holders(&self, tenant_id: i64) -> StoreResult<Vec<String>>;
    /// Records that a process is alive (on the database's clock).
    async fn heartbeat(&self, p: &ProcessInfo) -> StoreResult<()>;
    /// Every process that sent a heartbeat, with how long ago.
    async fn processes(&self) -> StoreResult<Vec<ProcessInfo>>;
    async fn forget_process(&self, id: &str) -> StoreResult<()>;

    async fn cursor(&self, connection_id: i64) -> StoreResult<Option<String>>;
    /// The cursor and when it was stored.
    async fn cursor_since(&self, connection_id: i64) -> StoreResult<Option<(String, Millis)>>;
    async fn set_cursor(&self, connection_id: i64, cursor: &str) -> StoreResult<()>;
    /// Records an inbound event as received unless it is known; returns its state.
    async fn ledger_receive(
        &self,
        connection_id: i64,
        provider_id: &str,
    ) -> StoreResult<LedgerState>;
    async fn ledger_mark(
        &self,
        connection_id: i64,
        provider_id: &str,
        state: LedgerState,
    ) -> StoreResult<()>;
    /// Applies the ops in one transaction; `TrimLogs` keeps `log_keep` lines.
    async fn write_batch(&self, ops: &[WriteOp], log_keep: u32) -> StoreResult<Vec<WriteResult>>;
    /// Messages recorded but not yet claimed, oldest first, across the tenant's
    /// connections: (connection id, entry).
    async fn waiting_inbound(&self, limit: u32) -> StoreResult<Vec<(i64, LedgerEntry)>>;
    /// Replies a process claimed and never finished (it died while sending): back to
    /// received when `retry` (the connector's replies are idempotent), else ignored, so
    /// each is reported once; returns (key, customer) of each.
    async fn settle_interrupted(
        &self,
        connection_id: i64,
        retry: bool,
    ) -> StoreResult<Vec<(String, String)>>;
    async fn ledger_state(&self, connection_id: i64, key: &str)
    -> StoreResult<Option<LedgerState>>;
    async fn outbound(
        &self,
        connection_id: i64,
        provider_id: &str,
    ) -> StoreResult<Option<OutboundRecord>>;
    /// The connection whose webhook path is `hook_id`.
    async fn connection_by_hook(&self, hook_id: &str) -> StoreResult<Option<Connection>>;

    async fn create_agent(
        &self,
        tenant_id: i64,
        name: &str,
        note: &AuditNote,
    ) -> StoreResult<Agent>;
    async fn list_agents(&self, tenant_id: i64) -> StoreResult<Vec<Agent>>;
    async fn agent(&self, id: i64) -> StoreResult<Option<Agent>>;
    /// Names match case-insensitively.
    async fn agent_by_name(&self, tenant_id: i64, name: &str) -> StoreResult<Option<Agent>>;
    /// Saves name, description, responder and widget if the stored version is still `a.version`.
    async fn update_agent(&self, a: &Agent, note: &AuditNote) -> StoreResult<Agent>;
    async fn delete_agent(&self, id: i64, note: &AuditNote) -> StoreResult<()>;
    /// The agent answers from now on, with the channels as saved.
    async fn start_agent(&self, id: i64, note: &AuditNote) -> StoreResult<Agent>;
    async fn stop_agent(&self, id: i64, note: &AuditNote) -> StoreResult<Agent>;
    /// Attaches (or changes) a connection on the agent's card; applies when the agent
    /// restarts. For exclusive-inbound types the database refuses a second inbound agent.
    async fn attach(
        &self,
        att: &Attachment,
        exclusive_inbound: bool,
        note: &AuditNote,
    ) -> StoreResult<()>;
    async fn detach(&self, agent_id: i64, connection_id: i64, note: &AuditNote) -> StoreResult<()>;
    /// Saved (not detached) attachments of a connection.
    async fn attachments_of_connection(&self, connection_id: i64) -> StoreResult<Vec<Attachment>>;
    async fn agent_channels(&self, agent_id: i64) -> StoreResult<Vec<AgentChannel>>;
    /// Every agent with this connection on its card, detached-but-still-applied included.
    async fn connection_agents(
        &self,
        connection_id: i64,
    ) -> StoreResult<Vec<(Agent, AgentChannel)>>;
    /// Appends a conversation turn, keeping the customer's last `keep`.
    async fn add_turn(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        role: &str,
        content: &str,
        keep: u32,
    ) -> StoreResult<()>;
    async fn turns(
        &self,
        agent_id: i64,
        connection_id: i64,
        customer: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, String)>>;
    /// Keeps an inbound message nobody may answer, with the reason.
    async fn record_unanswered(
        &self,
        connection_id: i64,
        customer: &str,
        text: &str,
        reason: &str,
    ) -> StoreResult<()>;
    /// Newest first: (at, customer, text, reason).
    async fn unanswered(
        &self,
        connection_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Millis, String, String, String)>>;

    /// Retention: deletes at most `limit_per_table` rows from each of the inbound ledger
    /// (answered or ignored events only, by when they were last updated), unanswered
    /// messages, conversation turns and the audit log that are older than `cutoff_ms`
    /// (strictly). A table whose count equals the limit may hold more: call again.
    async fn prune_older_than(
        &self,
        cutoff_ms: i64,
        limit_per_table: u32,
    ) -> StoreResult<PruneCounts>;
}

/// Opens the database the URL names, creating an SQLite file and its directory if needed,
/// and runs that backend's migrations.
pub async fn open(
    url: &str,
    connect_timeout_secs: u64,
    max_connections: u32,
) -> StoreResult<Arc<dyn Store>> {
    let store = SqlStore::connect(url, connect_timeout_secs, max_connections).await?;
    Ok(Arc::new(store))
}
