//! The AI Agents screen: agent list, the agent's panel with its Communication channels
//! card, and the Add dialog (type, connections, Inbound; or Simple mode).

use super::{fit, wrap};
use crate::agents::ResponderConfig;
use crate::catalog::Catalog;
use crate::model::Status;
use crate::tui::agents::{AddFlow, AgentsFocus, attachable_types, has_simple_mode};
use crate::tui::app::App;
use crate::tui::form::{Form, Slot};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

pub fn draw(f: &mut Frame, app: &mut App, body: Rect) {
    let [left, right] = Layout::horizontal([
        Constraint::Length(super::list_width(f.area().width)),
        Constraint::Min(30),
    ])
    .areas(body);
    draw_list(f, app, left);
    draw_agent(f, app, right);
    draw_add(f, app, f.area());
}

fn draw_list(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let focused = app.agents.focus == AgentsFocus::List;
    let block = Block::bordered()
        .title(Line::styled(" AI Agents ", t.title()))
        .title_bottom(Line::styled(" A back to Channels ", t.dim()).right_aligned())
        .border_style(if focused {
            t.focused_border()
        } else {
            t.border()
        });
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines = Vec::new();
    if app.agents.loaded && app.agents.agents.is_empty() {
        for l in wrap("No agents yet. Press n to create one.", width, 3) {
            lines.push(Line::styled(l, t.dim()));
        }
    }
    for a in &app.agents.agents {
        let mark = if a.restart_pending() { " ↻" } else { "" };
        let word = format!("{}{mark}", a.status);
        let name_w = width.saturating_sub(3 + word.chars().count());
        let mut line = Line::from(vec![
            Span::styled(
                format!("{} ", Theme::status_symbol(a.status)),
                t.status(a.status),
            ),
            Span::raw(super::pad(&super::shown(&a.name), name_w)),
            Span::raw(" "),
            Span::styled(word, t.status(a.status)),
        ]);
        if app.agents.selected == Some(a.id) {
            line = line.patch_style(t.selected());
        }
        lines.push(line);
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn responder_line(responder: &str) -> String {
    match serde_json::from_str::<ResponderConfig>(responder) {
        Ok(ResponderConfig::OpenAi(o)) => format!(
            "Responder: OpenAI-compatible, {} at {}",
            o.model, o.base_url
        ),
        Ok(ResponderConfig::Rules(r)) => format!(
            "Responder: built-in rules — greeting, {} keyword rule(s), fallback",
            r.rules.len()
        ),
        Err(_) => "Responder: built-in rules (defaults)".into(),
    }
}

fn draw_agent(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(a) = app.agents.selected_agent() else {
        let block = Block::bordered().title(" Agent ").border_style(t.border());
        let inner = block.inner(area);
        f.render_widget(block, area);
        f.render_widget(
            Paragraph::new(Line::styled(" Select or create an agent (n).", t.dim())),
            inner,
        );
        return;
    };
    let action = if a.status == Status::Running {
        "[ Stop agent s ]"
    } else {
        "[ Start agent s ]"
    };
    let block = Block::bordered()
        .title(Line::styled(
            format!(" {} ", super::shown(&a.name)),
            t.title(),
        ))
        .title(Line::styled(format!("{action} "), t.key()).right_aligned())
        .border_style(if app.agents.focus == AgentsFocus::Card {
            t.focused_border()
        } else {
            t.border()
        });
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("{} {}", Theme::status_symbol(a.status), a.status),
            t.status(a.status),
        ),
        Span::styled(
            fit(
                &format!("  {}", super::shown(&a.description)),
                width.saturating_sub(12),
            ),
            t.dim(),
        ),
    ])];
    if a.restart_pending() {
        for l in wrap(
            "Restart pending: saved changes apply after Stop agent, then Start agent",
            width,
            2,
        ) {
            lines.push(Line::styled(l, t.warning()));
        }
    }
    lines.push(Line::styled(
        fit(&super::shown(&responder_line(&a.responder)), width),
        t.dim(),
    ));
    lines.push(Line::raw(""));
    lines.push(Line::styled("Communication channels", t.title()));
    if app.agents.card.is_empty() {
        lines.push(Line::styled("  none yet — a adds one", t.dim()));
    }
    let catalog = Catalog::get();
    for (i, (c, ch)) in app.agents.card.iter().enumerate() {
        let ty = catalog
            .find(&c.type_key)
            .map(|t| t.display_name())
            .unwrap_or_default();
        let inbound = if ch.detached {
            "[ detached until restart ]".to_string()
        } else {
            format!("[{}] Inbound", if ch.inbound { "x" } else { " " })
        };
        let pending =
            if !ch.detached && ch.inbound != ch.applied_inbound && a.status == Status::Running {
                " (applies at restart)"
            } else {
                ""
            };
        let mut line = Line::from(vec![
            Span::raw(format!("  {inbound}  ")),
            Span::raw(fit(
                &format!("{} · {ty} · {}{pending}", super::shown(&c.name), c.status),
                width.saturating_sub(inbound.len() + 4),
            )),
        ]);
        if app.agents.focus == AgentsFocus::Card && i == app.agents.card_sel {
            line = line.patch_style(t.selected());
        }
        lines.push(line);
    }
    lines.push(Line::raw(""));
    widget_lines(app, a, width, &mut lines);
    lines.push(Line::raw(""));
    for l in wrap(
        "Channels do nothing on their own: attach them here with Inbound on for the agent that answers, then restart the agent.",
        width,
        3,
    ) {
        lines.push(Line::styled(l, t.dim()));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width.saturating_sub(2));
    let h = h.min(area.height.saturating_sub(2));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn dialog(f: &mut Frame, app: &App, area: Rect, title: &str, lines: Vec<Line>) -> Rect {
    let t = &app.theme;
    let rect = centered(area, 76, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(Line::styled(format!(" {title} "), t.title()))
        .border_style(t.focused_border());
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    f.render_widget(Paragraph::new(lines), inner);
    inner
}

fn draw_add(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(flow) = &app.agents.add else { return };
    match flow {
        AddFlow::PickType {
            sel,
            show_deprecated,
        } => {
            let mut lines: Vec<Line> = attachable_types(*show_deprecated)
                .iter()
                .enumerate()
                .map(|(i, ty)| {
                    let l = Line::raw(format!(" {}", ty.display_name()));
                    if i == *sel {
                        l.patch_style(t.selected())
                    } else {
                        l
                    }
                })
                .collect();
            lines.push(Line::styled(
                format!(
                    " d Show deprecated: {}   Enter choose   Esc cancel",
                    if *show_deprecated { "[x]" } else { "[ ]" }
                ),
                t.key(),
            ));
            dialog(f, app, area, "Add a channel — pick its type", lines);
        }
        AddFlow::PickConnections {
            ty,
            rows,
            sel,
            inbound,
        } => {
            let mut lines: Vec<Line> = Vec::new();
            if rows.is_empty() {
                lines.push(Line::styled(
                    format!(" No {} connection yet.", ty.name),
                    t.dim(),
                ));
            }
            for (i, (c, ticked)) in rows.iter().enumerate() {
                let l = Line::raw(format!(
                    " [{}] {} · {}",
                    if *ticked { "x" } else { " " },
                    super::shown(&c.name),
                    c.status
                ));
                lines.push(if i == *sel {
                    l.patch_style(t.selected())
                } else {
                    l
                });
            }
            if has_simple_mode(ty) {
                let l = Line::raw(format!(" + New {} connection here (Simple mode)", ty.name));
                lines.push(if *sel == rows.len() {
                    l.patch_style(t.selected())
                } else {
                    l
                });
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw(format!(
                " Inbound: [{}] the agent answers incoming messages on them (i toggles)",
                if *inbound { "x" } else { " " }
            )));
            lines.push(Line::styled(
                " Space tick   Enter save   Esc cancel",
                t.key(),
            ));
            dialog(f, app, area, &format!("Add {} connections", ty.name), lines);
        }
        AddFlow::Simple { form, inbound } => {
            let mut lines = form_lines(app, form);
            lines.push(Line::raw(format!(
                " Inbound: [{}]",
                if *inbound { "x" } else { " " }
            )));
            lines.push(Line::styled(
                " Tab next field   Ctrl-S create and attach   Esc cancel",
                t.key(),
            ));
            let inner = dialog(
                f,
                app,
                area,
                &format!("New {} connection (Simple mode)", form.ty.name),
                lines,
            );
            render_inputs(f, form, inner);
        }
        AddFlow::Responder(form) => draw_responder(f, app, area, form),
        AddFlow::Speech(form) => {
            let inner = dialog(f, app, area, &form.title(), form.lines(t));
            form.render_inputs(f, inner);
        }
        AddFlow::Widget(form) => draw_widget_form(f, app, area, form),
        AddFlow::NewAgent { name } => {
            let lines = vec![
                Line::raw(" Name*"),
                Line::styled(" Enter create   Esc cancel", t.key()),
            ];
            let inner = dialog(f, app, area, "New agent", lines);
            f.render_widget(
                name.as_ref(),
                Rect::new(inner.x + 8, inner.y, inner.width.saturating_sub(9), 1),
            );
        }
    }
}

/// The responder editor: the kind switch, then the kind's fields, one line each, the
/// focused one marked; scrolled so the focus stays on screen.
fn draw_responder(
    f: &mut Frame,
    app: &App,
    area: Rect,
    form: &crate::tui::responder::ResponderForm,
) {
    use crate::tui::responder::{Stop, label};
    let t = &app.theme;
    let stops = form.stops();
    let room = area.height.saturating_sub(6).max(3) as usize;
    let first = form.focus.saturating_sub(room - 1);
    let mut lines: Vec<Line> = Vec::new();
    for (i, stop) in stops.iter().enumerate().skip(first).take(room) {
        let focused = i == form.focus;
        let mark = if focused { "▸" } else { " " };
        let style = if focused {
            t.key()
        } else {
            ratatui::style::Style::default()
        };
        let text = match stop {
            Stop::Kind => format!(
                " {mark}{}{}",
                super::pad(&label(*stop), LABEL_W),
                if form.openai {
                    "  rules  [OpenAI-compatible]   Space switches"
                } else {
                    "  [rules]  OpenAI-compatible   Space switches"
                }
            ),
            Stop::AddRule => format!(" {mark}[ + Add rule ^N ]   ^X removes the focused rule"),
            _ => format!(" {mark}{}", super::pad(&label(*stop), LABEL_W)),
        };
        lines.push(Line::styled(text, style));
    }
    lines.push(Line::styled(
        " Tab next field   Ctrl-S save   Esc cancel",
        t.key(),
    ));
    let title = format!("Responder · {}", super::shown(&form.agent.name));
    let inner = dialog(f, app, area, &title, lines);
    let at = LABEL_W as u16 + 3;
    for (row, stop) in stops.iter().skip(first).take(room).enumerate() {
        if let Some(text) = form.text(*stop) {
            let rect = Rect::new(
                inner.x + at,
                inner.y + row as u16,
                inner.width.saturating_sub(at + 1),
                1,
            );
            f.render_widget(text, rect);
        }
    }
}

/// The Simple mode form: every slot it has (name, description, the type's fields), one
/// line each, so whatever Tab reaches is on screen.
fn simple_slots(form: &Form) -> Vec<(usize, Slot)> {
    form.slots().into_iter().enumerate().collect()
}

fn label(form: &Form, slot: &Slot) -> String {
    match slot {
        Slot::Name => "Name*".into(),
        Slot::Description => "Description".into(),
        Slot::Field(i) => {
            let f = &form.ty.fields[*i];
            format!("{}{}", f.label, if f.required { "*" } else { "" })
        }
        _ => String::new(),
    }
}

/// Label column: the longest label, within reason.
const LABEL_W: usize = 26;

fn form_lines<'a>(app: &App, form: &'a Form) -> Vec<Line<'a>> {
    simple_slots(form)
        .iter()
        .map(|(i, slot)| {
            let focused = form.focus == Some(*i);
            let style = if focused {
                app.theme.key()
            } else {
                ratatui::style::Style::default()
            };
            Line::styled(
                format!(
                    " {}{}",
                    if focused { "▸" } else { " " },
                    super::fit_label(&label(form, slot), LABEL_W)
                ),
                style,
            )
        })
        .collect()
}

