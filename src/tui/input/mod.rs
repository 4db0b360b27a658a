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

pub use super::overlay::picker_types;

mod dialogs;
mod lifecycle;
pub use lifecycle::RESTART_WAIT_MS;
mod logs;
mod mouse;

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
            && let Some(form) = &mut self.details.form
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
                if self.details.form.is_some() {
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
            if self.logs.for_id.is_some() {
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
            Some(Action::Fields) if self.details.form.is_some() => {
                self.focus = Focus::Fields;
                if let Some(f) = &mut self.details.form {
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
            if self.logs.for_id.is_some() {
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
        let Some(form) = &mut self.details.form else {
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
}
