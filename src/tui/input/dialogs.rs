//! Popups and the questions before anything is lost: the Add picker, setup pages,
//! confirmations, the variable picker, sign-in with Meta, quitting.

use super::*;

impl App {
    pub(super) fn leave_panel(&mut self) {
        if self.form_dirty() {
            self.ask_discard(After::LeavePanel);
            return;
        }
        self.focus = Focus::List;
        if self.details.form.as_ref().is_some_and(|f| f.is_new()) {
            self.details.form = None;
        }
        self.sync_form_to_selection();
    }

    pub(super) fn ask_discard(&mut self, after: After) {
        let name = self
            .details
            .form
            .as_ref()
            .map(|f| {
                let n = f.value(&crate::tui::form::Slot::Name);
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
    pub(super) fn confirm_quit(&mut self) {
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

    pub(super) fn open_picker(&mut self) -> Vec<Command> {
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

    pub(super) fn open_setup(&mut self) {
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

    pub(super) fn start_new(&mut self, ty: &'static ChannelType) {
        let mut form = Form::new_connector(ty, self.meta_configured, !self.can_edit());
        form.set_focus(Some(0));
        self.details.form = Some(form);
        self.focus = Focus::Fields;
    }

    /// Enter on "Advanced mode: off": the sign-in dialog, and the flow behind it.
    pub(super) fn start_sign_in(&mut self) -> Vec<Command> {
        let (Some(app), Some(form)) = (self.meta_app.clone(), &self.details.form) else {
            self.flash(
                "Meta App ID and App Secret are not configured on the server",
                FlashKind::Warn,
            );
            return Vec::new();
        };
        let stop = tokio_util::sync::CancellationToken::new();
        self.overlay = Some(Overlay::SignIn(crate::tui::signin::SignIn {
            type_name: form.ty.name.clone(),
            stage: crate::tui::signin::Stage::Starting,
            stop: stop.clone(),
        }));
        vec![Command::MetaSignIn {
            app: Box::new(app),
            type_key: form.ty.key.clone(),
            stop,
        }]
    }

    pub(super) fn apply_pick(&mut self, pick: crate::tui::signin::Pick) {
        if let Some(form) = &mut self.details.form {
            form.fill(&pick.fields, &pick.secrets);
            self.flash(
                format!("Filled from Meta: {}. Review, then Save (^S)", pick.label),
                FlashKind::Info,
            );
        }
    }

    pub(super) fn overlay_key(&mut self, key: KeyEvent) -> Vec<Command> {
        use crate::tui::overlay::Step;
        let Some(overlay) = self.overlay.take() else {
            return Vec::new();
        };
        let env_choices = self
            .details
            .form
            .as_ref()
            .map_or(0, |f| f.env_choices().len());
        match overlay.on_key(key, env_choices) {
            Step::Open(o) => self.overlay = Some(o),
            Step::Closed => {}
            Step::Confirmed(action) => return self.confirmed(action),
            Step::NewConnection(ty) if self.form_dirty() => {
                self.ask_discard(After::Add(ty.key.as_str()))
            }
            Step::NewConnection(ty) => self.start_new(ty),
            Step::PickEnv(i) => self.pick_env(i),
            Step::SignInPicked(pick) => self.apply_pick(pick),
        }
        Vec::new()
    }

    pub(super) fn pick_env(&mut self, selected: usize) {
        let Some(form) = &mut self.details.form else {
            return;
        };
        let (name, value) = match form.env_choices().get(selected) {
            Some(spec) => (spec.name.clone(), spec.default.clone().unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        form.add_env(&name, &value);
        self.focus = Focus::Fields;
    }

    pub(super) fn confirmed(&mut self, action: ConfirmAction) -> Vec<Command> {
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
                if let Some(f) = &mut self.details.form {
                    f.dirty = false;
                }
                match after {
                    After::Quit => self.confirm_quit(),
                    After::QuitStopping => self.quit = true,
                    After::LeavePanel => {
                        self.details.form = None;
                        self.leave_panel();
                    }
                    After::CloseSimple => {}
                    After::Add(key) => {
                        if let Some(ty) = Catalog::get().find(key) {
                            self.start_new(ty);
                        }
                    }
                }
                Vec::new()
            }
        }
    }
}
