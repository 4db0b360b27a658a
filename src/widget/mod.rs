//! The Web Widget: a chat window a website embeds with one `<script>` tag, configured
//! on the agent's page.
//!
//! Each agent with the widget on owns a connection of the catalog type `web_widget`,
//! created here and never listed in Settings › Channels. It is what makes the widget a
//! channel like the others: its hook id is the widget's stable public id, its ledger
//! dedupes and answers visitors' messages through the one inbound pipeline, its log is
//! the widget's log, and it starts and stops with its agent (`lifecycle = "with_agent"`).
//! The ingress (`http`) serves the script and the visitors' WebSocket.

pub mod connector;
pub mod demo;
pub mod http;
pub mod hub;
pub mod limits;
pub mod protocol;
mod session;
pub mod settings;

pub use limits::Limits;
pub use settings::Settings;

use crate::channels::{Channels, ServiceError};
use crate::model::{Agent, Attachment, Connection, NewConnection};
use crate::store::AuditNote;

pub const TYPE_KEY: &str = "web_widget";

/// Where a site loads the script from.
pub fn script_url(public_base: &str, public_id: &str) -> String {
    format!(
        "{}/widget/{public_id}.js",
        public_base.trim_end_matches('/')
    )
}

/// The WebSocket the script talks to.
pub fn chat_url(public_base: &str, public_id: &str) -> String {
    let base = public_base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/widget/{public_id}/chat")
}

/// The line an operator pastes into their site's pages.
pub fn snippet(public_base: &str, public_id: &str) -> String {
    format!(
        "<script src=\"{}\" async></script>",
        script_url(public_base, public_id)
    )
}

/// The name of an agent's widget connection (shown in its log and the audit trail).
fn connection_name(agent: &Agent) -> String {
    let prefix = "Web Widget · ";
    let room = crate::model::validation::NAME_MAX - prefix.chars().count();
    format!(
        "{prefix}{}",
        agent.name.chars().take(room).collect::<String>()
    )
}

/// The agent's widget connection, if it has one.
pub async fn connection_of(
    channels: &Channels,
    agent: &Agent,
) -> Result<Option<Connection>, ServiceError> {
    Ok(channels
        .agent_connections(agent)
        .await?
        .into_iter()
        .map(|(c, _)| c)
        .find(|c| c.type_key == TYPE_KEY))
}

/// Gives an agent whose widget is on its widget connection (attached with Inbound on,
/// so the running agent answers it), and keeps its name in step with the agent's.
/// A widget turned off keeps its connection: its public id stays the same if it is
/// turned on again, and the ingress serves nothing while it is off.
pub async fn sync(channels: &Channels, agent: &Agent) -> Result<Option<Connection>, ServiceError> {
    let existing = connection_of(channels, agent).await?;
    let name = connection_name(agent);
    let store = channels.store();
    match existing {
        Some(c) if c.name == name => Ok(Some(c)),
        Some(mut c) => {
            c.name = name;
            let note = AuditNote::new(
                &channels.operator().name,
                "update",
                "renamed with its agent",
            );
            Ok(Some(store.update_connection(&c, &note).await?))
        }
        None if !Settings::of(agent).enabled() => Ok(None),
        None => {
            let note = AuditNote::new(
                &channels.operator().name,
                "create",
                format!("Web Widget of agent '{}'", agent.name),
            );
            let new = NewConnection {
                tenant_id: agent.tenant_id,
                type_key: TYPE_KEY.into(),
                name,
                description: format!(
                    "The Web Widget of agent '{}': configured on the agent's page",
                    agent.name
                ),
                fields: Default::default(),
                secrets: Default::default(),
                env: Vec::new(),
            };
            let c = store.insert_connection(&new, &note).await?;
            let att = Attachment {
                agent_id: agent.id,
                connection_id: c.id,
                inbound: true,
            };
            store.attach(&att, true, &note).await?;
            channels
                .log(
                    c.id,
                    "INFO",
                    format!(
                        "Web Widget turned on for agent '{}' by {}",
                        agent.name,
                        channels.operator().name
                    ),
                )
                .await;
            Ok(Some(c))
        }
    }
}

/// Deletes the agent's widget connection (with its ledger and log), when the agent goes.
pub async fn remove(channels: &Channels, agent: &Agent) -> Result<(), ServiceError> {
    if let Some(c) = connection_of(channels, agent).await? {
        let note = AuditNote::new(
            &channels.operator().name,
            "delete",
            format!("with agent '{}'", agent.name),
        );
        channels
            .store()
            .delete_connection(c.id, c.version, &note)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_public_base() {
        assert_eq!(
            chat_url("https://chat.example.com/", "abc"),
            "wss://chat.example.com/widget/abc/chat"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:8787", "abc"),
            "ws://127.0.0.1:8787/widget/abc/chat"
        );
        assert_eq!(
            snippet("https://chat.example.com", "abc"),
            "<script src=\"https://chat.example.com/widget/abc.js\" async></script>"
        );
    }
}
