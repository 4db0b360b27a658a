//! Just enough of a terminal to know what is on screen: the cursor moves, the text and
//! the erases that ratatui writes through crossterm. Colours, modes and OSC strings are
//! skipped. Bytes may arrive split anywhere; an unfinished sequence waits for the rest.

use unicode_width::UnicodeWidthChar;

pub struct Screen {
    cols: usize,
    cells: Vec<Vec<char>>,
    row: usize,
    col: usize,
    pending: Vec<u8>,
}

/// A wide character's second cell: never part of the text.
const SPILL: char = '\0';

impl Screen {
    pub fn new(cols: u16, rows: u16) -> Screen {
        Screen {
            cols: cols as usize,
            cells: vec![vec![' '; cols as usize]; rows as usize],
            row: 0,
            col: 0,
            pending: Vec::new(),
        }
    }

    /// Whether any line of the screen contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.lines().iter().any(|l| l.contains(text))
    }

    pub fn lines(&self) -> Vec<String> {
        self.cells
            .iter()
            .map(|r| r.iter().filter(|c| **c != SPILL).collect())
            .collect()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let data = std::mem::take(&mut self.pending);
        let mut i = 0;
        while i < data.len() {
            match self.step(&data[i..]) {
                Some(used) => i += used,
                None => break,
            }
        }
        self.pending = data[i..].to_vec();
    }

    /// Applies one item at the start of `b`; how many bytes it took, or `None` when
    /// it is not complete yet.
    fn step(&mut self, b: &[u8]) -> Option<usize> {
        match b[0] {
            0x1b => self.escape(b),
            b'\r' => {
                self.col = 0;
                Some(1)
            }
            b'\n' => {
                self.row = (self.row + 1).min(self.cells.len() - 1);
                Some(1)
            }
            0x08 => {
                self.col = self.col.saturating_sub(1);
                Some(1)
            }
            c if c < 0x20 => Some(1),
            _ => {
                let len = utf8_len(b[0]);
                if b.len() < len {
                    return None;
                }
                let ch = std::str::from_utf8(&b[..len])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                self.put(ch);
                Some(len)
            }
        }
    }

    fn put(&mut self, ch: char) {
        let width = ch.width().unwrap_or(0);
        if width == 0 || self.row >= self.cells.len() {
            return;
        }
        if self.col + width > self.cols {
            return;
        }
        self.cells[self.row][self.col] = ch;
        if width == 2 {
            self.cells[self.row][self.col + 1] = SPILL;
        }
        self.col += width;
    }

    fn escape(&mut self, b: &[u8]) -> Option<usize> {
        let kind = *b.get(1)?;
        match kind {
            b'[' => {
                // CSI: parameters and intermediates, then a final byte 0x40..=0x7e.
                let end = b[2..].iter().position(|c| (0x40..=0x7e).contains(c))? + 2;
                self.csi(&b[2..end], b[end]);
                Some(end + 1)
            }
            b']' => {
                // OSC (e.g. the clipboard): up to BEL or ESC \.
                let mut i = 2;
                loop {
                    match b.get(i)? {
                        0x07 => return Some(i + 1),
                        0x1b if b.get(i + 1)? == &b'\\' => return Some(i + 2),
                        _ => i += 1,
                    }
                }
            }
            _ => Some(2),
        }
    }

    fn csi(&mut self, params: &[u8], fin: u8) {
        let text = String::from_utf8_lossy(params);
        if text.starts_with('?') || text.starts_with('>') {
            return; // modes: alternate screen, cursor, mouse, paste
        }
        let nums: Vec<usize> = text.split(';').map(|p| p.parse().unwrap_or(0)).collect();
        let n =
            |i: usize, default: usize| nums.get(i).copied().filter(|v| *v > 0).unwrap_or(default);
        let rows = self.cells.len();
        match fin {
            b'H' | b'f' => {
                self.row = (n(0, 1) - 1).min(rows - 1);
                self.col = (n(1, 1) - 1).min(self.cols - 1);
            }
            b'A' => self.row = self.row.saturating_sub(n(0, 1)),
            b'B' => self.row = (self.row + n(0, 1)).min(rows - 1),
            b'C' => self.col = (self.col + n(0, 1)).min(self.cols - 1),
            b'D' => self.col = self.col.saturating_sub(n(0, 1)),
            b'G' => self.col = (n(0, 1) - 1).min(self.cols - 1),
            b'J' => match nums.first().copied().unwrap_or(0) {
                2 | 3 => self.cells.iter_mut().for_each(|r| r.fill(' ')),
                0 => {
                    let (row, col) = (self.row, self.col);
                    self.cells[row][col..].fill(' ');
                    self.cells[row + 1..].iter_mut().for_each(|r| r.fill(' '));
                }
                _ => {}
            },
            b'K' => {
                let (row, col) = (self.row, self.col);
                match nums.first().copied().unwrap_or(0) {
                    0 => self.cells[row][col..].fill(' '),
                    1 => self.cells[row][..=col].fill(' '),
                    _ => self.cells[row].fill(' '),
                }
            }
            _ => {} // colours and attributes (m), and the rest
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}
