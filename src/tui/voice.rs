//! Connections that run with their agent (SIP, Twilio Voice): no Start/Stop of their
//! own (the spec), so the console names the agent instead, and shows the calls the
//! runtime reports in their status message.

use super::app::App;
use crate::catalog::Catalog;
use crate::model::Connection;

/// Whether `c` starts and stops on its own (else: with its agents).
pub fn own_lifecycle(c: &Connection) -> bool {
    Catalog::get()
        .find(&c.type_key)
        .is_none_or(|t| t.has_start_stop())
}

/// What `agents_phrase` says of a connection no agent runs.
pub const NO_AGENT: &str = "no agent yet";

/// "agent Support", "agents Support, Sales", or "no agent yet".
pub fn agents_phrase(names: &[String]) -> String {
    match names {
        [] => NO_AGENT.into(),
        [one] => format!("agent {}", super::view::shown(one)),
        many => format!(
            "agents {}",
            many.iter()
                .map(|n| super::view::shown(n).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// "1 call" / "2 calls" for a row, or None when no call is in progress.
pub fn calls_short(c: &Connection) -> Option<String> {
    match crate::connectors::calls_in(&c.status_message) {
        0 => None,
        1 => Some("1 call".into()),
        n => Some(format!("{n} calls")),
    }
}

impl App {
    /// What the Logs pane is titled for `c`: its name, and for a voice line the agent
    /// it runs under (its log is read-only, as every log here, and has no button).
    pub fn logs_title(&self, c: &Connection) -> String {
        match self.runs_with_words(c) {
            Some(agents) => format!("{} · {agents}", c.name),
            None => c.name.clone(),
        }
    }

    /// The agents `c` runs with, as words, for a connection without Start/Stop of its own.
    pub fn runs_with_words(&self, c: &Connection) -> Option<String> {
        if own_lifecycle(c) {
            return None;
        }
        let names = self.runs_with.get(&c.id).map(Vec::as_slice).unwrap_or(&[]);
        Some(agents_phrase(names))
    }
}
