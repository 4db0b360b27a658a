//! The popups over the channels screen — the Add picker, help, setup pages, the
//! variable picker, confirmations, sign-in with Meta, a long text shown whole. Each owns
//! its state and its keys; what a key asks of the rest of the console comes back as a
//! `Step`, which `App` carries out.

use super::signin::{Pick, SignIn, Stage};
use crate::catalog::{Catalog, ChannelType};
use crate::model::{Agent, Connection};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What happens once a discard (or quit) question is answered yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Quit,
    /// Quit even though channels run here (they stop, and resume at the next start).
    QuitStopping,
    LeavePanel,
    /// A new connection of this type (its catalog key), chosen in the Add picker.
    Add(&'static str),
    /// Close the agents screen's Simple mode form.
    CloseSimple,
}

pub enum ConfirmAction {
    Delete(Box<Connection>),
    /// Stop a RUNNING connection.
    Stop(Box<Connection>),
    /// Stop, then Start once it is STOPPED.
    Restart(Box<Connection>),
    DeleteAgent(Box<Agent>),
    Discard(After),
}

pub struct Confirm {
    pub title: &'static str,
    pub question: String,
    pub yes: &'static str,
    pub action: ConfirmAction,
}

pub enum Overlay {
    Picker {
        selected: usize,
        show_deprecated: bool,
    },
    Help {
        scroll: u16,
    },
    Setup {
        ty: &'static ChannelType,
        scroll: u16,
        /// Opened from the Add picker (its selection and deprecated toggle): closing
        /// goes back there.
        picker: Option<(usize, bool)>,
    },
    EnvPicker {
        selected: usize,
    },
    Confirm(Confirm),
    SignIn(SignIn),
    /// A long text shown whole, wrapped and scrollable (a status message, a log line).
    Text {
        title: String,
        body: String,
        scroll: u16,
    },
}

/// What a key on an overlay asks for.
pub enum Step {
    /// The overlay stays, as it now is.
    Open(Overlay),
    Closed,
    /// Yes to a question.
    Confirmed(ConfirmAction),
    /// Enter on a channel type in the Add picker.
    NewConnection(&'static ChannelType),
    /// Enter on the variable picker: the offered variable at this row, or (past the
    /// offered ones) an empty row to name one.
    PickEnv(usize),
    /// Enter on what a Meta sign-in reaches.
    SignInPicked(Pick),
}

/// Types offered by the Add picker: current ones, plus legacy ones when toggled on.
pub fn picker_types(show_deprecated: bool) -> Vec<&'static ChannelType> {
    Catalog::get()
        .listed()
        .filter(|t| show_deprecated || !t.deprecated)
        .collect()
}

impl Overlay {
    pub fn help() -> Overlay {
        Overlay::Help { scroll: 0 }
    }

    /// `env_choices`: how many variables the open form offers (the variable picker lists
    /// them and one more row, "another variable").
    pub fn on_key(self, key: KeyEvent, env_choices: usize) -> Step {
        let ctrl_g =
            key.code == KeyCode::Char('g') && key.modifiers.contains(KeyModifiers::CONTROL);
        let close = matches!(key.code, KeyCode::Esc | KeyCode::Char('q'));
        match self {
            Overlay::SignIn(s) => sign_in_key(s, key),
            Overlay::Confirm(confirm) => match key.code {
                KeyCode::Char('y' | 'Y') => Step::Confirmed(confirm.action),
                KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q') => Step::Closed,
                _ => Step::Open(Overlay::Confirm(confirm)),
            },
            Overlay::Text { .. } if close || key.code == KeyCode::Char('i') => Step::Closed,
            Overlay::Text {
                title,
                body,
                scroll,
            } => Step::Open(Overlay::Text {
                title,
                body,
                scroll: scrolled(scroll, key),
            }),
            // A setup page opened from the picker goes back to it.
            Overlay::Setup {
                picker: Some((selected, show_deprecated)),
                ..
            } if close || ctrl_g => Step::Open(Overlay::Picker {
                selected,
                show_deprecated,
            }),
            Overlay::Help { .. } | Overlay::Setup { .. }
                if close || ctrl_g || key.code == KeyCode::Char('?') =>
            {
                Step::Closed
            }
            Overlay::Help { scroll } => Step::Open(Overlay::Help {
                scroll: scrolled(scroll, key),
            }),
            Overlay::Setup { ty, scroll, picker } => Step::Open(Overlay::Setup {
                ty,
                scroll: scrolled(scroll, key),
                picker,
            }),
            Overlay::Picker {
                selected,
                show_deprecated,
            } => picker_key(selected, show_deprecated, key),
            Overlay::EnvPicker { selected } => {
                let last = env_choices;
                match key.code {
                    KeyCode::Esc => Step::Closed,
                    KeyCode::Down | KeyCode::Char('j') => Step::Open(Overlay::EnvPicker {
                        selected: (selected + 1).min(last),
                    }),
                    KeyCode::Up | KeyCode::Char('k') => Step::Open(Overlay::EnvPicker {
                        selected: selected.saturating_sub(1),
                    }),
                    KeyCode::Enter => Step::PickEnv(selected),
                    _ => Step::Open(Overlay::EnvPicker { selected }),
                }
            }
        }
    }

    /// The mouse wheel over a scrollable overlay.
    pub fn scroll_by(&mut self, delta: i32) {
        if let Overlay::Help { scroll }
        | Overlay::Setup { scroll, .. }
        | Overlay::Text { scroll, .. } = self
        {
            *scroll = (*scroll as i32 + delta).clamp(0, u16::MAX as i32) as u16;
        }
    }
}

