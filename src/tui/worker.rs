//! Store work off the UI task: the console sends commands and gets messages back,
//! so a slow or lost database never freezes a keystroke.

use crate::channels::{Channels, Draft, ServiceError};
use crate::model::validation::Report;
use crate::model::{Agent, AgentChannel, Connection, DesiredState, LogLine};
use crate::store::{ChangeMarker, StoreError};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Command {
    /// The console's first load: a screenful first, so something useful shows at
    /// once on a tenant with thousands of connections, then everything.
    FirstLoad {
        page: u32,
    },
    /// Load the whole list.
    Reload,
    /// Check whether anything changed since `last`; reload if so.
    Poll {
        last: Option<ChangeMarker>,
    },
    Save {
        draft: Draft,
        existing: Option<Box<Connection>>,
    },
    Delete(Box<Connection>),
    /// Save a new connection replacing a deprecated one, moving its agents over.
    Migrate {
        old: Box<Connection>,
        draft: Draft,
    },
    SetDesired {
        connection: Box<Connection>,
        desired: DesiredState,
    },
    LoadLogs {
        id: i64,
        limit: u32,
    },
    /// One connection changed (another process said so): read just it.
    ReloadOne {
        id: i64,
    },
    /// New stored log lines of a connection, after the one with id `after`.
    MoreLogs {
        id: i64,
        after: i64,
    },
    /// Why the connection's messages get, or do not get, an answer.
    Diagnose {
        id: i64,
    },
    LoadAgents,
    /// The agents each voice connection runs with (they have no Start/Stop of their own).
    LoadRunsWith,
    DeleteAgent(Box<Agent>),
    LoadCard {
        agent_id: i64,
    },
    CreateAgent {
        name: String,
    },
    RunAgent {
        agent: Box<Agent>,
        run: bool,
    },
    /// Attach (or change Inbound of) connections on the agent's card.
    Attach {
        agent: Box<Agent>,
        items: Vec<(Connection, bool)>,
    },
    Detach {
        agent: Box<Agent>,
        connection: Box<Connection>,
    },
    /// A new responder for an agent; a new API key when one was typed.
    EditResponder {
        agent: Box<Agent>,
        responder: Box<crate::agents::ResponderConfig>,
        api_key: Option<crate::secrets::SecretString>,
    },
    /// New speech engine settings for an agent (a new key when one was typed).
    EditSpeech {
        agent: Box<Agent>,
        speech: crate::agents::speech::SpeechEdit,
    },
    /// The agent's Web Widget: its connection and recent log.
    LoadWidget {
        agent_id: i64,
    },
    /// New Web Widget settings for an agent.
    EditWidget {
        agent: Box<Agent>,
        widget: serde_json::Value,
    },
    /// Simple mode: create the connection from the inline form, then attach it.
    SimpleAttach {
        agent: Box<Agent>,
        draft: Draft,
        inbound: bool,
    },
    /// Sign in with Meta for a connection of this type (runs beside the other commands:
    /// it waits for the operator for minutes).
    MetaSignIn {
        app: Box<crate::connectors::meta::signin::App>,
        type_key: String,
        stop: tokio_util::sync::CancellationToken,
    },
}

