//! A local stand-in for Meta's Graph API and for Meta's side of webhooks, for tests and
//! offline demos.
//!
//! Graph calls (`/{version}/…`, token as `Authorization: Bearer` or `access_token`):
//! `GET /{phone-number-id}` (WhatsApp numbers), `GET /{page-id}`, `GET /{ig-account-id}`,
//! `POST /{phone-number-id}/messages` (a text, or `"status":"read"`), `POST /me/messages`
//! (Messenger and Instagram, "me" being the page or account the token belongs to),
//! `GET`/`POST /{waba-id}/subscribed_apps`. Errors use Meta's envelope and codes: 190 (HTTP
//! 401) for an unknown token, 100 for an id the token cannot reach, 100 for a wrong
//! `appsecret_proof`, and a throttling code on demand ([`MetaSandbox::throttle`]).
//!
//! Webhooks: [`MetaSandbox::deliver`] POSTs a payload to a webhook URL signed as Meta signs
//! it (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body under the app
//! secret>`), and [`MetaSandbox::handshake`] plays the verification GET. Payload builders
//! follow the captured samples in `shared/protocols/connectors.md`.

use crate::connectors::meta::hex_hmac;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message the sandbox accepted for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The phone number id, page id or Instagram account id it went out from.
    pub from: String,
    pub to: String,
    pub text: String,
    pub id: String,
}

#[derive(Default)]
struct Hub {
    /// token → the objects it may use.
    tokens: HashMap<String, HashSet<String>>,
    /// token → the page or account "me" means.
    me: HashMap<String, String>,
    /// token → the app secret its appsecret_proof is checked against.
    secrets: HashMap<String, String>,
    objects: HashMap<String, Value>,
    subscribed: HashMap<String, bool>,
    sent: Vec<Sent>,
    read: Vec<String>,
    /// The next sends answer with this throttling code, this many times.
    throttle: Option<(i64, u32)>,
    next: u64,
    /// The app's `app_id|client_token` and `app_id|app_secret` (device login, debug_token).
    app: Option<(String, String, String)>,
    /// Device logins: device code → (user code, the user token once approved).
    devices: HashMap<String, (String, Option<String>)>,
    /// Seconds a device should wait between polls.
    interval: u64,
    /// User token → its WhatsApp Business Accounts (debug_token's granular scopes).
    user_wabas: HashMap<String, Vec<String>>,
    /// User token → the pages it manages: (page id, page token, linked Instagram account).
    user_pages: HashMap<String, Vec<(String, String, Option<String>)>>,
    /// WABA → its phone number ids.
    waba_numbers: HashMap<String, Vec<String>>,
    /// Short-lived user token → the long-lived one it is exchanged for.
    long_lived: HashMap<String, String>,
}

pub struct MetaSandbox {
    hub: Arc<Mutex<Hub>>,
    server: super::server::Server,
}

impl MetaSandbox {
    pub async fn start() -> io::Result<MetaSandbox> {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let app = Router::new()
            .route("/{version}/device/login", axum::routing::post(device_login))
            .route(
                "/{version}/device/login_status",
                axum::routing::post(device_status),
            )
            .route("/{version}/me/accounts", axum::routing::get(me_accounts))
            .route("/{version}/debug_token", axum::routing::get(debug_token))
            .route(
                "/{version}/oauth/access_token",
                axum::routing::get(exchange),
            )
            .route(
                "/{version}/{id}/phone_numbers",
                axum::routing::get(phone_numbers),
            )
            .route("/sandbox/device/approve", axum::routing::post(approve_http))
            .route("/{version}/{id}", axum::routing::get(get_object))
            .route(
                "/{version}/{id}/messages",
                axum::routing::post(post_message),
            )
            .route(
                "/{version}/{id}/subscribed_apps",
                axum::routing::get(get_subscribed).post(post_subscribed),
            )
            .with_state(hub.clone());
        let server = super::server::Server::start(app).await?;
        Ok(MetaSandbox { hub, server })
    }

