//! The channel list with its search box, sort order, groups and the selected row's
//! status message (what hovering the dot shows in the portal).

use super::short_time;
use super::{fit, wrap, wrap_all};
use crate::catalog::Catalog;
use crate::model::{DesiredState, Status};
use crate::tui::app::{App, Focus, Hit};
use crate::tui::list::Row;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

pub fn draw(f: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme;
    let focused = matches!(app.focus, Focus::List | Focus::Search);
    let counts = status_counts(app);
    // Sort and filter always show; "Channels" only where there is room for it too.
    let how = match app.list.filter.label() {
        Some(filter) => format!("{} · {filter}", app.list.sort.label()),
        None => app.list.sort.label().to_string(),
    };
    let long = format!(" Channels · {how} ");
    let title = if super::width_of(&long) + 2 <= area.width as usize {
        long
    } else {
        format!(" {how} ")
    };
    let block = Block::bordered()
        .title(Line::styled(title, t.title()))
        .title_bottom(Line::styled(counts, t.dim()).right_aligned())
        .border_style(if focused {
            t.focused_border()
        } else {
            t.border()
        });
    let inner = block.inner(area);
    f.render_widget(block, area);
    app.hits.push((area, Hit::List));

    let status_h = status_height(app, inner);
    let [search, rows_area, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(status_h),
    ])
    .areas(inner);
    draw_search(f, app, search);
    draw_rows(f, app, rows_area);
    draw_selected_status(f, app, status_area);
}

fn status_counts(app: &App) -> String {
    if app.fresh.partial {
        return format!(" first {} shown · loading the rest… ", app.list.all.len());
    }
    let (running, errors) = app.list.status_counts();
    let mut s = format!(" {running} running ");
    if errors > 0 {
        s = format!(" {running} running · {errors} error ");
    }
    s
}