#[derive(Debug)]
pub enum Msg {
    Loaded {
        connections: Vec<Connection>,
        marker: Option<ChangeMarker>,
        /// False for the first page of a FirstLoad: more is coming.
        complete: bool,
    },
    Unchanged,
    Saved {
        connection: Box<Connection>,
        warnings: Vec<String>,
        created: bool,
    },
    SaveRejected(Report),
    Deleted {
        name: String,
    },
    DesiredSet {
        name: String,
        desired: DesiredState,
    },
    /// An action failed for a reason the operator must read (conflict, permission, key).
    Failed(String),
    DbDown(String),
    Logs {
        id: i64,
        lines: Vec<LogLine>,
        /// The newest stored line's id when they were read: following goes on from it.
        last_id: i64,
    },
    One {
        id: i64,
        connection: Option<Box<Connection>>,
    },
    MoreLogs {
        id: i64,
        lines: Vec<(i64, LogLine)>,
    },
    Diagnosis {
        id: i64,
        text: String,
    },
    Agents(Vec<Agent>),
    /// Connection id → the names of the agents it runs with (voice types only).
    RunsWith(std::collections::HashMap<i64, Vec<String>>),
    Card {
        agent_id: i64,
        rows: Vec<(Connection, AgentChannel)>,
    },
    /// An agent action went through: what to tell the operator.
    AgentDone {
        text: String,
        warnings: Vec<String>,
        select: Option<i64>,
    },
    /// An agent action was refused; the open dialog stays for a correction.
    AgentRejected(String),
    Widget(Box<super::agents::WidgetView>),
    SignIn(super::signin::Update),
}

/// Runs commands one at a time until the console hangs up.
pub async fn run(
    channels: Arc<Channels>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    out: mpsc::UnboundedSender<Msg>,
) {
    while let Some(cmd) = commands.recv().await {
        // The first page goes out on its own, before the full list is read.
        let cmd = match cmd {
            Command::FirstLoad { page } => {
                for msg in first_page(&channels, page).await {
                    if out.send(msg).is_err() {
                        return;
                    }
                }
                Command::Reload
            }
            Command::MetaSignIn {
                app,
                type_key,
                stop,
            } => {
                tokio::spawn(super::signin::run(*app, type_key, stop, out.clone()));
                continue;
            }
            other => other,
        };
        for msg in execute(&channels, cmd).await {
            if out.send(msg).is_err() {
                return;
            }
        }
    }
}

