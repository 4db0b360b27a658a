//! The Details panel: header with Start/Stop and Logs, status, the form, Save/Delete.

use super::short_time;
use super::{fit, fit_middle, wrap};
use crate::catalog::Lifecycle;
use crate::model::{DesiredState, Status};
use crate::tui::app::{App, Focus, Hit, start_stop_target};
use crate::tui::form::{Form, Slot};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

const META_DISABLED: &str = "Meta App ID and App Secret are not configured on the server";

pub fn draw(f: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme;
    let Some(form) = &app.details.form else {
        welcome(f, app, area);
        return;
    };
    let focused = matches!(app.focus, Focus::Panel | Focus::Fields);
    let title = if form.is_new() {
        format!(" New connector · {} ", form.ty.display_name())
    } else {
        format!(
            " {} · {} ",
            super::shown(form.base.as_ref().map(|b| b.name.as_str()).unwrap_or("")),
            form.ty.display_name()
        )
    };
    let current = app.current().cloned();
    let buttons = header_buttons(app, area, form.is_new());
    // The title gets what the buttons leave: two corners, and a gap before the buttons.
    let buttons_w = buttons.as_ref().map_or(0, |b| b.width() + 1);
    let title_room = (area.width as usize).saturating_sub(2 + buttons_w);
    let mut block = Block::bordered()
        .title(Line::styled(fit(&title, title_room), t.title()))
        .border_style(if focused {
            t.focused_border()
        } else {
            t.border()
        });
    if let Some(line) = buttons.clone() {
        block = block.title(line.right_aligned());
    }
    let inner = block.inner(area);
    f.render_widget(block, area);
    app.hits.push((area, Hit::Form));
    register_header_hits(app, area, buttons.as_ref());

    let mut lines: Vec<Line> = Vec::new();
    // First line and number of lines of the Webhook URL, clickable to copy.
    let mut webhook_rows: Option<(usize, usize)> = None;
    let width = inner.width as usize;
    let form = app.details.form.as_ref().expect("checked above");
    if let Some(c) = &current {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} {}", Theme::status_symbol(c.status), c.status),
                t.status(c.status),
            ),
            Span::styled(
                format!(" since {} UTC", short_time(c.status_since, app.now)),
                t.dim(),
            ),
        ]));
        let style = if c.status == Status::Error {
            t.error()
        } else {
            Style::default()
        };
        let gone = app
            .presence
            .as_ref()
            .and_then(|p| crate::runtime::presence::owner_gone(c, &p.leases, p.db_now));
        let message = match gone {
            Some(since) => crate::runtime::presence::owner_gone_message(since),
            // With its agent's name and the calls in progress, as the list says.
            None if app.runs_with_words(c).is_some() => super::list_status_message(app, c),
            None => super::shown(&c.status_message).into_owned(),
        };
        for l in super::wrap_with_hint(&message, width, 3, "i: all") {
            lines.push(Line::styled(l, style));
        }
        if let Some((_, text)) = app.details.diagnosis.as_ref().filter(|(id, _)| *id == c.id)
            && form.ty.lifecycle != Lifecycle::None
        {
            let line = match text.strip_prefix("answered by ") {
                Some(_) if c.status == Status::Running => (format!("Replies: {text}"), t.ok()),
                // Routed, but a connection that does not run answers nobody.
                Some(who) => (
                    format!("No replies while {}: {who} answers once it runs", c.status),
                    t.dim(),
                ),
                None => (format!("No replies: {text}"), t.warning()),
            };
            let (text, style) = line;
            for l in wrap(&super::shown(&text), width, 3) {
                lines.push(Line::styled(l, style));
            }
        }
        if c.desired == DesiredState::Running && matches!(c.status, Status::Stopped) {
            lines.push(Line::styled(
                "Start requested: waiting for the runtime to pick it up",
                t.warning(),
            ));
        }
        if c.restart_pending() {
            lines.push(Line::styled(
                "Restart pending: saved changes apply after Stop, then Start",
                t.warning(),
            ));
        }
        if let Some(url) = app.webhook_url_of(c) {
            let shown = webhook_lines(&t, &url, width);
            webhook_rows = Some((lines.len(), shown.len()));
            lines.extend(shown);
        }
    } else {
        for l in wrap(&form.ty.summary, width, 2) {
            lines.push(Line::styled(l, t.dim()));
        }
    }
    if form.ty.lifecycle == Lifecycle::WithAgent {
        let note = if form.is_new() {
            "Runs with its agents: no Start/Stop here — saving is the last step, then attach \
             it to an agent (A)."
        } else {
            "No Start/Stop of its own (the agent's, on A). l shows its log: registration \
             and calls."
        };
        for l in wrap(note, width, 3) {
            lines.push(Line::styled(l, t.dim()));
        }
    }
    if let (Some(target), false) = (&form.ty.migrates_to, form.is_new()) {
        let to = crate::catalog::Catalog::get()
            .find(target)
            .map(|t| t.name.as_str())
            .unwrap_or(target);
        let note = format!(
            "Deprecated: it still works; migrate it to {to} — M opens the {to} form prefilled, \
             and saving moves its agents over"
        );
        for l in wrap(&note, width, 2) {
            lines.push(Line::styled(l, t.warning()));
        }
    }
    if let Some(old) = &form.migrate_from {
        let note = format!(
            "Replaces '{}': saving moves its agents here and stops it; Esc cancels, nothing changes",
            super::shown(&old.name)
        );
        for l in wrap(&note, width, 2) {
            lines.push(Line::styled(l, t.warning()));
        }
    }
    if form.ty.is_multi_account() {
        let hint = "(?) Multi-account: give each account's values separated by commas, in the same order in every field (login1,login2 · password1,password2); one value (a default port) serves every account";
        for l in wrap(hint, width, 2) {
            lines.push(Line::styled(l, t.dim()));
        }
    }
    for w in &form.warnings {
        for l in wrap(&format!("warning: {}", super::shown(w)), width, 2) {
            lines.push(Line::styled(l, t.warning()));
        }
    }
    let head_height = lines.len() as u16 + 1;
    if let Some((first, n)) = webhook_rows {
        let drawn = (head_height.min(inner.height) as usize).saturating_sub(first);
        if drawn > 0 {
            let rect = Rect::new(
                inner.x,
                inner.y + first as u16,
                inner.width,
                n.min(drawn) as u16,
            );
            app.hits.push((rect, Hit::CopyWebhook));
        }
    }
    f.render_widget(
        Paragraph::new(lines),
        Rect {
            height: head_height.min(inner.height),
            ..inner
        },
    );
    if inner.height <= head_height + 1 {
        return;
    }
    let body = Rect {
        y: inner.y + head_height,
        height: inner.height - head_height - 1,
        ..inner
    };
    let footer = Rect {
        y: inner.y + inner.height - 1,
        height: 1,
        ..inner
    };
    draw_fields(f, app, body);
    draw_footer_buttons(f, app, footer);
}

