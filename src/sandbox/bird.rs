//! A local stand-in for Bird's Channels API (`GET /workspaces/{ws}/channels`, `POST
//! /workspaces/{ws}/channels/{ch}/messages`, webhook subscriptions under
//! `/organizations/{org}/workspaces/{ws}/webhook-subscriptions`, `AccessKey` auth, 429/5xx
//! on demand) and for its webhooks, signed with `MessageBird-Signature` over timestamp,
//! URL and the body's SHA-256 as Bird documents.

use crate::connectors::bird::signature;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub channel: String,
    pub to: String,
    pub text: String,
    pub id: String,
}

#[derive(Default)]
struct Hub {
    key: String,
    workspace: String,
    channels: Vec<(String, String)>,
    subscriptions: Vec<Value>,
    sent: Vec<Sent>,
    fail: Option<(u16, u32)>,
    next: u64,
}

pub struct BirdSandbox {
    hub: Arc<Mutex<Hub>>,
    server: super::server::Server,
}

type Shared = Arc<Mutex<Hub>>;

impl BirdSandbox {
    /// A workspace reachable with access key `key`, holding channels `(id, name)`.
    pub async fn start(key: &str, workspace: &str, channels: &[(&str, &str)]) -> io::Result<Self> {
        let hub = Arc::new(Mutex::new(Hub {
            key: key.into(),
            workspace: workspace.into(),
            channels: channels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Hub::default()
        }));
        let app = Router::new()
            .route(
                "/workspaces/{ws}/channels",
                axum::routing::get(list_channels),
            )
            .route(
                "/workspaces/{ws}/channels/{ch}/messages",
                axum::routing::post(send),
            )
            .route(
                "/organizations/{org}/workspaces/{ws}/webhook-subscriptions",
                axum::routing::get(list_subs).post(add_sub),
            )
            .route(
                "/organizations/{org}/workspaces/{ws}/webhook-subscriptions/{id}",
                axum::routing::delete(delete_sub),
            )
            .with_state(hub.clone());
        let server = super::server::Server::start(app).await?;
        Ok(BirdSandbox { hub, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("bird sandbox lock")
    }

    pub fn fail_sends(&self, status: u16, times: u32) {
        self.lock().fail = Some((status, times));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub fn subscriptions(&self) -> Vec<Value> {
        self.lock().subscriptions.clone()
    }

    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        super::server::wait_for(n, timeout, || self.sent()).await
    }

    /// POSTs an event signed now with `signing_key`, as Bird does.
    pub async fn deliver(&self, url: &str, signing_key: &str, body: &Value) -> u16 {
        let ts = chrono::Utc::now().timestamp().to_string();
        self.deliver_at(url, signing_key, body, &ts).await
    }

    /// The same, with the timestamp given (a stale one, for refusal tests).
    pub async fn deliver_at(&self, url: &str, signing_key: &str, body: &Value, ts: &str) -> u16 {
        let raw = body.to_string();
        let sig = signature(signing_key, ts, url, raw.as_bytes());
        self.server
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("MessageBird-Signature", sig)
            .header("MessageBird-Request-Timestamp", ts)
            .body(raw)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// A customer's SMS to the channel, in the documented shape.
pub fn sms_inbound(channel: &str, from: &str, text: &str, id: &str) -> Value {
    json!({"service":"channels","event":"sms.inbound","payload":{"id":id,"channelId":channel,
        "sender":{"contact":{"id":"32cf5eee-f940-422c-ab8c-5f753aad5efd","identifierKey":"phonenumber","identifierValue":from}},
        "receiver":{"connector":{"id":"86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},
        "body":{"type":"text","text":{"text":text}},"parts":[{"platformReference":"e8077d803532c0b5937c639b60216938"}],
        "status":"delivered","direction":"incoming","lastStatusAt":"2022-12-22T08:32:50.736Z",
        "createdAt":"2022-12-22T08:32:50.736Z","updatedAt":"2022-12-22T08:32:50.736Z"}})
}

/// A status event about a message the channel sent.
pub fn sms_status(channel: &str, id: &str, status: &str) -> Value {
    json!({"service":"channels","event":"sms.outbound","payload":{"id":id,"channelId":channel,
        "status":status,"direction":"outgoing","reason":if status == "failed" {"carrier rejected the message"} else {""}}})
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code":code,"message":message}))).into_response()
}

fn authorized(hub: &Hub, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("AccessKey {}", hub.key).as_str())
}

async fn list_channels(
    State(hub): State<Shared>,
    Path(ws): Path<String>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("bird sandbox lock");
    if !authorized(&hub, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access key is not valid",
        );
    }
    if ws != hub.workspace {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "No access to this workspace",
        );
    }
    let results: Vec<Value> = hub
        .channels
        .iter()
        .map(|(id, name)| json!({"id":id,"name":name,"platformId":"sms-messagebird","status":"active"}))
        .collect();
    Json(json!({"results": results})).into_response()
}

async fn send(
    State(hub): State<Shared>,
    Path((ws, ch)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut hub = hub.lock().expect("bird sandbox lock");
    if !authorized(&hub, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access key is not valid",
        );
    }
    if ws != hub.workspace || !hub.channels.iter().any(|(id, _)| *id == ch) {
        return error(StatusCode::NOT_FOUND, "NotFound", "Channel not found");
    }
    if let Some((status, left)) = hub.fail {
        hub.fail = (left > 1).then_some((status, left - 1));
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(s, "TooManyRequests", "Too many requests");
    }
    hub.next += 1;
    let id = format!("00000000-0000-4000-8000-{:012}", hub.next);
    hub.sent.push(Sent {
        channel: ch.clone(),
        to: body["receiver"]["contacts"][0]["identifierValue"]
            .as_str()
            .unwrap_or("")
            .into(),
        text: body["body"]["text"]["text"].as_str().unwrap_or("").into(),
        id: id.clone(),
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({"id":id,"channelId":ch,"status":"accepted","direction":"outgoing"})),
    )
        .into_response()
}

async fn list_subs(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let hub = hub.lock().expect("bird sandbox lock");
    if !authorized(&hub, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access key is not valid",
        );
    }
    Json(json!({"results": hub.subscriptions})).into_response()
}

async fn add_sub(
    State(hub): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut hub = hub.lock().expect("bird sandbox lock");
    if !authorized(&hub, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access key is not valid",
        );
    }
    let mut sub = body.clone();
    sub["id"] = json!(format!("sub-{}", hub.subscriptions.len() + 1));
    hub.subscriptions.push(sub.clone());
    (StatusCode::CREATED, Json(sub)).into_response()
}

async fn delete_sub(
    State(hub): State<Shared>,
    Path((_org, _ws, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut hub = hub.lock().expect("bird sandbox lock");
    if !authorized(&hub, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access key is not valid",
        );
    }
    let before = hub.subscriptions.len();
    hub.subscriptions
        .retain(|s| s["id"].as_str() != Some(id.as_str()));
    if hub.subscriptions.len() == before {
        return error(StatusCode::NOT_FOUND, "NotFound", "Subscription not found");
    }
    StatusCode::NO_CONTENT.into_response()
}
