//! What an incoming mail is to the agent (and whether it is answered at all), and the
//! headers a reply carries so mail clients thread it.

use super::super::{Event, Inbound};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

/// What a reply needs to know of the mail it answers; kept as the ledger's raw payload so
/// a reply sent after a restart threads like any other.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Thread {
    pub message_id: String,
    pub subject: String,
    pub references: Vec<String>,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// A mail as it came from the mailbox.
pub struct Incoming<'a> {
    pub account: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
    pub bytes: &'a [u8],
}

/// Turns a mail into the event the runtime records: a message to answer, or a line
/// saying why it is not answered. `own` are the connection's own addresses.
pub fn event(mail: &Incoming<'_>, own: &[String], label: &str) -> Event {
    let Some(msg) = MessageParser::default().parse(mail.bytes) else {
        return Event::Ignored {
            note: format!(
                "{label}: mail UID {} is not a readable message; skipped",
                mail.uid
            ),
        };
    };
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_string();
    let subject = msg.subject().unwrap_or("").to_string();
    if let Some(why) = never_answer(&msg, &from, own) {
        return Event::Ignored {
            note: format!(
                "{label}: mail from {} ({}) not answered: {why}",
                if from.is_empty() {
                    "an unknown sender"
                } else {
                    &from
                },
                short(&subject)
            ),
        };
    }
    let customer = msg
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string)
        .unwrap_or(from.clone());
    if customer.is_empty() {
        return Event::Ignored {
            note: format!(
                "{label}: mail ({}) has no sender address to answer",
                short(&subject)
            ),
        };
    }
    let display_name = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .unwrap_or("")
        .to_string();
    let message_id = msg.message_id().unwrap_or("").to_string();
    let provider_id = if message_id.is_empty() {
        // Without a Message-ID, what the mail says of itself tells it apart (and survives
        // the server renumbering its folder, which a UID would not).
        fingerprint(&msg, &from, &subject, mail.bytes.len())
    } else {
        message_id.clone()
    };
    let text = body_text(&msg);
    let thread = Thread {
        references: references(&msg),
        message_id,
        subject: subject.clone(),
        uidvalidity: mail.uidvalidity,
        uid: mail.uid,
    };
    Event::Message(Inbound {
        account: mail.account.to_string(),
        provider_id,
        customer,
        display_name,
        text: if text.trim().is_empty() {
            subject
        } else {
            text
        },
        raw: serde_json::to_string(&thread).unwrap_or_default(),
    })
}

