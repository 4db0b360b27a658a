//! Telegram updates as pipeline events, and the settings that shape them.

use crate::connectors::{ConnectorError, Event, Inbound};
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use sha2::Sha256;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};

/// The Bot API's answer to a call, as teloxide would read it.
#[derive(serde::Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    description: Option<teloxide::ApiError>,
    parameters: Option<teloxide::types::ResponseParameters>,
}

/// Of a sent message, only its id is kept.
#[derive(serde::Deserialize)]
struct Sent {
    message_id: i64,
}

/// One update of a getUpdates answer: decoded, and as Telegram sent it (the ledger keeps
/// the provider's own bytes, with fields teloxide does not know).
pub struct Polled {
    pub update: Update,
    pub raw: Box<RawValue>,
}

impl Polled {
    /// An update decoded elsewhere (teloxide's own client), written back as JSON.
    pub fn from_update(update: Update) -> Polled {
        let raw = serde_json::value::to_raw_value(&update)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("JSON null"));
        Polled { update, raw }
    }
}

/// The updates of a getUpdates answer (HTTP `status`, `body`), or its error classified.
/// Each update is kept as sent rather than decoded and written again: that was most of
/// a burst's string copies, and lost what teloxide does not model.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Polled>, super::PollFailure> {
    use super::PollFailure;
    let answer: Answer<Vec<Box<RawValue>>> =
        serde_json::from_slice(body).map_err(|_| PollFailure::Other(not_json(status)))?;
    if answer.ok {
        return answer
            .result
            .unwrap_or_default()
            .into_iter()
            .map(|raw| {
                let update = serde_json::from_str::<Update>(raw.get())
                    .map_err(|_| PollFailure::Other(not_json(status)))?;
                Ok(Polled { update, raw })
            })
            .collect();
    }
    match refusal(status, answer) {
        teloxide::RequestError::Api(teloxide::ApiError::TerminatedByOtherGetUpdates) => {
            Err(PollFailure::Conflict)
        }
        error => Err(PollFailure::Other(super::classify::classify(error))),
    }
}

/// The id of the message a sendMessage answer (HTTP `status`, `body`) says went out,
/// or its error classified as teloxide's would be.
pub fn parse_sent(status: u16, body: &[u8]) -> Result<String, ConnectorError> {
    let answer: Answer<Sent> = serde_json::from_slice(body).map_err(|_| not_json(status))?;
    match (answer.ok, &answer.result) {
        (true, Some(sent)) => Ok(sent.message_id.to_string()),
        (true, None) => Err(not_json(status)),
        (false, _) => Err(super::classify::classify(refusal(status, answer))),
    }
}

fn not_json(status: u16) -> ConnectorError {
    ConnectorError::transient(format!(
        "Telegram answered HTTP {status} with something that is not the Bot API's JSON"
    ))
}

/// A refused call's error, as teloxide reports it.
fn refusal<T>(status: u16, answer: Answer<T>) -> teloxide::RequestError {
    use teloxide::types::ResponseParameters;
    use teloxide::{ApiError, RequestError};
    match (answer.parameters, answer.description) {
        (Some(ResponseParameters::RetryAfter(s)), _) => RequestError::RetryAfter(s),
        (Some(ResponseParameters::MigrateToChatId(c)), _) => RequestError::MigrateToChatId(c),
        (None, Some(e)) => RequestError::Api(e),
        (None, None) => RequestError::Api(ApiError::Unknown(format!("HTTP {status}"))),
    }
}

/// A message is identified by its chat and its id in the chat: unlike update ids,
/// these never restart.
/// `raw` is the update as the provider sent it.
pub fn event(update: &Update, raw: &str) -> Event {
    let id = update.id.0;
    let UpdateKind::Message(msg) = &update.kind else {
        return Event::Ignored {
            note: format!("update {id}: not a message; not answered"),
        };
    };
    let Some(text) = msg.text() else {
        return Event::Ignored {
            note: format!(
                "update {id}: a message without text from chat {}; not answered",
                msg.chat.id
            ),
        };
    };
    let display_name = msg
        .from
        .as_ref()
        .map(|u| u.full_name())
        .or_else(|| msg.chat.title().map(str::to_string))
        .unwrap_or_default();
    Event::Message(Inbound {
        account: String::new(),
        provider_id: format!("{}:{}", msg.chat.id, msg.id.0),
        customer: msg.chat.id.to_string(),
        display_name,
        text: text.to_string(),
        raw: raw.to_string(),
    })
}

/// `TELEGRAM_ALLOWED_UPDATES`: comma-separated update types, as the Bot API names them.
pub fn parse_allowed(list: &str) -> Result<Vec<AllowedUpdate>, ConnectorError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
                ConnectorError::Permanent(format!(
                    "TELEGRAM_ALLOWED_UPDATES names '{name}', which is not a Telegram update type \
                     (e.g. message, edited_message, callback_query)"
                ))
            })
        })
        .collect()
}

/// The `secret_token` Telegram sends back with every delivery: derived from the bot
/// token and the webhook path, so every process can check it and nobody else knows it.
pub fn secret_token(bot_token: &str, hook_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(bot_token.as_bytes()).expect("any key length");
    mac.update(b"flametree telegram webhook ");
    mac.update(hook_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_token_is_what_telegram_accepts_and_differs_per_hook() {
        let a = secret_token("123:abc", "hook1");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, secret_token("123:abc", "hook2"));
        assert_ne!(a, secret_token("123:abd", "hook1"));
    }

    /// The ledger keeps each update as Telegram sent it: its own spacing, and a field
    /// teloxide does not model (a newer Bot API's) still there.
    #[test]
    fn a_polled_update_is_recorded_as_telegram_sent_it() {
        let first = r#"{"update_id": 7, "message": {"message_id": 3, "date": 1700000000,
            "chat": {"id": 42, "type": "private", "first_name": "Ann"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
            "text": "hi", "a_field_from_a_newer_bot_api": {"x": 1}}}"#;
        let second = r#"{"update_id":8,"edited_message":{"message_id":3,"date":1700000001,"edit_date":1700000002,"chat":{"id":42,"type":"private","first_name":"Ann"},"text":"hi!"}}"#;
        let body = format!(r#"{{"ok":true,"result":[{first}, {second}]}}"#);
        let polled = parse_answer(200, body.as_bytes()).unwrap_or_else(|_| panic!("parsed"));
        assert_eq!(polled.len(), 2);
        assert_eq!(polled[0].update.id.0, 7);
        let Event::Message(m) = event(&polled[0].update, polled[0].raw.get()) else {
            panic!("a text message");
        };
        assert_eq!((m.text.as_str(), m.customer.as_str()), ("hi", "42"));
        assert_eq!(m.raw, first, "byte for byte");
        assert!(matches!(
            event(&polled[1].update, polled[1].raw.get()),
            Event::Ignored { .. }
        ));
    }

    #[test]
    fn allowed_updates_are_checked() {
        assert_eq!(parse_allowed("message, edited_message").unwrap().len(), 2);
        let e = parse_allowed("message,mesage").unwrap_err().to_string();
        assert!(e.contains("'mesage'"), "{e}");
    }
}
