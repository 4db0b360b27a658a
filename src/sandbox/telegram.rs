//! A local stand-in for the Telegram Bot API, for tests and offline demos.
//!
//! It speaks the real wire format (`/bot<TOKEN>/<method>`, `{"ok":…}` envelopes, the
//! real error texts) so that an unmodified client such as teloxide can be pointed at it with
//! `Bot::new(token).set_api_url(sandbox.url().parse()?)`.
//!
//! Methods: `getMe`, `getUpdates` (long polling, offset confirmation, negative offsets,
//! `allowed_updates`, and the 409 a newer poller inflicts on an older one), `sendMessage`,
//! `getWebhookInfo`, `deleteWebhook`. A webhook can only be set with
//! [`TelegramSandbox::set_webhook_url`] and nothing is ever delivered to it: it exists so that
//! a client's "delete the webhook before polling" path can be exercised. Method names are
//! case-insensitive, as in Telegram. Parameters come from the query string and a JSON or
//! url-encoded form body; multipart is refused (teloxide only uses it to upload files).
//!
//! Besides the Rust API ([`TelegramSandbox::inject_message`], [`TelegramSandbox::sent`]) a
//! person can play the user from a shell while a demo runs:
//!
//! ```text
//! curl -X POST "$URL/sandbox/bot$TOKEN/inject" -H 'content-type: application/json' \
//!      -d '{"chat_id":42,"first_name":"Ann","text":"hi"}'
//!   → {"ok":true,"update_id":100000}        ("first_name" may be omitted)
//! curl "$URL/sandbox/bot$TOKEN/sent"
//!   → [{"chat_id":42,"message_id":2,"text":"hello Ann"}]
//! ```
//!
//! Both answer 401 for a token that was not registered with [`TelegramSandbox::add_bot`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, FromRequest, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const FIRST_UPDATE_ID: i64 = 100_000;
/// Ids for bots whose token has no numeric prefix; far from realistic user ids.
const FIRST_GENERATED_BOT_ID: i64 = 7_000_000_000;
/// telegram-bot-api clamps long polls to 50 s.
const MAX_POLL_SECS: i64 = 50;
const MAX_TEXT_UTF16: usize = 4096;
/// Only known names are counted, so random method names can't grow the counters.
const METHODS: &[&str] = &[
    "getme",
    "getupdates",
    "sendmessage",
    "getwebhookinfo",
    "deletewebhook",
];
const TERMINATED: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// A message the bot sent with `sendMessage`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub message_id: i64,
}

/// Per-bot fault injection; `Faults::default()` injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added to every call before it is handled.
    pub latency: Duration,
    /// The next N calls (any method) answer 502 Bad Gateway.
    pub fail_next_5xx: u32,
    /// The next N calls (after any 5xx ones) answer 429 with `retry_after_secs`.
    pub fail_next_429: u32,
    pub retry_after_secs: u32,
    /// Extra delay for `sendMessage` after the message is delivered and before the
    /// answer comes back: a slow answer, the case where a client that gives up cannot
    /// know whether its message went out (it did).
    pub send_delay: Duration,
}

#[derive(Default)]
struct Bot {
    id: i64,
    username: String,
    next_update_id: i64,
    next_message_id: i64,
    updates: VecDeque<(i64, Value)>,
    /// Telegram keeps the last `allowed_updates` and discards updates of other kinds.
    accept_messages: bool,
    /// First names of users who wrote, so replies carry the same chat object.
    chats: HashMap<i64, String>,
    sent: Vec<SentMessage>,
    faults: Faults,
    calls: HashMap<&'static str, usize>,
    webhook_url: String,
    /// Generation of the newest getUpdates; an older poller that sees a newer one yields.
    poller: u64,
    /// Ticks on every state change that a waiter (long poll, `wait_sent`) may care about.
    changed: watch::Sender<()>,
    /// When each sent message arrived, for latency measurements.
    sent_times: Vec<std::time::Instant>,
}

impl Bot {
    fn user(&self) -> Value {
        json!({"id": self.id, "is_bot": true, "first_name": self.username, "username": self.username})
    }

