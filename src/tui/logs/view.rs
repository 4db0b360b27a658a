//! The Logs pane as a component of the channels screen: which connection it belongs
//! to and the bookkeeping that keeps it live — the newest stored line read, the lines
//! shown already (a line this process wrote comes back from the store too), and the
//! one store read for new lines allowed in flight. The pane itself draws and scrolls.

use super::pane::LogsPane;
use super::ring::{Level, LogEntry};
use crate::model::{LogLine, Millis};
use crate::tui::worker::Command;
use std::collections::HashSet;

pub struct LogsView {
    pub pane: LogsPane,
    /// The connection the pane belongs to; `None`: closed.
    pub for_id: Option<i64>,
    /// How many stored lines opening the pane reads.
    pub limit: u32,
    /// The newest stored line's id read so far.
    after: i64,
    seen: HashSet<(Millis, String)>,
    /// A read for new lines is under way; another is due when it returns.
    more: (bool, bool),
    /// When the log bus last skipped lines this console fell behind on: they are read
    /// back from the store at once, and again a moment later for the lines the writer
    /// had not stored yet (it holds them up to 100 ms).
    lagged_at: Option<Millis>,
}

/// How long after a lag the second read back waits: past the writer's hold on lines.
const REREAD_AFTER_MS: Millis = 250;

impl std::ops::Deref for LogsView {
    type Target = LogsPane;
    fn deref(&self) -> &LogsPane {
        &self.pane
    }
}

impl std::ops::DerefMut for LogsView {
    fn deref_mut(&mut self) -> &mut LogsPane {
        &mut self.pane
    }
}

impl LogsView {
    pub fn new(max_lines: usize, max_bytes: usize) -> LogsView {
        LogsView {
            pane: LogsPane::new(max_lines, max_bytes),
            for_id: None,
            limit: 1000,
            after: 0,
            seen: HashSet::new(),
            more: (false, false),
            lagged_at: None,
        }
    }

    /// Opens the pane on a connection: its recent stored lines are to be read.
    pub fn open(&mut self, id: i64, name: &str) -> Command {
        self.pane.reset(name);
        self.after = 0;
        self.seen.clear();
        self.lagged_at = None;
        self.for_id = Some(id);
        Command::LoadLogs {
            id,
            limit: self.limit,
        }
    }

    pub fn close(&mut self) {
        self.for_id = None;
    }

    /// The recent stored lines, read at opening.
    pub fn on_loaded(&mut self, id: i64, lines: &[LogLine], last_id: i64) {
        if Some(id) == self.for_id {
            self.after = last_id;
            self.remember(lines);
            self.pane.push(lines.iter().map(entry));
        }
    }

    /// Lines stored since the last read (another process's, or this one's written back);
    /// a read asked for meanwhile goes out now.
    pub fn on_more(&mut self, id: i64, lines: Vec<(i64, LogLine)>) -> Option<Command> {
        self.more.0 = false;
        if Some(id) != self.for_id {
            return None;
        }
        if let Some((last, _)) = lines.last() {
            self.after = self.after.max(*last);
        }
        let fresh: Vec<LogLine> = lines
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| !self.seen.contains(&(l.at, l.message.clone())))
            .collect();
        self.remember(&fresh);
        if !fresh.is_empty() {
            self.pane.push(fresh.iter().map(entry));
        }
        if std::mem::take(&mut self.more.1) {
            return self.more_request(id);
        }
        None
    }

    /// Live lines from this process's log bus; true when some were the pane's.
    pub fn on_live(&mut self, lines: &[LogLine]) -> bool {
        let Some(id) = self.for_id else { return false };
        let mine: Vec<LogLine> = lines
            .iter()
            .filter(|l| l.connection_id == id)
            .cloned()
            .collect();
        if mine.is_empty() {
            return false;
        }
        self.remember(&mine);
        self.pane.push(mine.iter().map(entry));
        true
    }

    /// The log bus skipped lines (this console fell behind, e.g. a terminal blocked on a
    /// slow link during a flood): the open pane reads what was stored since its last read.
    pub fn on_lag(&mut self, now: Millis) -> Option<Command> {
        let id = self.for_id?;
        self.lagged_at = Some(now);
        self.more_request(id)
    }

    /// A second read after a lag is still owed.
    pub fn owes_reread(&self) -> bool {
        self.for_id.is_some() && self.lagged_at.is_some()
    }

    /// The second read after a lag, once the writer has stored what it held then.
    pub fn reread_after_lag(&mut self, now: Millis) -> Option<Command> {
        let at = self.lagged_at?;
        let id = self.for_id?;
        if now - at < REREAD_AFTER_MS {
            return None;
        }
        self.lagged_at = None;
        self.more_request(id)
    }

    /// A read of the lines stored after the last one, unless one is under way (then it
    /// follows when that returns).
    pub fn more_request(&mut self, id: i64) -> Option<Command> {
        if self.more.0 {
            self.more.1 = true;
            return None;
        }
        self.more.0 = true;
        Some(Command::MoreLogs {
            id,
            after: self.after,
        })
    }

    /// Lines shown, so the same line read back from the store is not shown twice.
    /// Bounded: only recent lines can come back.
    fn remember(&mut self, lines: &[LogLine]) {
        if self.seen.len() > 20_000 {
            self.seen.clear();
        }
        for l in lines {
            self.seen.insert((l.at, l.message.clone()));
        }
    }
}

fn entry(l: &LogLine) -> LogEntry {
    LogEntry {
        at: l.at,
        level: Level::parse(&l.level),
        message: l.message.clone(),
    }
}