    /// The Graph API base URL (the connection's `*_GRAPH_API_URL`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("meta sandbox lock")
    }

    fn grant(&self, token: &str, app_secret: &str, ids: &[&str]) {
        let mut h = self.lock();
        let set = h.tokens.entry(token.to_string()).or_default();
        set.extend(ids.iter().map(|s| s.to_string()));
        h.secrets.insert(token.to_string(), app_secret.to_string());
    }

    /// A WhatsApp Business Account with phone numbers `(id, display number)`, reachable
    /// with `token` (apps signed with `app_secret`), not yet subscribed to the app.
    pub fn add_whatsapp(
        &self,
        token: &str,
        app_secret: &str,
        waba: &str,
        numbers: &[(&str, &str)],
    ) {
        let mut ids: Vec<&str> = numbers.iter().map(|(id, _)| *id).collect();
        ids.push(waba);
        self.grant(token, app_secret, &ids);
        let mut h = self.lock();
        h.waba_numbers.insert(
            waba.to_string(),
            numbers.iter().map(|(id, _)| id.to_string()).collect(),
        );
        for (id, phone) in numbers {
            h.objects.insert(
                id.to_string(),
                json!({"id": id, "display_phone_number": phone, "verified_name": "Sandbox Shop"}),
            );
        }
        h.objects.insert(
            waba.to_string(),
            json!({"id": waba, "name": "Sandbox WABA"}),
        );
        h.subscribed.insert(waba.to_string(), false);
    }

    /// A Facebook page whose page token is `token`.
    pub fn add_page(&self, token: &str, app_secret: &str, page_id: &str, name: &str) {
        self.grant(token, app_secret, &[page_id]);
        let mut h = self.lock();
        h.objects
            .insert(page_id.to_string(), json!({"id": page_id, "name": name}));
        h.me.insert(token.to_string(), page_id.to_string());
    }

    /// An Instagram professional account, messaged with `token`.
    pub fn add_instagram(&self, token: &str, app_secret: &str, account_id: &str, username: &str) {
        self.grant(token, app_secret, &[account_id]);
        let mut h = self.lock();
        h.objects.insert(
            account_id.to_string(),
            json!({"id": account_id, "username": username}),
        );
        h.me.insert(token.to_string(), account_id.to_string());
    }

    /// The Meta app flametree signs in with (Facebook Login for Devices).
    pub fn set_app(&self, app_id: &str, app_secret: &str, client_token: &str, interval_secs: u64) {
        let mut h = self.lock();
        h.app = Some((app_id.into(), app_secret.into(), client_token.into()));
        h.interval = interval_secs;
    }

    /// A Meta user: `short` is the token device login hands out, `long` the long-lived one
    /// it is exchanged for; both reach the given pages (with their page tokens) and WABAs.
    pub fn add_user(&self, short: &str, long: &str, pages: &[(&str, &str)], wabas: &[&str]) {
        let mut h = self.lock();
        let mut page_list = Vec::new();
        for (page, page_token) in pages {
            page_list.push((page.to_string(), page_token.to_string(), None));
        }
        for t in [short, long] {
            let mut grants: HashSet<String> = wabas.iter().map(|w| w.to_string()).collect();
            for w in wabas {
                grants.extend(h.waba_numbers.get(*w).cloned().unwrap_or_default());
            }
            h.tokens.insert(t.to_string(), grants);
            h.user_wabas
                .insert(t.to_string(), wabas.iter().map(|w| w.to_string()).collect());
            h.user_pages.insert(t.to_string(), page_list.clone());
        }
        h.long_lived.insert(short.to_string(), long.to_string());
    }

    /// Links an Instagram account to a page, as Meta shows it in `/me/accounts`.
    pub fn link_instagram(&self, page_id: &str, account_id: &str) {
        let mut h = self.lock();
        for pages in h.user_pages.values_mut() {
            for p in pages.iter_mut().filter(|p| p.0 == page_id) {
                p.2 = Some(account_id.to_string());
            }
        }
    }

    /// The operator approves the device code `user_code` on facebook.com/device.
    pub fn approve(&self, user_code: &str, user_token: &str) -> bool {
        let mut h = self.lock();
        match h.devices.values_mut().find(|(u, _)| u == user_code) {
            Some(d) => {
                d.1 = Some(user_token.to_string());
                true
            }
            None => false,
        }
    }

    /// The user codes handed out so far (what the console or CLI shows).
    pub fn user_codes(&self) -> Vec<String> {
        self.lock()
            .devices
            .values()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// The next `times` sends answer with Meta's throttling error `code` (e.g. 130429).
    pub fn throttle(&self, code: i64, times: u32) {
        self.lock().throttle = Some((code, times));
    }

    pub fn subscribed(&self, waba: &str) -> bool {
        self.lock().subscribed.get(waba).copied().unwrap_or(false)
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Message ids marked read through the API.
    pub fn read(&self) -> Vec<String> {
        self.lock().read.clone()
    }

    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        super::server::wait_for(n, timeout, || self.sent()).await
    }

    /// POSTs `body` to a webhook URL, signed with `app_secret` as Meta signs it; returns
    /// the status and body of the answer.
    pub async fn deliver(&self, url: &str, app_secret: &str, body: &Value) -> (u16, String) {
        let raw = body.to_string();
        let sig = format!("sha256={}", hex_hmac(app_secret.as_bytes(), raw.as_bytes()));
        self.post_raw(url, Some(&sig), raw).await
    }

    /// POSTs a body with the given signature header (or none), for refusal tests.
    pub async fn post_raw(&self, url: &str, signature: Option<&str>, raw: String) -> (u16, String) {
        let mut req = self
            .server
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(raw);
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        match req.send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Meta's verification GET; returns the status and body of the answer.
    pub async fn handshake(&self, url: &str, verify_token: &str, challenge: &str) -> (u16, String) {
        let r = self
            .server
            .http
            .get(url)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", verify_token),
                ("hub.challenge", challenge),
            ])
            .send()
            .await;
        match r {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }
}

