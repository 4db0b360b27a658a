//! The store's roles. Each user needs only some: the runtime's log writer the logs, a
//! connector's task the runtime's ledger and leases, the agents screen the agents.
//! `Store` is all of them, for the composition root that opens the database.

use super::{
    AuditNote, Backend, ChangeMarker, ConnectionState, LeaseInfo, LeaseRead, LedgerEntry,
    LedgerState, OutboundRecord, PresenceRound, ProcessInfo, PruneCounts, Pulse, StoreResult,
    WriteOp, WriteResult,
};
use crate::model::{
    Agent, AgentChannel, Attachment, AuditEntry, CallProgress, CallRequest, Connection,
    DesiredState, LogLine, Millis, NewConnection, Status, Tenant,
};
use async_trait::async_trait;

/// Tenants, connections and their audit trail, settings.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Returns the tenant, creating it on first use.
    async fn tenant(&self, name: &str) -> StoreResult<Tenant>;

    /// Every tenant, by name.
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;

    async fn list_connections(&self, tenant_id: i64) -> StoreResult<Vec<Connection>>;

    /// Every connection's id, desired state and status: the runtime looks at these
    /// every few seconds, and decoding every configuration each time was most of an
    /// idle process's work with 10,000 connections.
    async fn connection_states(&self, tenant_id: i64) -> StoreResult<Vec<ConnectionState>>;

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

    /// Records a transition only if the status is still one of `from`: a stop must not
    /// overwrite the ERROR a failing task wrote a moment before. Returns whether it did.
    async fn set_status_from(
        &self,
        id: i64,
        from: &[Status],
        status: Status,
        message: &str,
    ) -> StoreResult<bool>;
    /// Which config version the running task uses (`None` once it stops).
    async fn set_running_version(&self, id: i64, version: Option<i64>) -> StoreResult<()>;

    async fn audit_trail(&self, tenant_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// Key rotation: writes the given connections' and agents' secrets (re-sealed by
    /// the caller) and the key id in one transaction. Each row must still be at the
    /// version it was read at, or nothing is written. Versions move (running ones with
    /// them, so nothing looks restart-pending): a console holding the old ciphertexts
    /// cannot save them back over the new ones.
    async fn reseal(
        &self,
        connections: &[Connection],
        agents: &[Agent],
        key_id_setting: (&str, &str),
        note: &AuditNote,
    ) -> StoreResult<()>;

    /// The database user this process connects as and whether it may change
    /// connections, on PostgreSQL (`current_user`, its privileges); None on SQLite,
    /// which has no users.
    async fn db_user(&self) -> StoreResult<Option<(String, bool)>>;

    /// PostgreSQL: creates (if needed) the login role `name` and gives it exactly what
    /// a viewer (read everything, write only its own presence) or an editor (read and
    /// change rows, no tables) needs on this database.
    async fn grant_role(&self, name: &str, editor: bool) -> StoreResult<()>;

    /// Records an action that changes no row (a message sent by hand) in the audit trail.
    async fn record_audit(
        &self,
        tenant_id: i64,
        note: &AuditNote,
        kind: &str,
        target_id: i64,
        target_name: &str,
    ) -> StoreResult<()>;

    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;

    /// How many connections hold at least one sealed secret; a new master key may be
    /// created only while this is zero.
    async fn count_sealed_secrets(&self) -> StoreResult<u64>;

    /// The connection whose webhook path is `hook_id`.
    async fn connection_by_hook(&self, hook_id: &str) -> StoreResult<Option<Connection>>;
}

/// Each connection's log.
#[async_trait]
pub trait LogStore: Send + Sync {
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
}

/// What running channels needs: leases, processes, cursors, the inbound ledger,
/// outbound records and retention.
#[async_trait]
pub trait RuntimeStore: Send + Sync {
    /// The database's clock, in milliseconds: leases and heartbeats use it, never the
    /// clocks of the machines flametree runs on.
    async fn db_now(&self) -> StoreResult<Millis>;

