//! A local stand-in for Intercom's REST API (`GET /me`, `GET /admins/{id}`, `POST
//! /conversations/{id}/reply`, Bearer tokens, `error.list` errors, 429 with
//! `X-RateLimit-Reset`, 5xx on demand) and for its webhooks: notifications signed with
//! `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body under the client secret>`.

use crate::connectors::intercom::signature;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub conversation: String,
    pub admin_id: String,
    pub body: String,
}

#[derive(Default)]
struct Hub {
    token: String,
    workspace: String,
    admins: HashMap<String, String>,
    replies: Vec<Reply>,
    /// The next replies answer with this status (429 or 5xx), this many times.
    fail: Option<(u16, u32)>,
    next: u64,
}

pub struct IntercomSandbox {
    hub: Arc<Mutex<Hub>>,
    server: super::server::Server,
}

type Shared = Arc<Mutex<Hub>>;

impl IntercomSandbox {
    /// A workspace whose token is `token`, with one admin.
    pub async fn start(token: &str, workspace: &str, admin: (&str, &str)) -> io::Result<Self> {
        let hub = Arc::new(Mutex::new(Hub {
            token: token.into(),
            workspace: workspace.into(),
            admins: HashMap::from([(admin.0.to_string(), admin.1.to_string())]),
            ..Hub::default()
        }));
        let app = Router::new()
            .route("/me", axum::routing::get(me))
            .route("/admins/{id}", axum::routing::get(admin_get))
            .route("/conversations/{id}/reply", axum::routing::post(reply))
            .with_state(hub.clone());
        let server = super::server::Server::start(app).await?;
        Ok(IntercomSandbox { hub, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("intercom sandbox lock")
    }

    /// The next `times` replies answer `status` (429 or a 5xx).
    pub fn fail_replies(&self, status: u16, times: u32) {
        self.lock().fail = Some((status, times));
    }

    pub fn replies(&self) -> Vec<Reply> {
        self.lock().replies.clone()
    }

    pub async fn wait_replies(&self, n: usize, timeout: Duration) -> Vec<Reply> {
        super::server::wait_for(n, timeout, || self.replies()).await
    }

    /// POSTs a notification signed with `client_secret` (or with `signature` as given).
    pub async fn deliver(&self, url: &str, client_secret: &str, body: &Value) -> u16 {
        let raw = body.to_string();
        let sig = signature(client_secret, raw.as_bytes());
        self.post(url, Some(&sig), raw).await
    }

    pub async fn post(&self, url: &str, signature: Option<&str>, raw: String) -> u16 {
        let mut r = self
            .server
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(raw);
        if let Some(s) = signature {
            r = r.header("X-Hub-Signature", s);
        }
        r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

fn envelope(topic: &str, item: Value, n: &str) -> Value {
    json!({"type":"notification_event","app_id":"sandboxapp","data":{"type":"notification_event_data","item":item},
        "links":{},"id":format!("notif_{n}"),"topic":topic,"delivery_status":"pending","delivery_attempts":1,
        "delivered_at":0,"first_sent_at":1571080403,"created_at":1571080403,"self":null})
}

/// A customer starts a conversation.
pub fn user_created(conversation: &str, part_id: &str, name: &str, html: &str) -> Value {
    envelope(
        "conversation.user.created",
        json!({"type":"conversation","id":conversation,"source":{"type":"conversation","id":part_id,
            "body":html,"author":{"type":"user","id":"u1","name":name,"email":"ann@example.org"}},
            "conversation_parts":{"type":"conversation_part.list","conversation_parts":[]}}),
        part_id,
    )
}

/// A customer writes again in a conversation.
pub fn user_replied(conversation: &str, part_id: &str, html: &str) -> Value {
    envelope(
        "conversation.user.replied",
        json!({"type":"conversation","id":conversation,"conversation_parts":{"type":"conversation_part.list",
            "conversation_parts":[{"type":"conversation_part","id":part_id,"part_type":"comment","body":html,
            "author":{"type":"user","id":"u1","name":"Ann"}}]}}),
        part_id,
    )
}

/// An admin (or flametree itself) replied.
pub fn admin_replied(conversation: &str, part_id: &str) -> Value {
    envelope(
        "conversation.admin.replied",
        json!({"type":"conversation","id":conversation,"conversation_parts":{"type":"conversation_part.list",
            "conversation_parts":[{"type":"conversation_part","id":part_id,"part_type":"comment","body":"<p>ok</p>",
            "author":{"type":"admin","id":"814860","name":"Bot"}}]}}),
        part_id,
    )
}

fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"type":"error.list","request_id":"sandbox","errors":[{"code":code,"message":message}]})),
    )
        .into_response()
}

fn authorized(hub: &Hub, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(hub.token.as_str())
}

async fn me(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let hub = hub.lock().expect("intercom sandbox lock");
    if !authorized(&hub, &headers) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        );
    }
    let (id, name) = hub
        .admins
        .iter()
        .next()
        .map(|(a, b)| (a.clone(), b.clone()))
        .unwrap_or_default();
    Json(json!({"type":"admin","id":id,"name":name,"email":"bot@example.org","app":{"type":"app","id_code":"sandboxapp","name":hub.workspace}}))
        .into_response()
}

async fn admin_get(
    State(hub): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("intercom sandbox lock");
    if !authorized(&hub, &headers) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        );
    }
    match hub.admins.get(&id) {
        Some(name) => Json(json!({"type":"admin","id":id,"name":name})).into_response(),
        None => errors(StatusCode::NOT_FOUND, "not_found", "Admin Not Found"),
    }
}

async fn reply(
    State(hub): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut hub = hub.lock().expect("intercom sandbox lock");
    if !authorized(&hub, &headers) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        );
    }
    if let Some((status, left)) = hub.fail {
        hub.fail = (left > 1).then_some((status, left - 1));
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = errors(code, "rate_limit_exceeded", "Exceeded rate limit");
        if status == 429 {
            let reset = chrono::Utc::now().timestamp() + 1;
            r.headers_mut().insert(
                "X-RateLimit-Reset",
                reset.to_string().parse().expect("digits"),
            );
        }
        return r;
    }
    let admin = body["admin_id"].as_str().unwrap_or("").to_string();
    if !hub.admins.contains_key(&admin) {
        return errors(StatusCode::NOT_FOUND, "not_found", "Admin Not Found");
    }
    hub.next += 1;
    let part = format!("9{:08}", hub.next);
    hub.replies.push(Reply {
        conversation: id.clone(),
        admin_id: admin.clone(),
        body: body["body"].as_str().unwrap_or("").to_string(),
    });
    Json(
        json!({"type":"conversation","id":id,"conversation_parts":{"type":"conversation_part.list",
        "conversation_parts":[{"type":"conversation_part","id":part,"part_type":"comment",
        "body":body["body"],"author":{"type":"admin","id":admin}}]}}),
    )
    .into_response()
}