fn sign_in_key(mut s: SignIn, key: KeyEvent) -> Step {
    match (&mut s.stage, key.code) {
        (_, KeyCode::Esc | KeyCode::Char('q')) => {
            // The flow polling Meta behind the dialog ends with it.
            s.stop.cancel();
            Step::Closed
        }
        (Stage::Failed(_), KeyCode::Enter) => Step::Closed,
        (Stage::Choose { picks, selected }, KeyCode::Down | KeyCode::Char('j')) => {
            *selected = (*selected + 1).min(picks.len().saturating_sub(1));
            Step::Open(Overlay::SignIn(s))
        }
        (Stage::Choose { selected, .. }, KeyCode::Up | KeyCode::Char('k')) => {
            *selected = selected.saturating_sub(1);
            Step::Open(Overlay::SignIn(s))
        }
        (Stage::Choose { picks, selected }, KeyCode::Enter) => match picks.get(*selected) {
            Some(pick) => Step::SignInPicked(pick.clone()),
            None => Step::Open(Overlay::SignIn(s)),
        },
        _ => Step::Open(Overlay::SignIn(s)),
    }
}

fn picker_key(selected: usize, show_deprecated: bool, key: KeyEvent) -> Step {
    let types = picker_types(show_deprecated);
    let stay = |selected| {
        Step::Open(Overlay::Picker {
            selected,
            show_deprecated,
        })
    };
    match key.code {
        KeyCode::Esc | KeyCode::Char('q') => Step::Closed,
        KeyCode::Char('d') => Step::Open(Overlay::Picker {
            selected: 0,
            show_deprecated: !show_deprecated,
        }),
        // The highlighted type's setup page, before choosing it.
        KeyCode::Char('g') if key.modifiers.contains(KeyModifiers::CONTROL) => {
            match types.get(selected) {
                Some(ty) => Step::Open(Overlay::Setup {
                    ty,
                    scroll: 0,
                    picker: Some((selected, show_deprecated)),
                }),
                None => stay(selected),
            }
        }
        KeyCode::Down | KeyCode::Char('j') => {
            stay((selected + 1).min(types.len().saturating_sub(1)))
        }
        KeyCode::Up | KeyCode::Char('k') => stay(selected.saturating_sub(1)),
        KeyCode::Enter => match types.get(selected) {
            Some(ty) => Step::NewConnection(ty),
            None => Step::Closed,
        },
        _ => stay(selected),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn open(step: Step) -> Overlay {
        match step {
            Step::Open(o) => o,
            _ => panic!("the overlay closed"),
        }
    }

    #[test]
    fn enter_in_the_picker_with_deprecated_types_shown_picks_the_highlighted_type() {
        let all = picker_types(true);
        let current = picker_types(false);
        // A row whose index means another type in the list without deprecated ones.
        let i = all
            .iter()
            .enumerate()
            .position(|(i, t)| current.get(i).map(|c| c.key != t.key).unwrap_or(true))
            .expect("the catalog lists deprecated types among current ones");
        let picker = Overlay::Picker {
            selected: i,
            show_deprecated: true,
        };
        match picker.on_key(key(KeyCode::Enter), 0) {
            Step::NewConnection(ty) => assert_eq!(ty.key, all[i].key),
            _ => panic!("Enter did not pick a type"),
        }
    }

    #[test]
    fn a_setup_page_opened_from_the_picker_goes_back_to_the_same_row() {
        let picker = Overlay::Picker {
            selected: 2,
            show_deprecated: false,
        };
        let ctrl_g = KeyEvent::new(KeyCode::Char('g'), KeyModifiers::CONTROL);
        let setup = open(picker.on_key(ctrl_g, 0));
        assert!(matches!(
            setup,
            Overlay::Setup {
                picker: Some((2, false)),
                ..
            }
        ));
        let back = open(setup.on_key(key(KeyCode::Esc), 0));
        assert!(matches!(
            back,
            Overlay::Picker {
                selected: 2,
                show_deprecated: false
            }
        ));
    }

    #[test]
    fn a_question_is_answered_by_y_or_dismissed_by_n_and_esc() {
        let ask = || {
            Overlay::Confirm(Confirm {
                title: "Quit?",
                question: "Quit?".into(),
                yes: "Quit",
                action: ConfirmAction::Discard(After::Quit),
            })
        };
        assert!(matches!(
            ask().on_key(key(KeyCode::Char('y')), 0),
            Step::Confirmed(ConfirmAction::Discard(After::Quit))
        ));
        assert!(matches!(
            ask().on_key(key(KeyCode::Char('n')), 0),
            Step::Closed
        ));
        assert!(matches!(ask().on_key(key(KeyCode::Esc), 0), Step::Closed));
        // Any other key leaves the question on screen.
        assert!(matches!(
            ask().on_key(key(KeyCode::Enter), 0),
            Step::Open(Overlay::Confirm(_))
        ));
    }

    #[test]
    fn the_variable_picker_stops_at_its_last_row() {
        let mut o = Overlay::EnvPicker { selected: 0 };
        for _ in 0..5 {
            o = open(o.on_key(key(KeyCode::Down), 2));
        }
        assert!(matches!(o, Overlay::EnvPicker { selected: 2 }));
        assert!(matches!(o.on_key(key(KeyCode::Enter), 2), Step::PickEnv(2)));
    }
}
