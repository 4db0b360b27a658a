//! The connector form: "New connector" and the Details panel share it.
//!
//! Secret inputs start empty and masked: the stored value is never loaded, so it
//! cannot be shown — not even its length. Typing replaces it; leaving it empty keeps it.

use crate::catalog::{ChannelType, FieldSpec};
use crate::channels::Draft;
use crate::model::validation::Report;
use crate::model::{Connection, EnvVar};
use crate::secrets::SecretString;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::TextArea;
use std::collections::BTreeMap;

/// A place the focus can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Name,
    Description,
    /// Meta's Advanced mode switch.
    Advanced,
    Field(usize),
    EnvName(usize),
    EnvValue(usize),
    AddEnv,
}

impl Slot {
    /// The key validation errors use for this slot.
    pub fn error_key(&self, ty: &ChannelType) -> String {
        match self {
            Slot::Name => "name".into(),
            Slot::Description => "description".into(),
            Slot::Advanced | Slot::AddEnv => String::new(),
            Slot::Field(i) => ty.fields[*i].key.clone(),
            Slot::EnvName(i) | Slot::EnvValue(i) => format!("env.{}", i + 1),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormOutcome {
    Consumed,
    NotHandled,
    /// Focus left the fields for the panel header.
    Left,
    OpenEnvPicker,
    ReadOnly,
    /// Enter on Advanced mode while it is off: sign in with Meta.
    SignIn,
}

pub struct Form {
    pub ty: &'static ChannelType,
    /// The stored connection being edited; `None` for a new connector.
    pub base: Option<Connection>,
    pub name: TextArea<'static>,
    pub description: TextArea<'static>,
    pub fields: Vec<TextArea<'static>>,
    pub env: Vec<(TextArea<'static>, TextArea<'static>)>,
    /// Stored optional secrets the operator asked to empty.
    pub clear_secrets: Vec<String>,
    pub advanced: bool,
    /// False when Meta App ID and App Secret are not configured: Advanced mode is forced.
    pub advanced_switchable: bool,
    pub focus: Option<usize>,
    pub errors: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    pub dirty: bool,
    pub read_only: bool,
    /// First form row drawn, so the focused input stays in view.
    pub scroll: usize,
    /// The deprecated connection this new one replaces (Migrate…): saving migrates.
    pub migrate_from: Option<Box<Connection>>,
    /// Simple mode (an agent's page): name, description and credentials only, typed by
    /// hand — no variables, no sign-in switch.
    pub simple: bool,
}

/// One-line input. Its cursor is invisible until the input is being edited: the
/// widget's default reverse-video cursor would mark every value as if all were edited.
pub(crate) fn single_line(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.set_cursor_line_style(Style::default());
    t.set_cursor_style(Style::default());
    t
}

fn secret_input(spec: &FieldSpec, stored: bool) -> TextArea<'static> {
    let mut t = single_line("");
    t.set_mask_char('•');
    t.set_placeholder_text(if stored {
        "•••••••• saved · type to replace".to_string()
    } else if spec.required {
        "required · not set".to_string()
    } else {
        "not set".to_string()
    });
    t
}

impl Form {
    pub fn new_connector(ty: &'static ChannelType, meta_configured: bool, read_only: bool) -> Form {
        let mut form = Form::blank(ty, None, meta_configured, read_only);
        form.fields = ty
            .fields
            .iter()
            .map(|f| {
                if f.secret {
                    secret_input(f, false)
                } else {
                    let mut t = single_line(f.default.as_deref().unwrap_or(""));
                    t.set_placeholder_text(if f.required { "required" } else { "optional" });
                    t
                }
            })
            .collect();
        form.name
            .set_placeholder_text("required · an internal name shown across the portal");
        form.advanced = !meta_configured;
        form
    }

    pub fn edit(
        ty: &'static ChannelType,
        c: &Connection,
        meta_configured: bool,
        read_only: bool,
    ) -> Form {
        let mut form = Form::blank(ty, Some(c.clone()), meta_configured, read_only);
        form.name = single_line(&c.name);
        form.description = single_line(&c.description);
        form.fields = ty
            .fields
            .iter()
            .map(|f| {
                if f.secret {
                    secret_input(f, c.secrets.contains_key(&f.key))
                } else {
                    single_line(c.fields.get(&f.key).map(String::as_str).unwrap_or(""))
                }
            })
            .collect();
        form.env = c
            .env
            .iter()
            .map(|e| (single_line(&e.name), single_line(&e.value)))
            .collect();
        form.advanced = !meta_configured || !c.fields.is_empty() || !c.secrets.is_empty();
        form
    }

    fn blank(
        ty: &'static ChannelType,
        base: Option<Connection>,
        meta_configured: bool,
        read_only: bool,
    ) -> Form {
        let mut description = single_line("");
        description.set_placeholder_text("optional · internal reference");
        Form {
            ty,
            base,
            name: single_line(""),
            description,
            fields: Vec::new(),
            env: Vec::new(),
            clear_secrets: Vec::new(),
            advanced: true,
            advanced_switchable: meta_configured && ty.meta_advanced_mode,
            focus: None,
            errors: BTreeMap::new(),
            warnings: Vec::new(),
            dirty: false,
            read_only,
            scroll: 0,
            migrate_from: None,
            simple: false,
        }
    }

    /// The Simple mode form of an agent's page: every slot it has is drawn.
    pub fn simple(ty: &'static ChannelType) -> Form {
        let mut form = Form::new_connector(ty, false, false);
        form.simple = true;
        form.advanced = true;
        form.set_focus(Some(0));
        form
    }

    pub fn is_new(&self) -> bool {
        self.base.is_none()
    }

    /// Whether the type's own fields are shown: always, except Meta types with
    /// Advanced mode off (sign in with Meta instead).
    pub fn shows_fields(&self) -> bool {
        !self.ty.meta_advanced_mode || self.advanced
    }

    pub fn slots(&self) -> Vec<Slot> {
        let mut s = vec![Slot::Name, Slot::Description];
        if self.simple {
            s.extend((0..self.fields.len()).map(Slot::Field));
            return s;
        }
        if self.ty.meta_advanced_mode {
            s.push(Slot::Advanced);
        }
        if self.shows_fields() {
            s.extend((0..self.fields.len()).map(Slot::Field));
        }
        for i in 0..self.env.len() {
            s.push(Slot::EnvName(i));
            s.push(Slot::EnvValue(i));
        }
        s.push(Slot::AddEnv);
        s
    }

    pub fn focused_slot(&self) -> Option<Slot> {
        self.focus.and_then(|i| self.slots().get(i).cloned())
    }

    pub fn text(&self, slot: &Slot) -> Option<&TextArea<'static>> {
        match slot {
            Slot::Name => Some(&self.name),
            Slot::Description => Some(&self.description),
            Slot::Field(i) => self.fields.get(*i),
            Slot::EnvName(i) => self.env.get(*i).map(|(n, _)| n),
            Slot::EnvValue(i) => self.env.get(*i).map(|(_, v)| v),
            Slot::Advanced | Slot::AddEnv => None,
        }
    }

    fn text_mut(&mut self, slot: &Slot) -> Option<&mut TextArea<'static>> {
        match slot {
            Slot::Name => Some(&mut self.name),
            Slot::Description => Some(&mut self.description),
            Slot::Field(i) => self.fields.get_mut(*i),
            Slot::EnvName(i) => self.env.get_mut(*i).map(|(n, _)| n),
            Slot::EnvValue(i) => self.env.get_mut(*i).map(|(_, v)| v),
            Slot::Advanced | Slot::AddEnv => None,
        }
    }