/// "Webhook URL <url>  c copy" on one line when it fits; otherwise the label and key on
/// one line and the URL, cut in the middle if it must be, on the next. `c` copies it whole.
fn webhook_lines(t: &Theme, url: &str, width: usize) -> Vec<Line<'static>> {
    const LABEL: &str = "Webhook URL";
    const KEY: &str = "c copy";
    let one = LABEL.len() + 1 + unicode_width::UnicodeWidthStr::width(url) + 2 + KEY.len();
    if one <= width {
        return vec![Line::from(vec![
            Span::styled(LABEL, t.title()),
            Span::raw(" "),
            Span::raw(url.to_string()),
            Span::raw("  "),
            Span::styled(KEY, t.key()),
        ])];
    }
    vec![
        Line::from(vec![
            Span::styled(LABEL, t.title()),
            Span::raw("  "),
            Span::styled("c", t.key()),
            Span::styled(" copies it whole", t.dim()),
        ]),
        Line::raw(fit_middle(url, width)),
    ]
}

fn header_buttons(app: &App, _area: Rect, is_new: bool) -> Option<Line<'static>> {
    let t = &app.theme;
    let form = app.details.form.as_ref()?;
    if is_new || !form.ty.has_start_stop() {
        return None;
    }
    let c = app.current()?;
    let action = match start_stop_target(c) {
        DesiredState::Stopped => "Stop",
        DesiredState::Running => "Start",
    };
    Some(Line::from(vec![
        Span::styled(format!("[ {action} s ]"), t.key()),
        Span::raw(" "),
        Span::styled("[ Logs l ]", t.key()),
        Span::raw(" "),
    ]))
}

