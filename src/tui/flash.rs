//! The message line's flash and when it goes: a flash knows what it is about, so it
//! is cleared once that stops being true rather than left describing a situation that
//! has moved on.

use super::app::{App, FlashKind, Screen};
use crate::model::{Connection, DesiredState, Millis, Status};

/// How long an informational flash ("Saved 'X'.", "Copied …") stays: long enough to
/// read, short enough not to describe a situation that has moved on. Warnings and
/// errors stay until they are resolved, replaced or left behind.
pub const INFO_FLASH_MS: Millis = 8_000;

/// Where a flash was given and about which connection in which state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlashContext {
    at: Millis,
    screen: Screen,
    about: About,
}

/// What a flash speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum About {
    Nothing,
    /// A connection, as it was then (status and desired state).
    Connection(i64, Status, DesiredState),
    /// The new connector form (a save it refused).
    NewForm,
}

impl App {
    pub fn flash(&mut self, text: impl Into<String>, kind: FlashKind) {
        self.flash = Some((text.into(), kind));
        self.flash_ctx = Some(FlashContext {
            at: self.now,
            screen: self.screen,
            about: About::Nothing,
        });
        self.dirty = true;
    }

    /// A flash about one connection: it goes when that connection's status or desired
    /// state changes, or when another connection is shown, since the list and the
    /// details then say what is true now.
    pub fn flash_about(&mut self, text: impl Into<String>, kind: FlashKind, c: &Connection) {
        self.flash(text, kind);
        if let Some(ctx) = &mut self.flash_ctx {
            ctx.about = About::Connection(c.id, c.status, c.desired);
        }
    }

    /// The id of the connection the panel shows (it may not be in the list yet).
    fn shown_id(&self) -> Option<i64> {
        match &self.details.form {
            Some(f) => f.base.as_ref().map(|b| b.id),
            None => self.list.selected,
        }
    }

    /// Clears the flash once what it said is stale: another screen, the connection it
    /// is about changed state, was deleted or is no longer the one shown, or (for
    /// information) after `INFO_FLASH_MS`.
    pub fn expire_flash(&mut self) {
        let (Some((_, kind)), Some(ctx)) = (&self.flash, self.flash_ctx) else {
            return;
        };
        let moved_on = match ctx.about {
            About::Connection(id, status, desired) => {
                // Not in the list (yet): a save's reload is on its way.
                let changed = self
                    .list
                    .get(id)
                    .is_some_and(|c| (c.status, c.desired) != (status, desired));
                changed || self.shown_id() != Some(id)
            }
            About::NewForm => !self.details.form.as_ref().is_some_and(|f| f.is_new()),
            About::Nothing => false,
        };
        let old = *kind == FlashKind::Info && self.now - ctx.at >= INFO_FLASH_MS;
        if ctx.screen != self.screen || moved_on || old {
            self.flash = None;
            self.flash_ctx = None;
            self.dirty = true;
        }
    }

    /// A flash about the New connector form (a save it refused): it goes with the form.
    pub fn flash_about_new_form(&mut self, text: impl Into<String>, kind: FlashKind) {
        self.flash(text, kind);
        if let Some(ctx) = &mut self.flash_ctx {
            ctx.about = About::NewForm;
        }
    }
}
