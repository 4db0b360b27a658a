//! Which agent answers a message on a connection, and — when none does — why, in the
//! words of the spec's Common issues, so the operator sees the missing piece.

use super::responder::ResponderConfig;
use crate::channels::Channels;
use crate::model::{Agent, AgentChannel, Status};
use crate::store::{AgentStore, StoreResult};
use tracing::warn;

/// How many turns of a customer's conversation are kept per agent and connection.
const KEEP_TURNS: u32 = 40;

#[derive(Clone)]
pub enum Route {
    Agent(Agent),
    Nobody(String),
}

/// The running agent whose applied configuration has this connection with Inbound on.
/// A detached attachment the agent still uses (not restarted yet) counts, but a current
/// one wins.
pub async fn inbound_route(store: &dyn AgentStore, connection_id: i64) -> StoreResult<Route> {
    let list = store.connection_agents(connection_id).await?;
    Ok(inbound_route_of(&list))
}

/// `inbound_route` from the connection's agents.
fn inbound_route_of(list: &[(Agent, AgentChannel)]) -> Route {
    let mut candidates: Vec<&(Agent, AgentChannel)> = list
        .iter()
        .filter(|(a, ch)| a.status == Status::Running && ch.applied_inbound)
        .collect();
    candidates.sort_by_key(|(_, ch)| ch.detached);
    match candidates.first() {
        Some((a, _)) => Route::Agent(a.clone()),
        None => Route::Nobody(diagnosis(list)),
    }
}

/// Why messages on a connection get (or do not get) an answer.
pub fn diagnosis(list: &[(Agent, AgentChannel)]) -> String {
    let live: Vec<&(Agent, AgentChannel)> = list.iter().filter(|(_, ch)| !ch.detached).collect();
    if let Some((a, _)) = list
        .iter()
        .find(|(a, ch)| a.status == Status::Running && ch.applied_inbound && !ch.detached)
    {
        return format!("answered by agent '{}'", a.name);
    }
    if live.is_empty() {
        return "attached to no agent: add it to an agent's Communication channels with Inbound on, \
                then restart the agent"
            .into();
    }
    let inbound: Vec<&&(Agent, AgentChannel)> = live.iter().filter(|(_, ch)| ch.inbound).collect();
    let Some((a, ch)) = inbound.first().map(|x| (&x.0, &x.1)) else {
        let names: Vec<String> = live.iter().map(|(a, _)| format!("'{}'", a.name)).collect();
        return format!(
            "Inbound is off for agent {}: it can only send outbound; turn Inbound on for the agent \
             that should answer, then restart it",
            names.join(", ")
        );
    };
    if a.status != Status::Running {
        return format!("agent '{}' is stopped: Start agent", a.name);
    }
    if !ch.applied_inbound {
        return format!(
            "agent '{}' was not restarted since this channel was attached: Stop agent, then Start agent",
            a.name
        );
    }
    format!("answered by agent '{}'", a.name)
}

/// For a conversation flametree started (an outbound call): the running agent that has
/// the connection on its card, Inbound on or off — with Inbound off an agent's channel
/// is there for exactly this.
pub async fn outbound_route(store: &dyn AgentStore, connection_id: i64) -> StoreResult<Route> {
    let list = store.connection_agents(connection_id).await?;
    let mut candidates: Vec<&(Agent, AgentChannel)> = list
        .iter()
        .filter(|(a, _)| a.status == Status::Running)
        .collect();
    candidates.sort_by_key(|(_, ch)| (ch.detached, !ch.applied_inbound));
    Ok(match candidates.first() {
        Some((a, _)) => Route::Agent(a.clone()),
        None => Route::Nobody(diagnosis(&list)),
    })
}

/// A connection's route, remembered while nothing says it changed: a message costs no
/// lookup, and a change of agent applies within a second (`RouteEpoch`).
#[derive(Default)]
pub struct RouteCache(std::sync::Mutex<Option<Remembered>>);

struct Remembered {
    at: std::time::Instant,
    /// The epoch read before the lookup began: a change told during the lookup makes
    /// it stale at once.
    epoch: u64,
    route: Route,
}

