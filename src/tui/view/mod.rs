//! Drawing. Layout: header, optional banner, list | details (+ logs), message line, keys.

mod agents;
mod chrome;
mod details;
mod list;
mod markdown;

pub use list::{status_message as list_status_message, status_word as list_status_word};
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
    let banner = u16::from(app.fresh.db_down.is_some());
    let message_h = chrome::message_lines(app, area.width as usize).len() as u16;
    let [header, banner_area, body, message, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner),
        Constraint::Min(8),
        Constraint::Length(message_h.clamp(1, 3)),
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
    scrub(f.buffer_mut());
}

/// The last line of defence: a cell whose symbol still holds a control, bidi or
/// zero-width character (text that did not pass through `shown`) is drawn as "?"
/// rather than sent to the terminal.
fn scrub(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        if cell.symbol().chars().any(invisible) {
            cell.set_symbol("?");
        }
    }
}

/// Characters a terminal must never receive from user text.
pub fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

/// The list gets about a third of a wide screen, and at least enough for names.
pub fn list_width(total: u16) -> u16 {
    (total * 36 / 100).clamp(30, 56)
}

fn draw_right(f: &mut Frame, app: &mut App, area: Rect) {
    let logs_open = app.logs.for_id.is_some();
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
        .logs
        .for_id
        .and_then(|id| app.list.get(id))
        .map(|c| shown(&app.logs_title(c)).into_owned())
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

/// User-controlled text (names, descriptions, provider messages) as it may be drawn:
/// control characters in caret notation and bidi or zero-width characters as
/// `<U+202E>`, as the CLI shows them, so they can neither reach the terminal nor shift
/// columns or reorder what the row says; line breaks and tabs become spaces.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    let one_line = |s: &str| s.replace(['\n', '\t'], " ");
    match crate::cli::clean::clean(s) {
        std::borrow::Cow::Borrowed(b) if !b.contains(['\n', '\t']) => std::borrow::Cow::Borrowed(b),
        other => std::borrow::Cow::Owned(one_line(&other)),
    }
}

/// `s` cut to `width` display columns and padded with spaces to exactly that width, by
/// display width: a wide character (CJK, emoji) counts two, so the next column stays put.
pub fn pad(s: &str, width: usize) -> String {
    let cut = fit(s, width);
    let room = width.saturating_sub(width_of(&cut));
    format!("{cut}{}", " ".repeat(room))
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

/// A form label in `width` columns: cut with "…" if it must be, but a required mark
/// `*` at its end always stays visible ("Phone number I…*").
pub fn fit_label(label: &str, width: usize) -> String {
    match label.strip_suffix('*') {
        Some(bare) if width_of(label) > width => {
            format!("{}*", fit(bare, width.saturating_sub(1)))
        }
        _ => fit(label, width),
    }
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

/// Display width of `s` in terminal columns.
pub fn width_of(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// Word wrap to `width` columns, at most `max_lines` lines. Lines break between words;
/// a word wider than a line (a URL, a token-like id) is split. When the text needs more
/// lines, the last one ends with "…" after a whole word, so what is shown never ends
/// in half a word.
pub fn wrap(s: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines = wrap_all(s, width);
    if lines.len() <= max_lines || max_lines == 0 {
        lines.truncate(max_lines);
        return lines;
    }
    lines.truncate(max_lines);
    if let Some(last) = lines.last_mut() {
        *last = ellipsis_after_words(last, width);
    }
    lines
}

/// Every line of `s` wrapped to `width` columns (see `wrap`).
pub fn wrap_all(s: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthChar;
    let width = width.max(1);
    let mut lines: Vec<String> = Vec::new();
    let (mut current, mut used) = (String::new(), 0usize);
    for word in s.split_whitespace() {
        let w = width_of(word);
        if used > 0 && used + 1 + w > width {
            lines.push(std::mem::take(&mut current));
            used = 0;
        }
        if used > 0 {
            current.push(' ');
            used += 1;
        }
        if w <= width - used {
            current.push_str(word);
            used += w;
            continue;
        }
        // Wider than a line: split it, filling lines to the brim.
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if used + cw > width {
                lines.push(std::mem::take(&mut current));
                used = 0;
            }
            current.push(c);
            used += cw;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `wrap`, and when the text is cut, `hint` (the key that shows it whole) at the right
/// end of the last line.
pub fn wrap_with_hint(s: &str, width: usize, max_lines: usize, hint: &str) -> Vec<String> {
    let mut shown = wrap(s, width, max_lines);
    if wrap_all(s, width).len() > max_lines
        && let Some(last) = shown.last_mut()
    {
        let keep = width.saturating_sub(width_of(hint) + 1);
        let body = if width_of(last) <= keep {
            last.clone()
        } else {
            wrap(last, keep, 1).pop().unwrap_or_default()
        };
        let pad = width.saturating_sub(width_of(&body) + width_of(hint));
        *last = format!("{body}{}{hint}", " ".repeat(pad));
    }
    shown
}

/// `line` with "…" appended, dropping trailing words until it fits in `width`.
fn ellipsis_after_words(line: &str, width: usize) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    while words.len() > 1 {
        let joined = words.join(" ");
        if width_of(&joined) < width {
            return format!("{joined}…");
        }
        words.pop();
    }
    fit(&format!("{line}…"), width)
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
    use super::{fit_middle, wrap};

    #[test]
    fn wrap_breaks_between_words_and_cuts_after_a_whole_word() {
        let text =
            "Telegram rejected the bot token (401 Unauthorized): fix the token, Save, then Start";
        assert_eq!(
            wrap(text, 28, 9),
            [
                "Telegram rejected the bot",
                "token (401 Unauthorized):",
                "fix the token, Save, then",
                "Start"
            ]
        );
        assert_eq!(
            wrap(text, 28, 2),
            ["Telegram rejected the bot", "token (401 Unauthorized):…"],
            "never half a word before the ellipsis"
        );
        assert_eq!(
            wrap("https://a.example/xyz", 8, 5),
            ["https://", "a.exampl", "e/xyz"]
        );
    }

    #[test]
    fn fit_middle_keeps_both_ends() {
        let url = "https://hooks.example.com/hooks/0123456789abcdef0123456789abcdef";
        assert_eq!(fit_middle(url, 200), url);
        assert_eq!(fit_middle(url, 21), "https://ho…6789abcdef");
        assert_eq!(fit_middle(url, 1), "…");
        assert_eq!(fit_middle(url, 0), "");
    }
}
