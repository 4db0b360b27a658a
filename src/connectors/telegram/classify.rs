//! Telegram's errors, transient or permanent, in words an operator can act on. The
//! request URL carries the bot token, so no error text here includes it.

use crate::connectors::ConnectorError;
use teloxide::{ApiError, RequestError};

pub fn classify(e: RequestError) -> ConnectorError {
    match e {
        RequestError::Api(ApiError::InvalidToken) => ConnectorError::Permanent(
            "Telegram rejected the bot token (401 Unauthorized): fix the Bot token, Save, then Start"
                .into(),
        ),
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => ConnectorError::Permanent(
            "another program is polling this bot (409 Conflict: terminated by other getUpdates \
             request): stop it or use another bot, then Start"
                .into(),
        ),
        RequestError::RetryAfter(s) => ConnectorError::Transient {
            why: format!("Telegram asked to slow down (429, retry after {} s)", s.seconds()),
            retry_after: Some(s.duration()),
        },
        RequestError::Network(e) => {
            // The status line gets the root cause; the whole chain goes to the log.
            tracing::debug!("Telegram request failed: {}", strip_url(&e));
            ConnectorError::transient(format!("cannot reach Telegram ({})", root_cause(&e)))
        }
        other => ConnectorError::transient(format!("Telegram answered with an error: {other}")),
    }
}

/// For the credential check: an answer that is not the Bot API's (a 404 from a wrong
/// `TELEGRAM_API_URL`, an HTML page) is a setting to fix, not something to retry.
pub fn classify_verify(e: RequestError, custom_api: bool) -> ConnectorError {
    match e {
        RequestError::InvalidJson { .. } if custom_api => ConnectorError::Permanent(
            "TELEGRAM_API_URL does not answer like the Telegram Bot API (not JSON): fix \
             TELEGRAM_API_URL or remove it to use https://api.telegram.org, Save, then Start"
                .into(),
        ),
        RequestError::Api(ApiError::Unknown(text)) if text.contains("Not Found") => {
            ConnectorError::Permanent(format!(
                "the Bot API answered '{text}' to getMe: check TELEGRAM_API_URL, Save, then Start"
            ))
        }
        other => classify(other),
    }
}

/// The innermost cause in a few words: "connection refused", "operation timed out".
fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    if std::ptr::addr_eq(last, e as &dyn std::error::Error) {
        return if e.is_timeout() {
            "timed out".into()
        } else {
            "no answer".into()
        };
    }
    let text = last.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "no answer".into(),
    }
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut text = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<Bot API URL>");
        }
        text
    }
}