/// How long a route is kept when nobody tells this process of agent changes (the
/// PostgreSQL feed is down, SQLite's pulse is not being read).
const ROUTE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a route is kept at most while changes are told: a safety net, as the
/// runtime's full pass is for connections.
const ROUTE_TTL_TOLD: std::time::Duration = std::time::Duration::from_secs(60);

impl RouteCache {
    async fn route(&self, loader: &RouteLoader, connection_id: i64) -> StoreResult<Route> {
        let epoch = &loader.epoch;
        if let Some(r) = self.0.lock().expect("route cache lock").as_ref()
            && r.epoch == epoch.current()
            && r.at.elapsed() < epoch.keep()
        {
            return Ok(r.route.clone());
        }
        let before = epoch.current();
        let route = inbound_route_of(&loader.agents_of(connection_id).await?);
        *self.0.lock().expect("route cache lock") = Some(Remembered {
            at: std::time::Instant::now(),
            epoch: before,
            route: route.clone(),
        });
        Ok(route)
    }
}

/// Moves whenever agents (and so the routes) may have changed, as this process is told:
/// by PostgreSQL's change feed, or by the agents' change counter SQLite's pulse reads
/// every second. While nobody has told it anything for a few seconds, routes are kept
/// for a second only, as before there was a teller.
pub struct RouteEpoch {
    epoch: std::sync::atomic::AtomicU64,
    /// Until when (ms after `origin`) the teller vouches that no change went unsaid.
    told_until: std::sync::atomic::AtomicU64,
    origin: std::time::Instant,
    /// SQLite: the agents' change counter last read.
    counter: std::sync::Mutex<Option<i64>>,
    following: std::sync::atomic::AtomicBool,
}

/// A teller's word lasts this long: twice the pulse, so one late pulse does not drop
/// the cache.
const TOLD_FOR: std::time::Duration = std::time::Duration::from_millis(2_500);

impl Default for RouteEpoch {
    fn default() -> RouteEpoch {
        RouteEpoch {
            epoch: Default::default(),
            told_until: Default::default(),
            origin: std::time::Instant::now(),
            counter: Default::default(),
            following: Default::default(),
        }
    }
}

impl RouteEpoch {
    fn current(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How long a remembered route may be used now.
    fn keep(&self) -> std::time::Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        if now < self.told_until.load(std::sync::atomic::Ordering::Acquire) {
            ROUTE_TTL_TOLD
        } else {
            ROUTE_TTL
        }
    }

    /// Agents may have changed: every remembered route is looked up again.
    pub fn changed(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The teller vouches that every change up to now was told.
    fn vouch(&self) {
        let until = (self.origin.elapsed() + TOLD_FOR).as_millis() as u64;
        self.told_until
            .fetch_max(until, std::sync::atomic::Ordering::AcqRel);
    }

    /// SQLite's pulse read the agents' change counter (of all tenants, so that any
    /// tenant's supervisor vouches for every route): a new value (or the first one,
    /// which nothing before can be compared with) means a change.
    pub fn counter_read(&self, value: i64) {
        let mut last = self.counter.lock().expect("route counter lock");
        if *last != Some(value) {
            *last = Some(value);
            self.changed();
        }
        self.vouch();
    }

    /// Follows PostgreSQL's change feed until `stop`: agent changes (of any tenant:
    /// `serve --all-tenants` shares one loader) and resynchronisations move the epoch;
    /// while the feed listens, it vouches.
    pub fn follow(
        self: &std::sync::Arc<Self>,
        feed: &crate::store::feed::ChangeFeed,
        stop: tokio_util::sync::CancellationToken,
    ) {
        if self
            .following
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        use crate::store::feed::Change;
        let me = self.clone();
        let feed = feed.clone();
        let mut changes = Some(feed.subscribe());
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    change = crate::store::feed::next(&mut changes) => match change {
                        Some(Change::Agents { .. } | Change::Resync) => me.changed(),
                        Some(_) => {}
                        None => break,
                    },
                    _ = beat.tick() => {
                        if feed.listening() {
                            me.vouch();
                        }
                    }
                }
            }
            me.following
                .store(false, std::sync::atomic::Ordering::Release);
        });
    }
}

