//! One console process as the benchmark sees it: its terminal's bytes applied to a
//! screen, with the time each frame finished arriving.

use crate::pty::{Chunk, Pty};
use crate::screen::Screen;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// A frame is written in one go; the console draws at most one per 16 ms, so this
/// much silence means the frame being written is complete.
const QUIET: Duration = Duration::from_millis(5);
/// Silence that means the console has nothing more to draw for now (a follow-up frame,
/// e.g. the details' reply diagnosis, comes within a frame interval or two).
const SETTLED: Duration = Duration::from_millis(60);

pub struct Console {
    pub name: String,
    pub pty: Pty,
    pub screen: Screen,
    last_chunk: Option<Instant>,
    /// Output bursts so far: each is a frame drawn.
    pub frames: u64,
}

impl Console {
    pub fn new(name: String, pty: Pty, cols: u16, rows: u16) -> Console {
        Console {
            name,
            pty,
            screen: Screen::new(cols, rows),
            last_chunk: None,
            frames: 0,
        }
    }

    fn absorb(&mut self, chunk: Chunk) {
        if self
            .last_chunk
            .is_none_or(|last| chunk.at.duration_since(last) > QUIET)
        {
            self.frames += 1;
        }
        self.last_chunk = Some(chunk.at);
        self.screen.feed(&chunk.bytes);
    }

    /// The next chunk within `within`; `None` on silence. Panics if the console died.
    fn next(&mut self, within: Duration) -> Option<Instant> {
        match self.pty.output.recv_timeout(within) {
            Ok(chunk) => {
                let at = chunk.at;
                self.absorb(chunk);
                Some(at)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{} exited; its screen was:\n{}",
                self.name,
                self.screen.lines().join("\n")
            ),
        }
    }

    /// Reads until `shown` holds on screen, then to the end of that frame; the time
    /// that frame finished arriving. Panics after `limit`, showing the screen.
    pub fn frame_where(&mut self, limit: Duration, shown: impl Fn(&Screen) -> bool) -> Instant {
        let deadline = Instant::now() + limit;
        let mut last = self.last_chunk.unwrap_or_else(Instant::now);
        while !shown(&self.screen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "{}: the expected frame did not come within {limit:?}; the screen:\n{}",
                    self.name,
                    self.screen.lines().join("\n")
                );
            }
            if let Some(at) = self.next(left) {
                last = at;
            }
        }
        while let Some(at) = self.next(QUIET) {
            last = at;
        }
        last
    }

    /// Waits until the console has drawn nothing for a while.
    pub fn settle(&mut self) {
        while self.next(SETTLED).is_some() {}
    }

    /// Takes whatever arrived meanwhile without waiting.
    pub fn drain(&mut self) {
        while let Ok(chunk) = self.pty.output.try_recv() {
            self.absorb(chunk);
        }
    }

    /// A key, then the frame where `shown` holds: keystroke-to-frame time.
    pub fn key_to_frame(&mut self, key: &[u8], shown: impl Fn(&Screen) -> bool) -> Duration {
        self.settle();
        let sent = Instant::now();
        self.pty.keys(key).expect("type into the console");
        self.frame_where(Duration::from_secs(10), shown)
            .saturating_duration_since(sent)
    }
}