fn register_header_hits(app: &mut App, area: Rect, buttons: Option<&Line>) {
    let Some(line) = buttons else { return };
    let width = line.width() as u16;
    let start = area.x + area.width.saturating_sub(width + 1);
    let first = line.spans.first().map(|s| s.width() as u16).unwrap_or(0);
    app.hits
        .push((Rect::new(start, area.y, first, 1), Hit::StartStop));
    app.hits
        .push((Rect::new(start + first + 1, area.y, 10, 1), Hit::Logs));
}

fn welcome(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let block = Block::bordered()
        .title(" Details ")
        .border_style(t.border());
    let inner = block.inner(area);
    f.render_widget(block, area);
    let mut lines = vec![Line::raw("")];
    let text = if !app.fresh.loaded {
        "Loading…".to_string()
    } else if app.list.all.is_empty() && app.can_edit() {
        "Connect Flametree to the outside world: press a, pick a channel type, fill in its credentials, Ctrl-S to save, then s to Start.".to_string()
    } else {
        "Select a connection to see its details.".to_string()
    };
    for l in wrap(&text, inner.width.saturating_sub(2) as usize, 6) {
        lines.push(Line::styled(format!(" {l}"), t.dim()));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// One drawn row of the form, with the slot it belongs to (if focusable).
struct FormRow {
    slot: Option<(usize, Slot)>,
    line: Line<'static>,
    /// Column where the text input starts, for rows that hold one.
    input_at: Option<u16>,
}

fn form_rows(app: &App, form: &Form, width: usize) -> Vec<FormRow> {
    let t = &app.theme;
    // As wide as the longest label (gutter, label, `*`, a space) where the panel has
    // room, at most two fifths of it; a cut label keeps its `*`.
    let label_w = form
        .ty
        .fields
        .iter()
        .map(|f| super::width_of(&f.label) + 4)
        .chain([16])
        .max()
        .unwrap_or(16)
        .min((width * 2 / 5).max(12));
    let focused = form.focus;
    let slots = form.slots();
    let mut rows = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let is_focused = focused == Some(i) && app.focus == Focus::Fields;
        let label_style = if is_focused {
            t.key()
        } else {
            Style::default()
        };
        // A variable's name and value share one row and one error: show it once.
        let error = match slot {
            Slot::EnvName(_) => None,
            _ => form.errors.get(&slot.error_key(form.ty)).cloned(),
        };
        match slot {
            Slot::Name | Slot::Description | Slot::Field(_) => {
                let (label, required, hint) = match slot {
                    Slot::Name => ("Name".to_string(), true, String::new()),
                    Slot::Description => ("Description".to_string(), false, String::new()),
                    Slot::Field(n) => {
                        let spec = &form.ty.fields[*n];
                        let hint = match crate::tui::choice::options(form, slot) {
                            Some((options, _)) => {
                                format!("{} — {}", spec.hint, crate::tui::choice::hint(options))
                            }
                            None => spec.hint.clone(),
                        };
                        (spec.label.clone(), spec.required, hint)
                    }
                    _ => unreachable!(),
                };
                let marker = if required { "*" } else { " " };
                rows.push(FormRow {
                    slot: Some((i, slot.clone())),
                    line: Line::from(vec![
                        Span::styled(gutter(is_focused), t.key()),
                        Span::styled(
                            format!(
                                "{:<w$}",
                                super::fit_label(&format!("{label}{marker}"), label_w - 3),
                                w = label_w - 2
                            ),
                            label_style,
                        ),
                    ]),
                    input_at: Some(label_w as u16),
                });
                if is_focused && !hint.is_empty() {
                    for l in wrap(&hint, width.saturating_sub(label_w), 2) {
                        rows.push(plain(Line::styled(format!("{:label_w$}{l}", ""), t.dim())));
                    }
                }
            }
            Slot::Advanced => {
                let text = if !form.advanced_switchable {
                    "[x] on — the switch is disabled:"
                } else if form.advanced {
                    "[x] on — paste credentials by hand (Space toggles)"
                } else {
                    "[ ] off — sign in with your Meta account (Enter signs in, Space toggles)"
                };
                rows.push(FormRow {
                    slot: Some((i, slot.clone())),
                    line: Line::from(vec![
                        Span::styled(gutter(is_focused), t.key()),
                        Span::styled(
                            format!("{:<w$}", "Advanced mode", w = label_w - 2),
                            label_style,
                        ),
                        Span::raw(fit(text, width.saturating_sub(label_w))),
                    ]),
                    input_at: None,
                });
                if !form.advanced_switchable {
                    for l in wrap(META_DISABLED, width.saturating_sub(2), 2) {
                        rows.push(plain(Line::styled(format!("  {l}"), t.warning())));
                    }
                }
                if !form.advanced {
                    let note = "Enter: sign in with Meta — a code to approve on facebook.com/device, then pick the page, Instagram account or WhatsApp numbers. Space: Advanced mode, to paste the credentials.";
                    for l in wrap(note, width.saturating_sub(2), 3) {
                        rows.push(plain(Line::styled(format!("  {l}"), t.warning())));
                    }
                }
            }
            Slot::EnvName(n) => {
                if *n == 0 {
                    rows.push(env_heading(app, width));
                }
                rows.push(FormRow {
                    slot: Some((i, slot.clone())),
                    line: Line::raw(""),
                    input_at: Some(0),
                });
            }
            Slot::EnvValue(n) => {
                // Drawn on the same row as its name: see draw_fields.
                let name = form.value(&Slot::EnvName(*n));
                let meaning = form
                    .ty
                    .env_var(name.trim())
                    .map(|e| {
                        let editing = form.focus == Some(i) && app.focus == Focus::Fields;
                        match (crate::tui::choice::options(form, slot), e.range_text()) {
                            (Some((options, _)), _) if editing => {
                                // The keys first: the meaning may be cut at 80 columns.
                                format!("{} — {}", crate::tui::choice::hint(options), e.meaning)
                            }
                            (_, Some(r)) => format!("{} ({r})", e.meaning),
                            _ => e.meaning.clone(),
                        }
                    })
                    .unwrap_or_else(|| {
                        if name.trim().is_empty() {
                            String::new()
                        } else {
                            format!("not used by {}: it will be ignored", form.ty.name)
                        }
                    });
                rows.push(FormRow {
                    slot: Some((i, slot.clone())),
                    line: Line::raw(""),
                    input_at: None,
                });
                if !meaning.is_empty() {
                    rows.push(plain(Line::styled(
                        format!("  {}", fit(&meaning, width.saturating_sub(2))),
                        t.dim(),
                    )));
                }
            }
            Slot::AddEnv => {
                if form.env.is_empty() {
                    rows.push(env_heading(app, width));
                }
                let style = if is_focused { t.selected() } else { t.key() };
                rows.push(FormRow {
                    slot: Some((i, slot.clone())),
                    line: Line::styled("[ + Add variable ^N ]", style),
                    input_at: None,
                });
            }
        }
        if let Some(e) = error {
            for l in wrap(&format!("✖ {e}"), width.saturating_sub(2), 3) {
                rows.push(plain(Line::styled(format!("  {l}"), t.error())));
            }
        }
    }
    rows
}

/// Marks the focused row in a way that reads without colour.
fn gutter(focused: bool) -> &'static str {
    if focused { "▸ " } else { "  " }
}

