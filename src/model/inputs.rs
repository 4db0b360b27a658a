//! What a name, a description or a value may hold, shared by connections and agents.
//! Names are compared after Unicode NFC normalisation, so "Café" typed two ways is one
//! name; characters that are invisible or reorder text (zero-width, bidi controls)
//! would let two names look alike or a name look like another, so they are refused.

use unicode_normalization::UnicodeNormalization;

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 1000;
/// Any plain field or variable value.
pub const VALUE_MAX: usize = 64 * 1024;
/// Any secret value.
pub const SECRET_MAX: usize = 16 * 1024;

/// The name as stored and compared: trimmed, NFC.
pub fn normalize_name(name: &str) -> String {
    name.trim().nfc().collect()
}

/// Zero-width characters, bidi controls and other invisible format characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Why `name` (of a connection or an agent) is refused, if it is.
pub fn name_problem(name: &str) -> Option<String> {
    let name = normalize_name(name);
    if name.is_empty() {
        Some("Name is required".into())
    } else if name.chars().count() > NAME_MAX {
        Some(format!(
            "Name is longer than {NAME_MAX} characters: shorten it"
        ))
    } else if name.chars().any(char::is_control) {
        Some(
            "Name contains a control character: use letters, digits, spaces and punctuation".into(),
        )
    } else {
        name.chars().find(|c| is_invisible(*c)).map(|c| {
            format!(
                "Name contains an invisible character (U+{:04X}): names must look like what \
                 they are; retype it without that character",
                u32::from(c)
            )
        })
    }
}

/// Why a description is refused, if it is.
pub fn description_problem(description: &str) -> Option<String> {
    if description.chars().count() > DESCRIPTION_MAX {
        Some(format!(
            "Description is longer than {DESCRIPTION_MAX} characters: shorten it"
        ))
    } else if description.chars().any(char::is_control) {
        Some(
            "Description contains a control character (a tab, a line break or a terminal \
             escape): write it on one line"
                .into(),
        )
    } else {
        None
    }
}

/// Why a value of `bytes` bytes is too long, if it is.
pub fn size_problem(label: &str, bytes: usize, secret: bool) -> Option<String> {
    let max = if secret { SECRET_MAX } else { VALUE_MAX };
    (bytes > max).then(|| {
        format!(
            "{label} is {} KiB; at most {} KiB is accepted",
            bytes.div_ceil(1024),
            max / 1024
        )
    })
}

/// An http(s) URL with a host: the only kind flametree sends requests to.
pub fn is_web_url(v: &str) -> bool {
    url::Url::parse(v.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nfc_and_invisible_characters_are_refused() {
        assert_eq!(normalize_name(" Cafe\u{301} "), "Caf\u{e9}");
        assert!(name_problem("Sales\u{200B}bot").is_some());
        assert!(name_problem("Sales\u{202E}tob").is_some());
        assert!(name_problem("Sales\u{1b}]0;x\u{7}").is_some());
        assert!(name_problem("Продажи 販売 🤖").is_none());
        assert!(description_problem("two\nlines").is_some());
        assert!(size_problem("Bot token", 17 * 1024, true).is_some());
        assert!(size_problem("Bot token", 15 * 1024, true).is_none());
        assert!(!is_web_url("javascript:alert(1)"));
        assert!(!is_web_url("file:///etc/passwd"));
        assert!(is_web_url("https://api.openai.com/v1"));
    }
}
