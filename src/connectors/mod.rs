//! Connectors: one module per channel family, each only the provider mapping — check
//! the credentials, receive (a poll loop, or webhook deliveries the ingress hands
//! over), send a text, and say which of the provider's errors are transient. The
//! runtime does the rest once for all: ledger, agents, replies, retries, logs, leases.
//!
//! Adding a type is a module here, a line in `registry`, and a catalog entry.

pub mod bird;
pub mod calls;
mod config;
pub mod email;
pub mod event;
pub mod infobip;
pub mod intercom;
pub mod messagebird;
pub mod meta;
pub mod onprem;
mod rest;
pub mod retry;
pub mod sip;
pub mod telegram;
mod trust;
pub mod twilio;
mod unavailable;

pub use calls::{Calls, count_in as calls_in, in_progress};
pub use config::ConnConfig;
pub use event::{Delivery, Event, Inbound};

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The connector family a catalog type names (`family = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Telegram,
    Email,
    Meta,
    /// The deprecated self-hosted WhatsApp Business API client.
    WhatsAppOnPrem,
    /// The deprecated MessageBird Conversations API.
    MessageBird,
    Infobip,
    Bird,
    Intercom,
    Sip,
    Twilio,
    Widget,
    Push,
}

impl Family {
    pub fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "telegram" => Family::Telegram,
            "email" => Family::Email,
            "meta" => Family::Meta,
            "whatsapp_onprem" => Family::WhatsAppOnPrem,
            "messagebird" => Family::MessageBird,
            "infobip" => Family::Infobip,
            "bird" => Family::Bird,
            "intercom" => Family::Intercom,
            "sip" => Family::Sip,
            "twilio" => Family::Twilio,
            "widget" => Family::Widget,
            "push" => Family::Push,
            _ => return None,
        })
    }

    /// The family of a catalog type key.
    pub fn of_type(type_key: &str) -> Option<Family> {
        crate::catalog::Catalog::get()
            .find(type_key)
            .and_then(|t| Family::parse(&t.family))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Bad or revoked credentials, a wrong setting, a conflict only the operator can
    /// settle: ERROR, in words that say what to fix.
    #[error("{0}")]
    Permanent(String),
    /// Another process took the connection over (its lease moved on): stop quietly.
    #[error("{0}")]
    Superseded(String),
    /// The provider is unreachable, overloaded or asked to slow down: try again.
    #[error("{why}")]
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl ConnectorError {
    pub fn transient(why: impl Into<String>) -> ConnectorError {
        ConnectorError::Transient {
            why: why.into(),
            retry_after: None,
        }
    }
}

/// A text to a customer, from one of the connection's accounts.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    /// Which account it goes out from (multi-account types); empty: the only one.
    pub account: &'a str,
    /// The customer, as the connector reported it in `Inbound::customer`.
    pub to: &'a str,
    pub text: &'a str,
    /// The provider id of the message this answers, if any.
    pub in_reply_to: Option<&'a str>,
    /// The raw payload the connector recorded with that message (what a reply needs of
    /// it: an email's subject and references).
    pub context: Option<&'a str>,
}

/// Where a running connector hands what it receives: the runtime's inbound pipeline.
#[async_trait]
pub trait InboxSink: Send + Sync {
    /// Records the events durably (and the connector's new resume point with them);
    /// once this returns Ok, the provider may be told they were received.
    async fn submit(
        &self,
        events: Vec<Event>,
        cursor: Option<String>,
    ) -> Result<(), ConnectorError>;
    /// The resume point stored with the last submit, if any, and when it was stored.
    async fn cursor(&self) -> Option<(String, crate::model::Millis)>;
    /// The connection is connected for real and receiving; an empty message shows
    /// what the credential check found ("polling as @sales_bot").
    async fn running(&self, message: &str);
    /// Still running, but something is wrong for now (shown as the status message).
    async fn degraded(&self, message: &str);
}

/// What `receive` gets: where to put events, and when to stop.
pub struct Receiver {
    pub stop: CancellationToken,
    pub inbox: Arc<dyn InboxSink>,
}

/// One webhook delivery, as it came: the raw body is what signatures cover.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub method: String,
    /// The full URL the provider called (`<public_url>/hooks/<id>?…`): some providers
    /// sign it.
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl HookRequest {
    /// The first header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HookResponse {
    pub fn ok() -> HookResponse {
        HookResponse {
            status: 200,
            content_type: "text/plain",
            body: "ok".into(),
        }
    }
}

/// What a connector made of a delivery.
#[derive(Debug)]
pub enum HookVerdict {
    /// Authentic: these events go to the pipeline (durably) before `response` is sent.
    Accept {
        events: Vec<Event>,
        response: HookResponse,
    },
    /// Refused with this status; `why` goes to the connection's log as a WARN.
    Reject { status: u16, why: String },
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// A cheap provider call proving the credentials; Ok carries what the status line
    /// shows while running ("polling as @sales_bot"). A failure names the field to fix.
    async fn verify(&self) -> Result<String, ConnectorError>;

    /// Receives until `rx.stop` is cancelled: a poll loop submitting what arrives, or
    /// (webhook-driven) registering the webhook with the provider, then waiting.
    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError>;

    /// Whether `to` names a customer the way this provider does; Err says how it should look.
    fn check_recipient(&self, _to: &str) -> Result<(), String> {
        Ok(())
    }

    /// Sends a text; Ok carries the provider's id of the sent message.
    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError>;

    /// Whether sending the same reply twice reaches the customer once (the provider or
    /// their client recognises it), so a reply a crash interrupted may be sent again.
    fn idempotent_replies(&self) -> bool {
        false
    }

    /// Checks a webhook delivery (signature on the raw body) and turns it into events.
    fn webhook(&self, _req: &HookRequest) -> HookVerdict {
        HookVerdict::Reject {
            status: 404,
            why: "this connection takes no webhooks".into(),
        }
    }

    /// Undoes what `receive` set up at the provider (a webhook registration) on Stop.
    async fn release(&self) {}

    /// The response to an accepted delivery once its events are recorded, for a
    /// provider that waits for the agent's answer in it (Twilio's TwiML); `accepted`
    /// is what `webhook` gave.
    async fn respond(&self, _req: &HookRequest, accepted: HookResponse) -> HookResponse {
        accepted
    }

    /// Nobody may answer the message with this ledger key (the log says why): for a
    /// connector whose customer is waiting on the line.
    fn unanswered(&self, _key: &str) {}

    /// The agent's speech engines, for a connector that carries calls as audio (SIP);
    /// given once, after `open` and before `verify`.
    fn use_speech(&self, _speech: crate::agents::speech_client::SpeechClient) {}

    /// How many of the connection's messages may be answered at the same time. One (in
    /// order) for chats; more where each customer waits on a line of their own (calls).
    fn answers_at_once(&self) -> usize {
        1
    }

    /// Whether a recorded message (its raw payload) continues a conversation flametree
    /// started (an outbound call): the connection's agent answers it even with Inbound off.
    fn started_by_us(&self, _raw: &str) -> bool {
        false
    }

    /// Places the outbound call a request asks for, from the process that runs the
    /// connection (the request was claimed here): each step goes to `progress` as it
    /// happens, and this returns once the call is over, its conversation included. The
    /// runtime writes the steps to the request, where `flametree call` reads them.
    async fn place_call(
        &self,
        _request: &crate::model::CallRequest,
        _progress: tokio::sync::mpsc::UnboundedSender<crate::model::CallProgress>,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::Permanent(
            "this connection type does not place queued calls".into(),
        ))
    }
}

/// A delivery whose (already checked) body is JSON, turned into events; 400 otherwise.
pub fn accept_json(
    body: &[u8],
    events: impl FnOnce(&serde_json::Value) -> Vec<Event>,
) -> HookVerdict {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => HookVerdict::Accept {
            events: events(&v),
            response: HookResponse::ok(),
        },
        Err(e) => HookVerdict::Reject {
            status: 400,
            why: format!("a delivery is not JSON: {e}"),
        },
    }
}

/// Whether `to` is a phone number in international form (the country code first).
pub fn phone_recipient(to: &str) -> Result<(), String> {
    let d = to.trim().trim_start_matches('+');
    if (6..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "'{to}' is not a phone number (digits with the country code, e.g. +31612345678)"
        ))
    }
}

/// Compares a secret a provider sent back with ours in constant time.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The process's HTTP client, shared by every connector (one connection pool).
pub fn http_client() -> reqwest::Client {
    // teloxide's own settings: its long-poll timeouts assume them.
    teloxide::net::default_reqwest_settings()
        .build()
        .expect("an HTTP client with rustls builds")
}

/// Opens a connector for a connection's decrypted configuration.
pub type Opener = fn(ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError>;
type Factory = Opener;

/// The connector of a family, if this build has one.
fn factory(family: Family) -> Option<Factory> {
    match family {
        Family::Twilio => Some(twilio::open),
        Family::Sip => Some(sip::open),
        Family::Telegram => Some(telegram::open),
        Family::Email => Some(email::open),
        Family::Meta => Some(meta::open),
        Family::Intercom => Some(intercom::open),
        Family::Bird => Some(bird::open),
        Family::MessageBird => Some(messagebird::open),
        Family::WhatsAppOnPrem => Some(onprem::open),
        Family::Infobip => Some(infobip::open),
        Family::Widget => Some(crate::widget::connector::open),
        _ => None,
    }
}

/// Opens the connector for a connection's decrypted configuration (no network yet).
pub fn open(config: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let ty = crate::catalog::Catalog::get().find(&config.connection.type_key);
    let family = ty.and_then(|t| Family::parse(&t.family));
    match family.and_then(factory) {
        Some(f) => f(config),
        None => Err(unavailable::not_in_this_build(
            ty.map(|t| t.name.as_str())
                .unwrap_or(&config.connection.type_key),
        )),
    }
}

/// Whether the provider delivers this connection's messages to its webhook URL (so the
/// operator may need to see or paste that URL).
pub fn uses_webhook(c: &crate::model::Connection) -> bool {
    let env = |name: &str| {
        c.env
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value.trim().to_ascii_lowercase())
    };
    match Family::of_type(&c.type_key) {
        Some(Family::Telegram) => env("TELEGRAM_MODE").as_deref() == Some("webhook"),
        Some(Family::Infobip) => env("INFOBIP_INBOUND_MODE").as_deref() == Some("webhook"),
        Some(
            Family::Meta
            | Family::WhatsAppOnPrem
            | Family::Bird
            | Family::MessageBird
            | Family::Intercom
            | Family::Twilio,
        ) => true,
        _ => false,
    }
}

/// The URL the operator gives the provider (`<public_base>/hooks/<hook_id>`), for a
/// connection whose provider delivers to it; `None` otherwise.
pub fn webhook_url_for(c: &crate::model::Connection, public_base: &str) -> Option<String> {
    (uses_webhook(c) && !c.hook_id.is_empty())
        .then(|| crate::runtime::webhook_url(public_base, &c.hook_id))
}

/// The environment variable that switches a type to webhook delivery, when it has one.
pub fn webhook_switch(type_key: &str) -> Option<&'static str> {
    match Family::of_type(type_key) {
        Some(Family::Telegram) => Some("TELEGRAM_MODE"),
        Some(Family::Infobip) => Some("INFOBIP_INBOUND_MODE"),
        _ => None,
    }
}

/// Whether connections of this type hold calls (and so report them through `Calls`).
pub fn takes_calls(type_key: &str) -> bool {
    matches!(
        Family::of_type(type_key),
        Some(Family::Sip | Family::Twilio)
    )
}

/// Whether `flametree send` and replies can use this type in this build.
pub fn can_send(type_key: &str) -> bool {
    Family::of_type(type_key).and_then(factory).is_some()
}