    /// Takes the lease on a connection for `owner` until the database's now + `ttl_ms`
    /// (or later: an owner's leases all end together, and taking one never shortens the
    /// others) when it is free, expired or already `owner`'s; returns its generation
    /// (bumped on every change of owner), or None when another owner holds it.
    async fn acquire_lease(
        &self,
        connection_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<i64>>;

    /// Renews every unexpired lease of `owner` (one row: the owner's); returns the
    /// renewed connections with their generations. Leases that expired stay lost.
    async fn renew_leases(&self, owner: &str, ttl_ms: i64) -> StoreResult<Vec<(i64, i64)>>;

    /// `renew_leases`, saying only how many were renewed: with 10,000 connections the
    /// list, read back every few seconds, was most of an idle process's database work.
    async fn renew_leases_counted(&self, owner: &str, ttl_ms: i64) -> StoreResult<u64>;

    async fn release_lease(&self, connection_id: i64, owner: &str) -> StoreResult<()>;

    /// Expires every lease of `owner` (a process known to be dead).
    async fn expire_leases_of(&self, owner: &str) -> StoreResult<u64>;

    /// The tenant's leases as the database's clock sees them now.
    async fn leases(&self, tenant_id: i64) -> StoreResult<Vec<LeaseInfo>>;

    /// The owners of unexpired leases, of every tenant: all a process without a console
    /// needs to know every few seconds (one row each, not one per connection).
    async fn lease_holders(&self) -> StoreResult<Vec<String>>;

    /// Records that a process is alive (on the database's clock).
    async fn heartbeat(&self, p: &ProcessInfo) -> StoreResult<()>;

    /// Every process that sent a heartbeat, with how long ago.
    async fn processes(&self) -> StoreResult<Vec<ProcessInfo>>;

    async fn forget_process(&self, id: &str) -> StoreResult<()>;

    /// A process's look around, in one transaction: its heartbeat `me`, the renewal of
    /// its leases by `renew_ttl_ms` when given (`renew_leases_counted`), every process,
    /// the tenant's leases (all, or only their owners, or none) and the database's clock.
    async fn presence_round(
        &self,
        me: &ProcessInfo,
        tenant_id: i64,
        want: LeaseRead,
        renew_ttl_ms: Option<i64>,
    ) -> StoreResult<PresenceRound>;

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

    /// What a runtime asks every second, in one statement: the tenant's change marker
    /// (`with_marker`), on SQLite the agents' change counter, and whether any recorded
    /// message waits to be claimed (`waiting_inbound` is read only then).
    async fn pulse(&self, tenant_id: i64, with_marker: bool) -> StoreResult<Pulse>;

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

    /// Queues an outbound call for whichever process runs the connection; returns the
    /// request's id. On PostgreSQL the insert is announced (`q:<connection id>`).
    async fn request_call(
        &self,
        connection_id: i64,
        callee: &str,
        opening: Option<&str>,
        requested_by: &str,
    ) -> StoreResult<i64>;

    async fn call_request(&self, id: i64) -> StoreResult<Option<CallRequest>>;

    /// The connections that have queued call requests: one cheap look (an index of
    /// queued rows only) for the processes that run voice lines.
    async fn queued_call_connections(&self) -> StoreResult<Vec<i64>>;

    /// Claims the connection's oldest queued request for `owner`, which must hold the
    /// connection's lease: queued → dialing in one statement, so two processes never
    /// dial the same request. Requests queued more than `max_age_ms` ago are canceled
    /// instead of dialed.
    async fn claim_call(
        &self,
        connection_id: i64,
        owner: &str,
        max_age_ms: i64,
    ) -> StoreResult<Option<CallRequest>>;

    /// Records how a claimed call goes; a request that has ended stays as it ended.
    async fn update_call(&self, id: i64, progress: &CallProgress) -> StoreResult<()>;

    /// Cancels a request nobody has claimed; false when it was claimed (or ended).
    async fn cancel_queued_call(&self, id: i64, reason: &str) -> StoreResult<bool>;

    /// Fails the connection's calls still dialing, ringing or answered that another
    /// process claimed, when `owner` holds the connection's lease: their claimer let go
    /// of the line without ending them, so it stopped during them (killed). Returns the
    /// requests so ended; none unless `owner` holds the lease.
    async fn end_orphaned_calls(
        &self,
        connection_id: i64,
        owner: &str,
    ) -> StoreResult<Vec<CallRequest>>;

    /// Fails the request when `claimer`, known to be gone, still has it in progress;
    /// false when it ended meanwhile (or someone else has it).
    async fn end_abandoned_call(&self, id: i64, claimer: &str) -> StoreResult<bool>;

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

/// Agents, their channels, conversation history and unanswered messages.
#[async_trait]
pub trait AgentStore: Send + Sync {
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

    /// Saves name, description, responder, widget and speech if the stored version is still `a.version`.
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

    /// `connection_agents` of many connections at once (each id has an entry).
    async fn connection_agents_many(
        &self,
        connection_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<(Agent, AgentChannel)>>>;

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
}

/// Every role, over one database.
pub trait Store: ChannelStore + LogStore + RuntimeStore + AgentStore {
    fn backend(&self) -> Backend;

    /// The URL with any password masked.
    fn describe(&self) -> String;
}
