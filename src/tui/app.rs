//! Console state and what changes it: messages from the store worker, ticks, and the
//! actions keys and clicks ask for (`input/` maps those). Rendering reads it.
//!
//! The screens' parts are components that own their state and keys: the channel list
//! (`list.rs`), the Details panel (`details.rs`, its form in `form.rs`), the Logs pane
//! (`logs/`), the popups (`overlay.rs`), the agents screen (`agents.rs`), and how current
//! the copy of the database is (`freshness.rs`). `App` holds them, routes each key to the
//! one with focus (the list and the panel header through the key table, `keys.rs`), and
//! carries out what they ask of each other.

use super::list::ChannelList;
use super::theme::Theme;
use super::worker::{Command, Msg};
use crate::catalog::{Catalog, ChannelType};
use crate::model::{Connection, DesiredState, LogLine, Millis, Status, now_millis};
use crate::permission::Role;
use ratatui::layout::Rect;

/// The part of the presence a frame shows: summary, other processes, owner-gone of the
/// selected connection and of the one in the details.
type PresenceShown = (String, usize, Option<Millis>, Option<Millis>);

/// What the header shows: where the operator is and as whom.
#[derive(Debug, Clone)]
pub struct HeaderInfo {
    pub tenant: String,
    pub database: String,
    pub operator: String,
    pub role: Role,
}

/// Settings › Channels, or AI Agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Channels,
    Agents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Search,
    /// The Details panel header: Start/Stop, Logs, Delete act here.
    Panel,
    Fields,
    Logs,
}

pub use super::overlay::{After, Confirm, ConfirmAction, Overlay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Info,
    Warn,
    Error,
}

/// Clickable places, recorded while drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    ListRow(usize),
    List,
    Slot(usize),
    Form,
    StartStop,
    /// The Webhook URL line: a click copies it.
    CopyWebhook,
    Logs,
    LogsPane,
    Save,
    Delete,
    Add,
    PickerRow(usize),
    ConfirmYes,
    ConfirmNo,
    Overlay,
}

pub use super::flash::INFO_FLASH_MS;
pub use super::input::RESTART_WAIT_MS;

pub struct App {
    pub theme: Theme,
    pub header: HeaderInfo,
    pub list: ChannelList,
    pub focus: Focus,
    pub details: super::details::Details,
    pub overlay: Option<Overlay>,
    pub logs: super::logs::view::LogsView,
    pub fresh: super::freshness::Freshness,
    /// An operator action waiting for the store, and since when.
    pub busy: Option<(String, Millis)>,
    pub flash: Option<(String, FlashKind)>,
    /// What the flash is about, so it goes once that is no longer the situation.
    pub(crate) flash_ctx: Option<super::flash::FlashContext>,
    pub mouse: bool,
    /// Ask before Stop of a RUNNING connection and before a restart (`ui.confirm_stop`).
    pub confirm_stop: bool,
    /// A restart under way: the connection, and when its Stop was asked for.
    pub restarting: Option<(i64, Millis)>,
    pub meta_configured: bool,
    /// The server's Meta app, when sign-in with Meta is configured.
    pub meta_app: Option<crate::connectors::meta::signin::App>,
    pub quit: bool,
    /// Something changed since the last frame.
    pub dirty: bool,
    pub now: Millis,
    pub export_dir: std::path::PathBuf,
    pub hits: Vec<(Rect, Hit)>,
    pub screen: Screen,
    pub agents: super::agents::AgentsScreen,
    /// Connection id → the agents a voice connection runs with (`Command::LoadRunsWith`).
    pub runs_with: std::collections::HashMap<i64, Vec<String>>,
    /// Channels this process runs (its runtime keeps the count).
    pub running_here: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Where providers deliver webhooks (`http.public_url`): webhook URLs live under it.
    pub webhook_base: String,
    /// Where channels run and which processes work on this database.
    pub presence: Option<crate::runtime::Presence>,
    pub tenant_id: i64,
    /// Text for the terminal's clipboard: the event loop writes it as OSC 52 and clears it.
    pub clipboard: Option<String>,
}