    fn touch(&self) {
        self.changed.send_replace(());
    }
}

#[derive(Default)]
struct Hub {
    bots: HashMap<String, Bot>,
    generated_ids: i64,
}

struct Shared {
    hub: Mutex<Hub>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        // A panic elsewhere must not turn every later call into a second panic.
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The sandbox server. Clones share one server; it stops on [`shutdown`](Self::shutdown)
/// or when the last clone is dropped.
#[derive(Clone)]
pub struct TelegramSandbox {
    inner: Arc<Inner>,
}

impl TelegramSandbox {
    /// Binds 127.0.0.1 on a free port.
    pub async fn start() -> io::Result<TelegramSandbox> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> io::Result<TelegramSandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            hub: Mutex::default(),
            stop: stop_rx.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            // Dropping the sender also counts as a stop: that is how dropping the last clone ends the server.
            let stopped = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!("telegram sandbox server failed: {e}");
            }
        });
        let task = Mutex::new(Some(task));
        Ok(TelegramSandbox {
            inner: Arc::new(Inner {
                shared,
                addr,
                stop,
                task,
            }),
        })
    }

    /// The Bot API base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Registers `token` (idempotent) and returns the bot's user id.
    pub fn add_bot(&self, token: &str, username: &str) -> i64 {
        let mut hub = self.inner.shared.hub();
        if let Some(bot) = hub.bots.get_mut(token) {
            bot.username = username.to_owned();
            return bot.id;
        }
        let id = match token.split_once(':').map(|(n, _)| n.parse::<i64>()) {
            Some(Ok(n)) => n,
            _ => {
                hub.generated_ids += 1;
                FIRST_GENERATED_BOT_ID + hub.generated_ids
            }
        };
        let bot = Bot {
            id,
            username: username.to_owned(),
            next_update_id: FIRST_UPDATE_ID,
            next_message_id: 1,
            accept_messages: true,
            ..Bot::default()
        };
        hub.bots.insert(token.to_owned(), bot);
        id
    }

    /// Queues a private text message from user `chat_id` to the bot and returns its update_id.
    ///
    /// # Panics
    /// If `token` was not registered with [`add_bot`](Self::add_bot).
    pub fn inject_message(
        &self,
        token: &str,
        chat_id: i64,
        from_first_name: &str,
        text: &str,
    ) -> i64 {
        self.with_bot(token, |bot| inject(bot, chat_id, from_first_name, text))
    }

    /// What the bot sent, each with the moment it arrived (for benchmarks).
    pub fn sent_with_times(&self, token: &str) -> Vec<(SentMessage, std::time::Instant)> {
        let hub = self.inner.shared.hub();
        hub.bots
            .get(token)
            .map(|b| {
                b.sent
                    .iter()
                    .cloned()
                    .zip(b.sent_times.iter().copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn sent(&self, token: &str) -> Vec<SentMessage> {
        self.read(token, |bot| bot.sent.clone())
    }

    /// Waits until at least `n` messages were sent, or `timeout`; returns what was sent.
    pub async fn wait_sent(&self, token: &str, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut changed = {
                let hub = self.inner.shared.hub();
                let Some(bot) = hub.bots.get(token) else {
                    return Vec::new();
                };
                if bot.sent.len() >= n {
                    return bot.sent.clone();
                }
                bot.changed.subscribe()
            };
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return self.sent(token);
            }
        }
    }

    /// # Panics
    /// If `token` was not registered.
    pub fn set_faults(&self, token: &str, faults: Faults) {
        self.with_bot(token, |bot| bot.faults = faults);
    }

    /// Calls of `method` (case-insensitive) so far, faulted ones included.
    pub fn calls(&self, token: &str, method: &str) -> usize {
        let method = method.to_ascii_lowercase();
        self.read(token, |bot| {
            bot.calls.get(method.as_str()).copied().unwrap_or(0)
        })
    }

    /// Updates not yet confirmed by a getUpdates offset.
    pub fn pending(&self, token: &str) -> usize {
        self.read(token, |bot| bot.updates.len())
    }

    /// # Panics
    /// If `token` was not registered.
    pub fn set_webhook_url(&self, token: &str, url: &str) {
        self.with_bot(token, |bot| {
            bot.webhook_url = url.to_owned();
            bot.touch();
        });
    }

    pub fn webhook_url(&self, token: &str) -> String {
        self.read(token, |bot| bot.webhook_url.clone())
    }

    /// Stops the server; open long polls are cut short.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut task) = task {
            // Graceful shutdown waits for clients to hang up; don't let one hold us forever.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    fn read<R: Default>(&self, token: &str, f: impl FnOnce(&Bot) -> R) -> R {
        self.inner
            .shared
            .hub()
            .bots
            .get(token)
            .map(f)
            .unwrap_or_default()
    }

    fn with_bot<R>(&self, token: &str, f: impl FnOnce(&mut Bot) -> R) -> R {
        let mut hub = self.inner.shared.hub();
        let bot = hub
            .bots
            .get_mut(token)
            .expect("unknown bot token: call add_bot first");
        f(bot)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn inject(bot: &mut Bot, chat_id: i64, first_name: &str, text: &str) -> i64 {
    let update_id = bot.next_update_id;
    bot.next_update_id += 1;
    // One counter for both directions: in a private chat they share a message_id sequence.
    let message_id = bot.next_message_id;
    bot.next_message_id += 1;
    bot.chats.insert(chat_id, first_name.to_owned());
    if bot.accept_messages {
        let update = json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "from": {"id": chat_id, "is_bot": false, "first_name": first_name},
                "chat": {"id": chat_id, "type": "private", "first_name": first_name},
                "date": unix_now(),
                "text": text,
            }
        });
        bot.updates.push_back((update_id, update));
    }
    bot.touch();
    update_id
}

