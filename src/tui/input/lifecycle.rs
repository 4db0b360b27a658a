//! What the list and the panel do to a connection: Start/Stop, restart, copy its
//! webhook URL, show its status whole, delete, save, migrate.

use super::*;
use crate::model::{Millis, Status};

/// How long a restart waits for STOPPED before it gives up (a task that does not stop
/// is aborted after 10 s, so this is generous).
pub const RESTART_WAIT_MS: Millis = 30_000;

impl App {
    /// The second half of a restart: Start once the connection has STOPPED. Gives up,
    /// saying so, if it has not stopped within `RESTART_WAIT_MS`.
    pub fn continue_restart(&mut self) -> Option<Command> {
        let (id, since) = self.restarting?;
        let Some(c) = self.list.get(id).cloned() else {
            self.restarting = None;
            return None;
        };
        let stopped = matches!(c.status, Status::Stopped | Status::Error)
            && c.desired == DesiredState::Stopped;
        if stopped {
            self.restarting = None;
            self.set_busy("Starting");
            return Some(Command::SetDesired {
                connection: Box::new(c),
                desired: DesiredState::Running,
            });
        }
        if self.now - since >= RESTART_WAIT_MS {
            self.restarting = None;
            self.flash_about(
                format!(
                    "Restart of '{}': it has not STOPPED after {} s, so it was not started again; press s once it has stopped",
                    c.name,
                    RESTART_WAIT_MS / 1000
                ),
                FlashKind::Warn,
                &c,
            );
        }
        None
    }

