//! A local stand-in for the Telegram Bot API, for tests and offline demos.
//!
//! It speaks the real wire format (`/bot<TOKEN>/<method>`, `{"ok":…}` envelopes, the
//! real error texts) so that an unmodified client such as teloxide can be pointed at it with
//! `Bot::new(token).set_api_url(sandbox.url().parse()?)`.
//!
//! Methods: `getMe`, `getUpdates` (long polling, offset confirmation, negative offsets,
//! `allowed_updates`, and the 409 a newer poller inflicts on an older one), `sendMessage`,
//! `setWebhook`, `deleteWebhook`, `getWebhookInfo`. Method names are case-insensitive, as in
//! Telegram; an unknown method, or a path that is not `/bot<token>/<method>`, answers 404
//! `"Not Found"`. Parameters come from the query string and a JSON or url-encoded form body;
//! multipart is refused (teloxide only uses it to upload files, e.g. a webhook certificate).
//!
//! Offsets follow telegram-bot-api: a call with offset N forgets the pending updates below N
//! and answers from N; no offset (or 0) answers from the oldest pending update; a negative
//! one keeps only the newest -N. An offset more than 10 past the next update_id to be
//! assigned is "in the future": the server ignores it, answers from the oldest pending update
//! and forgets nothing. That is what lets a client with a stale offset carry on after
//! Telegram restarted its update_ids lower ([`TelegramSandbox::restart_update_ids`]).
//!
//! While a webhook is set, getUpdates answers 409 and the sandbox itself POSTs each pending
//! update, oldest first and one at a time, to the webhook URL (`Content-Type:
//! application/json`, plus `X-Telegram-Bot-Api-Secret-Token` when a secret token was set). A
//! 2xx answer confirms the update; anything else is recorded in getWebhookInfo's
//! `last_error_*` and retried after 50 ms, doubling up to 1 s; after 50 failed attempts the
//! update is dropped, as Telegram drops one it could not deliver in time. Unlike Telegram the
//! sandbox accepts `http://` and any port (as a `--local` Bot API server does), does not
//! check that the host resolves, and only ever connects to IP addresses and `localhost`:
//! deliveries to any other host fail without a DNS lookup, so nothing leaves the machine.
//! [`TelegramSandbox::webhook_deliveries`] lists every attempt.
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
use std::error::Error as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, FromRequest, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::runtime::Handle;
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
    "setwebhook",
    "getwebhookinfo",
    "deletewebhook",
];
const TERMINATED: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const TERMINATED_BY_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
/// telegram-bot-api ignores an offset further than this past the next update_id.
const FUTURE_OFFSET_SLACK: i64 = 10;
/// Update kinds in telegram-bot-api's order, which is the order getWebhookInfo lists them in.
const UPDATE_TYPES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "custom_event",
    "custom_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "purchased_paid_media",
    "managed_bot",
    "guest_message",
];
/// Internal kinds that can be subscribed to but that getWebhookInfo never names.
const HIDDEN_UPDATE_TYPES: &[&str] = &["custom_event", "custom_query"];
/// Every kind except these three is delivered unless `allowed_updates` says otherwise.
const NOT_DEFAULT_UPDATE_TYPES: &[&str] =
    &["chat_member", "message_reaction", "message_reaction_count"];
/// Telegram's default for `setWebhook`'s `max_connections` (1..=100).
const DEFAULT_MAX_CONNECTIONS: i64 = 40;
const MAX_SECRET_TOKEN_LEN: usize = 256;
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
const DELIVERY_ATTEMPTS: u32 = 50;
const DELIVERY_FIRST_BACKOFF: Duration = Duration::from_millis(50);
const DELIVERY_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A message the bot sent with `sendMessage`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub message_id: i64,
}

