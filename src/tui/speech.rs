//! The agent's speech engines, edited on the agents screen (`v`): speech-to-text URL and
//! model, text-to-speech URL, model and voice, and a masked key. As with every secret the
//! stored key is never loaded: typing replaces it, leaving it empty keeps it; emptying
//! every field and saving removes the engines and their key.

use super::form::single_line;
use super::responder::Outcome;
use super::theme::Theme;
use crate::agents::speech::{SpeechConfig, SpeechEdit};
use crate::model::Agent;
use crate::secrets::SecretString;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui_textarea::TextArea;

const LABELS: [&str; 6] = [
    "Speech-to-text URL",
    "Speech-to-text model",
    "Text-to-speech URL",
    "Text-to-speech model",
    "Voice",
    "Key",
];
const KEY: usize = 5;
const LABEL_W: u16 = 22;

pub struct SpeechForm {
    pub agent: Agent,
    inputs: Vec<TextArea<'static>>,
    focus: usize,
    pub dirty: bool,
}

impl SpeechForm {
    pub fn open(agent: &Agent) -> SpeechForm {
        let c = SpeechConfig::parse(&agent.speech);
        let mut key = single_line("");
        key.set_mask_char('•');
        key.set_placeholder_text(if c.api_key.is_some() {
            "•••••••• saved · type to replace"
        } else {
            "not set (servers that need no key)"
        });
        let mut stt_url = single_line(&c.stt_url);
        stt_url.set_placeholder_text("e.g. https://api.openai.com/v1");
        let mut tts_url = single_line(&c.tts_url);
        tts_url.set_placeholder_text("e.g. https://api.openai.com/v1");
        let mut form = SpeechForm {
            agent: agent.clone(),
            inputs: vec![
                stt_url,
                single_line(&c.stt_model),
                tts_url,
                single_line(&c.tts_model),
                single_line(&c.tts_voice),
                key,
            ],
            focus: 0,
            dirty: false,
        };
        form.focus_at(0);
        form
    }

    /// Moves the focus, showing a cursor only in the focused input.
    fn focus_at(&mut self, i: usize) {
        self.focus = i % self.inputs.len();
        for (n, t) in self.inputs.iter_mut().enumerate() {
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

    pub fn handle_key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let n = self.inputs.len();
        match key.code {
            KeyCode::Esc => return Outcome::Close,
            KeyCode::Char('s') if ctrl => return Outcome::Save,
            KeyCode::Tab | KeyCode::Down | KeyCode::Enter => self.focus_at(self.focus + 1),
            KeyCode::BackTab | KeyCode::Up => self.focus_at(self.focus + n - 1),
            _ => {
                let t = &mut self.inputs[self.focus];
                let changed = if ctrl && key.code == KeyCode::Char('u') {
                    t.delete_line_by_head()
                } else {
                    t.input(key)
                };
                self.dirty |= changed;
            }
        }
        Outcome::Consumed
    }

    pub fn paste(&mut self, text: &str) {
        let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        if self.inputs[self.focus].insert_str(clean) {
            self.dirty = true;
        }
    }

    fn value(&self, i: usize) -> String {
        self.inputs[i].lines().join("").trim().to_string()
    }

    /// Every field as typed (the service validates); a key only when one was typed.
    pub fn to_edit(&self) -> SpeechEdit {
        let key = self.value(KEY);
        SpeechEdit {
            stt_url: Some(self.value(0)),
            stt_model: Some(self.value(1)),
            tts_url: Some(self.value(2)),
            tts_model: Some(self.value(3)),
            tts_voice: Some(self.value(4)),
            key: (!key.is_empty()).then(|| SecretString::new(key)),
            clear: false,
        }
    }

    pub fn title(&self) -> String {
        format!("Speech engines · {}", super::view::shown(&self.agent.name))
    }

    /// The dialog's lines: labels (the focused one marked), then the keys.
    pub fn lines(&self, t: &Theme) -> Vec<Line<'static>> {
        let mut lines: Vec<Line> = LABELS
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let focused = i == self.focus;
                let text = format!(
                    " {}{}",
                    if focused { "▸" } else { " " },
                    super::view::pad(label, LABEL_W as usize)
                );
                if focused {
                    Line::styled(text, t.key())
                } else {
                    Line::raw(text)
                }
            })
            .collect();
        lines.push(Line::raw(
            " OpenAI-compatible: /audio/transcriptions and /audio/speech are appended.",
        ));
        lines.push(Line::raw(
            " SIP calls need both. Empty every field and save to remove them.",
        ));
        lines.push(Line::styled(
            " Tab next field   Ctrl-S save   Esc cancel",
            t.key(),
        ));
        lines
    }

    /// The inputs, beside their labels in the dialog's `inner` area.
    pub fn render_inputs(&self, f: &mut Frame, inner: Rect) {
        let at = LABEL_W + 3;
        for (row, input) in self.inputs.iter().enumerate() {
            let rect = Rect::new(
                inner.x + at,
                inner.y + row as u16,
                inner.width.saturating_sub(at + 1),
                1,
            );
            f.render_widget(input, rect);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn type_text(form: &mut SpeechForm, text: &str) {
        for c in text.chars() {
            form.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    #[test]
    fn typed_settings_become_an_edit_and_an_untouched_key_is_kept() {
        let agent = Agent {
            id: 1,
            tenant_id: 1,
            name: "Support".into(),
            description: String::new(),
            responder: "{}".into(),
            widget: "{}".into(),
            speech: r#"{"stt_url":"https://a.example/v1","stt_model":"whisper-1","api_key":{"key_id":"k","nonce":"n","ciphertext":"c","count":1}}"#.into(),
            desired: crate::model::DesiredState::Stopped,
            status: crate::model::Status::Stopped,
            version: 1,
            running_version: None,
            updated_by: "t".into(),
        };
        let mut form = SpeechForm::open(&agent);
        assert!(!form.dirty);
        form.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        form.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        type_text(&mut form, "https://b.example/v1");
        form.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        type_text(&mut form, "tts-1");
        form.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        type_text(&mut form, "alloy");
        assert!(form.dirty);
        let edit = form.to_edit();
        assert_eq!(edit.stt_url.as_deref(), Some("https://a.example/v1"));
        assert_eq!(edit.tts_url.as_deref(), Some("https://b.example/v1"));
        assert_eq!(edit.tts_voice.as_deref(), Some("alloy"));
        assert!(edit.key.is_none(), "the stored key is kept");
        form.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
        type_text(&mut form, "sk-typed");
        assert_eq!(form.to_edit().key.unwrap().expose(), "sk-typed");
        assert!(matches!(
            form.handle_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            Outcome::Save
        ));
    }
}