    pub fn value(&self, slot: &Slot) -> String {
        self.text(slot)
            .map(|t| t.lines().join(""))
            .unwrap_or_default()
    }

    /// Puts the focus on slot index `i` (or the header with `None`), showing the
    /// cursor only in the focused input.
    pub fn set_focus(&mut self, i: Option<usize>) {
        let slots = self.slots();
        let i = i.filter(|i| *i < slots.len());
        let previous = self.focus;
        for (n, slot) in slots.iter().enumerate() {
            let focused = Some(n) == i;
            if let Some(t) = self.text_mut(slot) {
                t.set_cursor_style(cursor_style(focused));
                // Unfocused inputs show their beginning; a newly focused one puts the
                // cursor at the end, ready to append.
                if !focused {
                    t.move_cursor(ratatui_textarea::CursorMove::Head);
                } else if previous != Some(n) {
                    t.move_cursor(ratatui_textarea::CursorMove::End);
                }
            }
        }
        self.focus = i;
    }

    /// Shows the focused input's cursor only while the operator edits the fields (the
    /// console's focus may be on the list or the panel header with a field remembered).
    pub fn show_cursor(&mut self, editing: bool) {
        if let Some(slot) = self.focused_slot()
            && let Some(t) = self.text_mut(&slot)
        {
            t.set_cursor_style(cursor_style(editing));
        }
    }