/// One attempt of the sandbox to POST an update to the bot's webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub update_id: i64,
    /// The webhook URL as it was set.
    pub url: String,
    /// The `X-Telegram-Bot-Api-Secret-Token` header that was sent; `None` without a secret token.
    pub secret_token: Option<String>,
    /// The receiver's HTTP status; `None` when no answer came (refused, timed out…).
    pub status: Option<u16>,
    /// Why the attempt failed, worded as getWebhookInfo's `last_error_message`; `None` for a 2xx.
    pub error: Option<String>,
}

impl WebhookDelivery {
    /// The receiver answered 2xx, which confirms the update.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
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
    /// Pending updates, ascending update_id.
    updates: VecDeque<(i64, Value)>,
    /// Telegram keeps the last `allowed_updates` (a bit per [`UPDATE_TYPES`] entry) and
    /// discards new updates of other kinds.
    allowed_updates: u32,
    /// First names of users who wrote, so replies carry the same chat object.
    chats: HashMap<i64, String>,
    sent: Vec<SentMessage>,
    faults: Faults,
    calls: HashMap<&'static str, usize>,
    webhook: Webhook,
    deliveries: Vec<WebhookDelivery>,
    /// Generation of the newest getUpdates; an older poller that sees a newer one yields.
    poller: u64,
    /// What a poller that was cut short answers: a newer getUpdates, or a setWebhook.
    poller_cut_by: &'static str,
    /// getUpdates requests open right now, and how often one arrived while another was
    /// open (two programs polling one bot).
    open_polls: usize,
    overlapping_polls: usize,
    /// Ticks on every state change that a waiter (long poll, `wait_sent`) may care about.
    changed: watch::Sender<()>,
    /// When each sent message arrived, for latency measurements.
    sent_times: Vec<std::time::Instant>,
    /// When a getUpdates first handed each update over, for latency measurements.
    handed_at: HashMap<i64, std::time::Instant>,
}

/// The webhook settings; an empty `url` means none is set.
#[derive(Default)]
struct Webhook {
    url: String,
    secret_token: String,
    /// 0 while no webhook is set, as telegram-bot-api keeps it.
    max_connections: i64,
    /// Unix time and message of the last failed delivery since the webhook was set.
    last_error: Option<(i64, String)>,
    /// Bumped on every change; the delivery task of an older generation stops.
    generation: u64,
}

impl Bot {
    fn user(&self) -> Value {
        json!({"id": self.id, "is_bot": true, "first_name": self.username, "username": self.username})
    }

    fn touch(&self) {
        self.changed.send_replace(());
    }

    /// A long poll in progress ends with 409 `reason` (telegram-bot-api's `abort_long_poll`).
    fn cut_poller(&mut self, reason: &'static str) {
        self.poller += 1;
        self.poller_cut_by = reason;
        self.touch();
    }

    /// Closes the current webhook, if any; true if there was one.
    fn remove_webhook(&mut self) -> bool {
        let generation = self.webhook.generation + 1;
        let was_set = !self.webhook.url.is_empty();
        self.webhook = Webhook {
            generation,
            ..Webhook::default()
        };
        self.touch();
        was_set
    }

