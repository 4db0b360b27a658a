//! TwiML, the XML Twilio follows: every text and URL in it is escaped, so nothing a
//! caller says (or an agent replies) can become a verb.

/// How the agent speaks and listens (the connection's `TWILIO_*` variables).
#[derive(Debug, Clone)]
pub struct Voice {
    /// `<Say voice=…>`; None: Twilio's default voice.
    pub voice: Option<String>,
    /// BCP-47, for recognition and `<Say>`.
    pub language: String,
    /// `speechTimeout`: seconds of silence, or `auto`.
    pub speech_timeout: String,
}

/// XML-escapes text and attribute values (`& < > " '`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters; a caller's words never need them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn document(verbs: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{verbs}</Response>")
}

fn say(v: &Voice, text: &str) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    let voice = v
        .voice
        .as_deref()
        .map(|name| format!(" voice=\"{}\"", escape(name)))
        .unwrap_or_default();
    format!(
        "<Say{voice} language=\"{}\">{}</Say>",
        escape(&v.language),
        escape(text)
    )
}

fn redirect(url: &str) -> String {
    format!("<Redirect method=\"POST\">{}</Redirect>", escape(url))
}

/// Says `text`, then listens for the caller's next words, posted to `action`. Should
/// the Gather fall through (no speech and no action on an empty result), the Redirect
/// posts to `action` anyway, which counts as a silent turn.
pub fn listen(v: &Voice, text: &str, action: &str) -> String {
    document(&format!(
        "<Gather input=\"speech\" action=\"{a}\" method=\"POST\" language=\"{l}\" \
         speechTimeout=\"{t}\" actionOnEmptyResult=\"true\">{s}</Gather>{r}",
        a = escape(action),
        l = escape(&v.language),
        t = escape(&v.speech_timeout),
        s = say(v, text),
        r = redirect(action),
    ))
}

/// Says `text` (a filler), then fetches `url` for what comes next.
pub fn hold(v: &Voice, text: &str, url: &str) -> String {
    document(&format!("{}{}", say(v, text), redirect(url)))
}

/// Says `text` and ends the call.
pub fn hang_up(v: &Voice, text: &str) -> String {
    document(&format!("{}<Hangup/>", say(v, text)))
}

/// Nothing to do (a status callback).
pub fn empty() -> String {
    document("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice() -> Voice {
        Voice {
            voice: Some("Polly.Joanna".into()),
            language: "en-US".into(),
            speech_timeout: "auto".into(),
        }
    }

    #[test]
    fn a_caller_s_markup_stays_text() {
        let t = listen(
            &voice(),
            "You said: <Hangup/> & \"bye\" 'now'",
            "https://x.test/hooks/a?t=2&s=1",
        );
        assert!(!t.contains("<Hangup/>"), "{t}");
        assert!(
            t.contains("You said: &lt;Hangup/&gt; &amp; &quot;bye&quot; &apos;now&apos;"),
            "{t}"
        );
        assert!(
            t.contains("action=\"https://x.test/hooks/a?t=2&amp;s=1\""),
            "{t}"
        );
        assert!(
            t.contains("<Say voice=\"Polly.Joanna\" language=\"en-US\">"),
            "{t}"
        );
        assert!(t.contains("speechTimeout=\"auto\""), "{t}");
    }

    #[test]
    fn hang_up_ends_with_the_verb_and_an_empty_text_says_nothing() {
        let t = hang_up(&voice(), "Goodbye.");
        assert!(
            t.ends_with(
                "<Say voice=\"Polly.Joanna\" language=\"en-US\">Goodbye.</Say><Hangup/></Response>"
            ),
            "{t}"
        );
        let quiet = Voice {
            voice: None,
            ..voice()
        };
        assert!(!listen(&quiet, "  ", "https://x.test/h?t=1").contains("<Say"));
        assert!(
            listen(&quiet, "Hi", "https://x.test/h?t=1")
                .contains("<Say language=\"en-US\">Hi</Say>")
        );
    }
}
