//! A bounded buffer of recent log lines for one connection.
//!
//! Bounded by line count *and* bytes so that neither a burst of short lines nor a few
//! enormous ones can grow memory without limit; whatever is evicted is counted so the
//! pane can say how much the user is not seeing.

use std::collections::VecDeque;

/// Severity, ordered so that `level >= Level::Warn` reads as "at least a warning".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Case-insensitive; accepts the common aliases channels emit. Anything unknown is
    /// treated as `Info` so an odd label never hides a line behind the level filter.
    pub fn parse(s: &str) -> Level {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "warn" | "warning" => Level::Warn,
            "error" | "err" | "fatal" | "critical" => Level::Error,
            _ => Level::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Unix time in milliseconds.
    pub at: i64,
    pub level: Level,
    pub message: String,
}

/// Accounted per entry on top of the message, so a flood of empty lines still counts
/// against the byte bound (the struct itself is not free).
pub const ENTRY_OVERHEAD: usize = 32;

#[derive(Debug, Clone)]
pub struct LogRing {
    entries: VecDeque<LogEntry>,
    max_lines: usize,
    max_bytes: usize,
    bytes: usize,
    dropped: u64,
    total: u64,
}

impl LogRing {
    /// Both bounds are at least 1 line / 1 byte; the newest line is always kept.
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        LogRing {
            entries: VecDeque::new(),
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            dropped: 0,
            total: 0,
        }
    }

    pub fn push(&mut self, mut e: LogEntry) {
        // One huge line must not flush the whole history, so it is cut instead.
        if e.message.len() > self.max_bytes {
            truncate_message(&mut e.message, self.max_bytes / 2);
        }
        self.bytes += cost(&e);
        self.entries.push_back(e);
        self.total += 1;
        // Each entry is popped at most once after being pushed: O(1) amortised.
        while self.entries.len() > 1
            && (self.entries.len() > self.max_lines || self.bytes > self.max_bytes)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= cost(&old);
                self.dropped += 1;
            }
        }
    }

    pub fn extend(&mut self, it: impl IntoIterator<Item = LogEntry>) {
        for e in it {
            self.push(e);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of message lengths plus [`ENTRY_OVERHEAD`] per entry.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Lines evicted to stay within the bounds since creation or the last `clear`.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Lines ever pushed since creation or the last `clear`.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Sequence number of `get(0)`: entry `i` is the `first_seq() + i`-th line ever
    /// pushed. Sequence numbers never change when older lines are evicted, which is
    /// what lets a paused view stay put.
    pub fn first_seq(&self) -> u64 {
        self.total - self.entries.len() as u64
    }

    pub fn get(&self, i: usize) -> Option<&LogEntry> {
        self.entries.get(i)
    }

    /// The entry with sequence number `seq`, if it is still held.
    pub fn get_seq(&self, seq: u64) -> Option<&LogEntry> {
        let i = seq.checked_sub(self.first_seq())?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogEntry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Forgets everything, counters included: used when the pane switches connection.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.dropped = 0;
        self.total = 0;
    }
}

fn cost(e: &LogEntry) -> usize {
    e.message.len() + ENTRY_OVERHEAD
}

fn truncate_message(message: &mut String, keep: usize) {
    let mut cut = keep.min(message.len());
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = message.len() - cut;
    message.truncate(cut);
    message.push_str(&format!(" … [truncated {removed} bytes]"));
    message.shrink_to_fit();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogEntry {
        LogEntry {
            at: 0,
            level: Level::Info,
            message: message.to_string(),
        }
    }

    #[test]
    fn level_parse_is_case_insensitive_and_defaults_to_info() {
        assert_eq!(Level::parse("WARN"), Level::Warn);
        assert_eq!(Level::parse("warning"), Level::Warn);
        assert_eq!(Level::parse("Error"), Level::Error);
        assert_eq!(Level::parse("trace"), Level::Trace);
        assert_eq!(Level::parse("nonsense"), Level::Info);
        assert_eq!(Level::Warn.as_str(), "WARN");
        assert!(Level::Error > Level::Warn && Level::Debug > Level::Trace);
    }

    #[test]
    fn bounded_by_lines_and_counts_dropped() {
        let mut ring = LogRing::new(3, 1 << 20);
        ring.extend((0..5).map(|i| line(&format!("line {i}"))));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.dropped(), 2);
        assert_eq!(ring.total(), 5);
        assert_eq!(ring.first_seq(), 2);
        let kept: Vec<_> = ring.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(kept, ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.get_seq(4).unwrap().message, "line 4");
        assert!(ring.get_seq(1).is_none());
    }

    #[test]
    fn bounded_by_bytes_and_counts_dropped() {
        // Each 68-byte message costs 100 with the overhead: three fit in 350.
        let mut ring = LogRing::new(1000, 350);
        ring.extend((0..10).map(|_| line(&"x".repeat(68))));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.bytes(), 300);
        assert_eq!(ring.dropped(), 7);
        assert_eq!(ring.total(), 10);
    }

    #[test]
    fn a_huge_line_is_truncated_not_allowed_to_flush_history() {
        // Half of 65_538 is odd and 'é' is two bytes, so the cut lands mid-character.
        let mut ring = LogRing::new(1000, 65_538);
        ring.push(line("before"));
        ring.push(line(&"é".repeat(512 * 1024)));
        assert_eq!(ring.len(), 2, "the earlier line survives");
        assert_eq!(ring.dropped(), 0);
        let big = &ring.get(1).unwrap().message;
        assert!(big.len() < 64 * 1024);
        assert!(big.starts_with("éé"));
        assert!(big.ends_with(&format!(" … [truncated {} bytes]", 1024 * 1024 - 32 * 1024)));
        assert!(ring.bytes() <= 64 * 1024);
    }

    #[test]
    fn clear_resets_contents_and_counters() {
        let mut ring = LogRing::new(2, 1 << 20);
        ring.extend((0..5).map(|i| line(&i.to_string())));
        ring.clear();
        assert!(ring.is_empty());
        assert_eq!((ring.bytes(), ring.dropped(), ring.total()), (0, 0, 0));
        ring.push(line("again"));
        assert_eq!(ring.get(0).unwrap().message, "again");
        assert_eq!(ring.iter().rev().len(), 1);
    }
}
