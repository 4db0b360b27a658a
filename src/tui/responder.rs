//! The agent's responder, edited on the agents screen (`e`): built-in rules (greeting,
//! keyword rules, fallback) or an OpenAI-compatible API (base URL, model, a masked API
//! key, system prompt, history, timeout, fallback). The stored key is never loaded, as
//! with connection secrets: typing replaces it, leaving it empty keeps it.

use super::form::single_line;
use crate::agents::responder::OpenAi;
use crate::agents::{ResponderConfig, Rule, Rules};
use crate::model::Agent;
use crate::secrets::SecretString;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;

/// A place the focus can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Kind,
    Greeting,
    Fallback,
    Keyword(usize),
    Reply(usize),
    AddRule,
    BaseUrl,
    Model,
    ApiKey,
    Prompt,
    History,
    Timeout,
    AiFallback,
}

pub enum Outcome {
    Consumed,
    /// Esc: close (the caller asks first when `dirty`).
    Close,
    Save,
}

pub struct ResponderForm {
    pub agent: Agent,
    pub openai: bool,
    pub greeting: TextArea<'static>,
    pub fallback: TextArea<'static>,
    pub rules: Vec<(TextArea<'static>, TextArea<'static>)>,
    pub base_url: TextArea<'static>,
    pub model: TextArea<'static>,
    pub api_key: TextArea<'static>,
    pub prompt: TextArea<'static>,
    pub history: TextArea<'static>,
    pub timeout: TextArea<'static>,
    pub ai_fallback: TextArea<'static>,
    pub focus: usize,
    pub dirty: bool,
}

impl ResponderForm {
    pub fn open(agent: &Agent) -> ResponderForm {
        let config: ResponderConfig = serde_json::from_str(&agent.responder).unwrap_or_default();
        let (rules, ai) = match &config {
            ResponderConfig::Rules(r) => (r.clone(), None),
            ResponderConfig::OpenAi(o) => (Rules::default(), Some(o.clone())),
        };
        let mut api_key = single_line("");
        api_key.set_mask_char('•');
        let stored = ai.as_ref().is_some_and(|o| o.api_key.is_some());
        api_key.set_placeholder_text(if stored {
            "•••••••• saved · type to replace"
        } else {
            "not set (servers that need no key)"
        });
        let text = |f: fn(&OpenAi) -> String, default: &str| {
            single_line(&ai.as_ref().map(f).unwrap_or_else(|| default.to_string()))
        };
        let mut form = ResponderForm {
            agent: agent.clone(),
            openai: ai.is_some(),
            greeting: single_line(&rules.greeting),
            fallback: single_line(&rules.fallback),
            rules: rules
                .rules
                .iter()
                .map(|r| (single_line(&r.keyword), single_line(&r.reply)))
                .collect(),
            base_url: text(|o| o.base_url.clone(), "https://api.openai.com/v1"),
            model: text(|o| o.model.clone(), ""),
            api_key,
            prompt: text(|o| o.system_prompt.clone(), ""),
            history: text(|o| o.history.to_string(), "10"),
            timeout: text(|o| o.timeout_secs.to_string(), "20"),
            ai_fallback: text(|o| o.fallback.clone(), ""),
            focus: 0,
            dirty: false,
        };
        form.focus_at(0);
        form
    }

    pub fn stops(&self) -> Vec<Stop> {
        let mut s = vec![Stop::Kind];
        if self.openai {
            s.extend([
                Stop::BaseUrl,
                Stop::Model,
                Stop::ApiKey,
                Stop::Prompt,
                Stop::History,
                Stop::Timeout,
                Stop::AiFallback,
            ]);
        } else {
            s.extend([Stop::Greeting, Stop::Fallback]);
            for i in 0..self.rules.len() {
                s.extend([Stop::Keyword(i), Stop::Reply(i)]);
            }
            s.push(Stop::AddRule);
        }
        s
    }

    pub fn focused(&self) -> Stop {
        self.stops()[self.focus.min(self.stops().len() - 1)]
    }

