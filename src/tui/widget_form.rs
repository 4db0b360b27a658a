//! The agent's Web Widget settings, edited on the agents screen (`w`): the catalog's
//! `web_widget` fields, one line each; the corner is a choice (Space or ←/→ switches).
//! An empty value means the catalog's default (shown as the placeholder).

use super::form::single_line;
use crate::catalog::{Catalog, FieldKind, FieldSpec};
use crate::model::Agent;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;

pub use super::responder::Outcome;

pub struct WidgetForm {
    pub agent: Agent,
    pub fields: Vec<(&'static FieldSpec, TextArea<'static>)>,
    pub focus: usize,
    pub dirty: bool,
}

impl WidgetForm {
    pub fn open(agent: &Agent) -> WidgetForm {
        let stored: serde_json::Value = serde_json::from_str(&agent.widget).unwrap_or_default();
        let fields = Catalog::get()
            .find(crate::widget::TYPE_KEY)
            .map(|t| t.fields.iter().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|spec| {
                let value = stored[&spec.key].as_str().unwrap_or_default();
                let mut text = single_line(value);
                let hint = match &spec.default {
                    Some(d) => format!("{} (default {d})", spec.hint),
                    None => spec.hint.clone(),
                };
                text.set_placeholder_text(hint);
                (spec, text)
            })
            .collect();
        let mut form = WidgetForm {
            agent: agent.clone(),
            fields,
            focus: 0,
            dirty: false,
        };
        form.focus_at(0);
        form
    }

    fn focus_at(&mut self, i: usize) {
        self.focus = i.min(self.fields.len().saturating_sub(1));
        for (n, (_, t)) in self.fields.iter_mut().enumerate() {
            let on = n == self.focus;
            t.set_cursor_style(if on {
                ratatui::style::Style::default().add_modifier(ratatui::style::Modifier::REVERSED)
            } else {
                ratatui::style::Style::default()
            });
            t.move_cursor(if on {
                ratatui_textarea::CursorMove::End
            } else {
                ratatui_textarea::CursorMove::Head
            });
        }
    }

    fn step(&mut self, by: isize) {
        let n = self.fields.len().max(1) as isize;
        self.focus_at((self.focus as isize + by).rem_euclid(n) as usize);
    }

    /// A choice moves to its next (or previous) option.
    fn cycle(&mut self, by: isize) {
        let Some((spec, text)) = self.fields.get_mut(self.focus) else {
            return;
        };
        let options = &spec.options;
        if options.is_empty() {
            return;
        }
        let now = text.lines().join("");
        let current = if now.trim().is_empty() {
            spec.default.clone().unwrap_or_default()
        } else {
            now
        };
        let at = options.iter().position(|o| *o == current).unwrap_or(0) as isize;
        let next = &options[(at + by).rem_euclid(options.len() as isize) as usize];
        *text = single_line(next);
        self.dirty = true;
        self.focus_at(self.focus);
    }

    fn focused_kind(&self) -> Option<FieldKind> {
        self.fields.get(self.focus).map(|(s, _)| s.kind)
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let choice = self.focused_kind() == Some(FieldKind::Choice);
        match key.code {
            KeyCode::Esc => return Outcome::Close,
            KeyCode::Char('s') if ctrl => return Outcome::Save,
            KeyCode::Tab | KeyCode::Down | KeyCode::Enter => self.step(1),
            KeyCode::BackTab | KeyCode::Up => self.step(-1),
            KeyCode::Char(' ') | KeyCode::Right if choice => self.cycle(1),
            KeyCode::Left if choice => self.cycle(-1),
            _ if choice => {}
            _ => {
                if let Some((_, t)) = self.fields.get_mut(self.focus) {
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
        if self.focused_kind() == Some(FieldKind::Choice) {
            return;
        }
        let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        if let Some((_, t)) = self.fields.get_mut(self.focus)
            && t.insert_str(clean)
        {
            self.dirty = true;
        }
    }

    /// The settings to save (empty values left out: the defaults apply), or what to fix.
    pub fn to_widget(&self) -> Result<serde_json::Value, String> {
        let mut obj = serde_json::Map::new();
        for (spec, t) in &self.fields {
            let v = t.lines().join("").trim().to_string();
            if !v.is_empty() {
                obj.insert(spec.key.clone(), serde_json::Value::String(v));
            }
        }
        let w = serde_json::Value::Object(obj);
        crate::widget::settings::validate(&w)?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredState, Status};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn agent(widget: &str) -> Agent {
        Agent {
            id: 1,
            tenant_id: 1,
            name: "Shop".into(),
            description: String::new(),
            responder: "{}".into(),
            widget: widget.into(),
            speech: "{}".into(),
            desired: DesiredState::Stopped,
            status: Status::Stopped,
            version: 1,
            running_version: None,
            updated_by: "t".into(),
        }
    }

    #[test]
    fn typed_settings_are_checked_and_the_corner_is_a_choice() {
        let mut f = WidgetForm::open(&agent(r#"{"title":"Ask us"}"#));
        for c in "https://www.example.com".chars() {
            f.handle_key(key(KeyCode::Char(c)));
        }
        let w = f.to_widget().unwrap();
        assert_eq!(w["allowed_origins"], "https://www.example.com");
        assert_eq!(w["title"], "Ask us");
        let position = f
            .fields
            .iter()
            .position(|(s, _)| s.key == "position")
            .unwrap();
        f.focus_at(position);
        f.handle_key(key(KeyCode::Char(' ')));
        assert_eq!(f.to_widget().unwrap()["position"], "bottom-left");
        f.handle_key(key(KeyCode::Char('x')));
        assert_eq!(f.to_widget().unwrap()["position"], "bottom-left");
        let colour = f
            .fields
            .iter()
            .position(|(s, _)| s.key == "colour")
            .unwrap();
        f.focus_at(colour);
        for c in "red".chars() {
            f.handle_key(key(KeyCode::Char(c)));
        }
        assert!(f.to_widget().unwrap_err().contains("hex colour"));
        assert!(f.dirty);
    }
}