/// A struct rather than `json!` so the keys keep Telegram's order on the wire.
#[derive(Serialize)]
struct Failure<'a> {
    ok: bool,
    error_code: u16,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

fn failure(error_code: u16, description: &str, parameters: Option<Value>) -> Response {
    let status = StatusCode::from_u16(error_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Failure {
        ok: false,
        error_code,
        description,
        parameters,
    };
    (status, Json(body)).into_response()
}

fn fail(code: u16, description: &str) -> Response {
    failure(code, description, None)
}

fn success(result: Value) -> Response {
    #[derive(Serialize)]
    struct Success {
        ok: bool,
        result: Value,
    }
    Json(Success { ok: true, result }).into_response()
}

fn not_found() -> Response {
    fail(404, "Not Found")
}

/// `bot<digits>:<chars>`; anything else is a path Telegram doesn't know.
fn token_of(segment: &str) -> Option<&str> {
    let token = segment.strip_prefix("bot")?;
    let (id, secret) = token.split_once(':')?;
    let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    let secret_ok = !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (id_ok && secret_ok).then_some(token)
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let mut stop = shared.stop.clone();
    tokio::select! {
        response = route(&shared, req) => response,
        _ = stop.wait_for(|s| *s) => fail(502, "Bad Gateway"),
    }
}

async fn route(shared: &Shared, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [bot, method] => match token_of(bot) {
            Some(token) => bot_api(shared, token, method, req).await,
            None => not_found(),
        },
        ["sandbox", bot, action] => match token_of(bot) {
            Some(token) => sandbox_api(shared, token, action, req).await,
            None => not_found(),
        },
        _ => not_found(),
    }
}

