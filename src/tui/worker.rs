//! Store work off the UI task: the console sends commands and gets messages back,
//! so a slow or lost database never freezes a keystroke.

use crate::channels::{Channels, Draft, ServiceError};
use crate::model::validation::Report;
use crate::model::{Connection, DesiredState, LogLine};
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
    SetDesired {
        connection: Box<Connection>,
        desired: DesiredState,
    },
    LoadLogs {
        id: i64,
        limit: u32,
    },
    /// Why the connection's messages get, or do not get, an answer.
    Diagnose {
        id: i64,
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
    },
    Diagnosis {
        id: i64,
        text: String,
    },
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
        Command::Diagnose { id } => match ch.reply_diagnosis(id).await {
            Ok(text) => vec![Msg::Diagnosis { id, text }],
            Err(e) => vec![service_failure(e)],
        },
        Command::LoadLogs { id, limit } => match ch.store().recent_logs(id, limit).await {
            Ok(lines) => vec![Msg::Logs { id, lines }],
            Err(e) => vec![store_failure(e)],
        },
    }
}

/// A screenful, when there is more than a screenful; nothing otherwise (the full
/// list follows at once).
async fn first_page(ch: &Channels, page: u32) -> Vec<Msg> {
    match ch.store().first_connections(ch.tenant().id, page).await {
        Ok(first) if first.len() == page as usize => vec![Msg::Loaded {
            connections: first,
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