    pub fn text(&self, stop: Stop) -> Option<&TextArea<'static>> {
        Some(match stop {
            Stop::Greeting => &self.greeting,
            Stop::Fallback => &self.fallback,
            Stop::Keyword(i) => &self.rules.get(i)?.0,
            Stop::Reply(i) => &self.rules.get(i)?.1,
            Stop::BaseUrl => &self.base_url,
            Stop::Model => &self.model,
            Stop::ApiKey => &self.api_key,
            Stop::Prompt => &self.prompt,
            Stop::History => &self.history,
            Stop::Timeout => &self.timeout,
            Stop::AiFallback => &self.ai_fallback,
            Stop::Kind | Stop::AddRule => return None,
        })
    }

    fn text_mut(&mut self, stop: Stop) -> Option<&mut TextArea<'static>> {
        Some(match stop {
            Stop::Greeting => &mut self.greeting,
            Stop::Fallback => &mut self.fallback,
            Stop::Keyword(i) => &mut self.rules.get_mut(i)?.0,
            Stop::Reply(i) => &mut self.rules.get_mut(i)?.1,
            Stop::BaseUrl => &mut self.base_url,
            Stop::Model => &mut self.model,
            Stop::ApiKey => &mut self.api_key,
            Stop::Prompt => &mut self.prompt,
            Stop::History => &mut self.history,
            Stop::Timeout => &mut self.timeout,
            Stop::AiFallback => &mut self.ai_fallback,
            Stop::Kind | Stop::AddRule => return None,
        })
    }

    /// Moves the focus, showing a cursor only in the focused input.
    fn focus_at(&mut self, i: usize) {
        let stops = self.stops();
        self.focus = i.min(stops.len() - 1);
        for (n, stop) in stops.into_iter().enumerate() {
            let on = n == self.focus;
            if let Some(t) = self.text_mut(stop) {
                let style = if on {
                    ratatui::style::Style::default()
                        .add_modifier(ratatui::style::Modifier::REVERSED)
                } else {
                    ratatui::style::Style::default()
                };
                t.set_cursor_style(style);
                // Others show their beginning; the focused one is ready to append.
                t.move_cursor(if on {
                    ratatui_textarea::CursorMove::End
                } else {
                    ratatui_textarea::CursorMove::Head
                });
            }
        }
    }

    fn step(&mut self, by: isize) {
        let n = self.stops().len() as isize;
        self.focus_at((self.focus as isize + by).rem_euclid(n) as usize);
    }

    fn add_rule(&mut self) {
        self.rules.push((single_line(""), single_line("")));
        self.dirty = true;
        let at = self
            .stops()
            .iter()
            .position(|s| *s == Stop::Keyword(self.rules.len() - 1));
        self.focus_at(at.unwrap_or(0));
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let stop = self.focused();
        match key.code {
            KeyCode::Esc => return Outcome::Close,
            KeyCode::Char('s') if ctrl => return Outcome::Save,
            KeyCode::Tab | KeyCode::Down => self.step(1),
            KeyCode::BackTab | KeyCode::Up => self.step(-1),
            KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right if stop == Stop::Kind => {
                self.openai = !self.openai;
                self.dirty = true;
                self.focus_at(0);
            }
            KeyCode::Char('n') if ctrl && !self.openai => self.add_rule(),
            KeyCode::Enter | KeyCode::Char(' ') if stop == Stop::AddRule => self.add_rule(),
            KeyCode::Char('x') if ctrl => {
                if let Stop::Keyword(i) | Stop::Reply(i) = stop {
                    self.rules.remove(i);
                    self.dirty = true;
                    self.focus_at(self.focus.saturating_sub(1));
                }
            }
            KeyCode::Enter => self.step(1),
            _ => {
                if let Some(t) = self.text_mut(stop) {
                    let changed = if ctrl && key.code == KeyCode::Char('u') {
                        t.delete_line_by_head()
                    } else {
                        t.input(key)
                    };
                    self.dirty |= changed;
                }
            }
        }
        Outcome::Consumed
    }

    pub fn paste(&mut self, text: &str) {
        let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        let stop = self.focused();
        if let Some(t) = self.text_mut(stop)
            && t.insert_str(clean)
        {
            self.dirty = true;
        }
    }

    fn value(t: &TextArea<'static>) -> String {
        t.lines().join("").trim().to_string()
    }

    /// The responder to save and a newly typed API key, or what to fix.
    pub fn to_edit(&self) -> Result<(ResponderConfig, Option<SecretString>), String> {
        if !self.openai {
            let rules = self
                .rules
                .iter()
                .map(|(k, r)| Rule {
                    keyword: Self::value(k),
                    reply: Self::value(r),
                })
                .filter(|r| !(r.keyword.is_empty() && r.reply.is_empty()))
                .collect::<Vec<_>>();
            if let Some(n) = rules
                .iter()
                .position(|r| r.keyword.is_empty() || r.reply.is_empty())
            {
                return Err(format!("Rule {} needs both a keyword and a reply", n + 1));
            }
            return Ok((
                ResponderConfig::Rules(Rules {
                    greeting: Self::value(&self.greeting),
                    rules,
                    fallback: Self::value(&self.fallback),
                }),
                None,
            ));
        }
        let number = |t: &TextArea<'static>, what: &str| {
            Self::value(t)
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number"))
        };
        let key = Self::value(&self.api_key);
        Ok((
            ResponderConfig::OpenAi(OpenAi {
                base_url: Self::value(&self.base_url),
                model: Self::value(&self.model),
                // The service keeps the stored key unless a new one is given.
                api_key: None,
                system_prompt: Self::value(&self.prompt),
                history: number(&self.history, "History")? as u32,
                timeout_secs: number(&self.timeout, "Timeout")?,
                fallback: Self::value(&self.ai_fallback),
            }),
            (!key.is_empty()).then(|| SecretString::new(key)),
        ))
    }
}

/// What each stop is called on screen.
pub fn label(stop: Stop) -> String {
    match stop {
        Stop::Kind => "Responder".into(),
        Stop::Greeting => "Greeting".into(),
        Stop::Fallback => "Fallback".into(),
        Stop::Keyword(i) => format!("Rule {} keyword", i + 1),
        Stop::Reply(i) => format!("Rule {} reply", i + 1),
        Stop::AddRule => String::new(),
        Stop::BaseUrl => "Base URL*".into(),
        Stop::Model => "Model*".into(),
        Stop::ApiKey => "API key".into(),
        Stop::Prompt => "System prompt".into(),
        Stop::History => "History (turns)".into(),
        Stop::Timeout => "Timeout (s)".into(),
        Stop::AiFallback => "Fallback".into(),
    }
}