fn render_inputs(f: &mut Frame, form: &Form, inner: Rect) {
    let at = LABEL_W as u16 + 3;
    for (row, (_, slot)) in simple_slots(form).iter().enumerate() {
        if let Some(text) = form.text(slot) {
            let area = Rect::new(
                inner.x + at,
                inner.y + row as u16,
                inner.width.saturating_sub(at + 1),
                1,
            );
            f.render_widget(text, area);
        }
    }
}

/// The Web Widget section of the agent's panel: its settings, the snippet to paste, its
/// status with the live visitors, and its recent log.
fn widget_lines(app: &App, a: &crate::model::Agent, width: usize, lines: &mut Vec<Line>) {
    let t = &app.theme;
    let s = crate::widget::Settings::of(a);
    lines.push(Line::from(vec![
        Span::styled("Web Widget", t.title()),
        Span::styled("  w edits", t.dim()),
    ]));
    if !s.enabled() {
        lines.push(Line::styled(
            fit("  off — w sets the sites that may embed it", width),
            t.dim(),
        ));
        return;
    }
    lines.push(Line::raw(fit(
        &super::shown(&format!(
            "  on for {} · \"{}\" · {} · {}",
            s.origins.join(", "),
            s.title,
            s.colour,
            s.position
        )),
        width,
    )));
    let view = app.agents.widget.as_ref().filter(|w| w.agent_id == a.id);
    let Some(c) = view.and_then(|w| w.connection.as_ref()) else {
        return;
    };
    // On one line, so that it is copied whole from the terminal.
    let snippet = crate::widget::snippet(&app.webhook_base, &c.hook_id);
    lines.push(Line::styled(fit(&format!("  {snippet}"), width), t.key()));
    if snippet.chars().count() + 2 > width {
        lines.push(Line::styled(
            fit(
                "  (cut short here: `flametree agents show` prints it whole)",
                width,
            ),
            t.dim(),
        ));
    }
    let here = crate::widget::hub::hub()
        .find(&c.hook_id)
        .filter(|w| w.running_here());
    let state = match (&here, c.status) {
        (Some(w), _) => crate::widget::connector::status_line(w.live_visitors()),
        (None, Status::Running) => c.status_message.clone(),
        (None, _) if a.status != Status::Running => {
            "offline: visitors are told so until Start agent".into()
        }
        (None, status) => format!("{status} {}", c.status_message),
    };
    lines.push(Line::from(vec![
        Span::styled(
            format!("  {} ", Theme::status_symbol(c.status)),
            t.status(c.status),
        ),
        Span::raw(fit(&super::shown(&state), width.saturating_sub(4))),
    ]));
    for l in view.map(|w| w.log.as_slice()).unwrap_or_default() {
        let style = match l.level.as_str() {
            "WARN" => t.warning(),
            "ERROR" => t.status(Status::Error),
            _ => t.dim(),
        };
        lines.push(Line::styled(
            fit(
                &super::shown(&format!(
                    "  {} {} {}",
                    crate::model::format_millis(l.at),
                    l.level,
                    l.message
                )),
                width,
            ),
            style,
        ));
    }
}