impl App {
    pub fn new(
        header: HeaderInfo,
        theme: Theme,
        meta_configured: bool,
        logs_cap: (usize, usize),
    ) -> App {
        App {
            theme,
            header,
            list: ChannelList::default(),
            focus: Focus::List,
            details: Default::default(),
            overlay: None,
            logs: super::logs::view::LogsView::new(logs_cap.0, logs_cap.1),
            fresh: Default::default(),
            busy: None,
            flash: None,
            flash_ctx: None,
            mouse: true,
            confirm_stop: true,
            restarting: None,
            meta_configured,
            meta_app: None,
            quit: false,
            dirty: true,
            now: now_millis(),
            export_dir: std::env::temp_dir(),
            hits: Vec::new(),
            running_here: std::sync::Arc::default(),
            webhook_base: "http://127.0.0.1:8787".into(),
            presence: None,
            tenant_id: 0,
            clipboard: None,
            screen: Screen::Channels,
            agents: Default::default(),
            runs_with: Default::default(),
        }
    }

    pub fn can_edit(&self) -> bool {
        self.header.role == Role::Editor
    }

    /// The connection the panel is about: the form's, else the list's selection.
    pub fn current(&self) -> Option<&Connection> {
        match &self.details.form {
            Some(f) => f.base.as_ref().and_then(|b| self.list.get(b.id)),
            None => self.list.selected_connection(),
        }
    }

    /// The webhook URL of a saved connection whose provider delivers to it.
    pub fn webhook_url_of(&self, c: &Connection) -> Option<String> {
        crate::connectors::webhook_url_for(c, &self.webhook_base)
    }

    /// The webhook URL of the connection the panel is about, if it has one.
    pub fn current_webhook_url(&self) -> Option<String> {
        self.current().and_then(|c| self.webhook_url_of(c))
    }

