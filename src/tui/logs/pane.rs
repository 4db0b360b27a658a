//! The Logs pane: one connection's recent output, live.
//!
//! Cost per frame is proportional to the visible rows, never to the ring: lines are
//! addressed by sequence number (stable across eviction), the level-filtered index and
//! the search matches are maintained incrementally as lines arrive, and each drawn line
//! is capped at a paneful of rows so a 90,000-character line costs the same as a short
//! one (Enter shows a line whole).

use super::ring::{Level, LogEntry, LogRing};
use crate::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Widget};
use std::collections::VecDeque;
use std::io::{BufWriter, Write};
use unicode_width::UnicodeWidthChar;

const HINT: &str = "No output yet. Lines appear here as the channel logs them.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneOutcome {
    Consumed,
    NotHandled,
    Close,
    SaveRequested,
    /// Enter: show the selected line whole (`selected_line`).
    OpenLine,
}

/// Columns ← and → move the view of unwrapped lines by.
const HSTEP: usize = 8;

#[derive(Debug, Default)]
struct Search {
    query: String,
    /// The query case-folded; empty means no search.
    needle: Vec<char>,
    typing: bool,
    /// Sequence numbers of shown lines that contain the query, oldest first.
    matches: VecDeque<u64>,
    current: Option<u64>,
}

/// One piece of the status line, in full and in short, and how much it matters when the
/// pane is too narrow for all of them (higher is kept longer).
struct StatusPart {
    full: String,
    short: String,
    rank: u8,
}

impl StatusPart {
    fn new(full: String, short: String, rank: u8) -> StatusPart {
        StatusPart { full, short, rank }
    }
}

pub struct LogsPane {
    ring: LogRing,
    title: String,
    min_level: Level,
    /// Sequence numbers of the lines passing the level filter, oldest first; scrolling
    /// happens in this space so hidden lines never cost a keystroke or a frame.
    shown: VecDeque<u64>,
    follow: bool,
    /// While paused, the top line of the view and how many of its wrapped rows are
    /// scrolled off. A sequence number rather than an index, so evicting older lines
    /// does not move what the user is reading.
    top: u64,
    skip: usize,
    total_at_pause: u64,
    wrap: bool,
    /// Columns of the messages scrolled off to the left (wrap off).
    hscroll: usize,
    search: Search,
    /// Sequence number of each row drawn last, for clicks.
    drawn: Vec<u64>,
    /// Inner size at the last render, for page sizes and follow → paused conversion.
    width: usize,
    height: usize,
}