fn draw_search(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = if app.focus == Focus::Search {
        Line::from(vec![
            Span::styled("/", t.key()),
            Span::raw(super::shown(&app.list.query).into_owned()),
            Span::styled("▏", t.key()),
            Span::styled(format!("  {}", matches(app.list.visible_count())), t.dim()),
        ])
    } else if !app.list.query.is_empty() {
        Line::from(vec![
            Span::styled(format!("/{}", super::shown(&app.list.query)), t.key()),
            Span::styled(
                format!("  {} · Esc clears", matches(app.list.visible_count())),
                t.dim(),
            ),
        ])
    } else {
        Line::styled("/ to search by name", t.dim())
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_rows(f: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme;
    let height = area.height as usize;
    app.list.scroll_into_view(height);
    if app.fresh.loaded && app.list.all.is_empty() {
        let text = if app.can_edit() {
            "No connections yet. Press a to add one."
        } else {
            "No connections yet."
        };
        let lines: Vec<Line> = wrap(text, area.width as usize, 3)
            .into_iter()
            .map(|l| Line::styled(l, t.dim()))
            .collect();
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    if let Some(none) = app.list.filter.none_text()
        && app.list.visible_count() == 0
    {
        let text = format!("{none}. f shows them all.");
        let lines: Vec<Line> = wrap(&text, area.width as usize, 3)
            .into_iter()
            .map(|l| Line::styled(l, t.dim()))
            .collect();
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    let width = area.width as usize;
    let show_type = width >= 44;
    let catalog = Catalog::get();
    // One status column width for the rows on screen, so the columns line up.
    let status_w = app
        .list
        .rows
        .iter()
        .skip(app.list.offset)
        .take(height)
        .filter_map(|r| match r {
            Row::Item(i) => Some(row_status(&app.list.all[*i], show_type).chars().count()),
            Row::Group { .. } => None,
        })
        .max()
        .unwrap_or(7);
    for (drawn, row) in app
        .list
        .rows
        .iter()
        .skip(app.list.offset)
        .take(height)
        .enumerate()
    {
        let y = area.y + drawn as u16;
        let row_area = Rect::new(area.x, y, area.width, 1);
        let line = match *row {
            Row::Group { deprecated, count } => {
                let name = if deprecated {
                    "Deprecated Channels"
                } else {
                    "Channels"
                };
                let style = if deprecated {
                    t.dim().add_modifier(Modifier::BOLD)
                } else {
                    t.title()
                };
                Line::styled(fit(&format!("{name} ({count})"), width), style)
            }
            Row::Item(i) => {
                let c = &app.list.all[i];
                let selected = app.list.selected == Some(c.id);
                let status_word = row_status(c, show_type);
                let mut type_name = catalog
                    .find(&c.type_key)
                    .map(|ty| ty.display_name())
                    .unwrap_or_default();
                // A voice line's row names the agent it runs with ("Twilio · Support").
                if let Some(names) = app.runs_with.get(&c.id).filter(|n| !n.is_empty()) {
                    let names: Vec<_> = names.iter().map(|n| super::shown(n)).collect();
                    type_name = format!("{type_name} · {}", names.join(", "));
                }
                let type_col = if show_type { 24.min(width * 2 / 5) } else { 0 };
                let name_width = width.saturating_sub(2 + 1 + status_w + type_col);
                let mut spans = vec![
                    Span::styled(
                        format!("{} ", Theme::status_symbol(c.status)),
                        t.status(c.status),
                    ),
                    Span::raw(super::pad(&super::shown(&c.name), name_width)),
                ];
                if show_type {
                    spans.push(Span::styled(
                        super::pad(&fit(&type_name, type_col.saturating_sub(1)), type_col),
                        t.dim(),
                    ));
                }
                spans.push(Span::raw(" "));
                spans.push(Span::styled(
                    format!("{status_word:>status_w$}"),
                    t.status(c.status),
                ));
                let mut line = Line::from(spans);
                if selected {
                    line = line.patch_style(t.selected());
                }
                line
            }
        };
        f.render_widget(Paragraph::new(line), row_area);
        app.hits.push((row_area, Hit::ListRow(drawn)));
    }
}

/// A row's status: the word, and the calls a voice line holds ("RUNNING · 2 calls";
/// "RUNNING 2 calls" where the list is narrow, so the name keeps some room).
fn row_status(c: &crate::model::Connection, wide: bool) -> String {
    let word = status_word(c.status, c.desired);
    match crate::tui::voice::calls_short(c) {
        Some(calls) if c.status == Status::Running && wide => format!("{word} · {calls}"),
        Some(calls) if c.status == Status::Running => format!("{word} {calls}"),
        _ => word,
    }
}

/// The status word, plus what was asked for when the runtime has not caught up.
pub fn status_word(status: Status, desired: DesiredState) -> String {
    match (status, desired) {
        (Status::Stopped | Status::Error, DesiredState::Running) => format!("{status}→START"),
        (Status::Running, DesiredState::Stopped) => format!("{status}→STOP"),
        _ => status.to_string(),
    }
}

/// Room for the selected connection's status under the rows: the separator, the status
/// line and its whole message, as long as the rows keep at least half the panel (or all
/// they need). A message longer than that ends in "…" and `i` shows it whole.
fn status_height(app: &App, inner: Rect) -> u16 {
    let width = inner.width as usize;
    let needed = app
        .list
        .selected_connection()
        .map(|c| wrap_all(&status_message(app, c), width).len())
        .unwrap_or(0)
        .max(2);
    let room = inner.height.saturating_sub(1) as usize;
    let rows_keep = app.list.rows.len().min(room / 2).max(1);
    let lines = needed.min(room.saturating_sub(rows_keep + 2)).max(2);
    (lines + 2) as u16
}

/// What the list says about the selected connection: its status message, or what its
/// state means when the runtime left none.
pub fn status_message(app: &App, c: &crate::model::Connection) -> String {
    let gone = app
        .presence
        .as_ref()
        .and_then(|p| crate::runtime::presence::owner_gone(c, &p.leases, p.db_now));
    if let Some(since) = gone {
        crate::runtime::presence::owner_gone_message(since)
    } else if let Some(agents) = app.runs_with_words(c) {
        runs_with_message(&agents, c)
    } else if c.status_message.is_empty() {
        match (c.status, c.desired) {
            (Status::Stopped, DesiredState::Running) => {
                "Start requested: waiting for the runtime to pick it up".to_string()
            }
            (Status::Stopped, _) => "Configured but not running. s starts it.".to_string(),
            _ => String::new(),
        }
    } else {
        // Provider text: it may hold anything.
        super::shown(&c.status_message).into_owned()
    }
}

/// A connection without Start/Stop of its own: whose it is, what starts it, then what
/// the runtime says ("Runs with agent Support · answering +1415… · 1 call in progress").
fn runs_with_message(agents: &str, c: &crate::model::Connection) -> String {
    if agents == crate::tui::voice::NO_AGENT {
        return "Attached to no agent yet: it runs with its agent (A: AI Agents)".into();
    }
    let mut parts = vec![format!("Runs with {agents}")];
    match (c.status, c.desired) {
        (Status::Stopped, DesiredState::Running) => {
            parts.push("start requested: waiting for the runtime to pick it up".into())
        }
        (Status::Stopped | Status::Error, _) => {
            parts.push("starts when its agent starts (A: AI Agents)".into())
        }
        _ => {}
    }
    if !c.status_message.is_empty() {
        // Provider text: it may hold anything.
        parts.push(super::shown(&c.status_message).into_owned());
    }
    parts.join(" · ")
}

fn draw_selected_status(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let width = area.width as usize;
    let mut lines = vec![Line::styled("─".repeat(width), t.border())];
    if let Some(c) = app.list.selected_connection() {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} {}", Theme::status_symbol(c.status), c.status),
                t.status(c.status),
            ),
            Span::styled(
                fit(
                    &format!(" since {}", short_time(c.status_since, app.now)),
                    width.saturating_sub(10),
                ),
                t.dim(),
            ),
        ]));
        let message = status_message(app, c);
        let style = if c.status == Status::Error {
            t.error()
        } else {
            ratatui::style::Style::default()
        };
        let room = (area.height as usize).saturating_sub(2);
        let shown = super::wrap_with_hint(&message, width, room, "i: all");
        for l in shown {
            lines.push(Line::styled(l, style));
        }
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn matches(n: usize) -> String {
    match n {
        0 => "no match".into(),
        1 => "1 match".into(),
        n => format!("{n} matches"),
    }
}
