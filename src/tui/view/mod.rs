//! Drawing. Layout: header, optional banner, list | details (+ logs), message line, keys.

mod agents;
mod chrome;
mod details;
mod list;

pub use list::status_word as list_status_word;
mod overlays;

use super::app::{App, Focus, Hit};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

pub fn draw(f: &mut Frame, app: &mut App) {
    app.hits.clear();
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(f, area);
        return;
    }
    let banner = u16::from(app.db_down.is_some());
    let [header, banner_area, body, message, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner),
        Constraint::Min(8),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::header(f, app, header);
    if banner > 0 {
        chrome::banner(f, app, banner_area);
    }
    if app.screen == super::app::Screen::Agents {
        agents::draw(f, app, body);
    } else {
        let list_width = list_width(area.width);
        let [left, right] =
            Layout::horizontal([Constraint::Length(list_width), Constraint::Min(30)]).areas(body);
        list::draw(f, app, left);
        draw_right(f, app, right);
    }
    chrome::message(f, app, message);
    chrome::keys(f, app, keys);
    overlays::draw(f, app, area);
}

/// The list gets about a third of a wide screen, and at least enough for names.
pub fn list_width(total: u16) -> u16 {
    (total * 36 / 100).clamp(30, 56)
}

fn draw_right(f: &mut Frame, app: &mut App, area: Rect) {
    let logs_open = app.logs_for.is_some();
    if !logs_open {
        details::draw(f, app, area);
        return;
    }
    let logs_focused = app.focus == Focus::Logs;
    if area.height < 18 && logs_focused {
        draw_logs(f, app, area);
        return;
    }
    let details_height = if logs_focused {
        area.height * 2 / 5
    } else {
        area.height / 2
    };
    let [top, bottom] = Layout::vertical([
        Constraint::Length(details_height.max(7)),
        Constraint::Min(5),
    ])
    .areas(area);
    details::draw(f, app, top);
    draw_logs(f, app, bottom);
}

fn draw_logs(f: &mut Frame, app: &mut App, area: Rect) {
    let title = app
        .logs_for
        .and_then(|id| app.list.get(id))
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let focused = app.focus == Focus::Logs;
    let theme = app.theme;
    app.logs
        .render(area, f.buffer_mut(), &theme, focused, &title);
    app.hits.push((area, Hit::LogsPane));
}

fn too_small(f: &mut Frame, area: Rect) {
    let text = format!(
        "Terminal too small: {}×{}. flametree needs at least {MIN_WIDTH}×{MIN_HEIGHT}; \
         enlarge the window. q quits.",
        area.width, area.height
    );
    f.render_widget(
        Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }),
        area,
    );
}

/// Cuts `s` to `width` display columns, ending with "…" when cut.
pub fn fit(s: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let mut out = String::new();
    let mut used = 0;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width {
        return s.to_string();
    }
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// Cuts `s` to `width` display columns by dropping its middle ("https://ho…89abcdef"),
/// so both the host and the distinctive end stay visible.
pub fn fit_middle(s: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let w = |c: &char| c.width().unwrap_or(0);
    if s.chars().map(|c| w(&c)).sum::<usize>() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let tail_room = room / 2;
    let head_room = room - tail_room;
    let (mut head, mut used) = (String::new(), 0);
    for c in s.chars() {
        if used + w(&c) > head_room {
            break;
        }
        used += w(&c);
        head.push(c);
    }
    let (mut tail, mut used) = (Vec::new(), 0);
    for c in s.chars().rev() {
        if used + w(&c) > tail_room {
            break;
        }
        used += w(&c);
        tail.push(c);
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

/// Greedy word wrap to `width` columns, at most `max_lines` lines (the last cut with "…").
pub fn wrap(s: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in s.split_whitespace() {
        let candidate_len =
            current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
        if candidate_len > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        let rest = lines[max_lines - 1..].join(" ");
        lines.truncate(max_lines - 1);
        lines.push(fit(&rest, width));
    }
    lines.iter().map(|l| fit(l, width)).collect()
}

/// A time for the screen, in UTC: "18:03:12" today, "Nov 24 18:03" before.
pub fn short_time(ms: crate::model::Millis, now: crate::model::Millis) -> String {
    let (Some(t), Some(n)) = (
        chrono::DateTime::from_timestamp_millis(ms),
        chrono::DateTime::from_timestamp_millis(now),
    ) else {
        return "unknown time".into();
    };
    if t.date_naive() == n.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%b %d %H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::fit_middle;

    #[test]
    fn fit_middle_keeps_both_ends() {
        let url = "https://hooks.example.com/hooks/0123456789abcdef0123456789abcdef";
        assert_eq!(fit_middle(url, 200), url);
        assert_eq!(fit_middle(url, 21), "https://ho…6789abcdef");
        assert_eq!(fit_middle(url, 1), "…");
        assert_eq!(fit_middle(url, 0), "");
    }
}