/// A customer's WhatsApp text to `number_id`, as Meta delivers it; returns it and its wamid.
pub fn whatsapp_text(
    number_id: &str,
    from: &str,
    name: &str,
    text: &str,
    n: u64,
) -> (Value, String) {
    let wamid = format!("wamid.SANDBOX{n:08}{}", from);
    let v = json!({"object":"whatsapp_business_account","entry":[{"id":"122951744235903","changes":[{"value":{
        "messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550984277","phone_number_id":number_id},
        "contacts":[{"profile":{"name":name},"wa_id":from}],
        "messages":[{"from":from,"id":wamid,"timestamp":"1694427240","text":{"body":text},"type":"text"}]
    },"field":"messages"}]}]});
    (v, wamid)
}

/// A status report for a message we sent; `error` makes it `failed` with that code and title.
pub fn whatsapp_status(
    number_id: &str,
    wamid: &str,
    status: &str,
    error: Option<(i64, &str)>,
) -> Value {
    let mut s =
        json!({"id":wamid,"status":status,"timestamp":"1694492482","recipient_id":"60173526233"});
    if let Some((code, title)) = error {
        s["errors"] = json!([{"code":code,"title":title}]);
    }
    json!({"object":"whatsapp_business_account","entry":[{"id":"122951744235903","changes":[{"value":{
        "messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550984277","phone_number_id":number_id},
        "statuses":[s]
    },"field":"messages"}]}]})
}

/// A Messenger (`object = page`) or Instagram (`object = instagram`) text; `echo` makes it
/// the copy of one the page sent.
pub fn messaging_text(
    object: &str,
    owner: &str,
    sender: &str,
    text: &str,
    mid: &str,
    echo: bool,
) -> Value {
    let mut message = json!({"mid": mid, "text": text});
    if echo {
        message["is_echo"] = json!(true);
    }
    json!({"object":object,"entry":[{"id":owner,"time":1457764198246_i64,"messaging":[{
        "sender":{"id":sender},"recipient":{"id":owner},"timestamp":1457764197627_i64,"message":message
    }]}]})
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        Json(json!({"error":{"message":message,"type":"OAuthException","code":code,"fbtrace_id":"AsandboxTrace01"}})),
    )
        .into_response()
}

/// Why a call is refused: its status, Meta's code and message.
struct Refusal(StatusCode, i64, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        graph_error(self.0, self.1, self.2)
    }
}

/// The token (header or query), checked, with its appsecret_proof when given.
fn token(
    hub: &Hub,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<String, Refusal> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| query.get("access_token").cloned())
        .unwrap_or_default();
    if !hub.tokens.contains_key(&token) {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        ));
    }
    if let (Some(proof), Some(secret)) = (query.get("appsecret_proof"), hub.secrets.get(&token))
        && *proof != hex_hmac(secret.as_bytes(), token.as_bytes())
    {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid appsecret_proof provided in the API argument",
        ));
    }
    Ok(token)
}

