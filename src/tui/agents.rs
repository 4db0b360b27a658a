//! The AI Agents screen: agents on the left; on the right the selected agent with
//! Start/Stop agent and its Communication channels card (Add → type → tick connections
//! → Inbound → Save; Simple mode creates a Telegram or WhatsApp connection inline).

use super::form::{Form, FormOutcome, Slot};
use super::worker::Command;
use crate::catalog::{Catalog, ChannelType};
use crate::model::{Agent, AgentChannel, Connection};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentsFocus {
    List,
    Card,
}

pub enum AddFlow {
    /// The channel type dropdown, with its Show deprecated toggle.
    PickType { sel: usize, show_deprecated: bool },
    /// Tick the connections of that type; Inbound applies to all ticked.
    PickConnections {
        ty: &'static ChannelType,
        rows: Vec<(Connection, bool)>,
        sel: usize,
        inbound: bool,
    },
    /// Simple mode: the connection's credentials collected right here.
    Simple { form: Box<Form>, inbound: bool },
    /// A name for a new agent.
    NewAgent {
        name: Box<ratatui_textarea::TextArea<'static>>,
    },
    /// The selected agent's responder (`e`).
    Responder(Box<super::responder::ResponderForm>),
    /// The selected agent's speech engines (`v`).
    Speech(Box<super::speech::SpeechForm>),
    /// The selected agent's Web Widget settings (`w`).
    Widget(Box<super::widget_form::WidgetForm>),
}

/// The selected agent's Web Widget as the panel shows it: its connection (public id,
/// status with the live visitors) and its recent log.
#[derive(Debug, Clone)]
pub struct WidgetView {
    pub agent_id: i64,
    pub connection: Option<Connection>,
    pub log: Vec<crate::model::LogLine>,
}

/// Log lines of the widget kept on the panel.
pub const WIDGET_LOG_LINES: usize = 6;

pub struct AgentsScreen {
    pub agents: Vec<Agent>,
    pub selected: Option<i64>,
    pub card: Vec<(Connection, AgentChannel)>,
    pub card_for: Option<i64>,
    pub focus: AgentsFocus,
    pub card_sel: usize,
    pub add: Option<AddFlow>,
    pub loaded: bool,
    pub widget: Option<WidgetView>,
}

impl Default for AgentsScreen {
    fn default() -> Self {
        AgentsScreen {
            agents: Vec::new(),
            selected: None,
            card: Vec::new(),
            card_for: None,
            focus: AgentsFocus::List,
            card_sel: 0,
            add: None,
            loaded: false,
            widget: None,
        }
    }
}

/// Types that may be attached from an agent's page.
pub fn attachable_types(show_deprecated: bool) -> Vec<&'static ChannelType> {
    Catalog::get()
        .listed()
        .filter(|t| show_deprecated || !t.deprecated)
        .collect()
}

/// Whether the type has Simple mode: the catalog says (WhatsApp and Telegram).
pub fn has_simple_mode(ty: &ChannelType) -> bool {
    ty.simple_mode
}

/// What the agents screen asks of the app besides store commands.
pub enum AgentsOutcome {
    Commands(Vec<Command>),
    Flash(String),
    SwitchToChannels,
    Quit,
    Help,
    AskDelete(Box<Agent>),
    /// Esc in Simple mode or the responder editor with something typed: ask before
    /// discarding it.
    AskDiscardSimple(String),
}

/// "the new Telegram connection 'Night bot'", for the discard question.
fn describe_new(form: &Form) -> String {
    let name = form.value(&Slot::Name);
    if name.trim().is_empty() {
        format!("the new {} connection", form.ty.name)
    } else {
        format!("the new {} connection '{}'", form.ty.name, name.trim())
    }
}

impl AgentsScreen {
    pub fn selected_agent(&self) -> Option<&Agent> {
        self.selected
            .and_then(|id| self.agents.iter().find(|a| a.id == id))
    }

    pub fn set_agents(&mut self, agents: Vec<Agent>) {
        self.loaded = true;
        self.agents = agents;
        if self.selected_agent().is_none() {
            self.selected = self.agents.first().map(|a| a.id);
            self.card.clear();
            self.card_for = None;
        }
    }