fn plain(line: Line<'static>) -> FormRow {
    FormRow {
        slot: None,
        line,
        input_at: None,
    }
}

fn env_heading(app: &App, width: usize) -> FormRow {
    plain(Line::styled(
        fit("Environment variables", width),
        app.theme.title(),
    ))
}

fn draw_fields(f: &mut Frame, app: &mut App, area: Rect) {
    let width = area.width as usize;
    let editing = app.focus == Focus::Fields && app.overlay.is_none();
    if let Some(form) = app.details.form.as_mut() {
        form.show_cursor(editing);
    }
    let Some(form) = app.details.form.as_ref() else {
        return;
    };
    let rows = form_rows(app, form, width);
    // EnvValue rows share the EnvName row: fold them for layout.
    let mut drawn: Vec<&FormRow> = Vec::new();
    for row in &rows {
        if matches!(row.slot, Some((_, Slot::EnvValue(_)))) {
            continue;
        }
        drawn.push(row);
    }
    let height = area.height as usize;
    let focus_row = form.focus.and_then(|fi| {
        drawn.iter().position(|r| match &r.slot {
            Some((i, _)) => {
                *i == fi || (matches!(r.slot, Some((_, Slot::EnvName(_)))) && *i + 1 == fi)
            }
            None => false,
        })
    });
    let mut scroll = form.scroll.min(drawn.len().saturating_sub(height));
    if let Some(fr) = focus_row {
        if fr < scroll {
            scroll = fr;
        } else if fr >= scroll + height {
            scroll = fr + 1 - height;
        }
    }
    let mut hits = Vec::new();
    let mut inputs: Vec<(Rect, Slot)> = Vec::new();
    for (n, row) in drawn.iter().skip(scroll).take(height).enumerate() {
        let y = area.y + n as u16;
        let row_area = Rect::new(area.x, y, area.width, 1);
        f.render_widget(Paragraph::new(row.line.clone()), row_area);
        if let Some((i, slot)) = &row.slot {
            hits.push((row_area, Hit::Slot(*i)));
            match slot {
                Slot::EnvName(k) => {
                    let longest = form
                        .env
                        .iter()
                        .map(|(n, _)| n.lines().join("").chars().count())
                        .chain(form.ty.env.iter().map(|e| e.name.chars().count()))
                        .max()
                        .unwrap_or(12) as u16;
                    let name_w = (longest + 1).clamp(12, area.width / 2);
                    inputs.push((Rect::new(area.x, y, name_w, 1), slot.clone()));
                    f.render_widget(Paragraph::new(" = "), Rect::new(area.x + name_w, y, 3, 1));
                    let value_area = Rect::new(
                        area.x + name_w + 3,
                        y,
                        area.width.saturating_sub(name_w + 3),
                        1,
                    );
                    inputs.push((value_area, Slot::EnvValue(*k)));
                    hits.push((value_area, Hit::Slot(*i + 1)));
                }
                _ => {
                    if let Some(at) = row.input_at {
                        inputs.push((
                            Rect::new(area.x + at, y, area.width.saturating_sub(at), 1),
                            slot.clone(),
                        ));
                    }
                }
            }
        }
    }
    for (rect, slot) in inputs {
        if let Some(text) = form.text(&slot) {
            f.render_widget(text, rect);
        }
    }
    if let Some(form) = app.details.form.as_mut() {
        form.scroll = scroll;
    }
    app.hits.extend(hits);
}

