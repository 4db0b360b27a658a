//! Live log lines inside one process: whoever writes a connection's log publishes here,
//! and an open Logs pane shows it at once, without polling the database.

use crate::model::LogLine;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct LogBus {
    tx: broadcast::Sender<LogLine>,
}

impl Default for LogBus {
    fn default() -> Self {
        LogBus::new(16_384)
    }
}

impl LogBus {
    /// `capacity` lines may wait for a slow reader; past that it skips ahead and is
    /// told how many it missed, so a flood never grows memory.
    pub fn new(capacity: usize) -> LogBus {
        let (tx, _) = broadcast::channel(capacity.max(16));
        LogBus { tx }
    }

    pub fn publish(&self, line: LogLine) {
        // No reader is fine: nobody is looking at logs right now.
        let _ = self.tx.send(line);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }
}