    /// Replaces the webhook; returns the generation its delivery task must carry.
    fn install_webhook(&mut self, url: &str, secret_token: &str, max_connections: i64) -> u64 {
        self.remove_webhook();
        self.webhook.url = url.to_owned();
        self.webhook.secret_token = secret_token.to_owned();
        self.webhook.max_connections = max_connections;
        self.webhook.generation
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
    /// Where webhook delivery tasks run (the runtime the sandbox was started on).
    runtime: Handle,
    /// For webhook deliveries: no proxy, no redirects.
    http: reqwest::Client,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        // A panic elsewhere must not turn every later call into a second panic.
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once the server stops (or the last handle is dropped).
    async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
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
        let listener = super::server::listen(addr)?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(io::Error::other)?;
        let shared = Arc::new(Shared {
            hub: Mutex::default(),
            stop: stop_rx.clone(),
            runtime: Handle::current(),
            http,
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
            allowed_updates: default_update_types(),
            poller_cut_by: TERMINATED,
            open_polls: 0,
            overlapping_polls: 0,
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

    /// When a getUpdates first handed `update_id` over (for benchmarks).
    pub fn handed_over_at(&self, token: &str, update_id: i64) -> Option<std::time::Instant> {
        self.read(token, |bot| bot.handed_at.get(&update_id).copied())
    }

    pub fn sent(&self, token: &str) -> Vec<SentMessage> {
        self.read(token, |bot| bot.sent.clone())
    }

    /// Waits until at least `n` messages were sent, or `timeout`; returns what was sent.
    pub async fn wait_sent(&self, token: &str, n: usize, timeout: Duration) -> Vec<SentMessage> {
        self.wait_until(token, timeout, |bot| bot.sent.len() >= n)
            .await;
        self.sent(token)
    }

    /// Waits until `done` holds for the bot, or `timeout`; false on timeout or unknown token.
    async fn wait_until(
        &self,
        token: &str,
        timeout: Duration,
        done: impl Fn(&Bot) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let mut changed = {
                let hub = self.inner.shared.hub();
                let Some(bot) = hub.bots.get(token) else {
                    return false;
                };
                if done(bot) {
                    return true;
                }
                bot.changed.subscribe()
            };
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return false;
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

    /// How many times a getUpdates arrived while another one for the same bot was still
    /// open: two pollers at once (each such overlap ends the older with 409).
    pub fn overlapping_polls(&self, token: &str) -> usize {
        self.read(token, |bot| bot.overlapping_polls)
    }

    /// Updates not yet confirmed by a getUpdates offset.
    pub fn pending(&self, token: &str) -> usize {
        self.read(token, |bot| bot.updates.len())
    }

    /// Sets the webhook as another program's `setWebhook` with only a `url` would (no secret
    /// token, default max_connections, no validation), e.g. to leave one behind for a client
    /// that must delete it before polling; `""` removes it. Pending updates are delivered
    /// to it from now on (a host other than an IP address or `localhost` never answers).
    ///
    /// # Panics
    /// If `token` was not registered.
    pub fn set_webhook_url(&self, token: &str, url: &str) {
        let shared = &self.inner.shared;
        let generation = self.with_bot(token, |bot| {
            if url.is_empty() {
                bot.remove_webhook();
                return None;
            }
            bot.cut_poller(TERMINATED_BY_SET_WEBHOOK);
            Some(bot.install_webhook(url, "", DEFAULT_MAX_CONNECTIONS))
        });
        if let Some(generation) = generation {
            spawn_delivery(shared, token, generation);
        }
    }

    pub fn webhook_url(&self, token: &str) -> String {
        self.read(token, |bot| bot.webhook.url.clone())
    }

    /// The secret token of the current webhook; `None` without a webhook or a token.
    pub fn webhook_secret(&self, token: &str) -> Option<String> {
        self.read(token, |bot| {
            Some(bot.webhook.secret_token.clone()).filter(|s| !s.is_empty())
        })
    }

    /// Every attempt to deliver an update to a webhook of this bot, oldest first.
    pub fn webhook_deliveries(&self, token: &str) -> Vec<WebhookDelivery> {
        self.read(token, |bot| bot.deliveries.clone())
    }

    /// Waits until at least `n` delivery attempts were made, or `timeout`; returns them all.
    pub async fn wait_webhook_deliveries(
        &self,
        token: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<WebhookDelivery> {
        self.wait_until(token, timeout, |bot| bot.deliveries.len() >= n)
            .await;
        self.webhook_deliveries(token)
    }

    /// Simulates Telegram picking the next update_id at random after a week without updates:
    /// the next injected update gets `next_id`, typically lower than the ids seen before.
    /// Pending updates are discarded first: after a week they would have expired (Telegram
    /// keeps them 24 h), and ids are only restarted once the queue is gone.
    ///
    /// # Panics
    /// If `token` was not registered, or `next_id` is not a valid update_id (1..=2³¹-1).
    pub fn restart_update_ids(&self, token: &str, next_id: i64) {
        assert!(
            (1..=i64::from(i32::MAX)).contains(&next_id),
            "update_id {next_id} out of range"
        );
        self.with_bot(token, |bot| {
            bot.updates.clear();
            bot.next_update_id = next_id;
            bot.touch();
        });
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
    if bot.allowed_updates & update_type_bit("message") != 0 {
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

fn success(result: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Success<T> {
        ok: bool,
        result: T,
    }
    Json(Success { ok: true, result }).into_response()
}

/// `true` with a description, as setWebhook and deleteWebhook answer.
fn success_described(description: &str) -> Response {
    #[derive(Serialize)]
    struct Described<'a> {
        ok: bool,
        result: bool,
        description: &'a str,
    }
    let body = Described {
        ok: true,
        result: true,
        description,
    };
    Json(body).into_response()
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

async fn route(shared: &Arc<Shared>, req: Request) -> Response {
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

async fn bot_api(shared: &Arc<Shared>, token: &str, method: &str, req: Request) -> Response {
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
        "setwebhook" => set_webhook(shared, token, &params, true),
        "deletewebhook" => set_webhook(shared, token, &params, false),
        "getwebhookinfo" => with_bot(shared, token, |bot| success(webhook_info(bot))),
        _ => not_found(),
    }
}

/// getWebhookInfo, with telegram-bot-api's field order and omissions.
fn webhook_info(bot: &Bot) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct WebhookInfo<'a> {
        url: &'a str,
        has_custom_certificate: bool,
        pending_update_count: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_error_date: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_error_message: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_connections: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ip_address: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        allowed_updates: Option<Vec<&'static str>>,
    }
    let hook = &bot.webhook;
    let allowed = bot.allowed_updates;
    WebhookInfo {
        url: &hook.url,
        has_custom_certificate: false,
        pending_update_count: bot.updates.len(),
        last_error_date: hook.last_error.as_ref().map(|(date, _)| *date),
        last_error_message: hook.last_error.as_ref().map(|(_, m)| m.as_str()),
        max_connections: Some(hook.max_connections).filter(|n| *n > 0),
        // Telegram shows the address it resolved; the sandbox resolves nothing, so it can
        // only name a literal one (teloxide rejects Telegram's "<unknown>" placeholder).
        ip_address: webhook_target(&hook.url)
            .ok()
            .and_then(|url| loopback_or_literal_ip(&url))
            .map(|ip| ip.to_string()),
        allowed_updates: (allowed != default_update_types()).then(|| update_type_names(allowed)),
    }
}

/// setWebhook, and deleteWebhook (`set` false, which ignores `url`), in telegram-bot-api's
/// order: an unchanged webhook answers "already"; otherwise the old webhook is closed and
/// pending updates dropped if asked *before* the new URL and secret token are checked, so
/// a rejected setWebhook still leaves no webhook behind.
fn set_webhook(
    shared: &Arc<Shared>,
    token: &str,
    params: &Map<String, Value>,
    set: bool,
) -> Response {
    let url = if set {
        string(params, "url").unwrap_or_default()
    } else {
        String::new()
    };
    let (secret_token, max_connections) = if url.is_empty() {
        (String::new(), 0)
    } else {
        let max = match string(params, "max_connections").filter(|s| !s.trim().is_empty()) {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(s) => s.trim().parse::<i64>().unwrap_or(0).clamp(1, 100),
        };
        (string(params, "secret_token").unwrap_or_default(), max)
    };
    let drop_pending = flag(params, "drop_pending_updates");
    let generation = {
        let mut hub = shared.hub();
        let Some(bot) = hub.bots.get_mut(token) else {
            return fail(401, "Unauthorized");
        };
        let hook = &bot.webhook;
        if hook.url == url
            && hook.secret_token == secret_token
            && hook.max_connections == max_connections
            && !drop_pending
        {
            if let Some(mask) = allowed_update_types(params) {
                bot.allowed_updates = mask;
            }
            return success_described(if url.is_empty() {
                "Webhook is already deleted"
            } else {
                "Webhook is already set"
            });
        }
        if !url.is_empty() {
            bot.cut_poller(TERMINATED_BY_SET_WEBHOOK);
        }
        let was_set = bot.remove_webhook();
        if drop_pending {
            bot.updates.clear();
        }
        if url.is_empty() {
            return success_described(if was_set {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            });
        }
        if webhook_target(&url).is_err() {
            return fail(400, "Bad Request: invalid webhook URL specified");
        }
        if secret_token.len() > MAX_SECRET_TOKEN_LEN {
            return fail(400, "Bad Request: secret token is too long");
        }
        if !secret_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return fail(
                400,
                "Bad Request: secret token contains unallowed characters",
            );
        }
        if let Some(mask) = allowed_update_types(params) {
            bot.allowed_updates = mask;
        }
        bot.install_webhook(&url, &secret_token, max_connections)
    };
    spawn_delivery(shared, token, generation);
    success_described("Webhook was set")
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
        if !bot.webhook.url.is_empty() {
            return fail(409, WEBHOOK_ACTIVE);
        }
        if let Some(mask) = allowed_update_types(params) {
            bot.allowed_updates = mask;
        }
        if bot.open_polls > 0 {
            bot.overlapping_polls += 1;
        }
        bot.open_polls += 1;
        // Wake the previous poller (if any) before subscribing, so it sees it was superseded.
        bot.cut_poller(TERMINATED);
        (bot.poller, bot.changed.subscribe())
    };
    let _open = OpenPoll { shared, token };
    loop {
        {
            let mut hub = shared.hub();
            let Some(bot) = hub.bots.get_mut(token) else {
                return fail(401, "Unauthorized");
            };
            if bot.poller != me {
                return fail(409, bot.poller_cut_by);
            }
            if !bot.webhook.url.is_empty() {
                return fail(409, WEBHOOK_ACTIVE);
            }
            // Like telegram-bot-api, the offset is applied again when a long poll wakes up.
            let batch = confirm_and_take(bot, offset, limit);
            if !batch.is_empty() || Instant::now() >= deadline {
                return success(Value::Array(batch));
            }
        }
        // A timeout just loops back to answer with the (empty) batch.
        if let Ok(Err(_)) = tokio::time::timeout_at(deadline, changed.changed()).await {
            return fail(502, "Bad Gateway");
        }
    }
}

/// Counts a getUpdates as open until its answer is sent (or the client hangs up).
struct OpenPoll<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        if let Some(bot) = self.shared.hub().bots.get_mut(self.token) {
            bot.open_polls = bot.open_polls.saturating_sub(1);
        }
    }
}

/// telegram-bot-api's `do_get_updates`: a negative offset keeps only the newest -offset
/// updates; a positive one forgets the updates below it ("An update is considered confirmed
/// as soon as getUpdates is called with an offset higher than its update_id") unless it lies
/// more than 10 past the next update_id, where TQueue refuses it as "in the future" and the
/// answer starts at the oldest pending update with nothing forgotten. (An offset far in the
/// past falls back the same way, which forgets nothing either.)
fn confirm_and_take(bot: &mut Bot, offset: i64, limit: usize) -> Vec<Value> {
    if offset < 0 {
        let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        let excess = bot.updates.len().saturating_sub(keep);
        bot.updates.drain(..excess);
    } else if offset > 0 && offset <= bot.next_update_id + FUTURE_OFFSET_SLACK {
        bot.updates.retain(|(id, _)| *id >= offset);
    }
    let now = std::time::Instant::now();
    let batch: Vec<Value> = bot
        .updates
        .iter()
        .take(limit)
        .map(|(_, u)| u.clone())
        .collect();
    for (id, _) in bot.updates.iter().take(limit) {
        bot.handed_at.entry(*id).or_insert(now);
    }
    batch
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
        // teloxide sends setWebhook (which may carry a certificate) as multipart; arrays
        // such as allowed_updates arrive JSON-encoded in a text part, as Telegram takes them.
        let mut form = axum::extract::Multipart::from_request(req, &())
            .await
            .map_err(|_| fail(400, "Bad Request: can't parse multipart form"))?;
        while let Ok(Some(field)) = form.next_field().await {
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            let text = field
                .text()
                .await
                .map_err(|_| fail(400, "Bad Request: can't parse multipart form"))?;
            let value = match serde_json::from_str::<Value>(&text) {
                Ok(v @ (Value::Array(_) | Value::Object(_))) => v,
                _ => Value::String(text),
            };
            params.insert(name, value);
        }
        return Ok(params);
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

/// `allowed_updates` as telegram-bot-api reads it: a JSON array (or, in forms and query
/// strings, a JSON-serialized one) of kind names, case-insensitive. `None` (keep the current
/// setting) when absent or malformed; a list naming no known kind (`[]` included) means
/// the default set.
fn allowed_update_types(params: &Map<String, Value>) -> Option<u32> {
    let list = match params.get("allowed_updates")? {
        Value::Array(list) => list.clone(),
        Value::String(s) => serde_json::from_str::<Vec<Value>>(s).ok()?,
        _ => return None,
    };
    let mut mask = 0;
    for name in &list {
        mask |= update_type_bit(&name.as_str()?.to_ascii_lowercase());
    }
    Some(if mask == 0 {
        default_update_types()
    } else {
        mask
    })
}

/// The bit of a kind in an `allowed_updates` mask; 0 for an unknown name.
fn update_type_bit(name: &str) -> u32 {
    UPDATE_TYPES
        .iter()
        .position(|t| *t == name)
        .map_or(0, |i| 1 << i)
}

fn default_update_types() -> u32 {
    let all = (1u32 << UPDATE_TYPES.len()) - 1;
    NOT_DEFAULT_UPDATE_TYPES
        .iter()
        .fold(all, |mask, t| mask & !update_type_bit(t))
}

fn update_type_names(mask: u32) -> Vec<&'static str> {
    UPDATE_TYPES
        .iter()
        .enumerate()
        .filter(|(i, t)| mask & (1 << i) != 0 && !HIDDEN_UPDATE_TYPES.contains(t))
        .map(|(_, t)| *t)
        .collect()
}

/// The URL deliveries go to, as telegram-bot-api parses a webhook URL (https when no
/// scheme is given; only http and https). Err: "invalid webhook URL specified".
fn webhook_target(url: &str) -> Result<reqwest::Url, ()> {
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    let parsed = reqwest::Url::parse(&full).map_err(|_| ())?;
    let http = matches!(parsed.scheme(), "http" | "https");
    let host = parsed.host_str().is_some_and(|h| !h.is_empty());
    if http && host { Ok(parsed) } else { Err(()) }
}

/// The address the sandbox may deliver to: a literal IP, or `localhost` as 127.0.0.1.
fn loopback_or_literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::from([127, 0, 0, 1]))
        }
        url::Host::Domain(_) => None,
    }
}