    pub fn current_type(&self) -> Option<&'static ChannelType> {
        match &self.details.form {
            Some(f) => Some(f.ty),
            None => self
                .current()
                .and_then(|c| Catalog::get().find(&c.type_key)),
        }
    }

    pub fn form_dirty(&self) -> bool {
        self.details.dirty()
    }

    /// How forms open here: with sign-in with Meta or not, for a viewer or not.
    pub fn form_mode(&self) -> super::details::FormMode {
        super::details::FormMode {
            meta_configured: self.meta_configured,
            read_only: !self.can_edit(),
        }
    }

    /// Shows the selected connection in the panel (the portal opens Details on select).
    pub fn sync_form_to_selection(&mut self) {
        let mode = self.form_mode();
        self.details.show(self.list.selected_connection(), mode);
    }

    /// With the Logs pane open, moving through the list moves the logs with it.
    pub fn follow_logs_to_selection(&mut self) -> Option<Command> {
        let Some(c) = self.list.selected_connection() else {
            // Nothing in Details: the pane has nobody to belong to.
            self.logs.close();
            return None;
        };
        if Some(c.id) == self.logs.for_id {
            return None;
        }
        let (id, name) = (c.id, self.logs_title(c));
        Some(self.logs.open(id, &name))
    }

    pub fn on_msg(&mut self, msg: Msg) -> Vec<Command> {
        if matches!(msg, Msg::Loaded { .. }) {
            // Agents change without touching the connection: look again on every reload.
            self.details.rediagnose();
        }
        let mut out = self.handle_msg(msg);
        self.expire_flash();
        out.extend(self.follow_up());
        out.extend(self.continue_restart());
        out
    }

    /// Work that follows from the state: the reply diagnosis of the connection shown.
    pub fn follow_up(&mut self) -> Vec<Command> {
        let current = self.current().cloned();
        self.details
            .diagnose(current.as_ref())
            .into_iter()
            .collect()
    }

    fn handle_msg(&mut self, msg: Msg) -> Vec<Command> {
        let was_dirty = self.dirty;
        self.dirty = true;
        let mut out = Vec::new();
        match msg {
            Msg::Loaded {
                connections,
                marker,
                complete,
            } => {
                let first = !self.fresh.loaded;
                if self.fresh.on_loaded(marker, complete) {
                    self.flash(
                        "The database is back; the list is current again",
                        FlashKind::Info,
                    );
                }
                self.list.set(connections);
                self.refresh_form_after_reload();
                // Attaching changes no connection row (SQLite's change check cannot see
                // it), so the agents of voice lines are read again on each reload, as the
                // diagnosis is — only when there are voice lines to name them for.
                if self
                    .list
                    .all
                    .iter()
                    .any(|c| !super::voice::own_lifecycle(c))
                {
                    out.push(Command::LoadRunsWith);
                }
                if first || self.details.form.is_none() {
                    self.sync_form_to_selection();
                }
                if self.logs.for_id.is_some()
                    && self.focus == Focus::List
                    && let Some(cmd) = self.follow_logs_to_selection()
                {
                    out.push(cmd);
                }
            }
            Msg::Unchanged => {
                // Nothing new to draw — but a frame still owed for what came before
                // (a Logs pane's lines arriving just ahead of this answer) stays owed.
                let back = self.fresh.on_unchanged();
                self.dirty = was_dirty || back;
            }
            Msg::Saved {
                connection,
                mut warnings,
                created,
            } => {
                self.busy = None;
                warnings.extend(crate::cli::webhook_check::unreachable_webhook(
                    &connection,
                    &self.webhook_base,
                ));
                let ty = Catalog::get().find(&connection.type_key);
                self.list.selected = Some(connection.id);
                let mode = self.form_mode();
                self.details.show_saved(&connection, mode, warnings.clone());
                self.focus = Focus::Panel;
                let mut text = format!("Saved '{}'.", connection.name);
                if created && ty.is_some_and(|t| t.has_start_stop()) {
                    text.push_str(" Press s to Start it.");
                } else if matches!(connection.status, Status::Running | Status::Starting) {
                    text.push_str(
                        " It is running: Stop, then Start it for the changes to take effect.",
                    );
                }
                match warnings.first() {
                    Some(w) => self.flash_about(
                        format!("{text} Warning: {w}"),
                        FlashKind::Warn,
                        &connection,
                    ),
                    None => self.flash_about(text, FlashKind::Info, &connection),
                }
            }
            Msg::SaveRejected(report) => {
                self.busy = None;
                if let Some(form) = &mut self.details.form {
                    form.set_report(&report);
                    self.focus = if form.focus.is_some() {
                        Focus::Fields
                    } else {
                        Focus::Panel
                    };
                }
                let n = report.errors.len();
                let first = report
                    .errors
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                let text = format!(
                    "Not saved: {n} problem{} — {first}",
                    if n == 1 { "" } else { "s" }
                );
                // It goes with the form it is about.
                match self.details.form.as_ref().map(|f| f.base.clone()) {
                    Some(Some(base)) => {
                        let now = self.list.get(base.id).cloned().unwrap_or(base);
                        self.flash_about(text, FlashKind::Error, &now)
                    }
                    _ => self.flash_about_new_form(text, FlashKind::Error),
                }
            }
            Msg::Deleted { name } => {
                self.busy = None;
                self.details.form = None;
                self.focus = Focus::List;
                if self
                    .logs
                    .for_id
                    .is_some_and(|id| self.list.get(id).is_some_and(|c| c.name == name))
                {
                    self.logs.close();
                }
                self.flash(format!("Deleted '{name}'."), FlashKind::Info);
            }
            Msg::DesiredSet { name, desired } => {
                self.busy = None;
                let verb = match desired {
                    DesiredState::Running => "Start",
                    DesiredState::Stopped => "Stop",
                };
                let restarting = self
                    .restarting
                    .is_some_and(|(id, _)| self.list.get(id).is_some_and(|c| c.name == name));
                let text = if restarting && desired == DesiredState::Stopped {
                    format!("Restarting '{name}': Stop requested; it starts again once STOPPED.")
                } else {
                    format!("{verb} requested for '{name}'.")
                };
                // About the connection as it is once the request is recorded: it goes
                // when the runtime moves it on.
                match self.list.all.iter().find(|c| c.name == name).cloned() {
                    Some(mut c) => {
                        // Recorded in the store; the reload that follows says the same.
                        c.desired = desired;
                        self.list.upsert(c.id, Some(c.clone()));
                        self.flash_about(text, FlashKind::Info, &c);
                    }
                    None => self.flash(text, FlashKind::Info),
                }
            }
            Msg::Failed(text) => {
                self.busy = None;
                self.flash(text, FlashKind::Error);
            }
            Msg::DbDown(err) => {
                self.busy = None;
                self.fresh.on_down(self.now, err);
            }
            Msg::RunsWith(map) => self.runs_with = map,
            Msg::Agents(list) => {
                self.agents.set_agents(list);
                out.extend(self.agents.card_request());
            }
            Msg::Widget(w) => self.agents.set_widget(*w),
            Msg::Card { agent_id, rows } => {
                if self.agents.selected == Some(agent_id) {
                    self.agents.card = rows;
                    self.agents.card_for = Some(agent_id);
                    self.agents.card_sel = self
                        .agents
                        .card_sel
                        .min(self.agents.card.len().saturating_sub(1));
                }
            }
            Msg::AgentDone {
                text,
                warnings,
                select,
            } => {
                self.busy = None;
                self.agents.add = None;
                self.agents.card_for = None;
                self.agents.selected = select.or(self.agents.selected);
                match warnings.first() {
                    Some(w) => self.flash(format!("{text} Warning: {w}"), FlashKind::Warn),
                    None => self.flash(text, FlashKind::Info),
                }
            }
            Msg::AgentRejected(text) => {
                self.busy = None;
                self.flash(text, FlashKind::Error);
            }
            Msg::SignIn(update) => {
                // Ignored once the operator closed the dialog.
                if let Some(Overlay::SignIn(s)) = &mut self.overlay {
                    s.apply(update);
                }
            }
            Msg::Diagnosis { id, text } => {
                // The same answer again (every tick) must not cost a frame.
                let changed = self.details.on_diagnosis(id, text);
                self.dirty = was_dirty || changed;
            }
            Msg::Logs { id, lines, last_id } => self.logs.on_loaded(id, &lines, last_id),
            Msg::One { id, connection } => {
                self.list.upsert(id, connection.map(|c| *c));
                self.refresh_form_after_reload();
                if self.details.form.is_none() {
                    self.sync_form_to_selection();
                }
            }
            Msg::MoreLogs { id, lines } => out.extend(self.logs.on_more(id, lines)),
        }
        out
    }

    /// After a reload: a clean form follows the stored version; an edited one keeps
    /// the operator's input and says what happened underneath it.
    fn refresh_form_after_reload(&mut self) {
        let latest = self
            .details
            .shown_id()
            .and_then(|id| self.list.get(id))
            .cloned();
        let mode = self.form_mode();
        if let Some(warning) = self.details.refresh(latest.as_ref(), mode) {
            self.flash(warning, FlashKind::Warn);
        }
    }

    /// Live lines from the runtime's log bus.
    pub fn on_log_lines(&mut self, lines: &[LogLine]) {
        if self.logs.on_live(lines) | self.agents.on_log_lines(lines) {
            self.dirty = true;
        }
    }

    /// A change another process made, as the database announced it.
    pub fn on_change(
        &mut self,
        change: crate::store::feed::Change,
        tenant_id: i64,
    ) -> Vec<Command> {
        use crate::store::feed::Change;
        match change {
            // The Web Widget on the agents screen (its connection is not in the list).
            Change::Connection { id, .. } | Change::Log { connection_id: id }
                if let Some(load) = self.agents.widget_changed(id) =>
            {
                vec![load]
            }
            Change::Connection { tenant_id: t, id } if t == tenant_id => {
                vec![Command::ReloadOne { id }]
            }
            Change::Log { connection_id } if Some(connection_id) == self.logs.for_id => {
                self.logs.more_request(connection_id).into_iter().collect()
            }
            Change::Agents { tenant_id: t } if t == tenant_id => {
                vec![Command::LoadAgents, Command::LoadRunsWith]
            }
            Change::Resync => {
                let mut out = vec![Command::Reload];
                if let Some(id) = self.logs.for_id {
                    out.extend(self.logs.more_request(id));
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// What the runtime learnt about the processes on the database (every few seconds).
    /// A frame is drawn only when something shown changes — the header's summary and
    /// process count, or the owner-gone notice of the connection on screen — not for
    /// the clocks and heartbeat ages that change at every look.
    pub fn on_presence(&mut self, presence: crate::runtime::Presence) {
        let before = self.presence.as_ref().map(|p| self.presence_shown(p));
        if before != Some(self.presence_shown(&presence)) {
            self.dirty = true;
        }
        self.presence = Some(presence);
    }

    fn presence_shown(&self, p: &crate::runtime::Presence) -> PresenceShown {
        use crate::runtime::presence::owner_gone;
        let gone = |c: Option<&Connection>| c.and_then(|c| owner_gone(c, &p.leases, p.db_now));
        (
            p.summary(),
            p.others.len(),
            gone(self.list.selected_connection()),
            gone(self.current()),
        )
    }

    /// Whether the periodic tick has work to do: polling (SQLite has no notifications;
    /// a lost database is retried), the first load, or a "waiting for the database"
    /// notice to age. An idle console on PostgreSQL needs none, so it sleeps until
    /// something happens.
    pub fn needs_tick(&self) -> bool {
        let info_flash = matches!(self.flash, Some((_, FlashKind::Info)));
        self.fresh.needs_tick()
            || self.busy.is_some()
            || info_flash
            || self.restarting.is_some()
            || self.logs.owes_reread()
    }

    /// The log bus skipped lines this console fell behind on: the open Logs pane reads
    /// them back from the store instead of silently missing them.
    pub fn on_log_lag(&mut self, now: Millis) -> Vec<Command> {
        self.logs.on_lag(now).into_iter().collect()
    }

    /// Periodic: look for changes made elsewhere (every tick; every 2 s while the
    /// database is down) and age the "waiting for the database" notice.
    pub fn on_tick(&mut self, now: Millis, every: Millis) -> Vec<Command> {
        self.now = now;
        self.expire_flash();
        if self
            .busy
            .as_ref()
            .is_some_and(|(_, since)| now - since >= 1000)
        {
            self.dirty = true;
        }
        let reread = self.logs.reread_after_lag(now);
        let Some(poll) = self.fresh.poll_due(now, every) else {
            return reread.into_iter().chain(self.continue_restart()).collect();
        };
        let mut out: Vec<Command> = reread.into_iter().collect();
        out.push(poll);
        // Without announced changes (SQLite), lines another process stored reach the open
        // pane only by asking; this process's own lines, read back too, are shown once.
        if !self.fresh.live
            && let Some(id) = self.logs.for_id
        {
            out.extend(self.logs.more_request(id));
        }
        // Attachments can change in another process; the diagnosis follows within a tick.
        self.details.rediagnose();
        out.extend(self.follow_up());
        out.extend(self.continue_restart());
        out
    }

    pub fn set_busy(&mut self, what: &str) {
        self.busy = Some((what.to_string(), self.now));
    }
}

/// What `s` asks for: Stop whenever the connection runs, is on its way up or down, or is
/// wanted running (a pending Start, or ERROR while it retries); Start otherwise. Stop is
/// therefore always reachable, as with `flametree channels stop`.
pub fn start_stop_target(c: &Connection) -> DesiredState {
    let busy = matches!(
        c.status,
        Status::Running | Status::Starting | Status::Stopping
    );
    if busy || c.desired == DesiredState::Running {
        DesiredState::Stopped
    } else {
        DesiredState::Running
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
