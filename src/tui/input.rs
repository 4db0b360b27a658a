//! Keys and clicks to actions. Printable keys go to a text input whenever one has
//! focus, so list keys (`s`, `D`, `q`…) act only outside the form's inputs.

use super::app::{After, App, Confirm, ConfirmAction, FlashKind, Focus, Hit, Overlay};
use super::form::{Form, FormOutcome};
use super::logs::pane::PaneOutcome;
use super::worker::Command;
use crate::catalog::{Catalog, ChannelType};
use crate::model::{Connection, DesiredState};
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

/// Types offered by the Add picker: current ones, plus legacy ones when toggled on.
pub fn picker_types(show_deprecated: bool) -> Vec<&'static ChannelType> {
    Catalog::get()
        .listed()
        .filter(|t| show_deprecated || !t.deprecated)
        .collect()
}

impl App {
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let mut out = self.handle_key(key);
        self.expire_flash();
        out.extend(self.follow_up());
        out
    }

    fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        self.dirty = true;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.request_quit();
        }
        if self.overlay.is_some() {
            return self.overlay_key(key);
        }
        if self.screen == super::app::Screen::Agents {
            return self.agents_key(key);
        }
        if ctrl && key.code == KeyCode::Char('s') {
            return self.save();
        }
        match self.focus {
            Focus::Search => self.search_key(key),
            Focus::Fields => self.fields_key(key),
            Focus::Logs => self.logs_key(key),
            Focus::Panel => self.panel_key(key),
            Focus::List => self.list_key(key),
        }
    }

    pub fn on_paste(&mut self, text: &str) {
        self.dirty = true;
        if self.screen == super::app::Screen::Agents {
            self.agents.on_paste(text);
            return;
        }
        if self.focus == Focus::Fields
            && let Some(form) = &mut self.form
            && form.paste(text) == FormOutcome::ReadOnly
        {
            self.flash("Read-only: viewers cannot change settings", FlashKind::Warn);
        }
    }

    fn list_key(&mut self, key: KeyEvent) -> Vec<Command> {
        use super::keys::{Action, Section, action};
        let before = self.list.selected;
        match action(Section::List, &key) {
            Some(Action::Down) => self.list.move_by(1),
            Some(Action::Up) => self.list.move_by(-1),
            Some(Action::PageDown) => self.list.move_by(10),
            Some(Action::PageUp) => self.list.move_by(-10),
            Some(Action::First) => self.list.first(),
            Some(Action::Last) => self.list.last(),
            Some(Action::Search) => self.focus = Focus::Search,
            Some(Action::Sort) => self.list.toggle_sort(),
            Some(Action::Filter) => self.list.cycle_filter(),
            Some(Action::NextError) => {
                if !self.list.select_next_error() {
                    self.flash("No connection in ERROR in the list", FlashKind::Info);
                }
            }
            Some(Action::Open) => {
                if self.form.is_some() {
                    self.focus = Focus::Panel;
                }
            }
            Some(Action::ClearSearch) if !self.list.query.is_empty() => self.list.set_query(""),
            Some(Action::ClearSearch) => {}
            other => return self.common_key(other),
        }
        let mut out = Vec::new();
        if self.list.selected != before {
            self.sync_form_to_selection();
            if self.logs_for.is_some() {
                out.extend(self.follow_logs_to_selection());
            }
        }
        out
    }

    /// Actions that mean the same in the list, the panel header and the logs pane.
    fn common_key(&mut self, what: Option<super::keys::Action>) -> Vec<Command> {
        use super::keys::Action;
        match what {
            Some(Action::Quit) => return self.request_quit(),
            Some(Action::Help) => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Some(Action::Add) => return self.open_picker(),
            Some(Action::StartStop) => return self.start_stop(),
            Some(Action::Restart) => return self.restart(),
            Some(Action::Logs) => return self.toggle_logs(),
            Some(Action::CopyUrl) => self.copy_webhook_url(),
            Some(Action::Delete) => self.ask_delete(),
            Some(Action::Status) => self.show_status_whole(),
            Some(Action::Migrate) => self.start_migrate(),
            Some(Action::Agents) => {
                self.screen = super::app::Screen::Agents;
                return vec![Command::LoadAgents];
            }
            Some(Action::Mouse) => {
                self.mouse = !self.mouse;
                let state = if self.mouse {
                    "on (click and wheel work; hold Shift to select text)"
                } else {
                    "off (select text with the mouse; m turns it back on)"
                };
                self.flash(format!("Mouse capture {state}"), FlashKind::Info);
            }
            Some(Action::Setup) => self.open_setup(),
            Some(Action::Fields) if self.form.is_some() => {
                self.focus = Focus::Fields;
                if let Some(f) = &mut self.form {
                    f.set_focus(Some(0));
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn agents_key(&mut self, key: KeyEvent) -> Vec<Command> {
        use super::agents::AgentsOutcome;
        let can_edit = self.can_edit();
        match self.agents.on_key(key, &self.list.all, can_edit) {
            AgentsOutcome::Commands(cmds) => {
                if cmds.iter().any(|c| !matches!(c, Command::LoadCard { .. })) {
                    self.set_busy("Saving");
                }
                cmds
            }
            AgentsOutcome::Flash(text) => {
                self.flash(text, FlashKind::Warn);
                Vec::new()
            }
            AgentsOutcome::SwitchToChannels => {
                self.screen = super::app::Screen::Channels;
                self.focus = Focus::List;
                vec![Command::Reload]
            }
            AgentsOutcome::Quit => self.request_quit(),
            AgentsOutcome::Help => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                Vec::new()
            }
            AgentsOutcome::AskDiscardSimple(what) => {
                self.overlay = Some(Overlay::Confirm(Confirm {
                    title: "Unsaved changes",
                    question: format!("Discard {what}? Nothing was created yet."),
                    yes: "Discard",
                    action: ConfirmAction::Discard(After::CloseSimple),
                }));
                Vec::new()
            }
            AgentsOutcome::AskDelete(a) => {
                self.overlay = Some(Overlay::Confirm(Confirm {
                    title: "Delete the agent?",
                    question: format!(
                        "Delete the agent '{}'? Its Communication channels are detached; the connections stay in Settings › Channels.",
                        a.name
                    ),
                    yes: "Delete",
                    action: ConfirmAction::DeleteAgent(a),
                }));
                Vec::new()
            }
        }
    }

    fn search_key(&mut self, key: KeyEvent) -> Vec<Command> {
        // By id: a new filter can put another connection at the same row.
        let before = self.list.selected_connection().map(|c| c.id);
        match key.code {
            KeyCode::Enter => self.focus = Focus::List,
            KeyCode::Esc => {
                self.list.set_query("");
                self.focus = Focus::List;
            }
            KeyCode::Backspace => {
                let mut q = self.list.query.clone();
                q.pop();
                self.list.set_query(&q);
            }
            KeyCode::Down => self.list.move_by(1),
            KeyCode::Up => self.list.move_by(-1),
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let q = format!("{}{c}", self.list.query);
                self.list.set_query(&q);
            }
            _ => {}
        }
        if self.list.selected_connection().map(|c| c.id) != before {
            self.sync_form_to_selection();
            if self.logs_for.is_some() {
                return self.follow_logs_to_selection().into_iter().collect();
            }
        }
        Vec::new()
    }

    fn panel_key(&mut self, key: KeyEvent) -> Vec<Command> {
        use super::keys::{Action, Section, action};
        match action(Section::Panel, &key) {
            Some(Action::Back) => {
                self.leave_panel();
                Vec::new()
            }
            other => self.common_key(other),
        }
    }

    fn fields_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('g') {
            self.open_setup();
            return Vec::new();
        }
        if key.code == KeyCode::F(1) {
            self.overlay = Some(Overlay::Help { scroll: 0 });
            return Vec::new();
        }
        let Some(form) = &mut self.form else {
            self.focus = Focus::List;
            return Vec::new();
        };
        match form.handle_key(key) {
            FormOutcome::Left => {
                self.focus = Focus::Panel;
                if form.is_new() {
                    self.leave_panel();
                }
            }
            FormOutcome::OpenEnvPicker => self.overlay = Some(Overlay::EnvPicker { selected: 0 }),
            FormOutcome::SignIn => return self.start_sign_in(),
            FormOutcome::ReadOnly => {
                self.flash("Read-only: viewers cannot change settings", FlashKind::Warn);
            }
            FormOutcome::Consumed | FormOutcome::NotHandled => {}
        }
        Vec::new()
    }

    fn logs_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match self.logs.handle_key(key) {
            PaneOutcome::Consumed => Vec::new(),
            PaneOutcome::Close => {
                self.focus = if self.form.is_some() {
                    Focus::Panel
                } else {
                    Focus::List
                };
                Vec::new()
            }
            PaneOutcome::SaveRequested => {
                self.export_logs();
                Vec::new()
            }
            PaneOutcome::OpenLine => {
                let line = self.logs.selected_line().cloned();
                self.open_log_line(line);
                Vec::new()
            }
            PaneOutcome::NotHandled => match key.code {
                KeyCode::Tab => {
                    self.focus = Focus::List;
                    Vec::new()
                }
                _ => self.common_key(super::keys::action(super::keys::Section::Logs, &key)),
            },
        }
    }

    /// One log line whole, wrapped and scrollable, in a popup (the pane cuts long ones).
    fn open_log_line(&mut self, line: Option<super::logs::ring::LogEntry>) {
        let Some(e) = line else {
            self.flash("No line to show", FlashKind::Info);
            return;
        };
        /// Beyond this the popup would cost a frame's time to lay out; x saves it all.
        const SHOWN: usize = 64 * 1024;
        let mut message = e.message;
        if message.len() > SHOWN {
            let cut = (0..=SHOWN)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            let rest = message.len() - cut;
            message.truncate(cut);
            message.push_str(&format!(
                " … ({rest} more bytes: x saves the lines to a file)"
            ));
        }
        let at = chrono::DateTime::from_timestamp_millis(e.at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
            .unwrap_or_default();
        let name = self
            .logs_for
            .and_then(|id| self.list.get(id))
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.overlay = Some(Overlay::Text {
            title: format!("Log line · {name}"),
            body: format!("{at} {}\n\n{message}", e.level.as_str()),
            scroll: 0,
        });
    }

    fn export_logs(&mut self) {
        let Some(c) = self.logs_for.and_then(|id| self.list.get(id)) else {
            return;
        };
        let safe: String = c
            .name
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        let stamp = chrono::DateTime::from_timestamp_millis(self.now)
            .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
            .unwrap_or_default();
        let path = self
            .export_dir
            .join(format!("flametree-{safe}-{stamp}.log"));
        match crate::fsutil::create_private_dir(&self.export_dir)
            .and_then(|_| self.logs.export(&path))
        {
            Ok(n) => self.flash(
                format!(
                    "Saved {n} line{} to {} (mode 0600)",
                    if n == 1 { "" } else { "s" },
                    path.display()
                ),
                FlashKind::Info,
            ),
            Err(e) => self.flash(
                format!("Could not save the logs to {}: {e}", path.display()),
                FlashKind::Error,
            ),
        }
    }

    fn leave_panel(&mut self) {
        if self.form_dirty() {
            self.ask_discard(After::LeavePanel);
            return;
        }
        self.focus = Focus::List;
        if self.form.as_ref().is_some_and(|f| f.is_new()) {
            self.form = None;
        }
        self.sync_form_to_selection();
    }

    fn ask_discard(&mut self, after: After) {
        let name = self
            .form
            .as_ref()
            .map(|f| {
                let n = f.value(&super::form::Slot::Name);
                if n.trim().is_empty() {
                    "the new connector".to_string()
                } else {
                    format!("'{}'", n.trim())
                }
            })
            .unwrap_or_default();
        let quitting = matches!(after, After::Quit);
        self.overlay = Some(Overlay::Confirm(Confirm {
            title: "Unsaved changes",
            question: if quitting {
                format!("Quit and discard your unsaved changes to {name}?")
            } else {
                format!("Discard your unsaved changes to {name}?")
            },
            yes: if quitting { "Quit" } else { "Discard" },
            action: ConfirmAction::Discard(after),
        }));
    }

    pub fn request_quit(&mut self) -> Vec<Command> {
        if self.form_dirty() {
            self.ask_discard(After::Quit);
        } else {
            self.confirm_quit();
        }
        Vec::new()
    }

    /// Quitting stops the channels this console runs: say how many, and ask.
    fn confirm_quit(&mut self) {
        let n = self.running_here.load(std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            self.quit = true;
            return;
        }
        self.overlay = Some(Overlay::Confirm(Confirm {
            title: "Quit?",
            question: format!(
                "{n} channel{} running in this console will stop (STOPPING → STOPPED is \
                 recorded). They start again with the next console or `flametree serve`.",
                if n == 1 { " is" } else { "s are" }
            ),
            yes: "Quit and stop them",
            action: ConfirmAction::Discard(After::QuitStopping),
        }));
    }

    fn open_picker(&mut self) -> Vec<Command> {
        if !self.can_edit() {
            self.flash("Read-only: viewers cannot add connections", FlashKind::Warn);
            return Vec::new();
        }
        self.overlay = Some(Overlay::Picker {
            selected: 0,
            show_deprecated: false,
        });
        Vec::new()
    }

    fn open_setup(&mut self) {
        if let Some(ty) = self.current_type() {
            self.overlay = Some(Overlay::Setup {
                ty,
                scroll: 0,
                picker: None,
            });
        } else {
            self.flash(
                "Select a connection or a channel type first",
                FlashKind::Info,
            );
        }
    }

    fn start_new(&mut self, ty: &'static ChannelType) {
        let mut form = Form::new_connector(ty, self.meta_configured, !self.can_edit());
        form.set_focus(Some(0));
        self.form = Some(form);
        self.focus = Focus::Fields;
    }

    pub fn save(&mut self) -> Vec<Command> {
        let Some(form) = &self.form else {
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
            if let Some(f) = &mut self.form {
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
    fn start_migrate(&mut self) {
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
        self.form = Some(form);
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

    /// `s`: Stop when the connection runs or is wanted running (in any state, as the CLI
    /// allows), Start otherwise. It only records the desired state; the runtime acts.
    pub fn start_stop(&mut self) -> Vec<Command> {
        let Some(c) = self.with_own_lifecycle(
            "have no Start/Stop: they start and stop with the agents they are attached to",
        ) else {
            return Vec::new();
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot start or stop channels",
                FlashKind::Warn,
            );
            return Vec::new();
        }
        let desired = super::app::start_stop_target(&c);
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

    fn request_desired(&mut self, c: Connection, desired: DesiredState) -> Vec<Command> {
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
        let Some(c) = self.with_own_lifecycle("restart with the agents they are attached to")
        else {
            return Vec::new();
        };
        if !self.can_edit() {
            self.flash(
                "Read-only: viewers cannot restart channels",
                FlashKind::Warn,
            );
            return Vec::new();
        }
        if super::app::start_stop_target(&c) == DesiredState::Running {
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

    fn begin_restart(&mut self, c: Connection) -> Vec<Command> {
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
    fn with_own_lifecycle(&mut self, why: &str) -> Option<Connection> {
        let Some(c) = self.current().cloned() else {
            self.flash("Select a connection first", FlashKind::Info);
            return None;
        };
        if let Some(ty) = Catalog::get()
            .find(&c.type_key)
            .filter(|t| !t.has_start_stop())
        {
            self.flash(format!("{} connections {why}", ty.name), FlashKind::Info);
            return None;
        }
        Some(c)
    }

    pub fn toggle_logs(&mut self) -> Vec<Command> {
        let Some(c) =
            self.with_own_lifecycle("have no Logs of their own: they run with their agents")
        else {
            return Vec::new();
        };
        if self.logs_for == Some(c.id) {
            if self.focus == Focus::Logs {
                self.logs_for = None;
                self.focus = if self.form.is_some() {
                    Focus::Panel
                } else {
                    Focus::List
                };
            } else {
                self.focus = Focus::Logs;
            }
            return Vec::new();
        }
        let (id, name) = (c.id, c.name.clone());
        self.logs.reset(&name);
        self.log_after = 0;
        self.log_seen.clear();
        self.logs_for = Some(id);
        self.focus = Focus::Logs;
        vec![Command::LoadLogs {
            id,
            limit: self.logs_limit,
        }]
    }

    /// `i`: the connection's status and its whole message, however long, in a popup.
    fn show_status_whole(&mut self) {
        let Some(c) = self.current() else {
            self.flash("Select a connection first", FlashKind::Info);
            return;
        };
        let message = super::view::list_status_message(self, c);
        let body = format!(
            "{} {} since {} UTC\n\n{}",
            super::theme::Theme::status_symbol(c.status),
            super::view::list_status_word(c.status, c.desired),
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

    fn ask_delete(&mut self) {
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

    /// Enter on "Advanced mode: off": the sign-in dialog, and the flow behind it.
    fn start_sign_in(&mut self) -> Vec<Command> {
        let (Some(app), Some(form)) = (self.meta_app.clone(), &self.form) else {
            self.flash(
                "Meta App ID and App Secret are not configured on the server",
                FlashKind::Warn,
            );
            return Vec::new();
        };
        let stop = tokio_util::sync::CancellationToken::new();
        self.overlay = Some(Overlay::SignIn(super::signin::SignIn {
            type_name: form.ty.name.clone(),
            stage: super::signin::Stage::Starting,
            stop: stop.clone(),
        }));
        vec![Command::MetaSignIn {
            app: Box::new(app),
            type_key: form.ty.key.clone(),
            stop,
        }]
    }

    fn apply_pick(&mut self, pick: super::signin::Pick) {
        if let Some(form) = &mut self.form {
            form.fill(&pick.fields, &pick.secrets);
            self.flash(
                format!("Filled from Meta: {}. Review, then Save (^S)", pick.label),
                FlashKind::Info,
            );
        }
    }

    fn overlay_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(overlay) = self.overlay.take() else {
            return Vec::new();
        };
        let mut keep = true;
        let mut out = Vec::new();
        let overlay = match overlay {
            Overlay::SignIn(mut s) => {
                use super::signin::Stage;
                match (&mut s.stage, key.code) {
                    (_, KeyCode::Esc | KeyCode::Char('q')) => {
                        s.stop.cancel();
                        keep = false;
                    }
                    (Stage::Failed(_), KeyCode::Enter) => keep = false,
                    (Stage::Choose { picks, selected }, KeyCode::Down | KeyCode::Char('j')) => {
                        *selected = (*selected + 1).min(picks.len().saturating_sub(1));
                    }
                    (Stage::Choose { selected, .. }, KeyCode::Up | KeyCode::Char('k')) => {
                        *selected = selected.saturating_sub(1);
                    }
                    (Stage::Choose { picks, selected }, KeyCode::Enter) => {
                        let pick = picks[*selected].clone();
                        keep = false;
                        self.apply_pick(pick);
                    }
                    _ => {}
                }
                Overlay::SignIn(s)
            }
            Overlay::Confirm(confirm) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    keep = false;
                    out = self.confirmed(confirm.action);
                    Overlay::Help { scroll: 0 }
                }
                KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q') => {
                    keep = false;
                    Overlay::Help { scroll: 0 }
                }
                _ => Overlay::Confirm(confirm),
            },
            Overlay::Text { .. } if matches!(key.code, KeyCode::Esc | KeyCode::Char('q' | 'i')) => {
                keep = false;
                Overlay::Help { scroll: 0 }
            }
            Overlay::Text {
                title,
                body,
                scroll,
            } => Overlay::Text {
                title,
                body,
                scroll: scrolled(scroll, key),
            },
            Overlay::Setup {
                picker: Some((selected, show_deprecated)),
                ..
            } if matches!(key.code, KeyCode::Esc | KeyCode::Char('q'))
                || (key.code == KeyCode::Char('g')
                    && key.modifiers.contains(KeyModifiers::CONTROL)) =>
            {
                Overlay::Picker {
                    selected,
                    show_deprecated,
                }
            }
            Overlay::Help { scroll } | Overlay::Setup { scroll, .. }
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?')
                ) || (key.code == KeyCode::Char('g')
                    && key.modifiers.contains(KeyModifiers::CONTROL)) =>
            {
                keep = false;
                Overlay::Help { scroll }
            }
            Overlay::Help { scroll } => Overlay::Help {
                scroll: scrolled(scroll, key),
            },
            Overlay::Setup { ty, scroll, picker } => Overlay::Setup {
                ty,
                scroll: scrolled(scroll, key),
                picker,
            },
            Overlay::Picker {
                selected,
                show_deprecated,
            } => {
                let types = picker_types(show_deprecated);
                match key.code {
                    KeyCode::Esc | KeyCode::Char('q') => {
                        keep = false;
                        Overlay::Picker {
                            selected,
                            show_deprecated,
                        }
                    }
                    KeyCode::Char('d') => Overlay::Picker {
                        selected: 0,
                        show_deprecated: !show_deprecated,
                    },
                    // The highlighted type's setup page, before choosing it.
                    KeyCode::Char('g') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        match types.get(selected) {
                            Some(ty) => Overlay::Setup {
                                ty,
                                scroll: 0,
                                picker: Some((selected, show_deprecated)),
                            },
                            None => Overlay::Picker {
                                selected,
                                show_deprecated,
                            },
                        }
                    }
                    KeyCode::Down | KeyCode::Char('j') => Overlay::Picker {
                        selected: (selected + 1).min(types.len().saturating_sub(1)),
                        show_deprecated,
                    },
                    KeyCode::Up | KeyCode::Char('k') => Overlay::Picker {
                        selected: selected.saturating_sub(1),
                        show_deprecated,
                    },
                    KeyCode::Enter => {
                        keep = false;
                        if self.form_dirty() {
                            self.ask_discard(After::Add(selected));
                            return Vec::new();
                        }
                        if let Some(ty) = types.get(selected) {
                            self.start_new(ty);
                        }
                        Overlay::Picker {
                            selected,
                            show_deprecated,
                        }
                    }
                    _ => Overlay::Picker {
                        selected,
                        show_deprecated,
                    },
                }
            }
            Overlay::EnvPicker { selected } => {
                let n = self
                    .form
                    .as_ref()
                    .map(|f| f.env_choices().len())
                    .unwrap_or(0)
                    + 1;
                match key.code {
                    KeyCode::Esc => {
                        keep = false;
                        Overlay::EnvPicker { selected }
                    }
                    KeyCode::Down | KeyCode::Char('j') => Overlay::EnvPicker {
                        selected: (selected + 1).min(n - 1),
                    },
                    KeyCode::Up | KeyCode::Char('k') => Overlay::EnvPicker {
                        selected: selected.saturating_sub(1),
                    },
                    KeyCode::Enter => {
                        keep = false;
                        self.pick_env(selected);
                        Overlay::EnvPicker { selected }
                    }
                    _ => Overlay::EnvPicker { selected },
                }
            }
        };
        if keep {
            self.overlay = Some(overlay);
        }
        out
    }

    fn pick_env(&mut self, selected: usize) {
        let Some(form) = &mut self.form else { return };
        let (name, value) = match form.env_choices().get(selected) {
            Some(spec) => (spec.name.clone(), spec.default.clone().unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        form.add_env(&name, &value);
        self.focus = Focus::Fields;
    }

    fn confirmed(&mut self, action: ConfirmAction) -> Vec<Command> {
        match action {
            ConfirmAction::Delete(c) => {
                self.set_busy("Deleting");
                vec![Command::Delete(c)]
            }
            ConfirmAction::Stop(c) => self.request_desired(*c, DesiredState::Stopped),
            ConfirmAction::Restart(c) => self.begin_restart(*c),
            ConfirmAction::DeleteAgent(a) => {
                self.set_busy("Deleting");
                vec![Command::DeleteAgent(a)]
            }
            ConfirmAction::Discard(After::CloseSimple) => {
                // The agents screen's own form; the channel form keeps its edits.
                self.agents.discard_simple();
                Vec::new()
            }
            ConfirmAction::Discard(after) => {
                if let Some(f) = &mut self.form {
                    f.dirty = false;
                }
                match after {
                    After::Quit => self.confirm_quit(),
                    After::QuitStopping => self.quit = true,
                    After::LeavePanel => {
                        self.form = None;
                        self.leave_panel();
                    }
                    After::CloseSimple => {}
                    After::Add(i) => {
                        if let Some(ty) = picker_types(false).get(i) {
                            self.start_new(ty);
                        }
                    }
                }
                Vec::new()
            }
        }
    }

    pub fn on_mouse(&mut self, ev: MouseEvent) -> Vec<Command> {
        let hit = self
            .hits
            .iter()
            .rev()
            .find(|(r, _)| r.contains(ratatui::layout::Position::new(ev.column, ev.row)))
            .map(|(r, h)| (*r, *h));
        let Some((rect, hit)) = hit else {
            return Vec::new();
        };
        self.dirty = true;
        match ev.kind {
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let delta = if ev.kind == MouseEventKind::ScrollDown {
                    3
                } else {
                    -3
                };
                self.wheel(hit, delta)
            }
            MouseEventKind::Down(MouseButton::Left) => {
                self.click(hit, ev.row.saturating_sub(rect.y) as usize)
            }
            _ => Vec::new(),
        }
    }

    fn wheel(&mut self, hit: Hit, delta: i32) -> Vec<Command> {
        match hit {
            Hit::LogsPane => {
                self.logs.scroll(delta);
                Vec::new()
            }
            Hit::Overlay => {
                if let Some(
                    Overlay::Help { scroll }
                    | Overlay::Setup { scroll, .. }
                    | Overlay::Text { scroll, .. },
                ) = &mut self.overlay
                {
                    *scroll = (*scroll as i32 + delta).max(0) as u16;
                }
                Vec::new()
            }
            Hit::Form | Hit::Slot(_) => {
                if let Some(f) = &mut self.form {
                    f.scroll = (f.scroll as i32 + delta).max(0) as usize;
                }
                Vec::new()
            }
            _ if self.overlay.is_none() => {
                let before = self.list.selected;
                self.list.move_by(delta as isize);
                if self.list.selected != before && self.focus == Focus::List {
                    self.sync_form_to_selection();
                    return self.follow_logs_to_selection().into_iter().collect();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn click(&mut self, hit: Hit, row_in_rect: usize) -> Vec<Command> {
        match hit {
            Hit::ConfirmYes => self.on_key(KeyEvent::from(KeyCode::Char('y'))),
            Hit::ConfirmNo => self.on_key(KeyEvent::from(KeyCode::Esc)),
            Hit::PickerRow(i) => {
                if let Some(Overlay::Picker { selected, .. }) = &mut self.overlay {
                    *selected = i;
                }
                self.on_key(KeyEvent::from(KeyCode::Enter))
            }
            _ if self.overlay.is_some() => Vec::new(),
            Hit::ListRow(row) => {
                if self.form_dirty() {
                    self.flash(
                        "Save (Ctrl-S) or discard (Esc) your changes first",
                        FlashKind::Warn,
                    );
                    return Vec::new();
                }
                let before = self.list.selected;
                self.focus = Focus::List;
                if self.list.select_drawn_row(row) && self.list.selected != before {
                    self.sync_form_to_selection();
                    return self.follow_logs_to_selection().into_iter().collect();
                }
                Vec::new()
            }
            Hit::Slot(i) => {
                if let Some(f) = &mut self.form {
                    f.set_focus(Some(i));
                    self.focus = Focus::Fields;
                }
                Vec::new()
            }
            Hit::StartStop => self.start_stop(),
            Hit::CopyWebhook => {
                self.copy_webhook_url();
                Vec::new()
            }
            Hit::Logs => self.toggle_logs(),
            Hit::LogsPane => {
                // A click in the focused pane opens the line clicked.
                if self.focus == Focus::Logs {
                    let line = self.logs.line_at_row(row_in_rect).cloned();
                    self.open_log_line(line);
                }
                self.focus = Focus::Logs;
                Vec::new()
            }
            Hit::Save => self.save(),
            Hit::Delete => {
                self.ask_delete();
                Vec::new()
            }
            Hit::Add => self.open_picker(),
            Hit::List | Hit::Form | Hit::Overlay => Vec::new(),
        }
    }
}

fn scrolled(scroll: u16, key: KeyEvent) -> u16 {
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => scroll.saturating_add(1),
        KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
        KeyCode::PageDown | KeyCode::Char(' ') => scroll.saturating_add(10),
        KeyCode::PageUp => scroll.saturating_sub(10),
        KeyCode::Home | KeyCode::Char('g') => 0,
        _ => scroll,
    }
}