/// One command's effect, as messages. Public so tests can drive the console step by step.
pub async fn execute(ch: &Channels, cmd: Command) -> Vec<Msg> {
    match cmd {
        Command::FirstLoad { page } => {
            let mut out = first_page(ch, page).await;
            out.push(reload(ch).await);
            out
        }
        Command::Reload => vec![reload(ch).await],
        Command::Poll { last } => match ch.store().change_marker(ch.tenant().id).await {
            Ok(m) if Some(m) == last => vec![Msg::Unchanged],
            Ok(_) => vec![reload(ch).await],
            Err(e) => vec![store_failure(e)],
        },
        Command::Save { draft, existing } => {
            let created = existing.is_none();
            let result = match existing {
                Some(c) => ch.edit(&c, &draft).await,
                None => ch.add(&draft).await,
            };
            match result {
                Ok(saved) => vec![
                    Msg::Saved {
                        connection: Box::new(saved.connection),
                        warnings: saved.warnings,
                        created,
                    },
                    reload(ch).await,
                ],
                Err(ServiceError::Invalid(report)) => vec![Msg::SaveRejected(report)],
                Err(e) => vec![service_failure(e)],
            }
        }
        Command::Migrate { old, draft } => match ch.migrate(&old, &draft).await {
            Ok(done) => {
                let mut warnings = done.saved.warnings;
                warnings.push(if done.agents.is_empty() {
                    format!("'{}' was attached to no agent; it is stopped", old.name)
                } else {
                    format!(
                        "agent(s) {} moved from '{}' (restart them to apply); '{}' is stopped — delete it once this one works",
                        done.agents.join(", "),
                        old.name,
                        old.name
                    )
                });
                vec![
                    Msg::Saved {
                        connection: Box::new(done.saved.connection),
                        warnings,
                        created: true,
                    },
                    reload(ch).await,
                ]
            }
            Err(ServiceError::Invalid(report)) => vec![Msg::SaveRejected(report)],
            Err(e) => vec![service_failure(e)],
        },
        Command::Delete(c) => match ch.delete(&c).await {
            Ok(()) => vec![
                Msg::Deleted {
                    name: c.name.clone(),
                },
                reload(ch).await,
            ],
            Err(e) => vec![service_failure(e)],
        },
        Command::SetDesired {
            connection,
            desired,
        } => match ch.set_desired(&connection, desired).await {
            Ok(()) => vec![
                Msg::DesiredSet {
                    name: connection.name.clone(),
                    desired,
                },
                reload(ch).await,
            ],
            Err(e) => vec![service_failure(e)],
        },
        Command::LoadAgents => vec![agents_msg(ch).await],
        Command::LoadRunsWith => vec![runs_with_msg(ch).await],
        Command::DeleteAgent(a) => match ch.delete_agent(&a).await {
            Ok(()) => vec![
                Msg::AgentDone {
                    text: format!("Deleted agent '{}'.", a.name),
                    warnings: Vec::new(),
                    select: None,
                },
                agents_msg(ch).await,
            ],
            Err(e) => vec![Msg::AgentRejected(e.to_string())],
        },
        Command::LoadCard { agent_id } => vec![card_msg(ch, agent_id).await],
        Command::LoadWidget { agent_id } => vec![widget_msg(ch, agent_id).await],
        Command::EditWidget { agent, widget } => {
            let edit = crate::agents::service::AgentEdit {
                widget: Some(widget),
                ..Default::default()
            };
            match ch.edit_agent(&agent, edit).await {
                Ok(a) => {
                    let on = crate::widget::Settings::of(&a).enabled();
                    let text = format!(
                        "Saved the Web Widget of agent '{}'.{}",
                        a.name,
                        match (on, a.restart_pending()) {
                            (false, _) => " It is off: no site may embed it.",
                            (true, true) => " It goes live after Stop agent, then Start agent.",
                            (true, false) => "",
                        }
                    );
                    let mut out = agent_done(ch, a.id, text, Vec::new()).await;
                    out.push(widget_msg(ch, a.id).await);
                    out
                }
                Err(e) => vec![Msg::AgentRejected(e.to_string())],
            }
        }
        Command::CreateAgent { name } => match ch.create_agent(&name, Default::default()).await {
            Ok(a) => {
                agent_done(
                    ch,
                    a.id,
                    format!("Created agent '{}'. a adds a channel to it.", a.name),
                    Vec::new(),
                )
                .await
            }
            Err(e) => vec![Msg::AgentRejected(e.to_string())],
        },
        Command::EditResponder {
            agent,
            responder,
            api_key,
        } => {
            let edit = crate::agents::service::AgentEdit {
                responder: Some(*responder),
                api_key,
                ..Default::default()
            };
            match ch.edit_agent(&agent, edit).await {
                Ok(a) => {
                    let text = format!(
                        "Saved the responder of agent '{}'.{}",
                        a.name,
                        if a.restart_pending() {
                            " It applies after Stop agent, then Start agent."
                        } else {
                            ""
                        }
                    );
                    agent_done(ch, a.id, text, Vec::new()).await
                }
                Err(e) => vec![Msg::AgentRejected(e.to_string())],
            }
        }
        Command::EditSpeech { agent, speech } => {
            let edit = crate::agents::service::AgentEdit {
                speech: Some(speech),
                ..Default::default()
            };
            match ch.edit_agent(&agent, edit).await {
                Ok(a) => {
                    let text = format!(
                        "Saved the speech engines of agent '{}'.{}",
                        a.name,
                        if a.restart_pending() {
                            " They apply after Stop agent, then Start agent."
                        } else {
                            ""
                        }
                    );
                    agent_done(ch, a.id, text, Vec::new()).await
                }
                Err(e) => vec![Msg::AgentRejected(e.to_string())],
            }
        }
        Command::RunAgent { agent, run } => match ch.run_agent(&agent, run).await {
            Ok(a) => {
                let verb = if run { "Started" } else { "Stopped" };
                let mut out =
                    agent_done(ch, a.id, format!("{verb} agent '{}'.", a.name), Vec::new()).await;
                out.push(reload(ch).await);
                out
            }
            Err(e) => vec![Msg::AgentRejected(e.to_string())],
        },
        Command::Attach { agent, items } => {
            let mut warnings = Vec::new();
            let mut names = Vec::new();
            for (c, inbound) in &items {
                match ch.attach_connection(&agent, c, *inbound).await {
                    Ok(w) => {
                        warnings.extend(w);
                        names.push(format!(
                            "'{}' (Inbound {})",
                            c.name,
                            if *inbound { "on" } else { "off" }
                        ));
                    }
                    Err(e) => {
                        return vec![
                            Msg::AgentRejected(e.to_string()),
                            card_msg(ch, agent.id).await,
                        ];
                    }
                }
            }
            let text = format!(
                "Saved {} on agent '{}'. Restart the agent (s twice) for it to apply.",
                names.join(", "),
                agent.name
            );
            agent_done(ch, agent.id, text, warnings).await
        }
        Command::Detach { agent, connection } => {
            match ch.detach_connection(&agent, &connection).await {
                Ok(()) => {
                    let text = format!(
                        "Detached '{}' from agent '{}'; it applies when the agent restarts.",
                        connection.name, agent.name
                    );
                    agent_done(ch, agent.id, text, Vec::new()).await
                }
                Err(e) => vec![Msg::AgentRejected(e.to_string())],
            }
        }
        // Started by `run` beside the queue.
        Command::MetaSignIn { .. } => Vec::new(),
        Command::SimpleAttach {
            agent,
            draft,
            inbound,
        } => {
            let saved = match ch.add(&draft).await {
                Ok(s) => s,
                Err(ServiceError::Invalid(report)) => {
                    let first = report
                        .errors
                        .first()
                        .map(|e| e.message.clone())
                        .unwrap_or_default();
                    return vec![Msg::AgentRejected(format!("Not saved: {first}"))];
                }
                Err(e) => return vec![Msg::AgentRejected(e.to_string())],
            };
            let c = saved.connection;
            let warnings = match ch.attach_connection(&agent, &c, inbound).await {
                Ok(w) => w,
                Err(e) => return vec![Msg::AgentRejected(e.to_string())],
            };
            let text = format!(
                "Created '{}' and attached it to agent '{}'; it is managed in Settings › Channels. Start it there, and restart the agent.",
                c.name, agent.name
            );
            let mut out = agent_done(ch, agent.id, text, warnings).await;
            out.push(reload(ch).await);
            out
        }
        Command::Diagnose { id } => match ch.reply_diagnosis(id).await {
            Ok(text) => vec![Msg::Diagnosis { id, text }],
            Err(e) => vec![service_failure(e)],
        },
        Command::LoadLogs { id, limit } => {
            // The id first: a line stored between the two reads comes again, and the
            // console drops what it already shows.
            let last_id = match ch.store().last_log_id(id).await {
                Ok(n) => n,
                Err(e) => return vec![store_failure(e)],
            };
            match ch.store().recent_logs(id, limit).await {
                Ok(lines) => vec![Msg::Logs { id, lines, last_id }],
                Err(e) => vec![store_failure(e)],
            }
        }
        Command::ReloadOne { id } => match ch.store().connection(id).await {
            Ok(c) => vec![Msg::One {
                id,
                connection: c
                    .filter(|c| c.tenant_id == ch.tenant().id && listed(c))
                    .map(Box::new),
            }],
            Err(e) => vec![store_failure(e)],
        },
        Command::MoreLogs { id, after } => match ch.store().logs_after(id, after, 2000).await {
            Ok(lines) => vec![Msg::MoreLogs { id, lines }],
            Err(e) => vec![store_failure(e)],
        },
    }
}

