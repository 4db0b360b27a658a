//! Local stand-ins for the two deprecated APIs that existing connections still use:
//! MessageBird's Conversations API (`GET /conversations`, `POST /send`, `AccessKey` auth,
//! webhooks signed with MessageBird's request signature) and a WhatsApp On-Premises API
//! client (`POST /v1/users/login` with Basic auth, `PATCH /v1/settings/application`,
//! `POST /v1/messages` with the bearer token, tokens that lapse on demand).

use crate::connectors::messagebird::signature;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message either API accepted: (to, text, id).
pub type Sent = (String, String, String);

#[derive(Default)]
struct Hub {
    key: String,
    user: (String, String),
    tokens: Vec<String>,
    webhook: String,
    sent: Vec<Sent>,
    logins: u32,
    next: u64,
}

pub struct LegacySandbox {
    hub: Arc<Mutex<Hub>>,
    server: super::server::Server,
}

type Shared = Arc<Mutex<Hub>>;

impl LegacySandbox {
    /// MessageBird's access key `key`; the On-Premises client's user `(name, password)`.
    pub async fn start(key: &str, user: (&str, &str)) -> io::Result<Self> {
        let hub = Arc::new(Mutex::new(Hub {
            key: key.into(),
            user: (user.0.into(), user.1.into()),
            ..Hub::default()
        }));
        let app = Router::new()
            .route("/mb/conversations", axum::routing::get(mb_list))
            .route("/mb/send", axum::routing::post(mb_send))
            .route("/v1/users/login", axum::routing::post(op_login))
            .route(
                "/v1/settings/application",
                axum::routing::patch(op_settings),
            )
            .route("/v1/messages", axum::routing::post(op_send))
            .with_state(hub.clone());
        let server = super::server::Server::start(app).await?;
        Ok(LegacySandbox { hub, server })
    }

    /// MessageBird's Conversations API base URL (`MESSAGEBIRD_API_URL`).
    pub fn messagebird_url(&self) -> String {
        format!("{}/mb", self.server.url())
    }

    /// The On-Premises API client's base URL.
    pub fn onprem_url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("legacy sandbox lock")
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Where the On-Premises client was told to deliver webhooks.
    pub fn onprem_webhook(&self) -> String {
        self.lock().webhook.clone()
    }

    pub fn onprem_logins(&self) -> u32 {
        self.lock().logins
    }

    /// Every token issued so far lapses (the client answers 401 until a new login).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        super::server::wait_for(n, timeout, || self.sent()).await
    }

    /// POSTs a MessageBird webhook, signed with `signing_key` when given.
    pub async fn messagebird_deliver(
        &self,
        url: &str,
        signing_key: Option<&str>,
        body: &Value,
    ) -> u16 {
        let raw = body.to_string();
        let mut r = self
            .server
            .http
            .post(url)
            .header("content-type", "application/json");
        if let Some(key) = signing_key {
            let ts = chrono::Utc::now().timestamp().to_string();
            let query: Vec<(String, String)> = reqwest::Url::parse(url)
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
            r = r
                .header(
                    "MessageBird-Signature",
                    signature(key, &ts, &query, raw.as_bytes()),
                )
                .header("MessageBird-Request-Timestamp", ts);
        }
        r.body(raw)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// POSTs the On-Premises client's webhook to where it was told.
    pub async fn onprem_deliver(&self, body: &Value) -> u16 {
        let url = self.onprem_webhook();
        self.server
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// A customer's text on a MessageBird channel (`message.created`, direction received).
pub fn messagebird_text(channel: &str, msisdn: &str, text: &str, id: &str) -> Value {
    json!({"type":"message.created","contact":{"id":"c1","msisdn":msisdn,"displayName":"Customer"},
        "conversation":{"id":"conv1","contactId":"c1","status":"active"},
        "message":{"id":id,"conversationId":"conv1","channelId":channel,"platform":"sms","direction":"received",
            "status":"received","type":"text","content":{"text":text}}})
}

/// A customer's text to the On-Premises client.
pub fn onprem_text(from: &str, text: &str, id: &str) -> Value {
    json!({"contacts":[{"profile":{"name":"Kerry Fisher"},"wa_id":from}],
        "messages":[{"from":from,"id":id,"text":{"body":text},"timestamp":"1518694235","type":"text"}]})
}

async fn mb_list(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let hub = hub.lock().expect("legacy sandbox lock");
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("AccessKey {}", hub.key))
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)"}]}))).into_response();
    }
    Json(json!({"offset":0,"limit":1,"count":0,"totalCount":0,"items":[]})).into_response()
}

async fn mb_send(State(hub): State<Shared>, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    let mut hub = hub.lock().expect("legacy sandbox lock");
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("AccessKey {}", hub.key))
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)"}]}))).into_response();
    }
    hub.next += 1;
    let id = format!("mbmsg{:08}", hub.next);
    let to = b["to"].as_str().unwrap_or("").to_string();
    let text = b["content"]["text"].as_str().unwrap_or("").to_string();
    hub.sent.push((to, text, id.clone()));
    (
        StatusCode::ACCEPTED,
        Json(json!({"id":id,"status":"accepted","fallback":null})),
    )
        .into_response()
}

async fn op_login(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let mut hub = hub.lock().expect("legacy sandbox lock");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", hub.user.0, hub.user.1))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"errors":[{"code":1005,"title":"Access denied","details":"Invalid credentials."}]}))).into_response();
    }
    hub.logins += 1;
    let token = format!("eyJsandbox.token.{}", hub.logins);
    hub.tokens.push(token.clone());
    Json(json!({"users":[{"token":token,"expires_after":"2030-01-01 00:00:00+00:00"}]}))
        .into_response()
}

fn bearer_ok(hub: &Hub, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| hub.tokens.iter().any(|k| k == t))
}

fn op_unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"errors":[{"code":1005,"title":"Access denied","details":"Invalid token."}]})),
    )
        .into_response()
}

async fn op_settings(
    State(hub): State<Shared>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    let mut hub = hub.lock().expect("legacy sandbox lock");
    if !bearer_ok(&hub, &headers) {
        return op_unauthorized();
    }
    hub.webhook = b["webhooks"]["url"].as_str().unwrap_or("").to_string();
    Json(json!({})).into_response()
}

async fn op_send(State(hub): State<Shared>, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    let mut hub = hub.lock().expect("legacy sandbox lock");
    if !bearer_ok(&hub, &headers) {
        return op_unauthorized();
    }
    hub.next += 1;
    let id = format!("gBEGkYiEB1VXAglK1ZEqA1Y{:06}", hub.next);
    let to = b["to"].as_str().unwrap_or("").to_string();
    let text = b["text"]["body"].as_str().unwrap_or("").to_string();
    hub.sent.push((to, text, id.clone()));
    Json(json!({"messages":[{"id":id}],"meta":{"api_status":"deprecated","version":"v2.51.0"}}))
        .into_response()
}