async fn bot_api(shared: &Shared, token: &str, method: &str, req: Request) -> Response {
    let method = method.to_ascii_lowercase();
    let known = METHODS.iter().copied().find(|m| *m == method);
    let faults = {
        let mut hub = shared.hub();
        let Some(bot) = hub.bots.get_mut(token) else {
            return fail(401, "Unauthorized");
        };
        tracing::debug!(bot = bot.id, method, "telegram sandbox call");
        let Some(method) = known else {
            return not_found();
        };
        *bot.calls.entry(method).or_default() += 1;
        bot.faults.clone()
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    {
        let mut hub = shared.hub();
        let Some(bot) = hub.bots.get_mut(token) else {
            return fail(401, "Unauthorized");
        };
        if bot.faults.fail_next_5xx > 0 {
            bot.faults.fail_next_5xx -= 1;
            return fail(502, "Bad Gateway");
        }
        if bot.faults.fail_next_429 > 0 {
            bot.faults.fail_next_429 -= 1;
            let secs = bot.faults.retry_after_secs;
            let description = format!("Too Many Requests: retry after {secs}");
            return failure(429, &description, Some(json!({"retry_after": secs})));
        }
    }
    let params = match read_params(req).await {
        Ok(params) => params,
        Err(response) => return response,
    };
    match known.unwrap_or_default() {
        "getme" => get_me(shared, token),
        "getupdates" => get_updates(shared, token, &params).await,
        "sendmessage" => send_message(shared, token, &params, faults.send_delay).await,
        "getwebhookinfo" => with_bot(shared, token, |bot| {
            let count = bot.updates.len();
            success(
                json!({"url": bot.webhook_url, "has_custom_certificate": false, "pending_update_count": count}),
            )
        }),
        "deletewebhook" => with_bot(shared, token, |bot| {
            if flag(&params, "drop_pending_updates") {
                bot.updates.clear();
            }
            let was_set = !std::mem::take(&mut bot.webhook_url).is_empty();
            bot.touch();
            let description = if was_set {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            };
            Json(json!({"ok": true, "result": true, "description": description})).into_response()
        }),
        _ => not_found(),
    }
}

fn with_bot(shared: &Shared, token: &str, f: impl FnOnce(&mut Bot) -> Response) -> Response {
    match shared.hub().bots.get_mut(token) {
        Some(bot) => f(bot),
        None => fail(401, "Unauthorized"),
    }
}

fn get_me(shared: &Shared, token: &str) -> Response {
    with_bot(shared, token, |bot| {
        let mut me = bot.user();
        // teloxide's `Me` refuses a getMe answer without these.
        for (key, value) in [
            ("can_join_groups", true),
            ("can_read_all_group_messages", false),
            ("supports_inline_queries", false),
            ("can_connect_to_business", false),
            ("has_main_web_app", false),
        ] {
            me[key] = Value::Bool(value);
        }
        success(me)
    })
}

async fn get_updates(shared: &Shared, token: &str, params: &Map<String, Value>) -> Response {
    let offset = int(params, "offset").unwrap_or(0);
    let limit = int(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let secs = int(params, "timeout").unwrap_or(0).clamp(0, MAX_POLL_SECS) as u64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (me, mut changed) = {
        let mut hub = shared.hub();
        let Some(bot) = hub.bots.get_mut(token) else {
            return fail(401, "Unauthorized");
        };
        if !bot.webhook_url.is_empty() {
            return fail(409, WEBHOOK_ACTIVE);
        }
        if let Some(kinds) = allowed_updates(params) {
            bot.accept_messages = kinds.is_empty() || kinds.iter().any(|k| k == "message");
        }
        if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            let excess = bot.updates.len().saturating_sub(keep);
            bot.updates.drain(..excess);
        } else {
            bot.updates.retain(|(id, _)| *id >= offset);
        }
        bot.poller += 1;
        // Wake the previous poller (if any) before subscribing, so it sees it was superseded.
        bot.touch();
        (bot.poller, bot.changed.subscribe())
    };
    loop {
        {
            let hub = shared.hub();
            let Some(bot) = hub.bots.get(token) else {
                return fail(401, "Unauthorized");
            };
            if bot.poller != me {
                return fail(409, TERMINATED);
            }
            if !bot.webhook_url.is_empty() {
                return fail(409, WEBHOOK_ACTIVE);
            }
            if !bot.updates.is_empty() || Instant::now() >= deadline {
                let batch = bot
                    .updates
                    .iter()
                    .take(limit)
                    .map(|(_, u)| u.clone())
                    .collect();
                return success(Value::Array(batch));
            }
        }
        // A timeout just loops back to answer with the (empty) batch.
        if let Ok(Err(_)) = tokio::time::timeout_at(deadline, changed.changed()).await {
            return fail(502, "Bad Gateway");
        }
    }
}

async fn send_message(
    shared: &Shared,
    token: &str,
    params: &Map<String, Value>,
    delay: Duration,
) -> Response {
    if !params.contains_key("chat_id") {
        return fail(400, "Bad Request: chat_id is empty");
    }
    // A non-numeric chat_id is a @channel username, and this sandbox has no channels.
    let Some(chat_id) = int(params, "chat_id") else {
        return fail(400, "Bad Request: chat not found");
    };
    let text = string(params, "text").unwrap_or_default();
    if text.trim().is_empty() {
        return fail(400, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > MAX_TEXT_UTF16 {
        return fail(400, "Bad Request: message is too long");
    }
    let answer = with_bot(shared, token, |bot| {
        let message_id = bot.next_message_id;
        bot.next_message_id += 1;
        bot.sent_times.push(std::time::Instant::now());
        bot.sent.push(SentMessage {
            chat_id,
            text: text.clone(),
            message_id,
        });
        bot.touch();
        let mut chat = json!({"id": chat_id, "type": "private"});
        if let Some(name) = bot.chats.get(&chat_id) {
            chat["first_name"] = Value::String(name.clone());
        }
        success(json!({
            "message_id": message_id,
            "from": bot.user(),
            "chat": chat,
            "date": unix_now(),
            "text": text,
        }))
    });
    // Delivered already: a client that gives up now has still sent its message.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer
}

async fn sandbox_api(shared: &Shared, token: &str, action: &str, req: Request) -> Response {
    if !shared.hub().bots.contains_key(token) {
        return fail(401, "Unauthorized");
    }
    match action {
        "sent" => with_bot(shared, token, |bot| {
            let list: Vec<Value> = bot
                .sent
                .iter()
                .map(|m| json!({"chat_id": m.chat_id, "text": m.text, "message_id": m.message_id}))
                .collect();
            Json(list).into_response()
        }),
        "inject" => {
            let params = match read_params(req).await {
                Ok(params) => params,
                Err(response) => return response,
            };
            let (Some(chat_id), Some(text)) = (int(&params, "chat_id"), string(&params, "text"))
            else {
                return fail(400, "Bad Request: chat_id (integer) and text are required");
            };
            let name = string(&params, "first_name").unwrap_or_else(|| "User".to_owned());
            with_bot(shared, token, |bot| {
                let update_id = inject(bot, chat_id, &name, &text);
                Json(json!({"ok": true, "update_id": update_id})).into_response()
            })
        }
        _ => not_found(),
    }
}

/// Query string first, then the body (JSON or url-encoded form) on top, like Telegram.
async fn read_params(req: Request) -> Result<Map<String, Value>, Response> {
    let strings = |m: HashMap<String, String>| m.into_iter().map(|(k, v)| (k, Value::String(v)));
    let mut params: Map<String, Value> =
        match Query::<HashMap<String, String>>::try_from_uri(req.uri()) {
            Ok(Query(query)) => strings(query).collect(),
            Err(_) => Map::new(),
        };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/") {
        return Err(fail(
            400,
            "Bad Request: multipart requests are not supported by the sandbox",
        ));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let Form(form) = Form::<HashMap<String, String>>::from_request(req, &())
            .await
            .map_err(|_| fail(400, "Bad Request: can't parse form"))?;
        params.extend(strings(form));
        return Ok(params);
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|_| fail(400, "Bad Request: request body too large"))?;
    if !body.trim_ascii().is_empty() {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(json)) => params.extend(json),
            _ => return Err(fail(400, "Bad Request: can't parse JSON object")),
        }
    }
    Ok(params)
}

/// Numbers may arrive as JSON numbers or as strings (forms, query, `ChatId` as string).
fn int(params: &Map<String, Value>, key: &str) -> Option<i64> {
    match params.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

/// A JSON array, or (in forms and query strings) a JSON-serialized one.
fn allowed_updates(params: &Map<String, Value>) -> Option<Vec<String>> {
    let list = match params.get("allowed_updates")? {
        Value::Array(list) => list.clone(),
        Value::String(s) => serde_json::from_str::<Vec<Value>>(s).ok()?,
        _ => return None,
    };
    Some(
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}
