//! How current the console's copy of the database is: loaded yet or only its first
//! screenful, the last change seen, whether the database announces changes
//! (PostgreSQL) or must be asked (SQLite, or a lost connection), and since when the
//! database has been unreachable.

use super::worker::Command;
use crate::model::Millis;
use crate::store::ChangeMarker;

#[derive(Default)]
pub struct Freshness {
    pub loaded: bool,
    /// Only the first screenful is loaded; the rest is on its way.
    pub partial: bool,
    pub marker: Option<ChangeMarker>,
    pub poll_in_flight: bool,
    pub last_poll: Millis,
    /// The database announces changes (PostgreSQL): no polling for them.
    pub live: bool,
    /// The database cannot be reached: since when, and why.
    pub db_down: Option<(Millis, String)>,
}

impl Freshness {
    /// The look for changes due at `now`: every `every` ms while the database must be
    /// asked, every 2 s (at least) while it is down, none while it announces changes.
    pub fn poll_due(&mut self, now: Millis, every: Millis) -> Option<Command> {
        let interval = if self.db_down.is_some() {
            2000.max(every)
        } else {
            every
        };
        if self.poll_in_flight
            || now - self.last_poll < interval
            || (self.live && self.db_down.is_none() && self.loaded)
        {
            return None;
        }
        self.poll_in_flight = true;
        self.last_poll = now;
        Some(if self.loaded {
            Command::Poll { last: self.marker }
        } else {
            Command::Reload
        })
    }

    /// A load arrived; whether the database had been down until now.
    pub fn on_loaded(&mut self, marker: Option<ChangeMarker>, complete: bool) -> bool {
        self.partial = !complete;
        if complete {
            self.poll_in_flight = false;
        }
        self.marker = marker;
        self.loaded = true;
        self.db_down.take().is_some()
    }

    /// Nothing changed; whether the database had been down until now.
    pub fn on_unchanged(&mut self) -> bool {
        self.poll_in_flight = false;
        self.db_down.take().is_some()
    }

    pub fn on_down(&mut self, now: Millis, err: String) {
        self.poll_in_flight = false;
        if self.db_down.is_none() {
            self.db_down = Some((now, err));
        }
    }

    /// Whether the console must wake up to look (it sleeps while the database
    /// announces changes and all is loaded).
    pub fn needs_tick(&self) -> bool {
        !self.live || self.db_down.is_some() || !self.loaded
    }
}