fn spawn_delivery(shared: &Arc<Shared>, token: &str, generation: u64) {
    let task = deliver_updates(shared.clone(), token.to_owned(), generation);
    shared.runtime.spawn(task);
}

/// Resolves once the bot's webhook is no longer the one of `generation`.
async fn superseded(shared: &Shared, token: &str, generation: u64) {
    loop {
        let mut changed = {
            let hub = shared.hub();
            match hub.bots.get(token) {
                Some(bot) if bot.webhook.generation == generation => bot.changed.subscribe(),
                _ => return,
            }
        };
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// The delivery task of one webhook generation: POSTs the oldest pending update until it is
/// confirmed (2xx) or given up, then the next, and waits when none is pending.
async fn deliver_updates(shared: Arc<Shared>, token: String, generation: u64) {
    let mut failures = 0u32;
    let mut failing_id = None;
    loop {
        let next = {
            let hub = shared.hub();
            let Some(bot) = hub.bots.get(&token) else {
                return;
            };
            if bot.webhook.generation != generation {
                return;
            }
            match bot.updates.front() {
                Some((id, update)) => Ok((
                    *id,
                    update.to_string(),
                    bot.webhook.url.clone(),
                    bot.webhook.secret_token.clone(),
                )),
                None => Err(bot.changed.subscribe()),
            }
        };
        let (update_id, body, url, secret_token) = match next {
            Ok(next) => next,
            Err(mut changed) => {
                tokio::select! {
                    _ = changed.changed() => continue,
                    _ = shared.stopped() => return,
                }
            }
        };
        if failing_id != Some(update_id) {
            failing_id = Some(update_id);
            failures = 0;
        }
        let outcome = tokio::select! {
            outcome = post_update(&shared.http, &url, &secret_token, body) => outcome,
            _ = superseded(&shared, &token, generation) => return,
            _ = shared.stopped() => return,
        };
        let (status, error) = match outcome {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => {
                let reason = reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or_default();
                let message = format!("Wrong response from the webhook: {status} {reason}");
                (Some(status), Some(message.trim_end().to_owned()))
            }
            Err(message) => (None, Some(message)),
        };
        let backoff = {
            let mut hub = shared.hub();
            let Some(bot) = hub.bots.get_mut(&token) else {
                return;
            };
            bot.deliveries.push(WebhookDelivery {
                update_id,
                url,
                secret_token: Some(secret_token).filter(|s| !s.is_empty()),
                status,
                error: error.clone(),
            });
            bot.touch();
            if bot.webhook.generation != generation {
                return;
            }
            match error {
                None => {
                    bot.updates.retain(|(id, _)| *id != update_id);
                    None
                }
                Some(message) => {
                    tracing::debug!(
                        bot = bot.id,
                        update_id,
                        "webhook delivery failed: {message}"
                    );
                    bot.webhook.last_error = Some((unix_now(), message));
                    failures += 1;
                    if failures >= DELIVERY_ATTEMPTS {
                        tracing::warn!(
                            bot = bot.id,
                            update_id,
                            "webhook: update dropped after {failures} failed deliveries"
                        );
                        bot.updates.retain(|(id, _)| *id != update_id);
                        None
                    } else {
                        let factor = 1u32 << (failures - 1).min(10);
                        Some((DELIVERY_FIRST_BACKOFF * factor).min(DELIVERY_MAX_BACKOFF))
                    }
                }
            }
        };
        if let Some(backoff) = backoff {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = superseded(&shared, &token, generation) => return,
                _ = shared.stopped() => return,
            }
        }
    }
}

/// One POST of an update; the HTTP status, or the failure as getWebhookInfo words it.
async fn post_update(
    http: &reqwest::Client,
    url: &str,
    secret_token: &str,
    body: String,
) -> Result<u16, String> {
    let target = webhook_target(url)
        .map_err(|()| "Failed to resolve host: invalid webhook URL".to_owned())?;
    if loopback_or_literal_ip(&target).is_none() {
        return Err(format!(
            "Failed to resolve host: the sandbox delivers only to IP addresses and localhost, not {}",
            target.host_str().unwrap_or_default()
        ));
    }
    let mut request = http
        .post(target)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if !secret_token.is_empty() {
        request = request.header(SECRET_HEADER, secret_token);
    }
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    // Read the answer so that the connection can be reused; its content is ignored.
    let _ = response.bytes().await;
    Ok(status)
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "Read timeout expired".to_owned();
    }
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "Connection refused".to_owned(),
                io::ErrorKind::ConnectionReset => return "Connection reset by peer".to_owned(),
                _ => {}
            }
        }
        source = cause.source();
    }
    if e.is_connect() {
        "Can't connect to the webhook".to_owned()
    } else {
        "Webhook connection closed".to_owned()
    }
}
