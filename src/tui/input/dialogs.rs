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
        if self.form.as_ref().is_some_and(|f| f.is_new()) {
            self.form = None;
        }
        self.sync_form_to_selection();
    }

    pub(super) fn ask_discard(&mut self, after: After) {
        let name = self
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
        self.form = Some(form);
        self.focus = Focus::Fields;
    }

    /// Enter on "Advanced mode: off": the sign-in dialog, and the flow behind it.
    pub(super) fn start_sign_in(&mut self) -> Vec<Command> {
        let (Some(app), Some(form)) = (self.meta_app.clone(), &self.form) else {
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
        if let Some(form) = &mut self.form {
            form.fill(&pick.fields, &pick.secrets);
            self.flash(
                format!("Filled from Meta: {}. Review, then Save (^S)", pick.label),
                FlashKind::Info,
            );
        }
    }

    pub(super) fn overlay_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(overlay) = self.overlay.take() else {
            return Vec::new();
        };
        let mut keep = true;
        let mut out = Vec::new();
        let overlay = match overlay {
            Overlay::SignIn(mut s) => {
                use crate::tui::signin::Stage;
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

    pub(super) fn pick_env(&mut self, selected: usize) {
        let Some(form) = &mut self.form else { return };
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