fn fingerprint(msg: &Message<'_>, from: &str, subject: &str, size: usize) -> String {
    use sha2::{Digest, Sha256};
    let date = msg.date().map(|d| d.to_rfc3339()).unwrap_or_default();
    let digest = Sha256::digest(format!("{date}\n{from}\n{subject}\n{size}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("no-message-id:{hex}")
}

/// The attachments' names and sizes, for the log.
pub fn attachments(bytes: &[u8]) -> Vec<(String, usize)> {
    MessageParser::default()
        .parse(bytes)
        .map(|m| {
            m.attachments()
                .map(|a| {
                    (
                        a.attachment_name().unwrap_or("unnamed").to_string(),
                        a.contents().len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sender and subject of a mail read by its headers only (one too large to fetch).
pub fn summary(header_bytes: &[u8]) -> String {
    match MessageParser::default().parse_headers(header_bytes) {
        Some(m) => format!(
            "from {} ({})",
            m.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("an unknown sender"),
            short(m.subject().unwrap_or(""))
        ),
        None => "with unreadable headers".into(),
    }
}

/// Why a mail must not be answered, if it must not: answering these makes mail loops
/// or spams lists.
fn never_answer(msg: &Message<'_>, from: &str, own: &[String]) -> Option<String> {
    if let Some(v) = header_text(msg, "Auto-Submitted")
        && !v.trim().eq_ignore_ascii_case("no")
    {
        return Some(format!(
            "an automatic message (Auto-Submitted: {})",
            v.trim()
        ));
    }
    if let Some(v) = header_text(msg, "Precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "list" | "junk") {
            return Some(format!("bulk mail (Precedence: {v})"));
        }
    }
    if header_text(msg, "List-Id").is_some() {
        return Some("a mailing list (List-Id)".into());
    }
    let local = from.split('@').next().unwrap_or("").to_ascii_lowercase();
    let report = msg.content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if local == "mailer-daemon" || local == "postmaster" || report {
        return Some("a delivery report (bounce)".into());
    }
    if own.iter().any(|a| a.eq_ignore_ascii_case(from)) {
        return Some("it was sent from this connection's own address".into());
    }
    if header_text(msg, "X-Autoreply").is_some() || header_text(msg, "X-Autorespond").is_some() {
        return Some("an automatic reply (X-Autoreply)".into());
    }
    None
}

fn header_text(msg: &Message<'_>, name: &str) -> Option<String> {
    msg.header_raw(name).map(|v| v.trim().to_string())
}

fn references(msg: &Message<'_>) -> Vec<String> {
    match msg.references() {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Plain text is preferred; an HTML-only mail is converted to text.
fn body_text(msg: &Message<'_>) -> String {
    msg.body_text(0)
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

fn short(subject: &str) -> String {
    let s = subject.trim();
    if s.is_empty() {
        return "no subject".into();
    }
    let mut out = crate::runtime::logs::clip(s, 60);
    if s.chars().count() > 60 {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// The subject of a reply: one `Re:` however deep the thread.
pub fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("re:") {
        s.to_string()
    } else if s.is_empty() {
        "Re: your message".into()
    } else {
        format!("Re: {s}")
    }
}

/// The References of a reply: the original's, then the original itself.
pub fn reply_references(thread: &Thread) -> Vec<String> {
    let mut refs = thread.references.clone();
    if !thread.message_id.is_empty() && !refs.contains(&thread.message_id) {
        refs.push(thread.message_id.clone());
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(raw: &str) -> Event {
        let mail = Incoming {
            account: "alice@example.com",
            uidvalidity: 7,
            uid: 3,
            bytes: raw.as_bytes(),
        };
        event(
            &mail,
            &["alice@example.com".into()],
            "account 1 (alice@example.com)",
        )
    }

    #[test]
    fn a_customer_mail_becomes_a_message_with_its_thread() {
        let e = ev(
            "From: Carol <carol@example.org>\r\nReply-To: help@example.org\r\nTo: alice@example.com\r\n\
                    Subject: Order 42\r\nMessage-ID: <m2@example.org>\r\nReferences: <m1@example.org>\r\n\r\nWhere is it?\r\n",
        );
        let Event::Message(m) = e else {
            panic!("{e:?}")
        };
        assert_eq!(m.provider_id, "m2@example.org");
        assert_eq!(m.customer, "help@example.org");
        assert_eq!(m.display_name, "Carol");
        assert_eq!(m.text, "Where is it?");
        let t: Thread = serde_json::from_str(&m.raw).unwrap();
        assert_eq!(reply_subject(&t.subject), "Re: Order 42");
        assert_eq!(reply_references(&t), ["m1@example.org", "m2@example.org"]);
    }

    #[test]
    fn html_only_mail_is_given_as_text() {
        let e = ev(
            "From: c@example.org\r\nSubject: x\r\nMessage-ID: <h@x>\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n",
        );
        let Event::Message(m) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.text.contains("Hello") && !m.text.contains('<'),
            "{}",
            m.text
        );
    }

    #[test]
    fn automatic_list_bounce_and_own_mail_are_never_answered() {
        let cases = [
            (
                "From: c@example.org\r\nAuto-Submitted: auto-replied\r\n",
                "Auto-Submitted",
            ),
            (
                "From: c@example.org\r\nPrecedence: bulk\r\n",
                "Precedence: bulk",
            ),
            (
                "From: c@example.org\r\nList-Id: <news.example.org>\r\n",
                "mailing list",
            ),
            ("From: MAILER-DAEMON@example.org\r\n", "bounce"),
            ("From: alice@example.com\r\n", "own address"),
        ];
        for (headers, why) in cases {
            let e = ev(&format!(
                "{headers}Subject: s\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n"
            ));
            match e {
                Event::Ignored { note } => assert!(note.contains(why), "{note}"),
                other => panic!("{headers:?} was answered: {other:?}"),
            }
        }
        let e = ev("From: c@example.org\r\nAuto-Submitted: no\r\nSubject: s\r\n\r\nbody\r\n");
        assert!(
            matches!(e, Event::Message(_)),
            "Auto-Submitted: no is a person"
        );
    }

    #[test]
    fn a_mail_without_message_id_is_known_by_what_it_says_of_itself() {
        let raw = "From: c@example.org\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n";
        let id = |raw: &str, uid: u32| {
            let mail = Incoming {
                account: "alice@example.com",
                uidvalidity: 9,
                uid,
                bytes: raw.as_bytes(),
            };
            match event(&mail, &[], "account 1") {
                Event::Message(m) => m.provider_id,
                other => panic!("{other:?}"),
            }
        };
        assert!(id(raw, 3).starts_with("no-message-id:"));
        assert_eq!(id(raw, 3), id(raw, 40), "the same mail after a renumbering");
        assert_ne!(id(raw, 3), id(&raw.replace("Subject: s", "Subject: t"), 3));
    }
}
