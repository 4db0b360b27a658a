//! Colours and symbols. Every status reads as a word and a symbol, so nothing depends
//! on colour; `NO_COLOR` (or a test) turns colour off entirely.

use crate::model::Status;
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Honours <https://no-color.org>: any non-empty `NO_COLOR` disables colour.
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    pub fn plain() -> Theme {
        Theme { color: false }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn status_symbol(status: Status) -> &'static str {
        match status {
            Status::Running => "●",
            Status::Stopped => "○",
            Status::Starting | Status::Stopping => "◐",
            Status::Error => "✖",
        }
    }

    /// The portal's dot colours: RUNNING green, STOPPED blue, transitions purple, ERROR red.
    pub fn status(&self, status: Status) -> Style {
        match status {
            Status::Running => self.fg(Color::Green),
            Status::Stopped => self.fg(Color::Blue),
            Status::Starting | Status::Stopping => self.fg(Color::Magenta),
            Status::Error => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }

    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn focused_border(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn border(&self) -> Style {
        self.dim()
    }

    pub fn error(&self) -> Style {
        self.fg(Color::Red)
    }

    pub fn warning(&self) -> Style {
        self.fg(Color::Yellow)
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Search matches: reversed as well as coloured, so they show without colour too.
    pub fn highlight(&self) -> Style {
        let s = Style::default().add_modifier(Modifier::REVERSED);
        if self.color { s.fg(Color::Yellow) } else { s }
    }

    pub fn banner(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    pub fn log_level(&self, level: &str) -> Style {
        match level {
            "ERROR" => self.fg(Color::Red),
            "WARN" => self.fg(Color::Yellow),
            "DEBUG" | "TRACE" => self.dim(),
            _ => Style::default(),
        }
    }
}