fn unreachable_object(id: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due \
             to missing permissions, or does not support this operation"
        ),
    )
}

type Shared = Arc<Mutex<Hub>>;

async fn get_object(
    State(hub): State<Shared>,
    Path((_v, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    let token = match token(&hub, &headers, &q) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let id = if id == "me" {
        hub.me.get(&token).cloned().unwrap_or_default()
    } else {
        id
    };
    match hub.objects.get(&id) {
        Some(o) if hub.tokens[&token].contains(&id) => Json(o.clone()).into_response(),
        _ => unreachable_object(&id),
    }
}

async fn post_message(
    State(hub): State<Shared>,
    Path((_v, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut hub = hub.lock().expect("meta sandbox lock");
    let token = match token(&hub, &headers, &q) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let from = if id == "me" {
        hub.me.get(&token).cloned().unwrap_or_default()
    } else {
        id
    };
    if !hub.tokens[&token].contains(&from) || !hub.objects.contains_key(&from) {
        return unreachable_object(&from);
    }
    if body["status"] == "read" {
        let m = body["message_id"].as_str().unwrap_or("").to_string();
        hub.read.push(m);
        return Json(json!({"success": true})).into_response();
    }
    if let Some((code, left)) = hub.throttle {
        hub.throttle = (left > 1).then_some((code, left - 1));
        return graph_error(StatusCode::BAD_REQUEST, code, "(#130429) Rate limit hit");
    }
    hub.next += 1;
    let n = hub.next;
    if body["messaging_product"] == "whatsapp" {
        let to = body["to"].as_str().unwrap_or("").to_string();
        let text = body["text"]["body"].as_str().unwrap_or("").to_string();
        let id = format!("wamid.OUT{n:08}");
        hub.sent.push(Sent {
            from,
            to: to.clone(),
            text,
            id: id.clone(),
        });
        Json(json!({"messaging_product":"whatsapp","contacts":[{"input":to,"wa_id":to}],"messages":[{"id":id}]}))
            .into_response()
    } else {
        let to = body["recipient"]["id"].as_str().unwrap_or("").to_string();
        let text = body["message"]["text"].as_str().unwrap_or("").to_string();
        let id = format!("m_OUT{n:08}");
        hub.sent.push(Sent {
            from,
            to: to.clone(),
            text,
            id: id.clone(),
        });
        Json(json!({"recipient_id": to, "message_id": id})).into_response()
    }
}

async fn get_subscribed(
    State(hub): State<Shared>,
    Path((_v, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    let token = match token(&hub, &headers, &q) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match hub.subscribed.get(&id) {
        Some(on) if hub.tokens[&token].contains(&id) => {
            let data = if *on {
                json!([{"whatsapp_business_api_data":{"id":"1","name":"flametree"}}])
            } else {
                json!([])
            };
            Json(json!({"data": data})).into_response()
        }
        _ => unreachable_object(&id),
    }
}

async fn post_subscribed(
    State(hub): State<Shared>,
    Path((_v, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut hub = hub.lock().expect("meta sandbox lock");
    let token = match token(&hub, &headers, &q) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !hub.subscribed.contains_key(&id) || !hub.tokens[&token].contains(&id) {
        return unreachable_object(&id);
    }
    hub.subscribed.insert(id, true);
    Json(json!({"success": true})).into_response()
}

fn param(q: &HashMap<String, String>, form: &HashMap<String, String>, k: &str) -> String {
    form.get(k).or(q.get(k)).cloned().unwrap_or_default()
}

fn app_token_ok(hub: &Hub, given: &str, with_secret: bool) -> bool {
    hub.app.as_ref().is_some_and(|(id, secret, client)| {
        let expected = if with_secret { secret } else { client };
        given == format!("{id}|{expected}")
    })
}

async fn device_login(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let mut hub = hub.lock().expect("meta sandbox lock");
    if !app_token_ok(&hub, &param(&q, &form, "access_token"), false) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            "Invalid OAuth access token - app_id|client_token expected",
        );
    }
    hub.next += 1;
    let n = hub.next;
    let code = format!("sandbox-device-code-{n:06}-0123456789abcdef");
    let user_code = format!("SB{n:04}");
    hub.devices.insert(code.clone(), (user_code.clone(), None));
    Json(json!({
        "code": code,
        "user_code": user_code,
        "verification_uri": "https://www.facebook.com/device",
        "expires_in": 420,
        "interval": hub.interval.max(1),
    }))
    .into_response()
}

fn device_error(subcode: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error":{"message":message,"type":"OAuthException","code":31,"error_subcode":subcode,"fbtrace_id":"AsandboxTrace02"}})),
    )
        .into_response()
}

async fn device_status(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    if !app_token_ok(&hub, &param(&q, &form, "access_token"), false) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            "Invalid OAuth access token - app_id|client_token expected",
        );
    }
    match hub.devices.get(&param(&q, &form, "code")) {
        None => device_error(1349152, "The device code has expired"),
        Some((_, None)) => device_error(1349174, "User has not yet authorized your application"),
        Some((_, Some(token))) => {
            Json(json!({"access_token": token, "expires_in": 5183944})).into_response()
        }
    }
}

async fn approve_http(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut hub = hub.lock().expect("meta sandbox lock");
    let user_code = q.get("user_code").cloned().unwrap_or_default();
    let token = q.get("user_token").cloned().unwrap_or_default();
    match hub.devices.values_mut().find(|(u, _)| *u == user_code) {
        Some(d) => {
            d.1 = Some(token);
            Json(json!({"success": true})).into_response()
        }
        None => graph_error(StatusCode::NOT_FOUND, 100, "unknown user code"),
    }
}

fn bearer_or_query(headers: &HeaderMap, q: &HashMap<String, String>) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| q.get("access_token").cloned())
        .unwrap_or_default()
}

async fn me_accounts(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    let token = bearer_or_query(&headers, &q);
    let Some(pages) = hub.user_pages.get(&token) else {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        );
    };
    let data: Vec<Value> = pages
        .iter()
        .map(|(id, page_token, ig)| {
            let name = hub.objects.get(id).and_then(|o| o["name"].as_str()).unwrap_or("");
            let mut p = json!({"id": id, "name": name, "access_token": page_token, "tasks": ["MESSAGING", "MODERATE"]});
            if let Some(ig) = ig {
                p["instagram_business_account"] = json!({"id": ig});
            }
            p
        })
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn debug_token(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    if !app_token_ok(
        &hub,
        q.get("access_token").map(String::as_str).unwrap_or(""),
        true,
    ) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            "Invalid OAuth access token - app_id|app_secret expected",
        );
    }
    let input = q.get("input_token").cloned().unwrap_or_default();
    let Some(wabas) = hub.user_wabas.get(&input) else {
        return Json(json!({"data": {"is_valid": false}})).into_response();
    };
    let app_id = hub.app.as_ref().map(|a| a.0.clone()).unwrap_or_default();
    Json(json!({"data": {
        "app_id": app_id, "type": "USER", "is_valid": true,
        "scopes": ["whatsapp_business_management", "whatsapp_business_messaging", "pages_show_list", "pages_messaging"],
        "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": wabas},
            {"scope": "whatsapp_business_messaging", "target_ids": wabas}
        ]
    }}))
    .into_response()
}

