//! Which master keys the database's secrets are sealed under, and re-sealing all of
//! them under a new key. The re-sealing is one transaction: an interrupted rotation
//! leaves every secret under the old key or every secret under the new one, and running
//! it again finishes it (secrets already under the new key are left as they are).

use crate::channels::{KEY_ID_SETTING, ServiceError};
use crate::model::{Agent, Connection};
use crate::secrets::{MasterKey, SealedSecret};
use crate::store::{AuditNote, Store};
use std::collections::BTreeMap;

const AGENT_KEY_FIELD: &str = "agent.api_key";

/// Every connection and agent of every tenant.
async fn everything(store: &dyn Store) -> Result<(Vec<Connection>, Vec<Agent>), ServiceError> {
    let (mut connections, mut agents) = (Vec::new(), Vec::new());
    for t in store.tenants().await? {
        connections.extend(store.list_connections(t.id).await?);
        agents.extend(store.list_agents(t.id).await?);
    }
    Ok((connections, agents))
}

const SPEECH_KEY_FIELD: &str = crate::agents::speech::KEY_FIELD;

/// The sealed key inside one of an agent's documents (responder or speech), if any.
fn sealed_in(document: &str) -> Option<SealedSecret> {
    let v: serde_json::Value = serde_json::from_str(document).ok()?;
    serde_json::from_value(v.get("api_key")?.clone()).ok()
}

/// Every sealed key an agent holds: its model API key, its speech engines' key.
fn agent_keys(a: &Agent) -> impl Iterator<Item = SealedSecret> {
    [sealed_in(&a.responder), sealed_in(&a.speech)]
        .into_iter()
        .flatten()
}

/// `document` with its `api_key` replaced by `fresh`.
fn with_key(document: &str, fresh: &SealedSecret, agent: &str) -> Result<String, ServiceError> {
    let mut v: serde_json::Value = serde_json::from_str(document)
        .map_err(|e| ServiceError::NotFound(format!("agent '{agent}': {e}")))?;
    v["api_key"] = serde_json::to_value(fresh).expect("a sealed secret serializes");
    Ok(v.to_string())
}

/// How many secrets each key id seals, across every tenant.
pub async fn status(store: &dyn Store) -> Result<BTreeMap<String, usize>, ServiceError> {
    let (connections, agents) = everything(store).await?;
    let mut counts = BTreeMap::new();
    let ids = connections
        .iter()
        .flat_map(|c| c.secrets.values().map(|s| s.key_id.clone()))
        .chain(agents.iter().flat_map(agent_keys).map(|s| s.key_id));
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    Ok(counts)
}

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    pub secrets: usize,
    pub connections: usize,
    pub agents: usize,
}

/// Re-seals every secret sealed under `old` under `new`, in one transaction.
pub async fn rotate(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
    actor: &str,
) -> Result<Rotated, ServiceError> {
    let (connections, agents) = everything(store).await?;
    let mut done = Rotated::default();
    let reseal = |field: &str,
                  sealed: &SealedSecret,
                  what: &str|
     -> Result<Option<SealedSecret>, ServiceError> {
        if sealed.key_id == new.id() {
            return Ok(None);
        }
        let open = old.open(field, sealed, what)?;
        Ok(Some(new.seal(field, &open, sealed.count)))
    };
    let mut changed_connections = Vec::new();
    for mut c in connections {
        let mut changed = false;
        for (field, sealed) in c.secrets.iter_mut() {
            let what = format!("{field} of '{}'", c.name);
            if let Some(fresh) = reseal(field, sealed, &what)? {
                *sealed = fresh;
                changed = true;
                done.secrets += 1;
            }
        }
        if changed {
            changed_connections.push(c);
        }
    }
    let mut changed_agents = Vec::new();
    for mut a in agents {
        let mut changed = false;
        if let Some(sealed) = sealed_in(&a.responder) {
            let what = format!("API key of agent '{}'", a.name);
            if let Some(fresh) = reseal(AGENT_KEY_FIELD, &sealed, &what)? {
                a.responder = with_key(&a.responder, &fresh, &a.name)?;
                changed = true;
                done.secrets += 1;
            }
        }
        if let Some(sealed) = sealed_in(&a.speech) {
            let what = format!("speech key of agent '{}'", a.name);
            if let Some(fresh) = reseal(SPEECH_KEY_FIELD, &sealed, &what)? {
                a.speech = with_key(&a.speech, &fresh, &a.name)?;
                changed = true;
                done.secrets += 1;
            }
        }
        if changed {
            changed_agents.push(a);
        }
    }
    done.connections = changed_connections.len();
    done.agents = changed_agents.len();
    let note = AuditNote::new(
        actor,
        "rotate key",
        format!(
            "secrets re-sealed from key {} to key {}",
            old.id(),
            new.id()
        ),
    );
    store
        .reseal(
            &changed_connections,
            &changed_agents,
            (KEY_ID_SETTING, new.id()),
            &note,
        )
        .await?;
    Ok(done)
}