    /// `s`: Stop when the connection runs or is wanted running (in any state, as the CLI
    /// allows), Start otherwise. It only records the desired state; the runtime acts.
    pub fn start_stop(&mut self) -> Vec<Command> {
        let Some(c) = self.with_own_lifecycle("have no Start/Stop") else {
            return Vec::new();
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot start or stop channels",
                FlashKind::Warn,
            );
            return Vec::new();
        }
        let desired = crate::tui::app::start_stop_target(&c);
        if desired == DesiredState::Stopped
            && c.status == crate::model::Status::Running
            && self.confirm_stop
        {
            self.overlay = Some(Overlay::Confirm(Confirm {
                title: "Stop the channel?",
                question: format!(
                    "Stop '{}'? Customers writing to it get no replies until it is started again.",
                    c.name
                ),
                yes: "Stop",
                action: ConfirmAction::Stop(Box::new(c)),
            }));
            return Vec::new();
        }
        self.request_desired(c, desired)
    }

    pub(super) fn request_desired(&mut self, c: Connection, desired: DesiredState) -> Vec<Command> {
        self.set_busy(if desired == DesiredState::Running {
            "Starting"
        } else {
            "Stopping"
        });
        vec![Command::SetDesired {
            connection: Box::new(c),
            desired,
        }]
    }

    /// `r`: Stop, then Start once STOPPED — the spec's restart, in one key. Offered for a
    /// connection that runs or is wanted running; it asks first (`ui.confirm_stop`).
    pub fn restart(&mut self) -> Vec<Command> {
        let Some(c) = self.with_own_lifecycle("have no restart of their own") else {
            return Vec::new();
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot restart channels",
                FlashKind::Warn,
            );
            return Vec::new();
        }
        if crate::tui::app::start_stop_target(&c) == DesiredState::Running {
            self.flash(
                format!("'{}' is not running: s starts it", c.name),
                FlashKind::Info,
            );
            return Vec::new();
        }
        if self.confirm_stop {
            self.overlay = Some(Overlay::Confirm(Confirm {
                title: "Restart the channel?",
                question: format!(
                    "Restart '{}'? It stops, then starts again once STOPPED; customers writing to it meanwhile get no replies until it runs again.",
                    c.name
                ),
                yes: "Restart",
                action: ConfirmAction::Restart(Box::new(c)),
            }));
            return Vec::new();
        }
        self.begin_restart(c)
    }

    pub(super) fn begin_restart(&mut self, c: Connection) -> Vec<Command> {
        self.restarting = Some((c.id, self.now));
        self.request_desired(c, DesiredState::Stopped)
    }

    /// `c`: the connection's webhook URL to the terminal's clipboard (OSC 52), whole,
    /// however narrowly the panel shows it.
    pub fn copy_webhook_url(&mut self) {
        let Some(c) = self.current().cloned() else {
            self.flash("Select a connection first", FlashKind::Info);
            return;
        };
        let Some(url) = self.webhook_url_of(&c) else {
            let hint = crate::connectors::webhook_switch(&c.type_key)
                .map(|v| format!(" (set {v}=webhook to use one)"))
                .unwrap_or_default();
            self.flash(
                format!(
                    "'{}' has no webhook URL: it does not receive webhooks{hint}",
                    c.name
                ),
                FlashKind::Info,
            );
            return;
        };
        self.clipboard = Some(url);
        self.flash(
            format!(
                "Copied the webhook URL of '{}' to the clipboard (OSC 52)",
                c.name
            ),
            FlashKind::Info,
        );
    }

    /// The connection the panel is about, if it has a lifecycle of its own; otherwise
    /// says why not ("Twilio connections {why}") and gives `None`.
    pub(super) fn with_own_lifecycle(&mut self, why: &str) -> Option<Connection> {
        let Some(c) = self.current().cloned() else {
            self.flash("Select a connection first", FlashKind::Info);
            return None;
        };
        if let Some(ty) = Catalog::get()
            .find(&c.type_key)
            .filter(|t| !t.has_start_stop())
        {
            let agents = self.runs_with_words(&c).unwrap_or_default();
            let how = if agents == crate::tui::voice::NO_AGENT {
                format!(
                    "'{}' runs with an agent: attach it to one (A: AI Agents)",
                    c.name
                )
            } else {
                format!(
                    "'{}' runs with {agents}: start or stop the agent (A)",
                    c.name
                )
            };
            self.flash(
                format!("{} connections {why}: {how}", ty.name),
                FlashKind::Info,
            );
            return None;
        }
        Some(c)
    }

    /// `i`: the connection's status and its whole message, however long, in a popup.
    pub(super) fn show_status_whole(&mut self) {
        let Some(c) = self.current() else {
            self.flash("Select a connection first", FlashKind::Info);
            return;
        };
        let message = crate::tui::view::list_status_message(self, c);
        let body = format!(
            "{} {} since {} UTC\n\n{}",
            crate::tui::theme::Theme::status_symbol(c.status),
            crate::tui::view::list_status_word(c.status, c.desired),
            crate::model::format_millis(c.status_since),
            if message.is_empty() {
                "No status message."
            } else {
                &message
            }
        );
        self.overlay = Some(Overlay::Text {
            title: format!("Status · {}", c.name),
            body,
            scroll: 0,
        });
    }

    pub(super) fn ask_delete(&mut self) {
        let Some(c) = self.current().cloned() else {
            return;
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot delete connections",
                FlashKind::Warn,
            );
            return;
        }
        self.overlay = Some(Overlay::Confirm(Confirm {
            title: "Delete the integration?",
            question: format!(
                "Delete the integration '{}'? Its settings and logs are removed; this cannot be undone.",
                c.name
            ),
            yes: "Delete",
            action: ConfirmAction::Delete(Box::new(c)),
        }));
    }

    pub fn save(&mut self) -> Vec<Command> {
        let Some(form) = &self.details.form else {
            return Vec::new();
        };
        if !self.can_edit() {
            self.flash("Read-only: viewers cannot change settings", FlashKind::Warn);
            return Vec::new();
        }
        if self.busy.is_some() {
            self.flash("Still saving the previous change…", FlashKind::Info);
            return Vec::new();
        }
        if form.migrate_from.is_none() && !form.has_changes() {
            // No version that changes nothing: a running channel would show "Restart
            // pending" for it, and the log would record a save.
            if let Some(f) = &mut self.details.form {
                f.dirty = false;
            }
            self.flash("Nothing changed: nothing to save", FlashKind::Info);
            return Vec::new();
        }
        let draft = form.to_draft();
        let existing = form.base.clone().map(Box::new);
        let migrate_from = form.migrate_from.clone();
        self.set_busy("Saving");
        if let Some(old) = migrate_from {
            return vec![Command::Migrate { old, draft }];
        }
        vec![Command::Save { draft, existing }]
    }

    /// `M` on a deprecated connection: the new type's form, prefilled; saving it migrates.
    pub(super) fn start_migrate(&mut self) {
        let Some(old) = self.current().cloned() else {
            return;
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot migrate connections",
                FlashKind::Warn,
            );
            return;
        }
        let draft = match crate::migrate::draft_for(&old) {
            Ok(d) => d,
            Err(why) => return self.flash(why, FlashKind::Info),
        };
        let Ok(ty) = crate::channels::channel_type(&draft.type_key) else {
            return;
        };
        let mut form = Form::new_connector(ty, self.meta_configured, false);
        // Carried credentials belong to the form, not to a sign-in.
        form.advanced = true;
        form.name.select_all();
        form.name.cut();
        form.name.insert_str(&draft.name);
        form.description.insert_str(&draft.description);
        for (k, v) in &draft.fields {
            form.set_field(k, v);
        }
        for e in &draft.env {
            form.add_env(&e.name, &e.value);
        }
        form.dirty = true;
        form.migrate_from = Some(Box::new(old.clone()));
        form.set_focus(Some(0));
        self.details.form = Some(form);
        self.focus = Focus::Fields;
        self.flash(
            format!(
                "Migrating '{}' to {}: fill in the new credentials, then Save (^S) — the agents \
                 move over and '{}' stops; Esc cancels and changes nothing",
                old.name, ty.name, old.name
            ),
            FlashKind::Info,
        );
    }
}
