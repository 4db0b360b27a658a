//! Popups: the Add picker, confirmations, help, setup pages, the variable picker.

use super::{fit, wrap, wrap_all};
use crate::tui::app::{App, Hit, Overlay};
use crate::tui::input::picker_types;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width.saturating_sub(2));
    let h = height.min(area.height.saturating_sub(2));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn draw(f: &mut Frame, app: &mut App, area: Rect) {
    let Some(overlay) = &app.overlay else { return };
    let t = app.theme;
    match overlay {
        Overlay::Picker {
            selected,
            show_deprecated,
        } => {
            let types = picker_types(*show_deprecated);
            let rect = centered(area, 76, types.len() as u16 + 6);
            f.render_widget(Clear, rect);
            let block = Block::bordered()
                .title(Line::styled(" Add a channel — pick its type ", t.title()))
                .border_style(t.focused_border());
            let inner = block.inner(rect);
            f.render_widget(block, rect);
            let width = inner.width as usize;
            let name_w = types
                .iter()
                .map(|ty| ty.display_name().chars().count())
                .max()
                .unwrap_or(10)
                + 2;
            for (i, ty) in types
                .iter()
                .enumerate()
                .take(inner.height.saturating_sub(2) as usize)
            {
                let row = Rect::new(inner.x, inner.y + i as u16, inner.width, 1);
                let mut line = Line::from(vec![
                    Span::raw(format!(" {:<name_w$}", ty.display_name())),
                    Span::styled(fit(&ty.summary, width.saturating_sub(name_w + 1)), t.dim()),
                ]);
                if i == *selected {
                    line = line.patch_style(t.selected());
                }
                f.render_widget(Paragraph::new(line), row);
                app.hits.push((row, Hit::PickerRow(i)));
            }
            let toggle = format!(
                " d Show deprecated: {}   Enter add   ^G setup guide   Esc cancel",
                if *show_deprecated { "[x]" } else { "[ ]" }
            );
            let bottom = Rect::new(inner.x, inner.y + inner.height - 1, inner.width, 1);
            f.render_widget(
                Paragraph::new(Line::styled(fit(&toggle, width), t.key())),
                bottom,
            );
            app.hits.push((rect, Hit::Overlay));
        }
        Overlay::SignIn(s) => {
            use crate::tui::signin::Stage;
            let width = area.width.saturating_sub(6).clamp(40, 100);
            let inner_w = width as usize - 4;
            let mut lines: Vec<Line> = Vec::new();
            match &s.stage {
                Stage::Starting => lines.push(Line::raw("Asking Meta for a sign-in code…")),
                Stage::Waiting {
                    user_code,
                    uri,
                    minutes,
                } => {
                    lines.push(Line::raw("On your phone or computer, open"));
                    lines.push(Line::styled(format!("  {uri}"), t.key()));
                    lines.push(Line::raw("and enter the code"));
                    lines.push(Line::styled(format!("  {user_code}"), t.title()));
                    lines.push(Line::raw(""));
                    for l in wrap(
                        &format!(
                            "Waiting for you to approve (the code expires in {minutes} minutes)…"
                        ),
                        inner_w,
                        2,
                    ) {
                        lines.push(Line::styled(l, t.dim()));
                    }
                }
                Stage::Choose { picks, selected } => {
                    lines.push(Line::raw("Signed in. Pick what this connection uses:"));
                    for (i, p) in picks.iter().enumerate().take(12) {
                        let label = super::shown(&p.label);
                        let mut line = Line::raw(fit(&format!(" {}) {label}", i + 1), inner_w));
                        if i == *selected {
                            line = line.patch_style(t.selected());
                        }
                        lines.push(line);
                    }
                }
                Stage::Failed(why) => {
                    for l in wrap(why, inner_w, 6) {
                        lines.push(Line::styled(l, t.error()));
                    }
                }
            }
            let keys = match &s.stage {
                Stage::Choose { .. } => " ↑↓ move   Enter fill the form   Esc cancel",
                Stage::Failed(_) => " Enter or Esc close",
                _ => " Esc cancel",
            };
            let rect = centered(area, width, lines.len() as u16 + 4);
            f.render_widget(Clear, rect);
            let block = Block::bordered()
                .title(Line::styled(
                    format!(" Sign in with Meta · {} ", s.type_name),
                    t.title(),
                ))
                .border_style(t.focused_border());
            let inner = block.inner(rect);
            f.render_widget(block, rect);
            let body = Rect::new(
                inner.x,
                inner.y,
                inner.width,
                inner.height.saturating_sub(1),
            );
            f.render_widget(Paragraph::new(lines), body);
            let bottom = Rect::new(
                inner.x,
                inner.y + inner.height.saturating_sub(1),
                inner.width,
                1,
            );
            f.render_widget(
                Paragraph::new(Line::styled(fit(keys, inner_w), t.key())),
                bottom,
            );
            app.hits.push((rect, Hit::Overlay));
        }
        Overlay::Confirm(c) => {
            let width = 64u16;
            let body = wrap(&super::shown(&c.question), width as usize - 4, 6);
            let rect = centered(area, width, body.len() as u16 + 5);
            f.render_widget(Clear, rect);
            let block = Block::bordered()
                .title(Line::styled(format!(" {} ", c.title), t.title()))
                .border_style(t.error());
            let inner = block.inner(rect);
            f.render_widget(block, rect);
            let mut lines: Vec<Line> = body
                .into_iter()
                .map(|l| Line::raw(format!(" {l}")))
                .collect();
            lines.push(Line::raw(""));
            let yes = format!("[ y {} ]", c.yes);
            let no = "[ n Cancel ]";
            lines.push(Line::from(vec![
                Span::raw(" "),
                Span::styled(yes.clone(), t.error()),
                Span::raw("   "),
                Span::styled(no, t.key()),
            ]));
            let y = inner.y + lines.len() as u16 - 1;
            f.render_widget(Paragraph::new(lines), inner);
            let yes_w = yes.chars().count() as u16;
            app.hits.push((rect, Hit::Overlay));
            app.hits
                .push((Rect::new(inner.x + 1, y, yes_w, 1), Hit::ConfirmYes));
            app.hits
                .push((Rect::new(inner.x + 4 + yes_w, y, 12, 1), Hit::ConfirmNo));
        }
        Overlay::Text {
            title,
            body,
            scroll,
        } => {
            let width = area.width.saturating_sub(4).min(84);
            let inner_w = width.saturating_sub(2) as usize;
            let lines: Vec<Line> = body
                .split('\n')
                .flat_map(|para| {
                    let rows = wrap_all(&super::shown(para), inner_w);
                    if rows.is_empty() {
                        vec![String::new()]
                    } else {
                        rows
                    }
                })
                .map(Line::raw)
                .collect();
            let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
            let rect = centered(area, width, height);
            let title = format!(
                " {} — Esc closes ",
                fit(&super::shown(title), inner_w.saturating_sub(14))
            );
            text_box(f, app, rect, &title, lines, *scroll);
        }
        Overlay::Help { scroll } => {
            let rect = centered(area, 100, area.height.saturating_sub(2));
            // Descriptions wrap between words under their own column, never cut.
            let rows = crate::tui::keys::help_rows();
            let key_w = rows
                .iter()
                .filter_map(|(k, _)| k.map(super::width_of))
                .max()
                .unwrap_or(16);
            let what_w = (rect.width as usize).saturating_sub(2 + key_w + 3).max(10);
            let mut lines: Vec<Line> = Vec::new();
            for (k, what) in rows {
                let Some(k) = k else {
                    lines.push(Line::styled(what.to_string(), t.title()));
                    continue;
                };
                for (i, l) in wrap_all(what, what_w).into_iter().enumerate() {
                    let key = if i == 0 { k } else { "" };
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {key:<key_w$} "), t.key()),
                        Span::raw(l),
                    ]));
                }
            }
            text_box(f, app, rect, " Keys — Esc closes ", lines, *scroll);
        }
        Overlay::Setup { ty, scroll, .. } => {
            let rect = centered(area, 84, area.height.saturating_sub(2));
            let lines =
                super::markdown::render(ty.setup_text(), rect.width.saturating_sub(3) as usize, &t);
            let title = format!(
                " Setup guide · {} — ↑↓ scroll · Esc closes ",
                ty.display_name()
            );
            text_box(f, app, rect, &title, lines, *scroll);
        }
        Overlay::EnvPicker { selected } => {
            let Some(form) = &app.details.form else {
                return;
            };
            let ty = form.ty;
            let choices = form.env_choices();
            let rect = centered(area, 80, choices.len() as u16 + 5);
            f.render_widget(Clear, rect);
            let block = Block::bordered()
                .title(Line::styled(
                    format!(" Add a variable · {} ", ty.name),
                    t.title(),
                ))
                .border_style(t.focused_border());
            let inner = block.inner(rect);
            f.render_widget(block, rect);
            let width = inner.width as usize;
            let mut lines = Vec::new();
            for (i, spec) in choices.iter().enumerate() {
                let default = match (spec.default.as_deref(), spec.range_text()) {
                    (Some(d), Some(r)) => format!(" (default {d}, {r})"),
                    (Some(d), None) => format!(" (default {d})"),
                    (None, Some(r)) => format!(" ({r})"),
                    (None, None) => String::new(),
                };
                let mut line = Line::from(vec![
                    Span::styled(format!(" {:<28}", spec.name), t.key()),
                    Span::raw(fit(
                        &format!("{}{default}", spec.meaning),
                        width.saturating_sub(29),
                    )),
                ]);
                if i == *selected {
                    line = line.patch_style(t.selected());
                }
                lines.push(line);
            }
            let mut custom = Line::raw(" Custom variable…");
            if *selected == choices.len() {
                custom = custom.patch_style(t.selected());
            }
            lines.push(custom);
            lines.push(Line::styled(" Enter add · Esc cancel", t.dim()));
            f.render_widget(Paragraph::new(lines), inner);
            app.hits.push((rect, Hit::Overlay));
        }
    }
}

fn text_box(f: &mut Frame, app: &mut App, rect: Rect, title: &str, lines: Vec<Line>, scroll: u16) {
    let t = app.theme;
    f.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(Line::styled(title.to_string(), t.title()))
        .border_style(t.focused_border());
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let max = (lines.len() as u16).saturating_sub(inner.height);
    f.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
    app.hits.push((rect, Hit::Overlay));
}