    pub fn focus_slot(&mut self, slot: &Slot) {
        let at = self.slots().iter().position(|s| s == slot);
        self.set_focus(at);
    }

    pub fn focus_next(&mut self, delta: isize) {
        let n = self.slots().len() as isize;
        let at = match self.focus {
            Some(i) => (i as isize + delta).rem_euclid(n),
            None if delta >= 0 => 0,
            None => n - 1,
        };
        self.set_focus(Some(at as usize));
    }

    /// Moves the focus to the first field with an error, so the operator lands on it.
    pub fn focus_first_error(&mut self) {
        let ty = self.ty;
        let first = self
            .slots()
            .iter()
            .position(|s| self.errors.contains_key(&s.error_key(ty)));
        if first.is_some() {
            self.set_focus(first);
        }
    }

    pub fn set_report(&mut self, report: &Report) {
        self.errors = report
            .errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect();
        self.warnings = report.warnings.clone();
        if self
            .errors
            .keys()
            .any(|k| ty_field_index(self.ty, k).is_some())
            && !self.advanced
        {
            // The offending fields are hidden behind Advanced mode: show them.
            self.advanced = true;
        }
        self.focus_first_error();
    }

    /// Advanced mode chooses how the credentials are entered (by hand, or by signing in
    /// with Meta); it is not a setting of the connection, so switching it changes
    /// nothing to save.
    pub fn toggle_advanced(&mut self) -> bool {
        if !self.advanced_switchable {
            return false;
        }
        self.advanced = !self.advanced;
        let focus = self.focus;
        self.set_focus(focus);
        true
    }

    /// Fills fields and secrets (what signing in with Meta found), then shows them.
    pub fn fill(
        &mut self,
        fields: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, SecretString>,
    ) {
        for (i, spec) in self.ty.fields.iter().enumerate() {
            let value = if spec.secret {
                secrets.get(&spec.key).map(|s| s.expose().to_string())
            } else {
                fields.get(&spec.key).cloned()
            };
            if let Some(v) = value {
                let t = &mut self.fields[i];
                t.select_all();
                t.cut();
                t.insert_str(v);
                self.dirty = true;
            }
        }
        self.advanced = true;
    }

