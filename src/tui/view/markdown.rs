//! The setup pages' Markdown, drawn for a terminal: headings in bold, `**bold**`,
//! `code` in the key colour, list items with a hanging indent, `[text](url)` as
//! "text (url)". Source paragraphs are hard-wrapped; they are joined and wrapped again at
//! the popup's width, between words.

use super::width_of;
use crate::tui::theme::Theme;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

/// One block of the page: a heading, a paragraph or a list item.
enum Block {
    Heading(String),
    Text { marker: String, text: String },
    Blank,
}

fn blocks(src: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for raw in src.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            if !matches!(out.last(), Some(Block::Blank) | None) {
                out.push(Block::Blank);
            }
        } else if let Some(h) = trimmed.strip_prefix('#') {
            out.push(Block::Heading(h.trim_start_matches('#').trim().to_string()));
        } else if let Some((marker, rest)) = list_marker(trimmed) {
            out.push(Block::Text {
                marker,
                text: rest.to_string(),
            });
        } else if let Some(Block::Text { text, .. }) = out.last_mut() {
            // A continuation of the paragraph or list item above.
            text.push(' ');
            text.push_str(trimmed);
        } else {
            out.push(Block::Text {
                marker: String::new(),
                text: trimmed.to_string(),
            });
        }
    }
    out
}

/// "- x" → ("•", "x"); "3. x" → ("3.", "x").
fn list_marker(line: &str) -> Option<(String, &str)> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some(("•".into(), rest));
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let rest = line[digits..].strip_prefix(". ")?;
    (digits > 0).then(|| (line[..digits + 1].to_string(), rest))
}

/// Words with their styles: `**bold**`, `` `code` ``, `[text](url)` resolved.
fn styled_words(text: &str, t: &Theme) -> Vec<(String, Style)> {
    let mut runs: Vec<(String, Style)> = Vec::new();
    let (mut bold, mut code) = (false, false);
    let mut cur = String::new();
    let style = |bold: bool, code: bool| {
        let mut s = if code { t.key() } else { Style::default() };
        if bold {
            s = s.add_modifier(Modifier::BOLD);
        }
        s
    };
    let expanded = links_as_text(text);
    let mut chars = expanded.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                runs.push((std::mem::take(&mut cur), style(bold, code)));
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                runs.push((std::mem::take(&mut cur), style(bold, code)));
                bold = !bold;
            }
            c => cur.push(c),
        }
    }
    runs.push((cur, style(bold, code)));
    // Split runs into words, keeping each word's style; a word may span runs
    // ("**Bot token**." is one word in two styles), so glue pieces without a space.
    let mut words: Vec<(String, Style)> = Vec::new();
    let mut glue = false;
    for (run, s) in runs {
        if run.is_empty() {
            continue;
        }
        let starts_with_space = run.starts_with(char::is_whitespace);
        for (i, w) in run.split_whitespace().enumerate() {
            if i == 0
                && glue
                && !starts_with_space
                && let Some(last) = words.last_mut()
            {
                // Mixed styles in one word: keep the more marked one.
                last.0.push_str(w);
                if s != Style::default() {
                    last.1 = s;
                }
                continue;
            }
            words.push((w.to_string(), s));
        }
        glue = !run.ends_with(char::is_whitespace);
    }
    words
}

/// `[text](url)` → "text (url)", or just the URL when the text is the URL.
fn links_as_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        let (label, url) = (&rest[open + 1..close], &rest[close + 2..end]);
        out.push_str(&rest[..open]);
        if label == url {
            out.push_str(url);
        } else {
            out.push_str(&format!("{label} ({url})"));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The page as lines `width` columns wide.
pub fn render(src: &str, width: usize, t: &Theme) -> Vec<Line<'static>> {
    let width = width.max(10);
    let mut lines = Vec::new();
    for block in blocks(src) {
        match block {
            Block::Blank => lines.push(Line::raw("")),
            Block::Heading(h) => lines.push(Line::styled(h, t.title())),
            Block::Text { marker, text } => {
                let indent = if marker.is_empty() {
                    0
                } else {
                    width_of(&marker) + 1
                };
                let mut first = true;
                for row in wrap_words(styled_words(&text, t), width - indent) {
                    let lead = if first && indent > 0 {
                        format!("{marker} ")
                    } else {
                        " ".repeat(indent)
                    };
                    first = false;
                    let mut spans = vec![Span::raw(lead)];
                    spans.extend(row);
                    lines.push(Line::from(spans));
                }
            }
        }
    }
    lines
}

/// Greedy wrap of styled words into rows of at most `width` columns.
fn wrap_words(words: Vec<(String, Style)>, width: usize) -> Vec<Vec<Span<'static>>> {
    let mut rows: Vec<Vec<Span<'static>>> = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for (w, s) in words {
        let ww = width_of(&w);
        if used > 0 && used + 1 + ww > width {
            rows.push(std::mem::take(&mut row));
            used = 0;
        }
        if used > 0 {
            row.push(Span::raw(" "));
            used += 1;
        }
        used += ww;
        row.push(Span::styled(w, s));
    }
    if !row.is_empty() {
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::tui::theme::Theme;

    fn text(lines: &[ratatui::text::Line]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn markdown_is_drawn_not_shown() {
        let src = "# Telegram\n\n## Where to find the token\n\n1. Send `/newbot`, choose a\n   name ending in `bot`.\n2. Paste it into **Bot token**. See [the docs](https://core.telegram.org).\n- a bullet\n";
        let out = render(src, 40, &Theme::plain());
        let shown = text(&out).join("\n");
        assert!(
            !shown.contains('`') && !shown.contains("**") && !shown.contains('#'),
            "{shown}"
        );
        assert_eq!(
            text(&out),
            [
                "Telegram",
                "",
                "Where to find the token",
                "",
                "1. Send /newbot, choose a name ending in",
                "   bot.",
                "2. Paste it into Bot token. See the docs",
                "   (https://core.telegram.org).",
                "• a bullet",
            ]
        );
        let bold = out[6].spans.iter().find(|s| s.content == "Bot").unwrap();
        assert!(
            bold.style
                .add_modifier
                .contains(ratatui::style::Modifier::BOLD)
        );
    }
}