    /// The card (and the Web Widget) of the selected agent is needed (or stale).
    pub fn card_request(&self) -> Vec<Command> {
        match self.selected {
            Some(id) if self.card_for != Some(id) => vec![
                Command::LoadCard { agent_id: id },
                Command::LoadWidget { agent_id: id },
            ],
            _ => Vec::new(),
        }
    }

    pub fn set_widget(&mut self, view: WidgetView) {
        if self.selected == Some(view.agent_id) {
            self.widget = Some(view);
        }
    }

    /// The widget shown, if it is this connection.
    fn shown_widget(&self, connection_id: i64) -> bool {
        self.widget
            .as_ref()
            .and_then(|w| w.connection.as_ref())
            .is_some_and(|c| c.id == connection_id)
    }

    /// Another process changed the shown widget's status or log: read it again.
    pub fn widget_changed(&self, connection_id: i64) -> Option<Command> {
        let w = self.widget.as_ref()?;
        self.shown_widget(connection_id)
            .then_some(Command::LoadWidget {
                agent_id: w.agent_id,
            })
    }

    /// Live lines from this process's runtime; true when the panel shows some of them.
    pub fn on_log_lines(&mut self, lines: &[crate::model::LogLine]) -> bool {
        let Some(id) = self
            .widget
            .as_ref()
            .and_then(|w| w.connection.as_ref())
            .map(|c| c.id)
        else {
            return false;
        };
        let Some(w) = self.widget.as_mut() else {
            return false;
        };
        let before = w.log.len();
        w.log
            .extend(lines.iter().filter(|l| l.connection_id == id).cloned());
        let added = w.log.len() != before;
        if w.log.len() > WIDGET_LOG_LINES {
            w.log.drain(..w.log.len() - WIDGET_LOG_LINES);
        }
        added
    }

    fn move_list(&mut self, delta: isize) {
        let Some(i) = self
            .selected
            .and_then(|id| self.agents.iter().position(|a| a.id == id))
        else {
            self.selected = self.agents.first().map(|a| a.id);
            return;
        };
        let to = (i as isize + delta).clamp(0, self.agents.len() as isize - 1) as usize;
        self.selected = Some(self.agents[to].id);
        self.card_sel = 0;
    }

