//! Header, database banner, message line and the keys that apply right now.

use super::fit;
use crate::model::format_millis;
use crate::permission::Role;
use crate::tui::app::{App, FlashKind, Focus};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn header(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let h = &app.header;
    let role = match h.role {
        Role::Editor => "editor".to_string(),
        Role::Viewer => "viewer".to_string(),
    };
    let channels = app
        .presence
        .as_ref()
        .map(|p| {
            let others = p.others.len();
            match others {
                0 => format!("{} · ", p.summary()),
                1 => format!("{} (+1 process) · ", p.summary()),
                n => format!("{} (+{n} processes) · ", p.summary()),
            }
        })
        .unwrap_or_default();
    let right = format!(
        "tenant {} · {channels}{} · {} ({role})",
        h.tenant, h.database, h.operator
    );
    let left = if app.screen == crate::tui::app::Screen::Agents {
        "AI Agents"
    } else {
        "Settings › Channels"
    };
    let width = area.width as usize;
    let room = width.saturating_sub(left.chars().count() + 2);
    let right = fit(&right, room);
    let pad = width.saturating_sub(left.chars().count() + right.chars().count());
    let line = Line::from(vec![
        Span::styled(left, t.title()),
        Span::raw(" ".repeat(pad)),
        Span::styled(right, t.dim()),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

pub fn banner(f: &mut Frame, app: &App, area: Rect) {
    let Some((since, err)) = &app.db_down else {
        return;
    };
    let text = format!(
        " Database unavailable since {}: {err} — showing the last data loaded; retrying every 2 s ",
        format_millis(*since)
    );
    f.render_widget(
        Paragraph::new(fit(&text, area.width as usize)).style(app.theme.banner()),
        area,
    );
}

pub fn message(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let width = area.width as usize;
    let line = if let Some((what, since)) = &app.busy {
        let waited = (app.now - since) / 1000;
        let text = if waited >= 1 {
            format!("{what}… waiting for the database ({waited} s)")
        } else {
            format!("{what}…")
        };
        Line::styled(fit(&text, width), t.warning())
    } else if let Some((text, kind)) = &app.flash {
        let style = match kind {
            FlashKind::Info => t.ok(),
            FlashKind::Warn => t.warning(),
            FlashKind::Error => t.error(),
        };
        Line::styled(fit(text, width), style)
    } else if !app.loaded {
        Line::styled("Loading connections…", t.dim())
    } else {
        Line::raw("")
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The footer: only the keys that work where the focus is.
pub fn keys(f: &mut Frame, app: &App, area: Rect) {
    let agents_keys = vec![
        ("A", "channels"),
        ("↑↓", "move"),
        ("Tab", "card"),
        ("n", "new agent"),
        ("s", "start/stop agent"),
        ("a", "add channel"),
        ("Space", "inbound"),
        ("x", "detach"),
        ("q", "quit"),
    ];
    let mut pairs: Vec<(&str, &str)> = if app.screen == crate::tui::app::Screen::Agents {
        agents_keys
    } else {
        match app.focus {
            Focus::List => vec![
                ("↑↓", "move"),
                ("Enter", "open"),
                ("/", "search"),
                ("o", "sort"),
                ("a", "add"),
                ("s", "start/stop"),
                ("l", "logs"),
                ("D", "delete"),
                ("A", "agents"),
                ("q", "quit"),
            ],
            Focus::Search => vec![
                ("type", "filter"),
                ("Enter", "keep"),
                ("Esc", "clear"),
                ("↑↓", "move"),
            ],
            Focus::Panel => vec![
                ("Tab", "fields"),
                ("s", "start/stop"),
                ("l", "logs"),
                ("^S", "save"),
                ("D", "delete"),
                ("^G", "setup guide"),
                ("Esc", "back"),
            ],
            Focus::Fields => vec![
                ("Tab/↑↓", "next field"),
                ("^S", "save"),
                ("^N", "add variable"),
                ("^X", "remove"),
                ("^G", "setup guide"),
                ("Esc", "leave fields"),
            ],
            Focus::Logs => vec![
                ("/", "search"),
                ("n/N", "next/prev"),
                ("v", "level"),
                ("w", "wrap"),
                ("x", "save to file"),
                ("G", "follow"),
                ("Esc", "back"),
                ("l", "close"),
            ],
        }
    };
    // `c` copies the webhook URL: offered where the panel shows one.
    if app.screen == crate::tui::app::Screen::Channels
        && matches!(app.focus, Focus::List | Focus::Panel)
        && app.current_webhook_url().is_some()
        && let Some(at) = pairs.iter().position(|(k, _)| *k == "l")
    {
        pairs.insert(at + 1, ("c", "copy URL"));
    }
    if !app.can_edit() {
        pairs.retain(|(k, _)| {
            !matches!(
                *k,
                "a" | "s" | "D" | "^S" | "^N" | "^X" | "n" | "Space" | "x"
            )
        });
    }
    // Help first: whatever a narrow terminal cuts off, `?` lists it.
    let help = if app.focus == Focus::Fields {
        ("F1", "help")
    } else {
        ("?", "help")
    };
    pairs.retain(|p| *p != help);
    pairs.insert(0, help);
    let t = &app.theme;
    let mut spans = Vec::new();
    if !app.can_edit() {
        spans.push(Span::styled("READ-ONLY (viewer) ", t.warning()));
    }
    for (k, what) in pairs {
        spans.push(Span::styled(k, t.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