    /// The type's variables not on the form yet: what the Add-variable picker offers.
    pub fn env_choices(&self) -> Vec<&'static crate::catalog::EnvSpec> {
        let present: Vec<String> = self
            .env
            .iter()
            .map(|(name, _)| {
                name.lines()
                    .first()
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default()
            })
            .collect();
        self.ty
            .env
            .iter()
            .filter(|spec| !present.iter().any(|p| p == &spec.name))
            .collect()
    }

    /// Sets a plain field's text (a prefilled form).
    pub fn set_field(&mut self, key: &str, value: &str) {
        if let Some(i) = self
            .ty
            .fields
            .iter()
            .position(|f| f.key == key && !f.secret)
        {
            let t = &mut self.fields[i];
            t.select_all();
            t.cut();
            t.insert_str(value);
        }
    }

    pub fn add_env(&mut self, name: &str, value: &str) {
        self.env.push((single_line(name), single_line(value)));
        self.dirty = true;
        let target = if name.is_empty() {
            Slot::EnvName(self.env.len() - 1)
        } else {
            Slot::EnvValue(self.env.len() - 1)
        };
        self.focus_slot(&target);
    }

    /// Ctrl-X: removes the focused environment row, or marks an optional stored
    /// secret to be emptied on save.
    fn remove_focused(&mut self) -> bool {
        match self.focused_slot() {
            Some(Slot::EnvName(i) | Slot::EnvValue(i)) => {
                self.env.remove(i);
                self.dirty = true;
                let next = if self.env.is_empty() {
                    Slot::AddEnv
                } else {
                    Slot::EnvName(i.min(self.env.len() - 1))
                };
                self.focus_slot(&next);
                true
            }
            Some(Slot::Field(i)) => {
                let spec = &self.ty.fields[i];
                let stored = self
                    .base
                    .as_ref()
                    .is_some_and(|b| b.secrets.contains_key(&spec.key));
                if spec.secret
                    && !spec.required
                    && stored
                    && !self.clear_secrets.contains(&spec.key)
                {
                    self.clear_secrets.push(spec.key.clone());
                    self.fields[i].set_placeholder_text("will be emptied on save");
                    self.dirty = true;
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// Keys while an input has focus. Enter and arrows move between inputs, since
    /// every input is one line.
    pub fn handle_key(&mut self, key: KeyEvent) -> FormOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let slot = self.focused_slot();
        match key.code {
            KeyCode::Esc => {
                self.set_focus(None);
                return FormOutcome::Left;
            }
            KeyCode::Tab | KeyCode::Down => self.focus_next(1),
            KeyCode::BackTab | KeyCode::Up => self.focus_next(-1),
            KeyCode::Char('n') if ctrl => {
                return if self.read_only {
                    FormOutcome::ReadOnly
                } else {
                    FormOutcome::OpenEnvPicker
                };
            }
            KeyCode::Char('x') if ctrl => {
                if self.read_only {
                    return FormOutcome::ReadOnly;
                }
                self.remove_focused();
            }
            KeyCode::Enter | KeyCode::Char(' ') if slot == Some(Slot::AddEnv) => {
                return if self.read_only {
                    FormOutcome::ReadOnly
                } else {
                    FormOutcome::OpenEnvPicker
                };
            }
            KeyCode::Enter | KeyCode::Char(' ') if slot == Some(Slot::Advanced) => {
                if self.read_only {
                    return FormOutcome::ReadOnly;
                }
                if key.code == KeyCode::Enter && !self.advanced && self.advanced_switchable {
                    return FormOutcome::SignIn;
                }
                self.toggle_advanced();
            }
            KeyCode::Enter => self.focus_next(1),
            _ if ctrl && matches!(key.code, KeyCode::Char('s' | 'g' | 'c' | 'q')) => {
                return FormOutcome::NotHandled;
            }
            KeyCode::F(_) => return FormOutcome::NotHandled,
            _ => {
                let Some(slot) = slot else {
                    return FormOutcome::NotHandled;
                };
                if self.read_only {
                    return FormOutcome::ReadOnly;
                }
                if let Some(outcome) = self.choice_key(&slot, key) {
                    return outcome;
                }
                if let Some(t) = self.text_mut(&slot) {
                    // Ctrl-U clears to the start, as in a shell (the widget would undo).
                    let changed = if ctrl && key.code == KeyCode::Char('u') {
                        t.delete_line_by_head()
                    } else {
                        t.input(key)
                    };
                    if changed {
                        self.dirty = true;
                    }
                }
            }
        }
        FormOutcome::Consumed
    }

    /// Space and ←/→ on an option field step through its options; other typing is
    /// refused there, except in a per-account one (several values, comma-separated).
    /// `None`: not an option field, or a per-account one holding several values.
    fn choice_key(&mut self, slot: &Slot, key: KeyEvent) -> Option<FormOutcome> {
        let (options, multi) = super::choice::options(self, slot)?;
        let current = self.value(slot);
        if multi && current.contains(',') {
            return None;
        }
        let by = match key.code {
            KeyCode::Char(' ') | KeyCode::Right => 1,
            KeyCode::Left => -1,
            // A per-account field may be typed into: "ssl/tls,starttls".
            _ if multi => return None,
            _ => return Some(FormOutcome::Consumed),
        };
        let next = super::choice::step(&current, options, by);
        if let Some(t) = self.text_mut(slot) {
            t.select_all();
            t.cut();
            t.insert_str(next);
            self.dirty = true;
        }
        Some(FormOutcome::Consumed)
    }

    /// Pasted text goes into the focused input as one line (newlines dropped, since
    /// tokens copied from a browser often end with one).
    pub fn paste(&mut self, text: &str) -> FormOutcome {
        let Some(slot) = self.focused_slot() else {
            return FormOutcome::NotHandled;
        };
        if self.read_only {
            return FormOutcome::ReadOnly;
        }
        let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        if let Some(t) = self.text_mut(&slot)
            && t.insert_str(clean)
        {
            self.dirty = true;
        }
        FormOutcome::Consumed
    }

    /// Whether saving would change the stored connection: a new connector always; an
    /// existing one when a value differs, a secret was typed or one is to be emptied.
    pub fn has_changes(&self) -> bool {
        let Some(base) = &self.base else {
            return true;
        };
        let draft = self.to_draft();
        let env = |e: &[EnvVar]| -> Vec<(String, String)> {
            e.iter()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect()
        };
        draft.name != base.name
            || draft.description != base.description
            || draft.fields != base.fields
            || !draft.secrets.is_empty()
            || !draft.clear_secrets.is_empty()
            || env(&draft.env) != env(&base.env)
    }

    /// The form as the operation layer takes it.
    pub fn to_draft(&self) -> Draft {
        let mut draft = match &self.base {
            Some(c) => Draft::from_connection(c),
            None => Draft {
                type_key: self.ty.key.clone(),
                ..Draft::default()
            },
        };
        draft.name = self.value(&Slot::Name);
        draft.description = self.value(&Slot::Description);
        if self.shows_fields() {
            draft.fields.clear();
            for (i, spec) in self.ty.fields.iter().enumerate() {
                let v = self.value(&Slot::Field(i));
                if spec.secret {
                    if !v.trim().is_empty() {
                        draft.secrets.insert(spec.key.clone(), SecretString::new(v));
                    }
                } else if !v.trim().is_empty() {
                    draft.fields.insert(spec.key.clone(), v);
                }
            }
            draft.clear_secrets = self.clear_secrets.iter().cloned().collect();
        }
        draft.env = (0..self.env.len())
            .map(|i| EnvVar {
                name: self.value(&Slot::EnvName(i)),
                value: self.value(&Slot::EnvValue(i)),
            })
            .filter(|e| !(e.name.trim().is_empty() && e.value.trim().is_empty()))
            .collect();
        draft
    }
}

fn cursor_style(visible: bool) -> Style {
    if visible {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default()
    }
}

fn ty_field_index(ty: &ChannelType, key: &str) -> Option<usize> {
    ty.fields.iter().position(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crossterm::event::KeyEvent;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn type_text(form: &mut Form, text: &str) {
        for c in text.chars() {
            form.handle_key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn the_variable_picker_offers_only_variables_not_added_yet() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        let all = form.env_choices().len();
        assert!(form.env_choices().iter().any(|e| e.name == "TELEGRAM_MODE"));
        form.add_env("TELEGRAM_MODE", "polling");
        assert_eq!(form.env_choices().len(), all - 1);
        assert!(!form.env_choices().iter().any(|e| e.name == "TELEGRAM_MODE"));
    }

    #[test]
    fn line_editing_keys_clear_and_move_as_in_a_shell() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        form.set_focus(Some(0));
        type_text(&mut form, "a wrong name");
        let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        form.handle_key(ctrl('u'));
        assert_eq!(form.value(&Slot::Name), "", "Ctrl-U clears to the start");
        type_text(&mut form, "Sales bot");
        form.handle_key(ctrl('a'));
        type_text(&mut form, "EU ");
        form.handle_key(ctrl('e'));
        type_text(&mut form, "!");
        assert_eq!(form.value(&Slot::Name), "EU Sales bot!");
        form.handle_key(ctrl('a'));
        form.handle_key(ctrl('k'));
        assert_eq!(form.value(&Slot::Name), "", "Ctrl-K clears to the end");
    }

    #[test]
    fn typing_fills_the_focused_input_and_tab_moves_on() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        form.set_focus(Some(0));
        type_text(&mut form, "Sales bot");
        form.handle_key(key(KeyCode::Tab));
        form.handle_key(key(KeyCode::Tab));
        form.paste("123:abc\n");
        let draft = form.to_draft();
        assert_eq!(draft.name, "Sales bot");
        assert_eq!(draft.secrets["bot_token"].expose(), "123:abc");
        assert!(form.dirty);
    }

    #[test]
    fn an_untouched_secret_is_kept_not_sent() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut c = crate::tui::list::tests_support::conn(1, "Bot", "telegram");
        c.secrets.insert(
            "bot_token".into(),
            crate::secrets::SealedSecret {
                key_id: "k".into(),
                nonce: String::new(),
                ciphertext: String::new(),
                count: 1,
            },
        );
        let form = Form::edit(ty, &c, false, false);
        assert!(
            form.fields[0].lines().join("").is_empty(),
            "stored secret is never loaded"
        );
        assert!(form.to_draft().secrets.is_empty());
    }

    #[test]
    fn viewers_cannot_type() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, true);
        form.set_focus(Some(0));
        assert_eq!(
            form.handle_key(key(KeyCode::Char('x'))),
            FormOutcome::ReadOnly
        );
        assert!(form.to_draft().name.is_empty());
    }

    #[test]
    fn meta_advanced_mode_is_forced_on_without_meta_app_credentials() {
        let ty = Catalog::get().find("whatsapp").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        assert!(form.advanced && !form.advanced_switchable);
        assert!(!form.toggle_advanced());
        let mut signed = Form::new_connector(ty, true, false);
        assert!(!signed.advanced && !signed.slots().iter().any(|s| matches!(s, Slot::Field(_))));
        assert!(signed.toggle_advanced());
        assert!(signed.slots().iter().any(|s| matches!(s, Slot::Field(_))));
    }

    #[test]
    fn option_fields_step_through_their_options_instead_of_taking_text() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        form.add_env("TELEGRAM_MODE", "polling");
        form.handle_key(key(KeyCode::Char(' ')));
        assert_eq!(form.to_draft().env[0].value, "webhook");
        form.handle_key(key(KeyCode::Right));
        assert_eq!(form.to_draft().env[0].value, "polling");
        form.handle_key(key(KeyCode::Left));
        type_text(&mut form, "xyz");
        form.handle_key(key(KeyCode::Backspace));
        assert_eq!(form.to_draft().env[0].value, "webhook", "no free text");

        let email = Catalog::get().find("email").unwrap();
        let mut form = Form::new_connector(email, false, false);
        let at = form
            .slots()
            .iter()
            .position(|s| matches!(s, Slot::Field(i) if email.fields[*i].key == "imap_security"))
            .unwrap();
        form.set_focus(Some(at));
        form.handle_key(key(KeyCode::Char(' ')));
        assert_eq!(form.to_draft().fields["imap_security"], "starttls");
        // Per account, several values are typed.
        type_text(&mut form, ",ssl/tls");
        assert_eq!(form.to_draft().fields["imap_security"], "starttls,ssl/tls");
    }

    #[test]
    fn env_rows_are_added_and_removed() {
        let ty = Catalog::get().find("telegram").unwrap();
        let mut form = Form::new_connector(ty, false, false);
        form.add_env("TELEGRAM_API_URL", "http://127.0.0.1:9");
        assert_eq!(form.focused_slot(), Some(Slot::EnvValue(0)));
        assert_eq!(form.to_draft().env[0].value, "http://127.0.0.1:9");
        form.handle_key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL));
        assert!(form.to_draft().env.is_empty());
    }
}