fn draw_footer_buttons(f: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme;
    let Some(form) = &app.details.form else {
        return;
    };
    if !app.can_edit() {
        f.render_widget(
            Paragraph::new(Line::styled(
                wrap(
                    "Viewer role: you can look, not change",
                    area.width as usize,
                    1,
                )
                .concat(),
                t.dim(),
            )),
            area,
        );
        return;
    }
    let save = "[ Save ^S ]";
    let second = if form.is_new() {
        "[ Cancel Esc ]"
    } else {
        "[ Delete D ]"
    };
    // Whole pieces only, the buttons first: a narrow panel drops the guide hint, then
    // shortens the unsaved mark, rather than cutting a button.
    let width = area.width as usize;
    let mut spans = vec![
        Span::styled(save, t.key()),
        Span::raw("  "),
        Span::styled(second, if form.is_new() { t.dim() } else { t.error() }),
    ];
    let mut used = save.len() + 2 + second.len();
    if form.dirty {
        let mark = ["  unsaved changes", "  unsaved"]
            .into_iter()
            .find(|m| used + m.len() <= width);
        if let Some(mark) = mark {
            spans.push(Span::styled(mark, t.warning()));
            used += mark.len();
        }
    }
    let guide = "   ^G setup guide";
    if used + guide.len() <= width {
        spans.push(Span::styled(guide, t.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    let save_w = save.chars().count() as u16;
    app.hits
        .push((Rect::new(area.x, area.y, save_w, 1), Hit::Save));
    if !form.is_new() {
        app.hits.push((
            Rect::new(
                area.x + save_w + 2,
                area.y,
                second.chars().count() as u16,
                1,
            ),
            Hit::Delete,
        ));
    }
}
