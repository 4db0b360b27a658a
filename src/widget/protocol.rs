//! The frames the widget script and flametree exchange over the WebSocket, as JSON
//! text frames.
//!
//! Visitor → flametree: `{"t":"msg","id":"<client id>","text":"…"}`. The client id
//! is the message's identity: a message resent after a reconnect carries the same one,
//! and the ledger answers it once.
//!
//! flametree → visitor: `status` (online or not), `ack` (recorded; the script stops
//! resending it), `reply` (the agent's answer, `re` naming the message it answers) and
//! `error` (refused, with a sentence for the visitor and a `code` for the script).

use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    pub t: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub text: String,
}

pub fn status(online: bool, text: &str) -> String {
    json!({"t": "status", "online": online, "text": text}).to_string()
}

pub fn ack(id: &str) -> String {
    json!({"t": "ack", "id": id}).to_string()
}

pub fn reply(id: &str, text: &str, re: &str) -> String {
    json!({"t": "reply", "id": id, "text": text, "re": re}).to_string()
}

/// `code`: `size`, `rate`, `offline` or `invalid`.
pub fn error(id: &str, code: &str, text: &str) -> String {
    json!({"t": "error", "id": id, "code": code, "text": text}).to_string()
}

fn token(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The anonymous id a visitor's browser keeps (the script makes 32 hex digits).
pub fn is_visitor_id(s: &str) -> bool {
    token(s, 8, 64)
}

pub fn is_message_id(s: &str) -> bool {
    token(s, 1, 64)
}

/// An id for a reply pushed to a visitor.
pub fn new_id() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().r#gen();
    format!("r{n:032x}")
}