async fn exchange(State(hub): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    let ok = hub.app.as_ref().is_some_and(|(id, secret, _)| {
        q.get("client_id") == Some(id) && q.get("client_secret") == Some(secret)
    });
    if !ok || q.get("grant_type").map(String::as_str) != Some("fb_exchange_token") {
        return graph_error(
            StatusCode::BAD_REQUEST,
            101,
            "Error validating application. Invalid application ID or secret",
        );
    }
    match hub
        .long_lived
        .get(q.get("fb_exchange_token").map(String::as_str).unwrap_or(""))
    {
        Some(long) => {
            Json(json!({"access_token": long, "token_type": "bearer", "expires_in": 5183944}))
                .into_response()
        }
        None => graph_error(
            StatusCode::BAD_REQUEST,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        ),
    }
}

async fn phone_numbers(
    State(hub): State<Shared>,
    Path((_v, waba)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let hub = hub.lock().expect("meta sandbox lock");
    let token = match token(&hub, &headers, &q) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match hub.waba_numbers.get(&waba) {
        Some(ids) if hub.tokens[&token].contains(&waba) => {
            let data: Vec<Value> = ids
                .iter()
                .filter_map(|i| hub.objects.get(i).cloned())
                .collect();
            Json(json!({"data": data})).into_response()
        }
        _ => unreachable_object(&waba),
    }
}
