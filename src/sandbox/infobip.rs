//! A local stand-in for Infobip's SMS API: `GET /account/1/balance`, `POST
//! /sms/3/messages` (v3), `POST /sms/2/text/advanced` (v2), `GET /sms/1/inbox/reports`
//! (each incoming message handed out once), `Authorization: App <key>`, Infobip's error
//! shapes, 429/5xx on demand; and its forward of incoming SMS (`MO_JSON_2`) to a URL.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub from: String,
    pub to: String,
    pub text: String,
    pub id: String,
    /// "v3" or "v2": which send API was used.
    pub api: &'static str,
}

#[derive(Default)]
struct Hub {
    key: String,
    inbox: Vec<Value>,
    sent: Vec<Sent>,
    fail: Option<(u16, u32)>,
    pulls: u32,
    next: u64,
}

pub struct InfobipSandbox {
    hub: Arc<Mutex<Hub>>,
    server: super::server::Server,
}

type Shared = Arc<Mutex<Hub>>;

impl InfobipSandbox {
    pub async fn start(key: &str) -> io::Result<Self> {
        let hub = Arc::new(Mutex::new(Hub {
            key: key.into(),
            ..Hub::default()
        }));
        let app = Router::new()
            .route("/account/1/balance", axum::routing::get(balance))
            .route("/sms/3/messages", axum::routing::post(send_v3))
            .route("/sms/2/text/advanced", axum::routing::post(send_v2))
            .route("/sms/1/inbox/reports", axum::routing::get(inbox))
            .with_state(hub.clone());
        let server = super::server::Server::start(app).await?;
        Ok(InfobipSandbox { hub, server })
    }

    /// The account's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("infobip sandbox lock")
    }

    /// A customer's SMS waiting in the inbox for a pull.
    pub fn queue_mo(&self, from: &str, to: &str, text: &str) -> String {
        let mut h = self.lock();
        h.next += 1;
        let id = format!("mo-{:010}", h.next);
        let m = mo(&id, from, to, text);
        h.inbox.push(m);
        id
    }

    pub fn fail_sends(&self, status: u16, times: u32) {
        self.lock().fail = Some((status, times));
    }

    pub fn pulls(&self) -> u32 {
        self.lock().pulls
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        super::server::wait_for(n, timeout, || self.sent()).await
    }

    /// Forwards `body` to a URL as Infobip does (with Basic auth when given).
    pub async fn forward(&self, url: &str, body: &Value, basic: Option<(&str, &str)>) -> u16 {
        let mut r = self.server.http.post(url).json(body);
        if let Some((u, p)) = basic {
            r = r.basic_auth(u, Some(p));
        }
        r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

fn mo(id: &str, from: &str, to: &str, text: &str) -> Value {
    json!({"messageId":id,"from":from,"to":to,"text":text,"cleanText":text,"keyword":"",
        "receivedAt":"2026-01-01T10:00:00.000+0000","smsCount":1,
        "price":{"pricePerMessage":0,"currency":"EUR"},"callbackData":""})
}

/// An MO forward carrying one message.
pub fn mo_forward(id: &str, from: &str, to: &str, text: &str) -> Value {
    json!({"results":[mo(id, from, to, text)],"messageCount":1,"pendingMessageCount":0})
}

/// A delivery report for a message sent earlier.
pub fn delivery_report(id: &str, to: &str, group: &str) -> Value {
    let (gid, name) = match group {
        "DELIVERED" => (3, "DELIVERED_TO_HANDSET"),
        "UNDELIVERABLE" => (2, "UNDELIVERABLE_NOT_DELIVERED"),
        _ => (1, "PENDING_ENROUTE"),
    };
    json!({"results":[{"bulkId":"b1","messageId":id,"to":to,"sentAt":"2026-01-01T10:00:00.000+0000",
        "doneAt":"2026-01-01T10:00:01.000+0000","smsCount":1,
        "status":{"groupId":gid,"groupName":group,"id":5,"name":name,"description":"Message delivery status"},
        "error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","description":"No Error","permanent":false}}]})
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}})),
    )
        .into_response()
}

fn authorized(hub: &Hub, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("App {}", hub.key).as_str())
}

async fn balance(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let hub = hub.lock().expect("infobip sandbox lock");
    if !authorized(&hub, &headers) {
        return unauthorized();
    }
    Json(json!({"balance": 47.79, "currency": "EUR"})).into_response()
}

fn accept(hub: &mut Hub, from: String, to: String, text: String, api: &'static str) -> Response {
    if let Some((status, left)) = hub.fail {
        hub.fail = (left > 1).then_some((status, left - 1));
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (s, Json(json!({"errorCode":"E429","description":"Too many requests","action":"Retry later"}))).into_response();
    }
    hub.next += 1;
    let id = format!("mt-{:010}", hub.next);
    hub.sent.push(Sent {
        from,
        to: to.clone(),
        text,
        id: id.clone(),
        api,
    });
    Json(json!({"bulkId":"sandbox-bulk","messages":[{"messageId":id,"status":{"groupId":1,"groupName":"PENDING",
        "id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"destination":to}]}))
    .into_response()
}

async fn send_v3(State(hub): State<Shared>, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    let mut hub = hub.lock().expect("infobip sandbox lock");
    if !authorized(&hub, &headers) {
        return unauthorized();
    }
    let m = &b["messages"][0];
    accept(
        &mut hub,
        m["sender"].as_str().unwrap_or("").into(),
        m["destinations"][0]["to"].as_str().unwrap_or("").into(),
        m["content"]["text"].as_str().unwrap_or("").into(),
        "v3",
    )
}

async fn send_v2(State(hub): State<Shared>, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    let mut hub = hub.lock().expect("infobip sandbox lock");
    if !authorized(&hub, &headers) {
        return unauthorized();
    }
    let m = &b["messages"][0];
    accept(
        &mut hub,
        m["from"].as_str().unwrap_or("").into(),
        m["destinations"][0]["to"].as_str().unwrap_or("").into(),
        m["text"].as_str().unwrap_or("").into(),
        "v2",
    )
}

async fn inbox(State(hub): State<Shared>, headers: HeaderMap) -> Response {
    let mut hub = hub.lock().expect("infobip sandbox lock");
    if !authorized(&hub, &headers) {
        return unauthorized();
    }
    hub.pulls += 1;
    let results: Vec<Value> = std::mem::take(&mut hub.inbox);
    let n = results.len();
    Json(json!({"results": results, "messageCount": n, "pendingMessageCount": 0})).into_response()
}
