//! Header, database banner, message line and the keys that apply right now.

use super::{fit, wrap};
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
    let channels = app.presence.as_ref().map(|p| match p.others.len() {
        0 => p.summary(),
        1 => format!("{} (+1 process)", p.summary()),
        n => format!("{} (+{n} processes)", p.summary()),
    });
    let left = if app.screen == crate::tui::app::Screen::Agents {
        "AI Agents"
    } else {
        "Settings › Channels"
    };
    let width = area.width as usize;
    let room = width.saturating_sub(super::width_of(left) + 2);
    // Who, which tenant and where channels run matter most (an incident may be "no
    // process runs channels"): a narrow header drops the database first, then where
    // channels run, before it cuts anything.
    let who = format!("{} ({role})", h.operator);
    let tenant = format!("tenant {}", h.tenant);
    let db = Some(h.database.as_str());
    let candidates = [
        [
            Some(tenant.as_str()),
            channels.as_deref(),
            db,
            Some(who.as_str()),
        ],
        [
            Some(tenant.as_str()),
            channels.as_deref(),
            None,
            Some(who.as_str()),
        ],
        [Some(tenant.as_str()), None, None, Some(who.as_str())],
    ];
    let joined = |parts: &[Option<&str>; 4]| {
        parts
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let right = candidates
        .iter()
        .map(joined)
        .find(|r| super::width_of(&super::shown(r)) <= room)
        .unwrap_or_else(|| joined(&candidates[2]));
    let right = fit(&super::shown(&right), room);
    let pad = width.saturating_sub(super::width_of(left) + super::width_of(&right));
    let line = Line::from(vec![
        Span::styled(left, t.title()),
        Span::raw(" ".repeat(pad)),
        Span::styled(right, t.dim()),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

pub fn banner(f: &mut Frame, app: &App, area: Rect) {
    let Some((since, err)) = &app.fresh.db_down else {
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

/// The message line: what is pending, or the last flash. A long message (a save error
/// naming the field and the fix) takes up to three lines, wrapped between words, rather
/// than losing its end.
pub fn message_lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let (text, style) = if let Some((what, since)) = &app.busy {
        let waited = (app.now - since) / 1000;
        let text = if waited >= 1 {
            format!("{what}… waiting for the database ({waited} s)")
        } else {
            format!("{what}…")
        };
        (text, t.warning())
    } else if let Some((text, kind)) = &app.flash {
        let style = match kind {
            FlashKind::Info => t.ok(),
            FlashKind::Warn => t.warning(),
            FlashKind::Error => t.error(),
        };
        // Flashes quote names and provider errors.
        (super::shown(text).into_owned(), style)
    } else if !app.fresh.loaded {
        ("Loading connections…".to_string(), t.dim())
    } else {
        return vec![Line::raw("")];
    };
    let mut lines: Vec<Line> = wrap(&text, width, 3)
        .into_iter()
        .map(|l| Line::styled(l, style))
        .collect();
    if lines.is_empty() {
        lines.push(Line::raw(""));
    }
    lines
}

pub fn message(f: &mut Frame, app: &App, area: Rect) {
    let lines = message_lines(app, area.width as usize);
    f.render_widget(Paragraph::new(lines), area);
}

/// The footer: only the keys that work where the focus is, from the key table, in
/// order of importance, whole pairs only.
pub fn keys(f: &mut Frame, app: &App, area: Rect) {
    use crate::tui::keys::{Offer, Section, footer};
    let scope = if app.screen == crate::tui::app::Screen::Agents {
        Section::Agents
    } else {
        match app.focus {
            Focus::List => Section::List,
            Focus::Search => Section::Search,
            Focus::Panel => Section::Panel,
            Focus::Fields => Section::Fields,
            Focus::Logs => Section::Logs,
        }
    };
    let can_edit = app.can_edit();
    let runs = app.current().is_some_and(|c| {
        crate::tui::app::start_stop_target(c) == crate::model::DesiredState::Stopped
    });
    let has_url = app.current_webhook_url().is_some();
    // A voice line runs with its agent: nothing to start, stop or restart here.
    let own = app.current().is_none_or(crate::tui::voice::own_lifecycle);
    let pairs = footer(scope, |offer| match offer {
        Offer::Always => true,
        Offer::Edits => can_edit,
        Offer::OwnRun => can_edit && own,
        Offer::Runs => can_edit && runs && own,
        Offer::WebhookUrl => has_url,
    });
    let t = &app.theme;
    let mut spans = Vec::new();
    let mut room = area.width as usize;
    if !can_edit {
        const RO: &str = "READ-ONLY (viewer) ";
        spans.push(Span::styled(RO, t.warning()));
        room = room.saturating_sub(RO.len());
    }
    for (k, what) in fit_pairs(&pairs, room) {
        spans.push(Span::styled(k, t.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The footer's pairs that fit in `width` columns, whole: help first and quit last are
/// always kept; the others in their order of importance (the order given) while they
/// fit. `?` lists whatever a narrow terminal leaves out.
pub fn fit_pairs<'a>(pairs: &[(&'a str, &'a str)], width: usize) -> Vec<(&'a str, &'a str)> {
    let cost = |(k, w): &(&str, &str)| super::width_of(k) + 1 + super::width_of(w) + 2;
    let kept = |p: &(&str, &str)| p.0 == "?" || p.0 == "F1" || p.0 == "q";
    let mut used: usize = pairs.iter().filter(|p| kept(p)).map(cost).sum();
    // The last pair's trailing spaces need not fit.
    used = used.saturating_sub(2);
    let mut take = vec![false; pairs.len()];
    for (i, p) in pairs.iter().enumerate() {
        if kept(p) {
            take[i] = true;
        } else if used + cost(p) <= width {
            used += cost(p);
            take[i] = true;
        }
    }
    pairs
        .iter()
        .zip(take)
        .filter(|(_, t)| *t)
        .map(|(p, _)| *p)
        .collect()
}