type Agents = Vec<(Agent, AgentChannel)>;
type Waiter = tokio::sync::oneshot::Sender<StoreResult<Agents>>;

/// The agents of connections, looked up for many at once: lookups asked for while one
/// is under way are answered together by the next, as the group-commit writer does
/// with writes. In a burst to 1,000 connections each missed its route at the same
/// moment, and their queries queued for the pool (a tenth of the process's CPU).
pub struct RouteLoader {
    tx: tokio::sync::mpsc::UnboundedSender<(i64, Waiter)>,
    /// Whether the routes remembered are still right.
    pub epoch: std::sync::Arc<RouteEpoch>,
}

/// Most connections in one lookup.
const LOOKUP_AT_ONCE: usize = 2_000;

impl RouteLoader {
    /// Starts the loader's task; it ends when the loader is dropped.
    pub fn start(channels: std::sync::Arc<Channels>) -> RouteLoader {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Waiter)>();
        tokio::spawn(async move {
            let mut asked: Vec<(i64, Waiter)> = Vec::new();
            while rx.recv_many(&mut asked, LOOKUP_AT_ONCE).await > 0 {
                let mut ids: Vec<i64> = asked.iter().map(|(id, _)| *id).collect();
                ids.sort_unstable();
                ids.dedup();
                match channels.store().connection_agents_many(&ids).await {
                    Ok(mut found) => {
                        for (id, waiter) in asked.drain(..) {
                            let _ = waiter.send(Ok(found.get(&id).cloned().unwrap_or_default()));
                        }
                        found.clear();
                    }
                    Err(e) => {
                        for (_, waiter) in asked.drain(..) {
                            let _ = waiter.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        RouteLoader {
            tx,
            epoch: Default::default(),
        }
    }

    /// Every agent with the connection on its card (`AgentStore::connection_agents`).
    pub async fn agents_of(&self, connection_id: i64) -> StoreResult<Agents> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || crate::store::StoreError::Unavailable("the route lookup has stopped".into());
        self.tx.send((connection_id, reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// What answering needs of the runtime.
pub struct AnswerEnv<'a> {
    pub routes: &'a RouteCache,
    pub loader: &'a RouteLoader,
    pub channels: &'a Channels,
    pub http: &'a reqwest::Client,
    pub connection_id: i64,
    /// Masks a secret in this connection's log from now on.
    pub protect: &'a (dyn Fn(&str) + Send + Sync),
}

/// The reply to one inbound message and the agent that gave it, or `None` when nobody
/// may answer it (then the message is kept as unanswered and the connection's log says
/// why).
/// `ours`: the message continues a conversation flametree started (`outbound_route`).
pub async fn answer(
    ctx: &AnswerEnv<'_>,
    customer: &str,
    text: &str,
    ours: bool,
) -> Option<(String, String)> {
    let store = ctx.channels.store();
    let id = ctx.connection_id;
    let route = if ours {
        outbound_route(store.as_ref(), id).await
    } else {
        ctx.routes.route(ctx.loader, id).await
    };
    let agent = match route {
        Ok(Route::Agent(a)) => a,
        Ok(Route::Nobody(reason)) => {
            warn!("message from {customer} not answered: {reason}");
            if let Err(e) = store.record_unanswered(id, customer, text, &reason).await {
                warn!("could not keep the unanswered message: {e}");
            }
            return None;
        }
        Err(e) => {
            warn!("message from {customer} not answered: cannot look up its agent: {e}");
            let _ = store
                .record_unanswered(id, customer, text, &e.to_string())
                .await;
            return None;
        }
    };
    let config: ResponderConfig = match serde_json::from_str(&agent.responder) {
        Ok(c) => c,
        Err(_) if agent.responder.trim() == "{}" || agent.responder.trim().is_empty() => {
            ResponderConfig::default()
        }
        Err(e) => {
            warn!(
                "agent '{}' has an unreadable responder ({e}); using the built-in rules",
                agent.name
            );
            ResponderConfig::default()
        }
    };
    let reply = match config {
        ResponderConfig::Rules(r) => r.answer(text),
        ResponderConfig::OpenAi(o) => {
            let key = match &o.api_key {
                Some(sealed) => match ctx.channels.key() {
                    Ok(k) => match k.open(
                        "agent.api_key",
                        sealed,
                        &format!("API key of agent '{}'", agent.name),
                    ) {
                        Ok(v) => {
                            (ctx.protect)(v.expose());
                            Some(v)
                        }
                        Err(e) => {
                            warn!("{e}");
                            None
                        }
                    },
                    Err(e) => {
                        warn!("agent '{}': {e}", agent.name);
                        None
                    }
                },
                None => None,
            };
            let history = store
                .turns(agent.id, id, customer, o.history)
                .await
                .unwrap_or_default();
            match o
                .complete(ctx.http, key.as_ref().map(|k| k.expose()), &history, text)
                .await
            {
                Ok(r) => {
                    let _ = store
                        .add_turn(agent.id, id, customer, "user", text, KEEP_TURNS)
                        .await;
                    let _ = store
                        .add_turn(agent.id, id, customer, "assistant", &r, KEEP_TURNS)
                        .await;
                    r
                }
                Err(why) => {
                    warn!("agent '{}': {why}; sending its fallback reply", agent.name);
                    if o.fallback.trim().is_empty() {
                        let _ = store.record_unanswered(id, customer, text, &why).await;
                        return None;
                    }
                    o.fallback.clone()
                }
            }
        }
    };
    Some((reply, agent.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DesiredState;

    fn agent(name: &str, status: Status) -> Agent {
        Agent {
            id: 1,
            tenant_id: 1,
            name: name.into(),
            description: String::new(),
            responder: "{}".into(),
            widget: "{}".into(),
            speech: "{}".into(),
            desired: DesiredState::Stopped,
            status,
            version: 1,
            running_version: None,
            updated_by: "t".into(),
        }
    }

    fn ch(inbound: bool, applied: bool, detached: bool) -> AgentChannel {
        AgentChannel {
            agent_id: 1,
            connection_id: 1,
            inbound,
            applied_inbound: applied,
            detached,
        }
    }

    #[test]
    fn says_what_is_missing_in_the_spec_s_words() {
        assert!(diagnosis(&[]).starts_with("attached to no agent"));
        let off = [(agent("Sales", Status::Running), ch(false, false, false))];
        assert!(diagnosis(&off).starts_with("Inbound is off for agent 'Sales'"));
        let stopped = [(agent("Sales", Status::Stopped), ch(true, true, false))];
        assert_eq!(diagnosis(&stopped), "agent 'Sales' is stopped: Start agent");
        let pending = [(agent("Sales", Status::Running), ch(true, false, false))];
        assert!(diagnosis(&pending).contains("was not restarted since this channel was attached"));
        let ok = [(agent("Sales", Status::Running), ch(true, true, false))];
        assert_eq!(diagnosis(&ok), "answered by agent 'Sales'");
    }

    #[test]
    fn routes_are_kept_long_only_while_a_teller_vouches_and_a_new_count_drops_them() {
        let epoch = RouteEpoch::default();
        assert_eq!(epoch.keep(), ROUTE_TTL, "nobody told anything yet");
        let start = epoch.current();
        epoch.counter_read(7);
        assert_ne!(
            epoch.current(),
            start,
            "a first count cannot be compared: a change"
        );
        assert_eq!(epoch.keep(), ROUTE_TTL_TOLD);
        let seen = epoch.current();
        epoch.counter_read(7);
        assert_eq!(epoch.current(), seen, "the same count: nothing changed");
        epoch.counter_read(8);
        assert_ne!(epoch.current(), seen, "the agents changed");
        epoch
            .told_until
            .store(0, std::sync::atomic::Ordering::Release);
        assert_eq!(epoch.keep(), ROUTE_TTL, "the teller went quiet");
    }
}