impl LogsPane {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        LogsPane {
            ring: LogRing::new(max_lines, max_bytes),
            title: String::new(),
            min_level: Level::Trace,
            shown: VecDeque::new(),
            follow: true,
            top: 0,
            skip: 0,
            total_at_pause: 0,
            wrap: false,
            hscroll: 0,
            search: Search::default(),
            drawn: Vec::new(),
            width: 0,
            height: 0,
        }
    }

    /// Switches to another connection. The level filter and wrap are the user's
    /// preferences and survive; `title` is used when `render` is given an empty one.
    pub fn reset(&mut self, title: &str) {
        self.ring.clear();
        self.shown.clear();
        self.search = Search::default();
        (self.follow, self.top, self.skip) = (true, 0, 0);
        self.hscroll = 0;
        self.title = title.to_string();
    }

    pub fn push(&mut self, entries: impl IntoIterator<Item = LogEntry>) {
        let before = self.ring.total();
        self.ring.extend(entries);
        let first = self.ring.first_seq();
        for seq in before.max(first)..self.ring.total() {
            self.index(seq);
        }
        while self.shown.front().is_some_and(|&s| s < first) {
            self.shown.pop_front();
        }
        while self.search.matches.front().is_some_and(|&s| s < first) {
            self.search.matches.pop_front();
        }
    }

    fn index(&mut self, seq: u64) {
        let Some(e) = self.ring.get_seq(seq) else {
            return;
        };
        if e.level >= self.min_level {
            self.shown.push_back(seq);
            if !self.search.needle.is_empty() && contains(&e.message, &self.search.needle) {
                self.search.matches.push_back(seq);
            }
        }
    }

    /// Full rescan: only when the level filter or the query changes.
    fn reindex(&mut self) {
        self.shown.clear();
        self.search.matches.clear();
        for seq in self.ring.first_seq()..self.ring.total() {
            self.index(seq);
        }
    }

    pub fn following(&self) -> bool {
        self.follow
    }

    pub fn search_active(&self) -> bool {
        self.search.typing
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> PaneOutcome {
        if key.kind == KeyEventKind::Release {
            return PaneOutcome::NotHandled;
        }
        if self.search.typing {
            return self.search_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if key.modifiers.contains(KeyModifiers::ALT) {
            return PaneOutcome::NotHandled;
        }
        let page = self.height.saturating_sub(1).max(1) as i32;
        let half = (self.height / 2).max(1) as i32;
        match (key.code, ctrl) {
            (KeyCode::Char('d'), true) => self.scroll(half),
            (KeyCode::Char('u'), true) => self.scroll(-half),
            (_, true) => return PaneOutcome::NotHandled,
            (KeyCode::Char('j') | KeyCode::Down, _) => self.scroll(1),
            (KeyCode::Char('k') | KeyCode::Up, _) => self.scroll(-1),
            (KeyCode::PageDown, _) => self.scroll(page),
            (KeyCode::PageUp, _) => self.scroll(-page),
            (KeyCode::Char('g') | KeyCode::Home, _) => {
                self.pause();
                self.set_top((0, 0));
            }
            (KeyCode::Char('G') | KeyCode::End, _) => self.follow = true,
            (KeyCode::Char('/'), _) => {
                self.search.typing = true;
                self.set_query(String::new());
            }
            (KeyCode::Char('n'), _) => self.step(true),
            (KeyCode::Char('N'), _) => self.step(false),
            (KeyCode::Char('v'), _) => {
                self.min_level = match self.min_level {
                    Level::Trace | Level::Debug => Level::Info,
                    Level::Info => Level::Warn,
                    Level::Warn => Level::Error,
                    Level::Error => Level::Trace,
                };
                self.reindex();
            }
            (KeyCode::Char('w'), _) => {
                self.wrap = !self.wrap;
                self.hscroll = 0;
            }
            // Not past the end of the longest line on screen.
            (KeyCode::Right, _) if !self.wrap => {
                if self.hscroll + HSTEP < self.longest_on_screen() {
                    self.hscroll += HSTEP;
                }
            }
            (KeyCode::Left, _) if !self.wrap => self.hscroll = self.hscroll.saturating_sub(HSTEP),
            (KeyCode::Left | KeyCode::Right, _) => {}
            (KeyCode::Enter, _) => return PaneOutcome::OpenLine,
            (KeyCode::Char('x'), _) => return PaneOutcome::SaveRequested,
            (KeyCode::Esc, _) => return PaneOutcome::Close,
            _ => return PaneOutcome::NotHandled,
        }
        PaneOutcome::Consumed
    }

    /// While typing, every key is ours except Ctrl-C, left to the app's global quit.
    fn search_key(&mut self, key: KeyEvent) -> PaneOutcome {
        let plain = !key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        let mut query = self.search.query.clone();
        match key.code {
            KeyCode::Char('c') if !plain => return PaneOutcome::NotHandled,
            KeyCode::Char('u') if !plain => query.clear(),
            KeyCode::Char(c) if plain => query.push(c),
            KeyCode::Backspace => {
                query.pop();
            }
            KeyCode::Esc => {
                self.search = Search::default();
                return PaneOutcome::Consumed;
            }
            KeyCode::Enter => {
                self.search.typing = false;
                if self.search.needle.is_empty() {
                    self.search = Search::default();
                } else {
                    self.jump_from_bottom();
                }
                return PaneOutcome::Consumed;
            }
            _ => return PaneOutcome::Consumed,
        }
        self.set_query(query);
        PaneOutcome::Consumed
    }

    fn set_query(&mut self, query: String) {
        self.search.needle = query.chars().map(fold).collect();
        self.search.query = query;
        self.search.current = None;
        self.search.matches.clear();
        if !self.search.needle.is_empty() {
            for &seq in &self.shown {
                if let Some(e) = self.ring.get_seq(seq)
                    && contains(&e.message, &self.search.needle)
                {
                    self.search.matches.push_back(seq);
                }
            }
        }
    }

    /// Like `less`'s `?` from the end: the newest match at or above the view's bottom,
    /// else the oldest match below it.
    fn jump_from_bottom(&mut self) {
        let Some(bottom) = self.visible().map(|(_, _, b)| self.shown[b]) else {
            return;
        };
        let m = &self.search.matches;
        let above = m.partition_point(|&s| s <= bottom);
        if let Some(&t) = above.checked_sub(1).and_then(|i| m.get(i)).or(m.front()) {
            self.jump_to(t);
        }
    }

    /// `n` (forward) goes to the next newer match, `N` to the next older; both wrap.
    fn step(&mut self, forward: bool) {
        let Some((top, bottom)) = self
            .visible()
            .map(|(t, b, _)| (self.shown[t], self.shown[b]))
        else {
            return;
        };
        let m = &self.search.matches;
        let target = if forward {
            let from = self.search.current.map_or(top, |c| c + 1);
            m.get(m.partition_point(|&s| s < from)).or(m.front())
        } else {
            let before = self.search.current.unwrap_or(bottom + 1);
            let older = m.partition_point(|&s| s < before).checked_sub(1);
            older.and_then(|i| m.get(i)).or(m.back())
        };
        if let Some(&t) = target {
            self.jump_to(t);
        }
    }

    /// Leaves the view alone if the match is on screen, else centres it; always pauses
    /// so the match does not scroll away under the user.
    fn jump_to(&mut self, seq: u64) {
        self.search.current = Some(seq);
        let Some((top, skip, bottom)) = self.visible() else {
            return;
        };
        let pos = self.pos_of(seq);
        let view = if (top..=bottom).contains(&pos) {
            (top, skip)
        } else {
            (pos.saturating_sub(self.height / 2), 0)
        };
        self.pause();
        self.set_top(view);
    }

    /// Mouse wheel and scroll keys, in lines; negative is up. Scrolling up pauses
    /// follow; only G/End resumes it, so reading is never yanked back to the bottom.
    pub fn scroll(&mut self, delta: i32) {
        let Some((mut top, mut skip, _)) = self.visible() else {
            return;
        };
        let steps = delta.unsigned_abs() as usize;
        if delta < 0 {
            self.pause();
            // Revealing the hidden start of a wrapped top line is the first step.
            top = top.saturating_sub(steps - usize::from(skip > 0));
            skip = 0;
        } else if self.follow {
            return;
        } else {
            (top, skip) = (top + steps, 0);
        }
        self.set_top((top, skip));
    }

    fn pause(&mut self) {
        if self.follow {
            self.follow = false;
            self.total_at_pause = self.ring.total();
        }
    }

    /// Never past the end view, so a paused view is always full when it can be.
    fn set_top(&mut self, view: (usize, usize)) {
        let (pos, skip) = view.min(self.end_view());
        if let Some(&seq) = self.shown.get(pos) {
            (self.top, self.skip) = (seq, skip);
        }
    }

    /// Position in `shown` of `seq`, or of the next line after it if it is gone.
    fn pos_of(&self, seq: u64) -> usize {
        self.shown.partition_point(|&s| s < seq)
    }

    fn entry_rows(&self, pos: usize) -> usize {
        if !self.wrap {
            return 1;
        }
        self.entry_lines(pos, &Theme::plain()).len()
    }

    /// The view with the newest line at the bottom: its top line and how many of that
    /// line's wrapped rows are above the screen.
    fn end_view(&self) -> (usize, usize) {
        let mut rows = 0;
        for pos in (0..self.shown.len()).rev() {
            rows += self.entry_rows(pos);
            if rows >= self.height {
                return (pos, rows - self.height);
            }
        }
        (0, 0)
    }

    /// Top line, its hidden rows, and the last line on screen; `None` if nothing shows.
    fn visible(&self) -> Option<(usize, usize, usize)> {
        let last = self.shown.len().checked_sub(1)?;
        let (top, skip) = if self.follow {
            self.end_view()
        } else {
            let pos = self.pos_of(self.top);
            // A top line that was evicted or filtered out has no hidden rows any more.
            let skip = if self.shown.get(pos) == Some(&self.top) {
                self.skip
            } else {
                0
            };
            (pos, skip).min(self.end_view())
        };
        let skip = skip.min(self.entry_rows(top).saturating_sub(1));
        let mut rows = 0;
        for pos in top..=last {
            rows += self.entry_rows(pos);
            if rows >= self.height + skip {
                return Some((top, skip, pos));
            }
        }
        Some((top, skip, last))
    }

    pub fn status_line(&self) -> String {
        self.status_parts()
            .into_iter()
            .map(|p| p.full)
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// The status line in `width` columns: whole, else in short words, else without its
    /// least important parts — never a part cut in half (a level filter reading "lev…").
    pub fn status_line_in(&self, width: usize) -> String {
        let parts = self.status_parts();
        let join = |texts: Vec<&str>| texts.join(" · ");
        let full = join(parts.iter().map(|p| p.full.as_str()).collect());
        if crate::tui::view::width_of(&full) <= width {
            return full;
        }
        let mut keep: Vec<&StatusPart> = parts.iter().collect();
        loop {
            let short = join(keep.iter().map(|p| p.short.as_str()).collect());
            if crate::tui::view::width_of(&short) <= width || keep.len() <= 1 {
                return crate::tui::view::fit(&short, width);
            }
            // Drop the least important part, the later one on a tie.
            let (at, _) = keep
                .iter()
                .enumerate()
                .rev()
                .min_by_key(|(_, p)| p.rank)
                .expect("not empty");
            keep.remove(at);
        }
    }

    fn status_parts(&self) -> Vec<StatusPart> {
        let mut parts = Vec::new();
        let s = &self.search;
        if s.typing {
            parts.push(StatusPart::new(
                format!("/{}█ Enter find · Esc cancel", s.query),
                format!("/{}█", s.query),
                9,
            ));
        }
        if self.follow {
            parts.push(StatusPart::new("following".into(), "follow".into(), 8));
        } else {
            parts.push(StatusPart::new(
                "paused — G or End to follow".into(),
                "paused (G)".into(),
                8,
            ));
            let new = self.ring.total().saturating_sub(self.total_at_pause);
            if new > 0 {
                let text = format!("{} new", thousands(new));
                parts.push(StatusPart::new(text.clone(), text, 4));
            }
        }
        let lines = match self.ring.len() {
            1 => "1 line".to_string(),
            n => format!("{} lines", thousands(n as u64)),
        };
        parts.push(StatusPart::new(lines.clone(), lines, 2));
        if self.ring.dropped() > 0 {
            let text = format!("{} dropped", thousands(self.ring.dropped()));
            parts.push(StatusPart::new(text.clone(), text, 3));
        }
        if self.min_level > Level::Trace {
            parts.push(StatusPart::new(
                format!("level ≥ {}", self.min_level.as_str()),
                format!("≥{}", self.min_level.as_str()),
                6,
            ));
        }
        let wrap = format!("wrap {}", if self.wrap { "on" } else { "off" });
        parts.push(StatusPart::new(wrap.clone(), wrap, 5));
        if self.hscroll > 0 {
            parts.push(StatusPart::new(
                format!("→ column {} (← back)", self.hscroll + 1),
                format!("→{}", self.hscroll + 1),
                6,
            ));
        }
        if !s.typing && !s.needle.is_empty() {
            let n = s.matches.len() as u64;
            let at = s.current.and_then(|c| s.matches.binary_search(&c).ok());
            let text = match at {
                Some(i) => format!("/{} {}/{}", s.query, thousands(i as u64 + 1), thousands(n)),
                None if n == 0 => format!("/{} no matches", s.query),
                None if n == 1 => format!("/{} 1 match", s.query),
                None => format!("/{} {} matches", s.query, thousands(n)),
            };
            parts.push(StatusPart::new(text.clone(), text, 7));
        }
        parts
    }

    pub fn render(
        &mut self,
        area: Rect,
        buf: &mut Buffer,
        theme: &Theme,
        focused: bool,
        title: &str,
    ) {
        Clear.render(area, buf);
        let title = if title.is_empty() {
            self.title.as_str()
        } else {
            title
        };
        let status_style = if self.follow {
            Style::default()
        } else {
            theme.warning()
        };
        let border = if focused {
            theme.focused_border()
        } else {
            theme.border()
        };
        let block = Block::bordered()
            .border_style(border)
            .title(Line::styled(format!("Logs · {title}"), theme.title()))
            .title_bottom(Line::styled(
                self.status_line_in(usize::from(area.width.saturating_sub(2))),
                status_style,
            ));
        let inner = block.inner(area);
        block.render(area, buf);
        self.width = usize::from(inner.width);
        self.height = usize::from(inner.height);
        if inner.is_empty() {
            return;
        }
        if self.shown.is_empty() {
            let hint = if self.ring.is_empty() {
                HINT.to_string()
            } else {
                format!(
                    "No lines at level ≥ {}. Press v to change.",
                    self.min_level.as_str()
                )
            };
            let rows = crate::tui::view::wrap(&hint, usize::from(inner.width), 3);
            let top = inner.y + (inner.height.saturating_sub(rows.len() as u16)) / 2;
            for (y, text) in (top..inner.y + inner.height).zip(rows) {
                let row = Rect {
                    y,
                    height: 1,
                    ..inner
                };
                Line::styled(text, theme.dim()).centered().render(row, buf);
            }
            return;
        }
        let rows = self.visible_rows(theme);
        self.drawn = rows.iter().map(|(seq, _)| *seq).collect();
        for (y, (_, line)) in (inner.y..).zip(rows) {
            buf.set_line(inner.x, y, &line, inner.width);
        }
    }

    /// The rows on screen, each with the sequence number of its line.
    fn visible_rows(&self, theme: &Theme) -> Vec<(u64, Line<'static>)> {
        let Some((top, skip, bottom)) = self.visible() else {
            return Vec::new();
        };
        let mut rows: Vec<(u64, Line<'static>)> = (top..=bottom)
            .flat_map(|pos| {
                let seq = self.shown[pos];
                self.entry_lines(pos, theme)
                    .into_iter()
                    .map(move |l| (seq, l))
            })
            .skip(skip)
            .collect();
        rows.truncate(self.height);
        rows
    }

    /// Display width of the longest message on screen (capped: only how far → may go).
    fn longest_on_screen(&self) -> usize {
        let Some((top, _, bottom)) = self.visible() else {
            return 0;
        };
        (top..=bottom)
            .filter_map(|pos| self.ring.get_seq(self.shown[pos]))
            .map(|e| {
                e.message
                    .chars()
                    .take(1 << 16)
                    .map(char_width)
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }

    /// The line Enter opens: the current search match, else the newest line on screen.
    pub fn selected_line(&self) -> Option<&LogEntry> {
        let seq = match self.search.current {
            Some(seq) => seq,
            None => self.shown[self.visible()?.2],
        };
        self.ring.get_seq(seq)
    }

    /// The line drawn on row `row` of the pane (0 = its top border), for a click.
    pub fn line_at_row(&self, row: usize) -> Option<&LogEntry> {
        let seq = *self.drawn.get(row.checked_sub(1)?)?;
        self.ring.get_seq(seq)
    }

    /// One log line laid out at the current width: `HH:MM:SS.mmm LEVEL message`: one row
    /// from column `hscroll` of the message (wrap off), or wrapped, up to a paneful of
    /// rows (wrap on); ending in `…` when cut. Enter shows a line whole.
    fn entry_lines(&self, pos: usize, theme: &Theme) -> Vec<Line<'static>> {
        let Some(e) = self.shown.get(pos).and_then(|&s| self.ring.get_seq(s)) else {
            return Vec::new();
        };
        let width = self.width.max(1);
        // A paneful bounds the cost of a huge line; Enter shows all of it.
        let cap = if self.wrap {
            self.height.max(4) * width
        } else {
            width
        };
        let mut cells: Vec<(char, Style)> = Vec::new();
        let time = format_time(e.at, "%H:%M:%S%.3f");
        cells.extend(time.chars().map(|c| (c, theme.dim())));
        cells.push((' ', Style::default()));
        let level = format!("{:<5} ", e.level.as_str());
        cells.extend(
            level
                .chars()
                .map(|c| (c, theme.log_level(e.level.as_str()))),
        );

        let mut used: usize = cells.iter().map(|&(c, _)| char_width(c)).sum();
        let msg_start = cells.len();
        let mut cut = false;
        let mut skipped = 0;
        let scrolled = !self.wrap && self.hscroll > 0;
        if scrolled {
            // Marks the message's hidden start.
            cells.push(('…', theme.dim()));
            used += 1;
        }
        for c in e.message.chars() {
            if scrolled && skipped < self.hscroll {
                skipped += char_width(c).max(1);
                continue;
            }
            // Control characters would reach the terminal raw (escape injection); bidi
            // and zero-width ones would reorder or hide what the line says.
            let c = if crate::tui::view::invisible(c) {
                ' '
            } else {
                c
            };
            if used + char_width(c) > cap {
                cut = true;
                break;
            }
            used += char_width(c);
            cells.push((c, Style::default()));
        }
        if cut {
            while used + 1 > cap && cells.len() > msg_start {
                used -= cells.pop().map_or(0, |(c, _)| char_width(c));
            }
            cells.push(('…', theme.dim()));
        }
        let current = self.search.current == Some(self.shown[pos]);
        highlight(&mut cells[msg_start..], &self.search.needle, theme, current);
        wrap_rows(&cells, width)
    }

    /// Writes the lines passing the level filter, oldest first, to a new file readable
    /// only by the user (logs can carry personal data). Never overwrites.
    pub fn export(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = BufWriter::new(options.open(path)?);
        let mut count = 0;
        for e in self.ring.iter().filter(|e| e.level >= self.min_level) {
            let at = format_time(e.at, "%Y-%m-%d %H:%M:%S%.3f");
            writeln!(out, "{at} {} {}", e.level.as_str(), e.message)?;
            count += 1;
        }
        out.flush()?;
        Ok(count)
    }
}

fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Simple case folding; the same rule for matching and highlighting so they agree.
fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

fn contains(hay: &str, needle: &[char]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    hay.char_indices().any(|(i, c)| {
        fold(c) == first
            && hay[i..]
                .chars()
                .map(fold)
                .take(needle.len())
                .eq(needle.iter().copied())
    })
}

fn highlight(cells: &mut [(char, Style)], needle: &[char], theme: &Theme, current: bool) {
    if needle.is_empty() {
        return;
    }
    let mut style = theme.highlight();
    if current {
        style = style.add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
    }
    let mut i = 0;
    while i + needle.len() <= cells.len() {
        if cells[i..i + needle.len()]
            .iter()
            .map(|&(c, _)| fold(c))
            .eq(needle.iter().copied())
        {
            cells[i..i + needle.len()]
                .iter_mut()
                .for_each(|cell| cell.1 = style);
            i += needle.len();
        } else {
            i += 1;
        }
    }
}

/// Breaks styled cells into rows of at most `width` columns, merging runs of one style.
fn wrap_rows(cells: &[(char, Style)], width: usize) -> Vec<Line<'static>> {
    let mut rows = vec![Vec::new()];
    let mut col = 0;
    for &(c, style) in cells {
        let w = char_width(c);
        if col + w > width && col > 0 {
            rows.push(Vec::new());
            col = 0;
        }
        col += w;
        let row: &mut Vec<Span<'static>> = rows.last_mut().expect("never empty");
        match row.last_mut() {
            Some(span) if span.style == style => span.content.to_mut().push(c),
            _ => row.push(Span::styled(c.to_string(), style)),
        }
    }
    rows.into_iter().map(Line::from).collect()
}

fn format_time(at: i64, fmt: &str) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map_or_else(|| "??:??:??.???".to_string(), |t| t.format(fmt).to_string())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "pane_tests.rs"]
mod tests;