    pub fn on_key(&mut self, key: KeyEvent, all: &[Connection], can_edit: bool) -> AgentsOutcome {
        if self.add.is_some() {
            return self.add_key(key, all);
        }
        let none = AgentsOutcome::Commands(Vec::new());
        let ro = || AgentsOutcome::Flash("Read-only: viewers cannot change agents".into());
        match key.code {
            KeyCode::Char('A') | KeyCode::Char('C') => return AgentsOutcome::SwitchToChannels,
            KeyCode::Char('q') => return AgentsOutcome::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => return AgentsOutcome::Help,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    AgentsFocus::List => AgentsFocus::Card,
                    AgentsFocus::Card => AgentsFocus::List,
                };
            }
            KeyCode::Esc => self.focus = AgentsFocus::List,
            KeyCode::Down | KeyCode::Char('j') => match self.focus {
                AgentsFocus::List => self.move_list(1),
                AgentsFocus::Card => {
                    self.card_sel = (self.card_sel + 1).min(self.card.len().saturating_sub(1))
                }
            },
            KeyCode::Up | KeyCode::Char('k') => match self.focus {
                AgentsFocus::List => self.move_list(-1),
                AgentsFocus::Card => self.card_sel = self.card_sel.saturating_sub(1),
            },
            KeyCode::Char('n') if can_edit => {
                let mut name = super::form::single_line("");
                name.set_placeholder_text("required · the agent's name");
                name.set_cursor_style(
                    ratatui::style::Style::default()
                        .add_modifier(ratatui::style::Modifier::REVERSED),
                );
                self.add = Some(AddFlow::NewAgent {
                    name: Box::new(name),
                });
            }
            KeyCode::Char('e') if can_edit => {
                let Some(a) = self.selected_agent() else {
                    return AgentsOutcome::Flash("Create an agent first: n".into());
                };
                self.add = Some(AddFlow::Responder(Box::new(
                    super::responder::ResponderForm::open(a),
                )));
            }
            KeyCode::Char('v') if can_edit => {
                let Some(a) = self.selected_agent() else {
                    return AgentsOutcome::Flash("Create an agent first: n".into());
                };
                self.add = Some(AddFlow::Speech(Box::new(super::speech::SpeechForm::open(
                    a,
                ))));
            }
            KeyCode::Char('w') if can_edit => {
                let Some(a) = self.selected_agent() else {
                    return AgentsOutcome::Flash("Create an agent first: n".into());
                };
                self.add = Some(AddFlow::Widget(Box::new(
                    super::widget_form::WidgetForm::open(a),
                )));
            }
            KeyCode::Char('s') if can_edit => {
                let Some(a) = self.selected_agent() else {
                    return none;
                };
                let run = a.status != crate::model::Status::Running;
                return AgentsOutcome::Commands(vec![Command::RunAgent {
                    agent: Box::new(a.clone()),
                    run,
                }]);
            }
            KeyCode::Char('a') if can_edit => {
                if self.selected_agent().is_none() {
                    return AgentsOutcome::Flash("Create an agent first: n".into());
                }
                self.add = Some(AddFlow::PickType {
                    sel: 0,
                    show_deprecated: false,
                });
            }
            KeyCode::Char(' ') if can_edit && self.focus == AgentsFocus::Card => {
                let (Some(a), Some((c, ch))) =
                    (self.selected_agent(), self.card.get(self.card_sel))
                else {
                    return none;
                };
                if ch.detached {
                    return AgentsOutcome::Flash(format!(
                        "'{}' is detached; add it again to change it",
                        c.name
                    ));
                }
                return AgentsOutcome::Commands(vec![Command::Attach {
                    agent: Box::new(a.clone()),
                    items: vec![(c.clone(), !ch.inbound)],
                }]);
            }
            KeyCode::Char('x') | KeyCode::Char('D')
                if can_edit && self.focus == AgentsFocus::Card =>
            {
                let (Some(a), Some((c, ch))) =
                    (self.selected_agent(), self.card.get(self.card_sel))
                else {
                    return none;
                };
                if ch.detached {
                    return none;
                }
                return AgentsOutcome::Commands(vec![Command::Detach {
                    agent: Box::new(a.clone()),
                    connection: Box::new(c.clone()),
                }]);
            }
            KeyCode::Char('D') | KeyCode::Delete if can_edit && self.focus == AgentsFocus::List => {
                if let Some(a) = self.selected_agent() {
                    return AgentsOutcome::AskDelete(Box::new(a.clone()));
                }
            }
            KeyCode::Char('n' | 's' | 'a' | 'e' | 'v' | 'w' | ' ' | 'x' | 'D') => return ro(),
            _ => {}
        }
        AgentsOutcome::Commands(self.card_request())
    }

    fn add_key(&mut self, key: KeyEvent, all: &[Connection]) -> AgentsOutcome {
        let none = AgentsOutcome::Commands(Vec::new());
        let Some(flow) = self.add.take() else {
            return none;
        };
        let agent = self.selected_agent().cloned();
        let ctrl_s =
            key.code == KeyCode::Char('s') && key.modifiers.contains(KeyModifiers::CONTROL);
        let next = match flow {
            AddFlow::PickType {
                sel,
                show_deprecated,
            } => {
                let types = attachable_types(show_deprecated);
                match key.code {
                    KeyCode::Esc => None,
                    KeyCode::Char('d') => Some(AddFlow::PickType {
                        sel: 0,
                        show_deprecated: !show_deprecated,
                    }),
                    KeyCode::Down | KeyCode::Char('j') => Some(AddFlow::PickType {
                        sel: (sel + 1).min(types.len().saturating_sub(1)),
                        show_deprecated,
                    }),
                    KeyCode::Up | KeyCode::Char('k') => Some(AddFlow::PickType {
                        sel: sel.saturating_sub(1),
                        show_deprecated,
                    }),
                    KeyCode::Enter => {
                        let ty = types[sel.min(types.len() - 1)];
                        let mut rows: Vec<(Connection, bool)> = all
                            .iter()
                            .filter(|c| c.type_key == ty.key)
                            .map(|c| (c.clone(), false))
                            .collect();
                        rows.sort_by_key(|(c, _)| c.name.to_lowercase());
                        Some(AddFlow::PickConnections {
                            ty,
                            rows,
                            sel: 0,
                            inbound: true,
                        })
                    }
                    _ => Some(AddFlow::PickType {
                        sel,
                        show_deprecated,
                    }),
                }
            }
            AddFlow::PickConnections {
                ty,
                mut rows,
                sel,
                inbound,
            } => {
                // The last row is "new connection (Simple mode)" where it exists.
                let extra = usize::from(has_simple_mode(ty));
                let count = rows.len() + extra;
                match key.code {
                    KeyCode::Esc => None,
                    KeyCode::Down | KeyCode::Char('j') => Some(AddFlow::PickConnections {
                        ty,
                        rows,
                        sel: (sel + 1).min(count.saturating_sub(1)),
                        inbound,
                    }),
                    KeyCode::Up | KeyCode::Char('k') => Some(AddFlow::PickConnections {
                        ty,
                        rows,
                        sel: sel.saturating_sub(1),
                        inbound,
                    }),
                    KeyCode::Char('i') => Some(AddFlow::PickConnections {
                        ty,
                        rows,
                        sel,
                        inbound: !inbound,
                    }),
                    KeyCode::Char(' ') | KeyCode::Enter if sel == rows.len() && extra == 1 => {
                        Some(AddFlow::Simple {
                            form: Box::new(Form::simple(ty)),
                            inbound,
                        })
                    }
                    KeyCode::Char(' ') => {
                        if let Some(row) = rows.get_mut(sel) {
                            row.1 = !row.1;
                        }
                        Some(AddFlow::PickConnections {
                            ty,
                            rows,
                            sel,
                            inbound,
                        })
                    }
                    KeyCode::Enter | KeyCode::Char('s') if key.code == KeyCode::Enter || ctrl_s => {
                        let items: Vec<(Connection, bool)> = rows
                            .iter()
                            .filter(|(_, t)| *t)
                            .map(|(c, _)| (c.clone(), inbound))
                            .collect();
                        let Some(agent) = agent else { return none };
                        if items.is_empty() {
                            self.add = Some(AddFlow::PickConnections {
                                ty,
                                rows,
                                sel,
                                inbound,
                            });
                            return AgentsOutcome::Flash(
                                "Tick a connection with Space first".into(),
                            );
                        }
                        return AgentsOutcome::Commands(vec![Command::Attach {
                            agent: Box::new(agent),
                            items,
                        }]);
                    }
                    _ => Some(AddFlow::PickConnections {
                        ty,
                        rows,
                        sel,
                        inbound,
                    }),
                }
            }
            AddFlow::Simple { mut form, inbound } => {
                if ctrl_s {
                    let Some(agent) = agent else { return none };
                    let draft = form.to_draft();
                    self.add = Some(AddFlow::Simple { form, inbound });
                    return AgentsOutcome::Commands(vec![Command::SimpleAttach {
                        agent: Box::new(agent),
                        draft,
                        inbound,
                    }]);
                }
                if key.code == KeyCode::Esc && form.dirty {
                    // Typed credentials are not thrown away on one key.
                    let what = describe_new(&form);
                    self.add = Some(AddFlow::Simple { form, inbound });
                    return AgentsOutcome::AskDiscardSimple(what);
                }
                match form.handle_key(key) {
                    FormOutcome::Left => None,
                    _ => {
                        if form.focus.is_none() {
                            form.set_focus(Some(0));
                        }
                        Some(AddFlow::Simple { form, inbound })
                    }
                }
            }
            AddFlow::Responder(mut form) => {
                use super::responder::Outcome;
                match form.handle_key(key) {
                    Outcome::Consumed => Some(AddFlow::Responder(form)),
                    Outcome::Close if form.dirty => {
                        let what =
                            format!("your changes to the responder of '{}'", form.agent.name);
                        self.add = Some(AddFlow::Responder(form));
                        return AgentsOutcome::AskDiscardSimple(what);
                    }
                    Outcome::Close => None,
                    Outcome::Save => {
                        let edit = form.to_edit();
                        let agent = Box::new(form.agent.clone());
                        self.add = Some(AddFlow::Responder(form));
                        return match edit {
                            Ok((responder, api_key)) => {
                                AgentsOutcome::Commands(vec![Command::EditResponder {
                                    agent,
                                    responder: Box::new(responder),
                                    api_key,
                                }])
                            }
                            Err(why) => AgentsOutcome::Flash(format!("Not saved: {why}")),
                        };
                    }
                }
            }
            AddFlow::Speech(mut form) => {
                use super::responder::Outcome;
                match form.handle_key(key) {
                    Outcome::Consumed => Some(AddFlow::Speech(form)),
                    Outcome::Close if form.dirty => {
                        let what = format!(
                            "your changes to the speech engines of '{}'",
                            form.agent.name
                        );
                        self.add = Some(AddFlow::Speech(form));
                        return AgentsOutcome::AskDiscardSimple(what);
                    }
                    Outcome::Close => None,
                    Outcome::Save => {
                        let command = Command::EditSpeech {
                            agent: Box::new(form.agent.clone()),
                            speech: form.to_edit(),
                        };
                        self.add = Some(AddFlow::Speech(form));
                        return AgentsOutcome::Commands(vec![command]);
                    }
                }
            }
            AddFlow::Widget(mut form) => {
                use super::widget_form::Outcome;
                match form.handle_key(key) {
                    Outcome::Consumed => Some(AddFlow::Widget(form)),
                    Outcome::Close if form.dirty => {
                        let what =
                            format!("your changes to the Web Widget of '{}'", form.agent.name);
                        self.add = Some(AddFlow::Widget(form));
                        return AgentsOutcome::AskDiscardSimple(what);
                    }
                    Outcome::Close => None,
                    Outcome::Save => {
                        let saved = form.to_widget();
                        let agent = Box::new(form.agent.clone());
                        self.add = Some(AddFlow::Widget(form));
                        return match saved {
                            Ok(widget) => {
                                AgentsOutcome::Commands(vec![Command::EditWidget { agent, widget }])
                            }
                            Err(why) => AgentsOutcome::Flash(format!("Not saved: {why}")),
                        };
                    }
                }
            }
            AddFlow::NewAgent { mut name } => {
                if ctrl_s || key.code == KeyCode::Enter {
                    let typed = name.lines().join("");
                    self.add = Some(AddFlow::NewAgent { name });
                    return AgentsOutcome::Commands(vec![Command::CreateAgent { name: typed }]);
                }
                match key.code {
                    KeyCode::Esc => None,
                    KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        name.delete_line_by_head();
                        Some(AddFlow::NewAgent { name })
                    }
                    _ => {
                        name.input(key);
                        Some(AddFlow::NewAgent { name })
                    }
                }
            }
        };
        self.add = next;
        none
    }

    /// Closes Simple mode or the responder editor, its input discarded (the operator
    /// said so).
    pub fn discard_simple(&mut self) {
        if matches!(
            self.add,
            Some(
                AddFlow::Simple { .. }
                    | AddFlow::Responder(_)
                    | AddFlow::Speech(_)
                    | AddFlow::Widget(_)
            )
        ) {
            self.add = None;
        }
    }

    /// Pasted text goes to the inline form (a token copied from BotFather).
    pub fn on_paste(&mut self, text: &str) {
        match &mut self.add {
            Some(AddFlow::Simple { form, .. }) => {
                form.paste(text);
            }
            Some(AddFlow::NewAgent { name }) => {
                name.insert_str(text.replace(['\n', '\r'], ""));
            }
            Some(AddFlow::Responder(form)) => form.paste(text),
            Some(AddFlow::Speech(form)) => form.paste(text),
            Some(AddFlow::Widget(form)) => form.paste(text),
            _ => {}
        }
    }
}
