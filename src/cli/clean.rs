//! Text output never passes control characters through: a name or description holding
//! escape sequences must not retitle, clear or write to the clipboard of the terminal of
//! whoever runs `channels show`. They are shown in caret notation (`^[`) instead; bidi
//! and zero-width characters as `<U+202E>`.

use std::borrow::Cow;

fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

pub fn clean(s: &str) -> Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n' && c != '\t') || invisible(c);
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c if bad(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn escapes_cannot_reach_the_terminal() {
        assert_eq!(clean("Sales bot"), "Sales bot");
        assert_eq!(clean("a\u{1b}]0;owned\u{7}b"), "a^[]0;owned^Gb");
        assert_eq!(clean("x\u{202E}y\u{200B}z"), "x<U+202E>y<U+200B>z");
        assert_eq!(clean("two\nlines\tok\r"), "two\nlines\tok^M");
        assert_eq!(clean("\u{9b}31m"), "<U+009B>31m");
    }
}