async fn agents_msg(ch: &Channels) -> Msg {
    match ch.agents().await {
        Ok(list) => Msg::Agents(list),
        Err(e) => service_failure(e),
    }
}

/// Which agents run each connection that has no Start/Stop of its own. Agents are few
/// (one query each); connections of other types are skipped.
async fn runs_with_msg(ch: &Channels) -> Msg {
    let agents = match ch.agents().await {
        Ok(list) => list,
        Err(e) => return service_failure(e),
    };
    let mut runs_with = std::collections::HashMap::<i64, Vec<String>>::new();
    for a in agents {
        let rows = match ch.agent_connections(&a).await {
            Ok(rows) => rows,
            Err(e) => return service_failure(e),
        };
        for (c, link) in rows {
            let own = crate::catalog::Catalog::get()
                .find(&c.type_key)
                .is_none_or(|t| t.has_start_stop());
            if !own && !link.detached {
                runs_with.entry(c.id).or_default().push(a.name.clone());
            }
        }
    }
    Msg::RunsWith(runs_with)
}

async fn card_msg(ch: &Channels, agent_id: i64) -> Msg {
    let agent = match ch.store().agent(agent_id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Msg::Card {
                agent_id,
                rows: Vec::new(),
            };
        }
        Err(e) => return store_failure(e),
    };
    match ch.agent_connections(&agent).await {
        Ok(mut rows) => {
            // The widget's connection has a section of its own on the panel.
            rows.retain(|(c, _)| c.type_key != crate::widget::TYPE_KEY);
            Msg::Card { agent_id, rows }
        }
        Err(e) => service_failure(e),
    }
}