/// The Web Widget settings dialog: one line per setting, the focused one marked.
fn draw_widget_form(
    f: &mut Frame,
    app: &App,
    area: Rect,
    form: &crate::tui::widget_form::WidgetForm,
) {
    let t = &app.theme;
    let mut lines: Vec<Line> = Vec::new();
    for (i, (spec, _)) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let label = format!("{}{}", spec.label, if spec.required { "*" } else { "" });
        lines.push(Line::styled(
            format!(
                " {}{}",
                if focused { "▸" } else { " " },
                super::pad(&label, LABEL_W)
            ),
            if focused {
                t.key()
            } else {
                ratatui::style::Style::default()
            },
        ));
    }
    lines.push(Line::styled(
        " Origins: https://www.example.com, comma-separated · Position: Space switches",
        t.dim(),
    ));
    lines.push(Line::styled(
        " Tab next field   Ctrl-S save   Esc cancel",
        t.key(),
    ));
    let title = format!("Web Widget · {}", super::shown(&form.agent.name));
    let inner = dialog(f, app, area, &title, lines);
    let at = LABEL_W as u16 + 3;
    for (row, (_, text)) in form.fields.iter().enumerate() {
        let rect = Rect::new(
            inner.x + at,
            inner.y + row as u16,
            inner.width.saturating_sub(at + 1),
            1,
        );
        f.render_widget(text, rect);
    }
}
