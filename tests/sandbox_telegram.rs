//! The Telegram sandbox over real HTTP: wire shapes with reqwest, and teloxide 0.17 as a
//! real client (it must parse every answer and map every error the way it does against Telegram).

use std::time::{Duration, Instant};

use flametree::sandbox::telegram::*;
use serde_json::{Value, json};
use teloxide::prelude::*;
use teloxide::types::UpdateKind;
use teloxide::{ApiError, RequestError};

const TOKEN: &str = "123456:AAtest-token_x";

async fn sandbox() -> TelegramSandbox {
    let sandbox = TelegramSandbox::start().await.unwrap();
    assert_eq!(sandbox.add_bot(TOKEN, "flame_bot"), 123456);
    sandbox
}

fn client() -> reqwest::Client {
    // Bounded so that a hung server fails the test instead of stalling it.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

async fn call(sandbox: &TelegramSandbox, method: &str, params: Value) -> (u16, Value) {
    let url = format!("{}/bot{TOKEN}/{method}", sandbox.url());
    let response = client().post(url).json(&params).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn teloxide_bot(sandbox: &TelegramSandbox, token: &str) -> Bot {
    Bot::new(token).set_api_url(reqwest::Url::parse(&sandbox.url()).unwrap())
}

#[tokio::test]
async fn bad_tokens_and_paths_answer_like_telegram() {
    let sandbox = sandbox().await;
    let get = |path: String| async move {
        let response = client().get(path).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (status, content_type, response.text().await.unwrap())
    };
    let url = sandbox.url();

    let (status, content_type, body) = get(format!("{url}/bot999:unknown/getMe")).await;
    assert_eq!(status, 401);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#
    );

    let not_found = r#"{"ok":false,"error_code":404,"description":"Not Found"}"#;
    for path in [
        "/bot123456/getMe",
        "/123456:AAtest-token_x/getMe",
        "/",
        "/bot/x/y/z",
    ] {
        assert_eq!(
            get(format!("{url}{path}")).await,
            (404, content_type.clone(), not_found.into()),
            "{path}"
        );
    }
    let (status, _, body) = get(format!("{url}/bot{TOKEN}/noSuchMethod")).await;
    assert_eq!((status, body.as_str()), (404, not_found));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn get_me_is_case_insensitive_and_reads_get_form_and_json() {
    let sandbox = sandbox().await;
    let expected = json!({"ok": true, "result": {
        "id": 123456, "is_bot": true, "first_name": "flame_bot", "username": "flame_bot",
        "can_join_groups": true, "can_read_all_group_messages": false,
        "supports_inline_queries": false, "can_connect_to_business": false,
        "has_main_web_app": false,
    }});
    assert_eq!(
        call(&sandbox, "getMe", json!({})).await,
        (200, expected.clone())
    );
    assert_eq!(
        call(&sandbox, "GetMe", json!({})).await,
        (200, expected.clone())
    );
    let response = client()
        .get(format!("{}/bot{TOKEN}/getme", sandbox.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    assert_eq!(sandbox.calls(TOKEN, "getMe"), 3);

    // Form bodies and query strings carry parameters as strings.
    let form = client()
        .post(format!(
            "{}/bot{TOKEN}/sendMessage?chat_id=7",
            sandbox.url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("text=hello%20there")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(sandbox.sent(TOKEN)[0].text, "hello there");
    assert_eq!(sandbox.sent(TOKEN)[0].chat_id, 7);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn get_updates_confirms_below_offset_and_honours_limit() {
    let sandbox = sandbox().await;
    let first = sandbox.inject_message(TOKEN, 42, "Ann", "one");
    let second = sandbox.inject_message(TOKEN, 43, "Bob", "two");
    assert_eq!(second, first + 1);
    assert_eq!(sandbox.pending(TOKEN), 2);

    let (status, body) = call(&sandbox, "getUpdates", json!({})).await;
    assert_eq!(status, 200);
    let update = &body["result"][0];
    assert_eq!(update["update_id"], first);
    let message = &update["message"];
    assert_eq!(
        message["from"],
        json!({"id": 42, "is_bot": false, "first_name": "Ann"})
    );
    assert_eq!(
        message["chat"],
        json!({"id": 42, "type": "private", "first_name": "Ann"})
    );
    assert_eq!(message["text"], "one");
    assert!(message["date"].as_i64().unwrap() > 1_600_000_000);
    assert!(message["message_id"].is_i64());
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    assert_eq!(sandbox.pending(TOKEN), 2, "no offset confirms nothing");

    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": first, "limit": 1})).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"][0]["update_id"], first);

    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": first + 1})).await;
    assert_eq!(body["result"][0]["message"]["text"], "two");
    assert_eq!(sandbox.pending(TOKEN), 1);

    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"],
        json!({"url": "", "has_custom_certificate": false, "pending_update_count": 1})
    );

    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": second + 1})).await;
    assert_eq!(body, json!({"ok": true, "result": []}));
    assert_eq!(sandbox.pending(TOKEN), 0);

    // A negative offset keeps only the newest -offset updates (teloxide's drop_pending_updates).
    for text in ["a", "b", "c"] {
        sandbox.inject_message(TOKEN, 42, "Ann", text);
    }
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": -1})).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"][0]["message"]["text"], "c");
    assert_eq!(sandbox.pending(TOKEN), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn allowed_updates_without_message_drops_new_messages() {
    let sandbox = sandbox().await;
    let (_, body) = call(
        &sandbox,
        "getUpdates",
        json!({"allowed_updates": ["callback_query"]}),
    )
    .await;
    assert_eq!(body["result"], json!([]));
    sandbox.inject_message(TOKEN, 42, "Ann", "unwanted");
    assert_eq!(sandbox.pending(TOKEN), 0);
    // The setting sticks until a call names other kinds; an empty list means all.
    call(&sandbox, "getUpdates", json!({"allowed_updates": []})).await;
    sandbox.inject_message(TOKEN, 42, "Ann", "wanted");
    let (_, body) = call(&sandbox, "getUpdates", json!({})).await;
    assert_eq!(body["result"][0]["message"]["text"], "wanted");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn long_poll_waits_and_wakes_on_inject() {
    let sandbox = sandbox().await;
    let started = Instant::now();
    let (_, body) = call(&sandbox, "getUpdates", json!({"timeout": 1})).await;
    assert_eq!(body["result"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    let poll = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { call(&sandbox, "getUpdates", json!({"timeout": 10})).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    sandbox.inject_message(TOKEN, 42, "Ann", "wake up");
    let (status, body) = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["message"]["text"], "wake up");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn newer_poller_terminates_the_older_one() {
    let sandbox = sandbox().await;
    let older = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { call(&sandbox, "getUpdates", json!({"timeout": 10})).await }
    });
    while sandbox.calls(TOKEN, "getupdates") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let newer = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { call(&sandbox, "getUpdates", json!({"timeout": 1})).await }
    });
    let (status, body) = older.await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 409, "description":
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})
    );
    assert_eq!(
        newer.await.unwrap(),
        (200, json!({"ok": true, "result": []}))
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn webhook_blocks_get_updates_until_deleted() {
    let sandbox = sandbox().await;
    sandbox.inject_message(TOKEN, 42, "Ann", "queued");
    sandbox.set_webhook_url(TOKEN, "https://example.invalid/hook");
    let (status, body) = call(&sandbox, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["url"], "https://example.invalid/hook");
    assert_eq!(info["result"]["pending_update_count"], 1);

    let (status, body) = call(
        &sandbox,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &json!(true)));
    assert_eq!(sandbox.webhook_url(TOKEN), "");
    assert_eq!(sandbox.pending(TOKEN), 0);
    let (status, _) = call(&sandbox, "getUpdates", json!({})).await;
    assert_eq!(status, 200);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn faults_answer_429_with_retry_after_then_502_then_recover() {
    let sandbox = sandbox().await;
    let faults = Faults {
        fail_next_429: 1,
        retry_after_secs: 7,
        fail_next_5xx: 1,
        ..Faults::default()
    };
    sandbox.set_faults(TOKEN, faults);

    let (status, body) = call(&sandbox, "sendMessage", json!({"chat_id": 1, "text": "x"})).await;
    assert_eq!(status, 502);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
    );
    let (status, body) = call(&sandbox, "getMe", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(body["error_code"], 429);
    assert_eq!(body["parameters"], json!({"retry_after": 7}));
    assert_eq!(body["description"], "Too Many Requests: retry after 7");
    let (status, _) = call(&sandbox, "getMe", json!({})).await;
    assert_eq!(status, 200);
    assert!(sandbox.sent(TOKEN).is_empty());
    assert_eq!(
        (
            sandbox.calls(TOKEN, "sendmessage"),
            sandbox.calls(TOKEN, "getme")
        ),
        (1, 2)
    );

    sandbox.set_faults(
        TOKEN,
        Faults {
            latency: Duration::from_millis(300),
            ..Faults::default()
        },
    );
    let started = Instant::now();
    call(&sandbox, "getMe", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn send_message_shape_validation_and_order() {
    let sandbox = sandbox().await;
    sandbox.inject_message(TOKEN, 42, "Ann", "hi");
    let (status, body) = call(
        &sandbox,
        "sendMessage",
        json!({"chat_id": "42", "text": "hello"}),
    )
    .await;
    assert_eq!(status, 200);
    let message = &body["result"];
    assert_eq!(message["from"]["id"], 123456);
    assert_eq!(message["from"]["is_bot"], true);
    assert_eq!(
        message["chat"],
        json!({"id": 42, "type": "private", "first_name": "Ann"})
    );
    assert_eq!(message["text"], "hello");
    let (_, second) = call(
        &sandbox,
        "sendMessage",
        json!({"chat_id": 42, "text": "again"}),
    )
    .await;
    assert!(second["result"]["message_id"].as_i64() > message["message_id"].as_i64());
    let sent = sandbox.sent(TOKEN);
    assert_eq!(
        sent.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["hello", "again"]
    );
    assert_eq!(sent[0].message_id, message["message_id"].as_i64().unwrap());

    let (status, body) = call(&sandbox, "sendMessage", json!({"chat_id": 42, "text": " "})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message text is empty"))
    );
    let (status, body) = call(&sandbox, "sendMessage", json!({"text": "x"})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: chat_id is empty"))
    );
    let (status, _) = call(
        &sandbox,
        "sendMessage",
        json!({"chat_id": 42, "text": "x".repeat(4097)}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sandbox.sent(TOKEN).len(), 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_still_delivers_the_message() {
    let sandbox = sandbox().await;
    let send_delay = Duration::from_millis(500);
    sandbox.set_faults(
        TOKEN,
        Faults {
            send_delay,
            ..Faults::default()
        },
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let result = impatient
        .post(format!("{}/bot{TOKEN}/sendMessage", sandbox.url()))
        .json(&json!({"chat_id": 42, "text": "delivered"}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(
        sandbox.sent(TOKEN)[0].text,
        "delivered",
        "the client gave up, the message went out"
    );

    let started = Instant::now();
    let (status, _) = call(
        &sandbox,
        "sendMessage",
        json!({"chat_id": 42, "text": "kept"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= send_delay);
    assert_eq!(sandbox.sent(TOKEN)[1].text, "kept");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn http_inject_and_sent_for_a_person_at_a_shell() {
    let sandbox = sandbox().await;
    let base = format!("{}/sandbox/bot{TOKEN}", sandbox.url());
    let response = client()
        .post(format!("{base}/inject"))
        .json(&json!({"chat_id": 42, "first_name": "Ann", "text": "hi"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"ok": true, "update_id": 100000}));
    assert_eq!(sandbox.pending(TOKEN), 1);

    call(
        &sandbox,
        "sendMessage",
        json!({"chat_id": 42, "text": "hello Ann"}),
    )
    .await;
    let sent: Value = client()
        .get(format!("{base}/sent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sent,
        json!([{"chat_id": 42, "text": "hello Ann", "message_id": 2}])
    );

    let unknown = client()
        .get(format!("{}/sandbox/bot1:nope/sent", sandbox.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn wait_sent_resolves_on_send_and_returns_partial_on_timeout() {
    let sandbox = sandbox().await;
    let started = Instant::now();
    assert!(
        sandbox
            .wait_sent(TOKEN, 1, Duration::from_millis(200))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    let waiter = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { sandbox.wait_sent(TOKEN, 2, Duration::from_secs(10)).await }
    });
    call(&sandbox, "sendMessage", json!({"chat_id": 1, "text": "a"})).await;
    call(&sandbox, "sendMessage", json!({"chat_id": 2, "text": "b"})).await;
    let sent = waiter.await.unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1],
        SentMessage {
            chat_id: 2,
            text: "b".into(),
            message_id: sent[1].message_id
        }
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shutdown_cuts_long_polls_short() {
    let sandbox = sandbox().await;
    let poll = tokio::spawn({
        let url = format!("{}/bot{TOKEN}/getUpdates", sandbox.url());
        async move {
            client()
                .post(url)
                .json(&json!({"timeout": 30}))
                .send()
                .await
        }
    });
    while sandbox.calls(TOKEN, "getupdates") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    sandbox.shutdown().await;
    let _ = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        client()
            .get(format!("{}/bot{TOKEN}/getMe", sandbox.url()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_server() {
    let sandbox = sandbox().await;
    let url = format!("{}/bot{TOKEN}/getMe", sandbox.url());
    let other = sandbox.clone();
    drop(sandbox);
    assert!(
        client().get(&url).send().await.is_ok(),
        "a clone keeps it serving"
    );
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(3);
    // A fresh client each time: a pooled keep-alive connection could outlive the listener.
    while client().get(&url).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still serving after the last clone was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn teloxide_parses_get_me_updates_and_send_message() {
    let sandbox = sandbox().await;
    let bot = teloxide_bot(&sandbox, TOKEN);
    let me = bot.get_me().await.unwrap();
    assert_eq!((me.id.0, me.username()), (123456, "flame_bot"));

    let update_id = sandbox.inject_message(TOKEN, 42, "Ann", "hello bot");
    let updates = bot.get_updates().offset(0).timeout(1).await.unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].id.0 as i64, update_id);
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("{:?}", updates[0].kind)
    };
    assert_eq!(message.text(), Some("hello bot"));
    assert_eq!(message.chat.id, ChatId(42));
    assert_eq!(message.from.as_ref().unwrap().first_name, "Ann");

    let confirmed = bot
        .get_updates()
        .offset(update_id as i32 + 1)
        .timeout(0)
        .await
        .unwrap();
    assert!(confirmed.is_empty());
    assert_eq!(sandbox.pending(TOKEN), 0);

    let reply = bot.send_message(ChatId(42), "hi").await.unwrap();
    assert_eq!(reply.text(), Some("hi"));
    assert_eq!(
        sandbox.sent(TOKEN),
        [SentMessage {
            chat_id: 42,
            text: "hi".into(),
            message_id: reply.id.0 as i64
        }]
    );

    let info = bot.get_webhook_info().await.unwrap();
    assert_eq!((info.url, info.pending_update_count), (None, 0));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn teloxide_maps_401_409_and_429() {
    let sandbox = sandbox().await;
    let stranger = teloxide_bot(&sandbox, "999:not-registered");
    assert!(matches!(
        stranger.get_me().await,
        Err(RequestError::Api(ApiError::InvalidToken))
    ));

    let bot = teloxide_bot(&sandbox, TOKEN);
    let older = tokio::spawn({
        let bot = bot.clone();
        async move { bot.get_updates().timeout(10).await }
    });
    while sandbox.calls(TOKEN, "getupdates") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bot.get_updates().timeout(0).await.unwrap();
    let older = older.await.unwrap();
    assert!(
        matches!(
            older,
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))
        ),
        "{older:?}"
    );

    sandbox.set_faults(
        TOKEN,
        Faults {
            fail_next_429: 1,
            retry_after_secs: 3,
            ..Faults::default()
        },
    );
    let limited = bot.send_message(ChatId(42), "hi").await;
    assert!(
        matches!(limited, Err(RequestError::RetryAfter(s)) if s.seconds() == 3),
        "{limited:?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn teloxide_dispatcher_echoes_after_deleting_a_webhook() {
    use teloxide::error_handlers::LoggingErrorHandler;
    use teloxide::update_listeners::Polling;

    let sandbox = sandbox().await;
    sandbox.set_webhook_url(TOKEN, "https://example.invalid/hook");
    let bot = teloxide_bot(&sandbox, TOKEN);
    let handler = Update::filter_message().endpoint(|bot: Bot, message: Message| async move {
        let text = format!("echo: {}", message.text().unwrap_or_default());
        bot.send_message(message.chat.id, text).await?;
        Ok::<(), RequestError>(())
    });
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler).build();
    let shutdown = dispatcher.shutdown_token();
    // A short poll timeout keeps shutdown quick: teloxide finishes the poll in flight first.
    let listener = Polling::builder(bot)
        .timeout(Duration::from_secs(1))
        .delete_webhook()
        .await
        .build();
    let running = tokio::spawn(async move {
        dispatcher
            .dispatch_with_listener(listener, LoggingErrorHandler::new())
            .await;
    });

    sandbox.inject_message(TOKEN, 42, "Ann", "ping");
    let sent = sandbox.wait_sent(TOKEN, 1, Duration::from_secs(8)).await;
    assert_eq!(sent.len(), 1, "the dispatcher never answered");
    assert_eq!((sent[0].chat_id, sent[0].text.as_str()), (42, "echo: ping"));
    assert_eq!(sandbox.webhook_url(TOKEN), "");
    assert_eq!(sandbox.calls(TOKEN, "deletewebhook"), 1);
    assert!(sandbox.calls(TOKEN, "getme") >= 1);

    tokio::time::timeout(Duration::from_secs(5), shutdown.shutdown().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sandbox.pending(TOKEN),
        0,
        "teloxide confirms the handled update on its way out"
    );
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Webhooks, update_id restarts, unknown methods.

const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// One request the test's webhook receiver got.
#[derive(Debug, Clone)]
struct Received {
    content_type: Option<String>,
    secret: Option<String>,
    update: Value,
}

/// A webhook endpoint on 127.0.0.1 that records every POST and answers 500 to the first
/// `fail_first` of them.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let failures = std::sync::Arc::new(AtomicUsize::new(fail_first));
        let app = axum::Router::new().fallback({
            let got = got.clone();
            move |headers: HeaderMap, body: axum::body::Bytes| async move {
                let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                got.lock().unwrap().push(Received {
                    content_type: header("content-type"),
                    secret: header("x-telegram-bot-api-secret-token"),
                    update: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                let failing = failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Polls until `n` requests arrived; panics after a deadline.
    async fn wait(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `check` until it holds; panics after a deadline.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw_call(sandbox: &TelegramSandbox, method: &str, params: Value) -> (u16, String) {
    let url = format!("{}/bot{TOKEN}/{method}", sandbox.url());
    let response = client().post(url).json(&params).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn ids(received: &[Received]) -> Vec<i64> {
    received
        .iter()
        .map(|r| r.update["update_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn set_webhook_validates_like_telegram_and_get_webhook_info_reflects_it() {
    let sandbox = sandbox().await;
    let url = format!("http://127.0.0.1:{}/hook", closed_port().await);
    let bad =
        |description: &str| json!({"ok": false, "error_code": 400, "description": description});
    for secret in ["has space", "dot.", "ümlaut", "slash/"] {
        assert_eq!(
            call(
                &sandbox,
                "setWebhook",
                json!({"url": url, "secret_token": secret})
            )
            .await,
            (
                400,
                bad("Bad Request: secret token contains unallowed characters")
            ),
            "{secret}"
        );
    }
    assert_eq!(
        call(
            &sandbox,
            "setWebhook",
            json!({"url": url, "secret_token": "a".repeat(257)})
        )
        .await,
        (400, bad("Bad Request: secret token is too long"))
    );
    for wrong in ["ftp://127.0.0.1/hook", "http://", "https://bad host/hook"] {
        assert_eq!(
            call(&sandbox, "setWebhook", json!({"url": wrong})).await,
            (400, bad("Bad Request: invalid webhook URL specified")),
            "{wrong}"
        );
    }
    assert_eq!(sandbox.webhook_url(TOKEN), "");

    // Telegram's key order, description included.
    let (status, body) = raw_call(
        &sandbox,
        "setWebhook",
        json!({"url": url, "secret_token": format!("Ab9_-{}", "x".repeat(251)),
               "allowed_updates": ["message", "callback_query"], "max_connections": 5}),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"ok":true,"result":true,"description":"Webhook was set"}"#
        )
    );
    let secret = format!("Ab9_-{}", "x".repeat(251));
    assert_eq!(sandbox.webhook_secret(TOKEN), Some(secret.clone()));
    assert_eq!(sandbox.webhook_url(TOKEN), url);
    let (_, body) = raw_call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(
        body,
        format!(
            r#"{{"ok":true,"result":{{"url":"{url}","has_custom_certificate":false,"pending_update_count":0,"max_connections":5,"ip_address":"127.0.0.1","allowed_updates":["message","callback_query"]}}}}"#
        )
    );
    assert_eq!(
        call(
            &sandbox,
            "setWebhook",
            json!({"url": url, "secret_token": secret, "max_connections": 5})
        )
        .await,
        (
            200,
            json!({"ok": true, "result": true, "description": "Webhook is already set"})
        )
    );
    assert_eq!(
        call(&sandbox, "getUpdates", json!({})).await,
        (
            409,
            json!({"ok": false, "error_code": 409, "description": WEBHOOK_ACTIVE})
        )
    );

    // teloxide reads it.
    let info = teloxide_bot(&sandbox, TOKEN)
        .get_webhook_info()
        .await
        .unwrap();
    assert_eq!(info.url.unwrap().as_str(), url);
    assert_eq!(info.max_connections, Some(5));
    assert_eq!(info.ip_address, Some([127, 0, 0, 1].into()));
    assert_eq!(info.allowed_updates.unwrap().len(), 2);

    // Out-of-range max_connections are clamped to 1..=100; a changed setting replaces it.
    call(
        &sandbox,
        "setWebhook",
        json!({"url": url, "max_connections": 1000}),
    )
    .await;
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["max_connections"], 100);
    assert_eq!(sandbox.webhook_secret(TOKEN), None);

    // As in telegram-bot-api, a rejected setWebhook has already closed the old webhook.
    let (status, _) = call(
        &sandbox,
        "setWebhook",
        json!({"url": url, "secret_token": "no good"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sandbox.webhook_url(TOKEN), "");

    // A form body and a query string work too; allowed_updates then is JSON text.
    let form = client()
        .post(format!(
            "{}/bot{TOKEN}/setWebhook?max_connections=7",
            sandbox.url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("url", &url)
                .append_pair("secret_token", "form_secret")
                .append_pair("allowed_updates", r#"["MESSAGE"]"#)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(
        sandbox.webhook_secret(TOKEN).as_deref(),
        Some("form_secret")
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["max_connections"], 7);
    assert_eq!(info["result"]["allowed_updates"], json!(["message"]));

    // deleteWebhook, then again; an empty url in setWebhook means the same.
    let (_, body) = raw_call(&sandbox, "deleteWebhook", json!({})).await;
    assert_eq!(
        body,
        r#"{"ok":true,"result":true,"description":"Webhook was deleted"}"#
    );
    assert_eq!(sandbox.webhook_secret(TOKEN), None);
    assert_eq!(
        call(&sandbox, "deleteWebhook", json!({})).await.1["description"],
        "Webhook is already deleted"
    );
    call(&sandbox, "setWebhook", json!({"url": url})).await;
    assert_eq!(
        call(&sandbox, "setWebhook", json!({"url": ""})).await.1["description"],
        "Webhook was deleted"
    );
    // The allowed_updates setting outlives the webhook; [] restores the default.
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"],
        json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0,
               "allowed_updates": ["message"]})
    );
    assert_eq!(
        call(&sandbox, "getUpdates", json!({"allowed_updates": []}))
            .await
            .0,
        200
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"],
        json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})
    );
    assert_eq!(sandbox.calls(TOKEN, "setwebhook"), 15);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn webhook_receives_pending_and_new_updates_in_order_with_the_secret() {
    let sandbox = sandbox().await;
    let receiver = Receiver::start(0).await;
    let first = sandbox.inject_message(TOKEN, 42, "Ann", "before");
    let second = sandbox.inject_message(TOKEN, 43, "Bob", "also before");
    let (status, _) = call(
        &sandbox,
        "setWebhook",
        json!({"url": receiver.url, "secret_token": "s3cret"}),
    )
    .await;
    assert_eq!(status, 200);
    let third = sandbox.inject_message(TOKEN, 42, "Ann", "after");

    let got = receiver.wait(3).await;
    assert_eq!(ids(&got), [first, second, third]);
    for r in &got {
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.secret.as_deref(), Some("s3cret"));
    }
    let update = &got[2].update;
    assert_eq!(update["message"]["text"], "after");
    assert_eq!(
        update["message"]["chat"],
        json!({"id": 42, "type": "private", "first_name": "Ann"})
    );
    // The body is the Update teloxide parses.
    let parsed: teloxide::types::Update = serde_json::from_value(update.clone()).unwrap();
    assert_eq!(parsed.id.0 as i64, third);

    eventually("confirmed updates leave the queue", || {
        sandbox.pending(TOKEN) == 0
    })
    .await;
    let deliveries = sandbox.webhook_deliveries(TOKEN);
    assert_eq!(
        deliveries,
        [first, second, third].map(|update_id| WebhookDelivery {
            update_id,
            url: receiver.url.clone(),
            secret_token: Some("s3cret".into()),
            status: Some(200),
            error: None,
        })
    );
    assert!(deliveries.iter().all(WebhookDelivery::delivered));
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["pending_update_count"], 0);
    assert!(info["result"].get("last_error_date").is_none());

    // Without a secret token no header is sent.
    call(&sandbox, "setWebhook", json!({"url": receiver.url})).await;
    sandbox.inject_message(TOKEN, 42, "Ann", "no secret");
    let got = receiver.wait(4).await;
    assert_eq!(got[3].secret, None);
    assert_eq!(
        sandbox
            .wait_webhook_deliveries(TOKEN, 4, Duration::from_secs(10))
            .await[3]
            .secret_token,
        None
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_in_order_and_reported() {
    let sandbox = sandbox().await;
    let receiver = Receiver::start(3).await;
    call(&sandbox, "setWebhook", json!({"url": receiver.url})).await;
    let first = sandbox.inject_message(TOKEN, 42, "Ann", "one");
    let second = sandbox.inject_message(TOKEN, 42, "Ann", "two");

    let got = receiver.wait(5).await;
    // The second update waits until the first one is through.
    assert_eq!(ids(&got), [first, first, first, first, second]);
    eventually("both confirmed", || sandbox.pending(TOKEN) == 0).await;
    let deliveries = sandbox.webhook_deliveries(TOKEN);
    let outcomes: Vec<_> = deliveries
        .iter()
        .map(|d| (d.update_id, d.status, d.error.as_deref()))
        .collect();
    let failed = Some("Wrong response from the webhook: 500 Internal Server Error");
    assert_eq!(
        outcomes,
        [
            (first, Some(500), failed),
            (first, Some(500), failed),
            (first, Some(500), failed),
            (first, Some(200), None),
            (second, Some(200), None),
        ]
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"]["last_error_message"],
        "Wrong response from the webhook: 500 Internal Server Error"
    );
    let date = info["result"]["last_error_date"].as_i64().unwrap();
    assert!(date > 1_600_000_000, "{date}");
    let info = teloxide_bot(&sandbox, TOKEN)
        .get_webhook_info()
        .await
        .unwrap();
    assert!(info.last_error_date.is_some());

    // Setting the webhook anew clears the last error.
    call(
        &sandbox,
        "setWebhook",
        json!({"url": receiver.url, "max_connections": 2}),
    )
    .await;
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert!(info["result"].get("last_error_message").is_none());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_webhook_keeps_updates_pending_for_get_updates() {
    let sandbox = sandbox().await;
    let url = format!("http://127.0.0.1:{}/hook", closed_port().await);
    call(&sandbox, "setWebhook", json!({"url": url})).await;
    let update_id = sandbox.inject_message(TOKEN, 42, "Ann", "anyone?");
    let deliveries = sandbox
        .wait_webhook_deliveries(TOKEN, 2, Duration::from_secs(10))
        .await;
    assert!(deliveries.len() >= 2, "retried: {deliveries:?}");
    assert_eq!(
        (deliveries[0].status, deliveries[0].error.as_deref()),
        (None, Some("Connection refused"))
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["last_error_message"], "Connection refused");
    assert_eq!(info["result"]["pending_update_count"], 1);

    call(&sandbox, "deleteWebhook", json!({})).await;
    let (status, body) = call(&sandbox, "getUpdates", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["update_id"], update_id);

    // A leftover webhook on a name the sandbox won't resolve fails the same way, offline.
    let leftover = "https://example.invalid/hook";
    sandbox.set_webhook_url(TOKEN, leftover);
    eventually("a delivery to the leftover webhook", || {
        sandbox
            .webhook_deliveries(TOKEN)
            .iter()
            .any(|d| d.url == leftover)
    })
    .await;
    let deliveries = sandbox.webhook_deliveries(TOKEN);
    let last = deliveries.iter().find(|d| d.url == leftover).unwrap();
    assert_eq!(last.status, None);
    assert!(
        last.error
            .as_deref()
            .unwrap()
            .starts_with("Failed to resolve host"),
        "{last:?}"
    );
    let (_, info) = call(&sandbox, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["max_connections"], 40);
    assert!(info["result"].get("ip_address").is_none());
    let (_, body) = call(
        &sandbox,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await;
    assert_eq!(body["description"], "Webhook was deleted");
    assert_eq!(sandbox.pending(TOKEN), 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn webhook_deliveries_honour_allowed_updates() {
    let sandbox = sandbox().await;
    let receiver = Receiver::start(0).await;
    call(
        &sandbox,
        "setWebhook",
        json!({"url": receiver.url, "allowed_updates": ["callback_query"]}),
    )
    .await;
    sandbox.inject_message(TOKEN, 42, "Ann", "unwanted");
    assert_eq!(sandbox.pending(TOKEN), 0, "discarded on arrival");
    // Same webhook, new kinds: "already set", and the kinds change.
    let (_, body) = call(
        &sandbox,
        "setWebhook",
        json!({"url": receiver.url, "allowed_updates": ["message"]}),
    )
    .await;
    assert_eq!(body["description"], "Webhook is already set");
    let wanted = sandbox.inject_message(TOKEN, 42, "Ann", "wanted");
    let got = receiver.wait(1).await;
    assert_eq!(ids(&got), [wanted]);
    assert_eq!(sandbox.webhook_deliveries(TOKEN).len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn set_webhook_ends_a_long_poll_and_drop_pending_updates_clears_the_queue() {
    let sandbox = sandbox().await;
    let url = format!("http://127.0.0.1:{}/hook", closed_port().await);
    // The call is counted just before the poll begins: should setWebhook slip in between,
    // the poll meets an active webhook instead, and the round is repeated.
    let mut answer = (0, Value::Null);
    for round in 1..=5 {
        let poll = tokio::spawn({
            let sandbox = sandbox.clone();
            async move { call(&sandbox, "getUpdates", json!({"timeout": 10})).await }
        });
        eventually("the poll started", || {
            sandbox.calls(TOKEN, "getupdates") == round
        })
        .await;
        let started = Instant::now();
        call(&sandbox, "setWebhook", json!({"url": url})).await;
        answer = poll.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        if answer.1["description"] != WEBHOOK_ACTIVE {
            break;
        }
        call(&sandbox, "deleteWebhook", json!({})).await;
    }
    assert_eq!(
        answer,
        (
            409,
            json!({"ok": false, "error_code": 409, "description": "Conflict: terminated by setWebhook request"})
        )
    );

    sandbox.inject_message(TOKEN, 42, "Ann", "x");
    sandbox.inject_message(TOKEN, 42, "Ann", "y");
    let (_, body) = call(
        &sandbox,
        "setWebhook",
        json!({"url": url, "drop_pending_updates": true}),
    )
    .await;
    assert_eq!(body["description"], "Webhook was set");
    assert_eq!(sandbox.pending(TOKEN), 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn offsets_confirm_what_is_pending_and_survive_an_update_id_restart() {
    let sandbox = sandbox().await;
    let a = sandbox.inject_message(TOKEN, 42, "Ann", "a");
    let b = sandbox.inject_message(TOKEN, 42, "Ann", "b");
    let texts = |body: &Value| -> Vec<String> {
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["message"]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    // No offset, or 0: everything from the oldest, nothing confirmed.
    for params in [json!({}), json!({"offset": 0})] {
        let (_, body) = call(&sandbox, "getUpdates", params).await;
        assert_eq!(texts(&body), ["a", "b"]);
    }
    // Offset N confirms what is below N and answers from N.
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": b})).await;
    assert_eq!(texts(&body), ["b"]);
    assert_eq!(sandbox.pending(TOKEN), 1);
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": b + 1})).await;
    assert_eq!(texts(&body), Vec::<String>::new());
    assert_eq!(sandbox.pending(TOKEN), 0);
    assert!(a < b);

    // A week without updates: Telegram picks the next id at random, here far lower.
    sandbox.inject_message(TOKEN, 42, "Ann", "expires unread");
    sandbox.restart_update_ids(TOKEN, 500);
    assert_eq!(sandbox.pending(TOKEN), 0, "older updates expired meanwhile");
    let c = sandbox.inject_message(TOKEN, 42, "Ann", "c");
    assert_eq!(c, 500);
    // The client's offset (b + 1) is now far ahead of the queue: the server ignores it and
    // answers from the oldest update, confirming nothing.
    for _ in 0..2 {
        let (_, body) = call(&sandbox, "getUpdates", json!({"offset": b + 1})).await;
        assert_eq!(texts(&body), ["c"]);
        assert_eq!(body["result"][0]["update_id"], 500);
    }
    assert_eq!(sandbox.pending(TOKEN), 1);
    // From here the client counts from the new ids.
    let d = sandbox.inject_message(TOKEN, 42, "Ann", "d");
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": c + 1})).await;
    assert_eq!(texts(&body), ["d"]);
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": d + 1})).await;
    assert_eq!(texts(&body), Vec::<String>::new());
    assert_eq!(sandbox.pending(TOKEN), 0);
    // An offset up to 10 past the next id is still taken at its word.
    sandbox.inject_message(TOKEN, 42, "Ann", "e");
    let (_, body) = call(&sandbox, "getUpdates", json!({"offset": d + 10})).await;
    assert_eq!(texts(&body), Vec::<String>::new());
    assert_eq!(sandbox.pending(TOKEN), 0);

    // A long poll with the old offset gets the first update of a restart.
    sandbox.restart_update_ids(TOKEN, 7);
    let poll = tokio::spawn({
        let sandbox = sandbox.clone();
        async move {
            call(
                &sandbox,
                "getUpdates",
                json!({"offset": d + 12, "timeout": 10}),
            )
            .await
        }
    });
    eventually("the poll started", || {
        sandbox.calls(TOKEN, "getupdates") == 10
    })
    .await;
    sandbox.inject_message(TOKEN, 42, "Ann", "f");
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["update_id"], 7);

    // teloxide parses the lower ids too.
    let updates = teloxide_bot(&sandbox, TOKEN)
        .get_updates()
        .offset((d + 1) as i32)
        .await
        .unwrap();
    assert_eq!(updates[0].id.0, 7);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_and_foreign_paths_answer_404() {
    let sandbox = sandbox().await;
    let url = sandbox.url();
    let not_found = json!({"ok": false, "error_code": 404, "description": "Not Found"});
    let (status, body) = raw_call(&sandbox, "sendPhotoo", json!({"chat_id": 1})).await;
    assert_eq!(
        (status, body.as_str()),
        (
            404,
            r#"{"ok":false,"error_code":404,"description":"Not Found"}"#
        )
    );
    for method in ["setWebhooks", "getUpdate", "", "webhook"] {
        assert_eq!(
            call(&sandbox, method, json!({})).await,
            (404, not_found.clone()),
            "{method}"
        );
    }
    for path in [
        format!("/api/bot{TOKEN}/getMe"),
        format!("/v1/bot{TOKEN}/getMe"),
        format!("/bot{TOKEN}/getMe/"),
        format!("/bot{TOKEN}"),
        format!("/bot{TOKEN}/test/getMe"),
        format!("/Bot{TOKEN}/getMe"),
        format!("/sandbox/bot{TOKEN}/nothing"),
    ] {
        let response = client()
            .post(format!("{url}{path}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), not_found, "{path}");
    }
    // Unknown methods are not counted; an unknown token is refused before the method is looked at.
    assert_eq!(sandbox.calls(TOKEN, "sendPhotoo"), 0);
    let response = client()
        .post(format!("{url}/bot42:nobody/noSuchMethod"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The method names are case-insensitive, setWebhook included.
    let (status, _) = call(&sandbox, "SETWEBHOOK", json!({"url": ""})).await;
    assert_eq!(status, 200);
    sandbox.shutdown().await;
}