async fn widget_msg(ch: &Channels, agent_id: i64) -> Msg {
    let agent = match ch.store().agent(agent_id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Msg::Widget(Box::new(super::agents::WidgetView {
                agent_id,
                connection: None,
                log: Vec::new(),
            }));
        }
        Err(e) => return store_failure(e),
    };
    let connection = match crate::widget::connection_of(ch, &agent).await {
        Ok(c) => c,
        Err(e) => return service_failure(e),
    };
    let log = match &connection {
        Some(c) => match ch
            .store()
            .recent_logs(c.id, super::agents::WIDGET_LOG_LINES as u32)
            .await
        {
            Ok(lines) => lines,
            Err(e) => return store_failure(e),
        },
        None => Vec::new(),
    };
    Msg::Widget(Box::new(super::agents::WidgetView {
        agent_id,
        connection,
        log,
    }))
}

/// Settings › Channels shows the listed types only (not an agent's widget connection).
fn listed(c: &Connection) -> bool {
    crate::catalog::Catalog::get()
        .find(&c.type_key)
        .is_none_or(|t| t.listed)
}

async fn agent_done(ch: &Channels, agent_id: i64, text: String, warnings: Vec<String>) -> Vec<Msg> {
    vec![
        Msg::AgentDone {
            text,
            warnings,
            select: Some(agent_id),
        },
        agents_msg(ch).await,
        card_msg(ch, agent_id).await,
    ]
}

/// A screenful, when there is more than a screenful; nothing otherwise (the full
/// list follows at once).
async fn first_page(ch: &Channels, page: u32) -> Vec<Msg> {
    match ch.store().first_connections(ch.tenant().id, page).await {
        Ok(first) if first.len() == page as usize => vec![Msg::Loaded {
            connections: first.into_iter().filter(listed).collect(),
            marker: None,
            complete: false,
        }],
        Ok(_) => Vec::new(),
        Err(e) => vec![store_failure(e)],
    }
}

async fn reload(ch: &Channels) -> Msg {
    // The marker is read first: a change landing between the two reads is seen again
    // at the next poll instead of being missed.
    let marker = match ch.store().change_marker(ch.tenant().id).await {
        Ok(m) => Some(m),
        Err(e) => return store_failure(e),
    };
    match ch.list().await {
        Ok(connections) => Msg::Loaded {
            connections,
            marker,
            complete: true,
        },
        Err(e) => service_failure(e),
    }
}

fn store_failure(e: StoreError) -> Msg {
    if e.is_unavailable() {
        Msg::DbDown(e.to_string())
    } else {
        Msg::Failed(e.to_string())
    }
}

fn service_failure(e: ServiceError) -> Msg {
    match e {
        ServiceError::Store(s) => store_failure(s),
        other => Msg::Failed(other.to_string()),
    }
}
