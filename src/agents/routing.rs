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

/// A connection's route, remembered for a second: a burst of messages costs one
/// lookup, and a change of agent applies within a second.
#[derive(Default)]
pub struct RouteCache(std::sync::Mutex<Option<(std::time::Instant, Route)>>);

const ROUTE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl RouteCache {
    async fn route(&self, loader: &RouteLoader, connection_id: i64) -> StoreResult<Route> {
        if let Some((at, route)) = self.0.lock().expect("route cache lock").as_ref()
            && at.elapsed() < ROUTE_TTL
        {
            return Ok(route.clone());
        }
        let route = inbound_route_of(&loader.agents_of(connection_id).await?);
        *self.0.lock().expect("route cache lock") =
            Some((std::time::Instant::now(), route.clone()));
        Ok(route)
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
        RouteLoader { tx }
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
}
