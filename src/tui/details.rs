//! The Details panel's state: the form of the connection shown (or of a new one), and
//! why that connection's messages are answered or not. Its keys are the form's own
//! (`Form::handle_key`) and the panel header's rows of the key table.

use super::form::Form;
use super::worker::Command;
use crate::catalog::Catalog;
use crate::model::{Connection, Status};

#[derive(Default)]
pub struct Details {
    pub form: Option<Form>,
    /// Why the shown connection's messages get (or do not get) an answer.
    pub diagnosis: Option<(i64, String)>,
    /// The connection (id, version, status) the diagnosis was asked for.
    diagnosis_key: Option<(i64, i64, Status)>,
}

/// How forms are opened: whether sign-in with Meta is offered, and for a viewer.
#[derive(Debug, Clone, Copy)]
pub struct FormMode {
    pub meta_configured: bool,
    pub read_only: bool,
}

impl Details {
    /// The form holds edits not saved yet.
    pub fn dirty(&self) -> bool {
        self.form.as_ref().is_some_and(|f| f.dirty)
    }

    /// The saved connection the form is about (none for a new connector).
    pub fn shown_id(&self) -> Option<i64> {
        self.form
            .as_ref()
            .and_then(|f| f.base.as_ref().map(|b| b.id))
    }

    pub fn is_new(&self) -> bool {
        self.form.as_ref().is_some_and(|f| f.is_new())
    }

    /// Shows `selected` — unless the form holds edits, which are never replaced.
    pub fn show(&mut self, selected: Option<&Connection>, mode: FormMode) {
        if self.dirty() {
            return;
        }
        self.form = selected.and_then(|c| open(c, mode));
    }

    /// Shows a connection just saved (the form follows its stored version).
    pub fn show_saved(&mut self, c: &Connection, mode: FormMode, warnings: Vec<String>) {
        if let Some(mut form) = open(c, mode) {
            form.warnings = warnings;
            self.form = Some(form);
        }
    }

    /// After a reload: a clean form follows the stored version; an edited one keeps
    /// the operator's input, and what happened underneath it is returned, to be said.
    pub fn refresh(&mut self, latest: Option<&Connection>, mode: FormMode) -> Option<String> {
        let form = self.form.as_ref()?;
        let base = form.base.as_ref()?;
        let (dirty, name, version) = (form.dirty, base.name.clone(), base.version);
        match latest {
            None if dirty => Some(format!(
                "'{name}' was deleted by someone else: saving will fail; Esc discards your edits"
            )),
            None => {
                self.form = None;
                None
            }
            Some(latest) if latest.version != version && dirty => Some(format!(
                "'{}' was saved by {} since you opened it: your Save will be refused; Esc and reopen to see their version",
                latest.name, latest.updated_by
            )),
            Some(latest) if latest.version != version => {
                let focus = form.focus;
                let mut fresh = open(latest, mode)?;
                fresh.set_focus(focus);
                self.form = Some(fresh);
                None
            }
            Some(_) => None,
        }
    }

    /// Asks for the diagnosis of `current` when it is another connection, or the same
    /// one in another version or status.
    pub fn diagnose(&mut self, current: Option<&Connection>) -> Option<Command> {
        let c = current?;
        let key = (c.id, c.version, c.status);
        if self.diagnosis_key == Some(key) {
            return None;
        }
        self.diagnosis_key = Some(key);
        Some(Command::Diagnose { id: c.id })
    }

    /// Attachments and agents change without touching the connection: look again.
    pub fn rediagnose(&mut self) {
        self.diagnosis_key = None;
    }

    /// The diagnosis arrived; whether it says something new.
    pub fn on_diagnosis(&mut self, id: i64, text: String) -> bool {
        let changed = self.diagnosis.as_ref() != Some(&(id, text.clone()));
        self.diagnosis = Some((id, text));
        changed
    }
}

fn open(c: &Connection, mode: FormMode) -> Option<Form> {
    let ty = Catalog::get().find(&c.type_key)?;
    Some(Form::edit(ty, c, mode.meta_configured, mode.read_only))
}
