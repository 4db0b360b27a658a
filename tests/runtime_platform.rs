//! The runtime platform: the inbound pipeline, the webhook ingress, Telegram webhook
//! mode, and the lifecycle rules every connector gets — on SQLite and PostgreSQL.

mod common;

use common::{Be, KEY_B64};
use flametree::channels::Draft;
use flametree::config::Http;
use flametree::connectors::{
    ConnConfig, Connector, ConnectorError, Delivery, Event, Inbound, Outbound, Receiver,
};
use flametree::http::Ingress;
use flametree::model::{Connection, DesiredState, EnvVar, Status};
use flametree::runtime::pipeline::{describe_event, record};
use flametree::runtime::{Options, Pipeline, Runtime};
use flametree::sandbox::telegram::TelegramSandbox;
use flametree::store::{LedgerState, WriteOp};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN_A: &str = "7000000001:AAEplatformTestTokenAlphaValue000001";
const TOKEN_B: &str = "7000000002:AAEplatformTestTokenBravoValue000002";

type Env = common::ChannelsEnv;

/// A process's channel machinery on the test's database: pipeline, ingress, runtime.
struct Host {
    ingress: Ingress,
    runtime: Option<Runtime>,
}

fn http(max_body: usize) -> Http {
    Http {
        listen: "127.0.0.1:0".into(),
        public_url: String::new(),
        max_body_bytes: max_body,
    }
}

async fn host_with(env: &Env, options: Options, run_channels: bool, max_body: usize) -> Host {
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    let ingress = Ingress::start(pipe.clone(), "127.0.0.1:0", &http(max_body))
        .await
        .unwrap();
    let runtime = run_channels.then(|| {
        Runtime::start(
            pipe.clone(),
            Options {
                public_base: ingress.public_base.clone(),
                ..options
            },
        )
    });
    Host { ingress, runtime }
}

async fn host(env: &Env) -> Host {
    host_with(env, Options::default(), true, 1 << 20).await
}

impl Host {
    async fn shutdown(&self) {
        if let Some(r) = &self.runtime {
            r.shutdown().await;
        }
        self.ingress.shutdown().await;
    }

    fn hook_url(&self, c: &Connection) -> String {
        flametree::runtime::webhook_url(&self.ingress.public_base, &c.hook_id)
    }
}

/// The echo agent, started.
async fn echo_agent(env: &Env) -> flametree::model::Agent {
    let a = common::runtime::echo_agent(env).await;
    env.channels.run_agent(&a, true).await.unwrap()
}

/// A Telegram bot answered by the echo agent; `env` adds variables.
async fn add_bot(
    env: &Env,
    name: &str,
    token: &str,
    api: &str,
    vars: &[(&str, &str)],
) -> Connection {
    let mut draft = common::telegram_draft(name, token, api);
    for (k, v) in vars {
        draft.env.push(EnvVar {
            name: (*k).into(),
            value: (*v).into(),
        });
    }
    let c = env.channels.add(&draft).await.unwrap().connection;
    let echo = echo_agent(env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    // Attachments apply when the agent restarts.
    let echo = env.channels.run_agent(&echo, false).await.unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    env.channels.find(name).await.unwrap()
}

async fn set(env: &Env, name: &str, desired: DesiredState) {
    let c = env.channels.find(name).await.unwrap();
    env.channels.set_desired(&c, desired).await.unwrap();
}

/// Waits (bounded) until the connection satisfies `ok`.
async fn wait_for(
    env: &Env,
    name: &str,
    what: &str,
    ok: impl Fn(&Connection) -> bool,
) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = env.channels.find(name).await.unwrap();
        if ok(&c) {
            return c;
        }
        if Instant::now() > deadline {
            let lines = env.channels.store().recent_logs(c.id, 100).await.unwrap();
            let log: Vec<String> = lines
                .iter()
                .map(|l| format!("{} {}", l.level, l.message))
                .collect();
            panic!(
                "'{name}' never became {what}: {} {:?} '{}'\n{}",
                c.status,
                c.desired,
                c.status_message,
                log.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_status(env: &Env, name: &str, status: Status) -> Connection {
    wait_for(env, name, status.as_str(), |c| c.status == status).await
}

fn update(update_id: i64, chat: i64, message_id: i64, text: &str) -> serde_json::Value {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private", "first_name": "Ann"},
            "from": {"id": chat, "is_bot": false, "first_name": "Ann"},
            "text": text
        }
    })
}

async fn post(url: &str, secret: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = secret {
        req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
    }
    req.send().await.unwrap()
}

/// A bot in webhook mode, RUNNING, with Telegram's webhook pointing at the ingress.
async fn webhook_bot(be: Be) -> (TelegramSandbox, Env, Host, Connection) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(
        &env,
        "Alpha",
        TOKEN_A,
        &sandbox.url(),
        &[("TELEGRAM_MODE", "webhook")],
    )
    .await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let c = wait_status(&env, "Alpha", Status::Running).await;
    (sandbox, env, host, c)
}

async fn webhook_mode_registers_answers_through_the_ingress_and_removes_the_webhook_on_stop(
    be: Be,
) {
    let (sandbox, env, host, c) = webhook_bot(be).await;
    assert_eq!(sandbox.webhook_url(TOKEN_A), host.hook_url(&c));
    assert!(
        c.status_message.contains("webhook for @alpha_bot"),
        "{}",
        c.status_message
    );
    let secret = sandbox
        .webhook_secret(TOKEN_A)
        .expect("a secret_token was set");
    assert!(secret.len() >= 32, "an unguessable secret");

    sandbox.inject_message(TOKEN_A, 42, "Ann", "hello by webhook");
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "You said: hello by webhook");
    // The reply can go out before the sandbox has recorded the 200 it got back.
    let deliveries = sandbox
        .wait_webhook_deliveries(TOKEN_A, 1, Duration::from_secs(10))
        .await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.secret_token.as_deref() == Some(secret.as_str()))
    );
    assert!(deliveries.iter().any(|d| d.status == Some(200)));
    assert_eq!(
        sandbox.calls(TOKEN_A, "getupdates"),
        0,
        "no polling in webhook mode"
    );

    set(&env, "Alpha", DesiredState::Stopped).await;
    wait_status(&env, "Alpha", Status::Stopped).await;
    assert_eq!(sandbox.webhook_url(TOKEN_A), "", "deleteWebhook on Stop");
    let logs = common::runtime::log_text(&env, "Alpha", "webhook removed").await;
    assert!(
        logs.contains("webhook set: Telegram delivers updates to"),
        "{logs}"
    );
    assert!(logs.contains("webhook removed from Telegram"), "{logs}");
    assert!(
        !logs.contains(&secret),
        "the webhook secret never reaches the log"
    );
    assert!(!logs.contains("AAEplatform"), "{logs}");
    host.shutdown().await;
}

async fn a_redelivered_webhook_is_answered_once(be: Be) {
    let (sandbox, _env, host, c) = webhook_bot(be).await;
    let secret = sandbox.webhook_secret(TOKEN_A).unwrap();
    let url = host.hook_url(&c);
    let body = serde_json::to_vec(&update(900, 77, 5, "once please")).unwrap();
    for _ in 0..3 {
        let r = post(&url, Some(&secret), body.clone()).await;
        assert_eq!(r.status(), 200, "a redelivery is acknowledged too");
    }
    // A later, different message: once it is answered, the first had every chance.
    let later = serde_json::to_vec(&update(901, 77, 6, "and then this")).unwrap();
    assert_eq!(post(&url, Some(&secret), later).await.status(), 200);
    let sent = sandbox.wait_sent(TOKEN_A, 2, Duration::from_secs(10)).await;
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| **t == "You said: once please")
            .count(),
        1,
        "{texts:?}"
    );
    assert!(texts.contains(&"You said: and then this"), "{texts:?}");
    host.shutdown().await;
}

async fn the_ingress_refuses_bad_secrets_unknown_urls_and_oversized_bodies(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(
        &env,
        "Alpha",
        TOKEN_A,
        &sandbox.url(),
        &[("TELEGRAM_MODE", "webhook")],
    )
    .await;
    let host = host_with(&env, Options::default(), true, 2048).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let c = wait_status(&env, "Alpha", Status::Running).await;
    let url = host.hook_url(&c);
    let body = serde_json::to_vec(&update(1, 5, 1, "hi")).unwrap();

    assert_eq!(
        post(&url, Some("not-the-secret"), body.clone())
            .await
            .status(),
        401
    );
    assert_eq!(post(&url, None, body.clone()).await.status(), 401);
    let unknown = format!(
        "{}/hooks/00000000000000000000000000000000",
        host.ingress.public_base
    );
    assert_eq!(post(&unknown, None, body.clone()).await.status(), 404);
    let secret = sandbox.webhook_secret(TOKEN_A).unwrap();
    let big = vec![b' '; 4096];
    assert_eq!(post(&url, Some(&secret), big).await.status(), 413);
    let garbage = b"{not json".to_vec();
    assert_eq!(post(&url, Some(&secret), garbage).await.status(), 400);

    let logs = common::runtime::log_text(&env, "Alpha", "larger than 2048 bytes").await;
    assert!(
        logs.contains("WARN webhook refused (401): a webhook delivery with a wrong"),
        "{logs}"
    );
    assert!(
        logs.contains("WARN webhook refused (401): a webhook delivery without"),
        "{logs}"
    );
    assert!(
        logs.contains("WARN a webhook delivery larger than 2048 bytes was refused (413)"),
        "{logs}"
    );
    assert!(
        sandbox.sent(TOKEN_A).is_empty(),
        "nothing refused was answered"
    );
    host.shutdown().await;
}

async fn any_process_can_receive_a_webhook(be: Be) {
    let (sandbox, env, owner, c) = webhook_bot(be).await;
    // Another process on the same database: an ingress, no channels of its own.
    let other = host_with(&env, Options::default(), false, 1 << 20).await;
    let secret = sandbox.webhook_secret(TOKEN_A).unwrap();
    let url = other.hook_url(&c);
    let body = serde_json::to_vec(&update(77, 88, 9, "via the other door")).unwrap();
    assert_eq!(post(&url, Some(&secret), body).await.status(), 200);
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].chat_id, sent[0].text.as_str()),
        (88, "You said: via the other door")
    );
    other.shutdown().await;
    owner.shutdown().await;
}

/// A burst's messages, more than one statement's worth of payload, each recorded once
/// (a redelivery inside the same batch, in another statement of it, adds no row), every
/// one waiting with its payload intact; a later redelivery adds no row either.
async fn a_large_burst_is_recorded_whole_and_once(be: Be) {
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "Alpha", TOKEN_A, "http://127.0.0.1:9", &[]).await;
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    // ~2 MiB of payloads: several statements.
    let message = |i: usize| {
        Event::Message(Inbound {
            account: String::new(),
            provider_id: format!("7:{i}"),
            customer: "7".into(),
            display_name: "Ann".into(),
            text: format!("message {i}"),
            raw: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "\u{e9}\\\"x".repeat(500)),
        })
    };
    let mut events: Vec<Event> = (0..1000).map(message).collect();
    // The first one again, at the end of the batch.
    events.push(message(0));
    let fresh = record(&pipe.writer, c.id, &mut events, Some("1000".into()), None)
        .await
        .unwrap();
    // The inbox queues a key once (`ConnInbox::dispatch`): that is what answers once.
    let keys: std::collections::HashSet<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys.len(), 1000, "every message is to be answered");
    let waiting = env.channels.store().waiting_inbound(5000).await.unwrap();
    assert_eq!(waiting.len(), 1000);
    let Event::Message(m) = message(999) else {
        unreachable!()
    };
    let kept = waiting.iter().find(|(_, e)| e.key == "7:999").unwrap();
    assert_eq!(kept.1.raw, m.raw, "the payload as it came");
    let again = record(&pipe.writer, c.id, &mut vec![message(500)], None, None)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "still waiting: still to be answered");
    let waiting = env.channels.store().waiting_inbound(5000).await.unwrap();
    assert_eq!(waiting.len(), 1000, "redelivered later: no second row");
}

async fn a_recorded_message_is_answered_once_after_start(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &[]).await;
    // Recorded (by a webhook, or before a crash) while the bot was stopped.
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    let msg = Event::Message(Inbound {
        account: String::new(),
        provider_id: "31:4".into(),
        customer: "31".into(),
        display_name: "Ann".into(),
        text: "waiting since yesterday".into(),
        raw: "{}".into(),
    });
    let fresh = record(&pipe.writer, c.id, &mut vec![msg.clone()], None, None)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    let again = record(&pipe.writer, c.id, &mut vec![msg.clone()], None, None)
        .await
        .unwrap();
    assert_eq!(
        again, fresh,
        "redelivered before an answer: still the one waiting message"
    );

    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(
        (sent[0].chat_id, sent[0].text.as_str()),
        (31, "You said: waiting since yesterday")
    );
    let state = loop {
        let s = env
            .channels
            .store()
            .ledger_state(c.id, "31:4")
            .await
            .unwrap();
        if s == Some(LedgerState::Answered) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(state, Some(LedgerState::Answered));
    let after = record(&pipe.writer, c.id, &mut vec![msg], None, None)
        .await
        .unwrap();
    assert!(
        after.is_empty(),
        "redelivered after the answer: recognised, not answered"
    );
    // The next sweep must not answer it again: a new message is answered alone.
    sandbox.inject_message(TOKEN_A, 31, "Ann", "and now?");
    let sent = sandbox.wait_sent(TOKEN_A, 2, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].text, "You said: and now?");
    host.shutdown().await;
}

async fn delivery_reports_and_echoes_are_logged_never_answered(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &[]).await;
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    pipe.writer
        .write(WriteOp::Outbound(Box::new(flametree::store::SentRecord {
            connection_id: c.id,
            provider_id: "m-17".into(),
            account: String::new(),
            customer: "42".into(),
            in_reply_to: "42:3".into(),
        })))
        .await
        .unwrap();
    let events = vec![
        Event::Delivery(Delivery {
            provider_message_id: "m-17".into(),
            status: "failed".into(),
            failed: true,
            detail: "131047: more than 24 hours have passed".into(),
        }),
        Event::Delivery(Delivery {
            provider_message_id: "m-17".into(),
            status: "read".into(),
            failed: false,
            detail: String::new(),
        }),
        Event::Echo {
            note: "echo of our message m-17".into(),
        },
        Event::Ignored {
            note: "a reaction; not answered".into(),
        },
    ];
    let fresh = record(&pipe.writer, c.id, &mut events.clone(), None, None)
        .await
        .unwrap();
    assert!(fresh.is_empty(), "nothing to answer");
    assert!(
        env.channels
            .store()
            .waiting_inbound(10)
            .await
            .unwrap()
            .is_empty()
    );
    let (level, line) = describe_event(&env.channels, c.id, &events[0])
        .await
        .unwrap();
    assert_eq!(level, "WARN");
    assert!(line.contains("the reply to 42 (answering 42:3)"), "{line}");
    assert!(line.contains("131047: more than 24 hours"), "{line}");
    let (_, unknown) = describe_event(
        &env.channels,
        c.id,
        &Event::Delivery(Delivery {
            provider_message_id: "m-404".into(),
            status: "failed".into(),
            failed: true,
            detail: "gone".into(),
        }),
    )
    .await
    .unwrap();
    assert!(unknown.contains("no record of"), "{unknown}");
    let (_, echo) = describe_event(&env.channels, c.id, &events[2])
        .await
        .unwrap();
    assert!(echo.ends_with("not answered"), "{echo}");
}

async fn an_unreachable_provider_shows_starting_then_error_and_recovers_by_itself(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    let addr: std::net::SocketAddr = sandbox.url().trim_start_matches("http://").parse().unwrap();
    let api = sandbox.url();
    sandbox.shutdown().await;
    let env = common::channels_env_on(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &api, &[]).await;
    let options = Options {
        start_timeout: Duration::from_secs(2),
        ..Options::default()
    };
    let host = host_with(&env, options, true, 1 << 20).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let starting = wait_for(&env, "Alpha", "STARTING with a retry message", |c| {
        c.status == Status::Starting && c.status_message.contains("; retry ")
    })
    .await;
    assert!(
        starting.status_message.starts_with("cannot reach Telegram"),
        "{}",
        starting.status_message
    );
    assert!(
        starting.status_message.len() < 120,
        "short enough for the list: {}",
        starting.status_message
    );
    let error = wait_status(&env, "Alpha", Status::Error).await;
    assert!(
        error.status_message.contains("cannot reach Telegram"),
        "{}",
        error.status_message
    );
    assert!(
        error.status_message.contains("still trying"),
        "{}",
        error.status_message
    );
    assert_eq!(error.desired, DesiredState::Running, "it keeps trying");

    let back = TelegramSandbox::start_on(addr).await.unwrap();
    back.add_bot(TOKEN_A, "alpha_bot");
    let running = wait_status(&env, "Alpha", Status::Running).await;
    assert!(
        running.status_message.contains("@alpha_bot"),
        "{}",
        running.status_message
    );
    host.shutdown().await;
}

async fn stop_is_accepted_while_starting(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    let api = sandbox.url();
    sandbox.shutdown().await;
    let env = common::channels_env_on(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &api, &[]).await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    wait_for(&env, "Alpha", "STARTING and retrying", |c| {
        c.status == Status::Starting && !c.status_message.is_empty()
    })
    .await;
    set(&env, "Alpha", DesiredState::Stopped).await;
    let stopped = wait_status(&env, "Alpha", Status::Stopped).await;
    assert_eq!(stopped.status_message, "");
    host.shutdown().await;
}

struct Panicking(String);

#[async_trait::async_trait]
impl Connector for Panicking {
    async fn verify(&self) -> Result<String, ConnectorError> {
        *PANICS.lock().unwrap().entry(self.0.clone()).or_default() += 1;
        panic!("index out of bounds: the len is 0 but the index is 3");
    }
    async fn receive(&self, _rx: &Receiver) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn send(&self, _out: &Outbound<'_>) -> Result<String, ConnectorError> {
        Ok(String::new())
    }
}

/// Crashes per connection (by webhook path: unique across the tests' databases).
static PANICS: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn open_panicking(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Panicking(cfg.connection.hook_id.clone())))
}

async fn a_panicking_connector_goes_to_error_and_is_not_restarted(be: Be) {
    let env = common::channels_env_on(be).await;
    add_bot(&env, "Alpha", TOKEN_A, "http://127.0.0.1:9", &[]).await;
    let options = Options {
        open: open_panicking,
        ..Options::default()
    };
    let host = host_with(&env, options, true, 1 << 20).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let failed = wait_status(&env, "Alpha", Status::Error).await;
    assert_eq!(
        failed.status_message,
        "the connector crashed: index out of bounds: the len is 0 but the index is 3"
    );
    let failed = wait_for(&env, "Alpha", "desired STOPPED", |c| {
        c.desired == DesiredState::Stopped
    })
    .await;
    assert_eq!(failed.status, Status::Error);
    // Two more supervisor passes: a crash loop would have started it again.
    for _ in 0..2 {
        host.runtime.as_ref().unwrap().wake();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(PANICS.lock().unwrap().get(&c.hook_id), Some(&1));
    host.shutdown().await;
}

async fn deleting_a_running_connection_stops_it_and_spares_the_others(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    sandbox.add_bot(TOKEN_B, "bravo_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &[]).await;
    add_bot(&env, "Bravo", TOKEN_B, &sandbox.url(), &[]).await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    set(&env, "Bravo", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    wait_status(&env, "Bravo", Status::Running).await;

    let bravo = env.channels.find("Bravo").await.unwrap();
    env.channels.delete(&bravo).await.unwrap();
    let runtime = host.runtime.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while runtime.running_here() != 1 {
        assert!(
            Instant::now() < deadline,
            "the deleted connection's task never stopped"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let polls = sandbox.calls(TOKEN_B, "getupdates");
    sandbox.inject_message(TOKEN_A, 5, "Ann", "still there?");
    sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    let logs = common::runtime::log_text(&env, "Alpha", "replied to 5").await;
    assert!(
        logs.contains("replied to 5"),
        "the others' log lines are kept:\n{logs}"
    );
    assert!(
        sandbox.calls(TOKEN_B, "getupdates") <= polls + 1,
        "the deleted bot stopped polling"
    );
    host.shutdown().await;
}

async fn voice_connections_of_a_started_agent_reach_error_with_a_message(be: Be) {
    // A setting the connector cannot run with (a CA file that is not there): the voice
    // connection of a started agent shows ERROR with what to change. (Running ones:
    // tests/voice_twilio.rs, tests/voice_sip.rs.)
    let env = common::channels_env_on(be).await;
    let mut d = Draft {
        type_key: "sip".into(),
        name: "Phone line".into(),
        ..Draft::default()
    };
    d.fields
        .insert("registrar".into(), "sip.example.com".into());
    d.fields.insert("username".into(), "bot".into());
    d.fields.insert("transport".into(), "tls".into());
    d.env.push(flametree::model::EnvVar {
        name: "SIP_TLS_CA_FILE".into(),
        value: "/nonexistent/pbx-ca.pem".into(),
    });
    d.secrets.insert(
        "password".into(),
        flametree::secrets::SecretString::new("sip-password-1"),
    );
    let phone = env.channels.add(&d).await.unwrap().connection;
    let host = host(&env).await;
    let agent = echo_agent(&env).await;
    env.channels
        .attach_connection(&agent, &phone, true)
        .await
        .unwrap();
    let agent = env.channels.run_agent(&agent, false).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let failed = wait_status(&env, "Phone line", Status::Error).await;
    assert!(
        failed
            .status_message
            .contains("SIP_TLS_CA_FILE names the file '/nonexistent/pbx-ca.pem'"),
        "{}",
        failed.status_message
    );
    host.shutdown().await;
}

async fn a_wrong_api_url_names_the_variable(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    let wrong = format!("{}/not-the-bot-api", sandbox.url());
    add_bot(&env, "Alpha", TOKEN_A, &wrong, &[]).await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let failed = wait_status(&env, "Alpha", Status::Error).await;
    assert!(
        failed.status_message.contains("TELEGRAM_API_URL"),
        "{}",
        failed.status_message
    );
    assert_eq!(failed.desired, DesiredState::Stopped, "not retried forever");
    host.shutdown().await;
}

async fn update_ids_going_back_are_followed_without_answering_twice(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &[]).await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    for i in 0..3 {
        sandbox.inject_message(TOKEN_A, 9, "Ann", &format!("before {i}"));
    }
    sandbox.wait_sent(TOKEN_A, 3, Duration::from_secs(10)).await;
    // A quiet week later Telegram restarts its ids below the stored offset.
    sandbox.restart_update_ids(TOKEN_A, 1);
    sandbox.inject_message(TOKEN_A, 9, "Ann", "after the reset");
    let sent = sandbox.wait_sent(TOKEN_A, 4, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].text, "You said: after the reset");
    sandbox.inject_message(TOKEN_A, 9, "Ann", "and the next");
    let sent = sandbox.wait_sent(TOKEN_A, 5, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 5, "each answered once");
    let logs = common::runtime::log_text(&env, "Alpha", "update ids went back").await;
    assert!(logs.contains("update ids went back"), "{logs}");
    host.shutdown().await;
}

async fn send_goes_through_the_connector_and_keeps_the_provider_id(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &[]).await;
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    let out = cli.json(&[
        "send",
        "--connection",
        "Alpha",
        "--to",
        "55",
        "--text",
        "Hello",
    ]);
    let id = out["message_id"]
        .as_str()
        .expect("the provider's id")
        .to_string();
    assert_eq!(sandbox.sent(TOKEN_A)[0].text, "Hello");
    let rec = env.channels.store().outbound(c.id, &id).await.unwrap();
    assert_eq!(rec.map(|r| r.customer), Some("55".to_string()));
}

async fn allowed_updates_are_honoured_and_checked(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = common::channels_env_on(be).await;
    let vars = [("TELEGRAM_ALLOWED_UPDATES", "message, edited_message")];
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url(), &vars).await;
    add_bot(
        &env,
        "Typo",
        TOKEN_B,
        &sandbox.url(),
        &[("TELEGRAM_ALLOWED_UPDATES", "mesage")],
    )
    .await;
    let host = host(&env).await;
    set(&env, "Alpha", DesiredState::Running).await;
    set(&env, "Typo", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    let info_url = format!("{}/bot{TOKEN_A}/getWebhookInfo", sandbox.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    let allowed = loop {
        let info: serde_json::Value = reqwest::get(&info_url).await.unwrap().json().await.unwrap();
        let allowed = info["result"]["allowed_updates"].clone();
        if !allowed.is_null() || Instant::now() > deadline {
            break allowed;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(allowed, serde_json::json!(["message", "edited_message"]));
    let typo = wait_status(&env, "Typo", Status::Error).await;
    assert!(
        typo.status_message.contains("'mesage'"),
        "{}",
        typo.status_message
    );
    host.shutdown().await;
}

/// A burst's first messages look up their connections' agents together (one lookup for
/// many): each message is still answered by its own connection's agent, and one on a
/// connection without an agent is kept with the reason, on both backends.
async fn agents_looked_up_together_answer_each_its_own_connection(be: Be) {
    const TOKEN_C: &str = "7000000003:AAEplatformTestTokenCharlieValue0003";
    let sandbox = TelegramSandbox::start().await.unwrap();
    for (t, n) in [
        (TOKEN_A, "alpha_bot"),
        (TOKEN_B, "bravo_bot"),
        (TOKEN_C, "charlie_bot"),
    ] {
        sandbox.add_bot(t, n);
    }
    let env = common::channels_env_on(be).await;
    let mut ids = Vec::new();
    for (name, token, prefix) in [
        ("Alpha", TOKEN_A, Some("Alpha agent: ")),
        ("Bravo", TOKEN_B, Some("Bravo agent: ")),
        ("Charlie", TOKEN_C, None),
    ] {
        let draft = common::telegram_draft(name, token, &sandbox.url());
        let c = env.channels.add(&draft).await.unwrap().connection;
        if let Some(prefix) = prefix {
            let a = env
                .channels
                .create_agent(&format!("{name} agent"), common::runtime::echo_edit(prefix))
                .await
                .unwrap();
            env.channels.attach_connection(&a, &c, true).await.unwrap();
            env.channels.run_agent(&a, true).await.unwrap();
        }
        ids.push(c.id);
        set(&env, name, DesiredState::Running).await;
    }
    let store = env.channels.store();
    let together = store.connection_agents_many(&ids).await.unwrap();
    assert_eq!(together.len(), 3, "every connection asked for has an entry");
    for id in &ids {
        let alone = store.connection_agents(*id).await.unwrap();
        let names = |l: &[(flametree::model::Agent, flametree::model::AgentChannel)]| {
            l.iter()
                .map(|(a, ch)| (a.name.clone(), ch.connection_id, ch.applied_inbound))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&together[id]), names(&alone), "connection {id}");
    }
    // Asked for at once, answered by shared lookups: each gets its own connection's.
    let loader = flametree::agents::routing::RouteLoader::start(env.channels.clone());
    let asks: Vec<i64> = ids.iter().cycle().take(30).copied().collect();
    let answers = futures::future::join_all(asks.iter().map(|id| loader.agents_of(*id))).await;
    for (id, got) in asks.iter().zip(answers) {
        let got: Vec<String> = got.unwrap().into_iter().map(|(a, _)| a.name).collect();
        let want = match ids.iter().position(|x| x == id) {
            Some(0) => vec!["Alpha agent".to_string()],
            Some(1) => vec!["Bravo agent".to_string()],
            _ => Vec::new(),
        };
        assert_eq!(got, want, "connection {id}");
    }

    let h = host(&env).await;
    for name in ["Alpha", "Bravo", "Charlie"] {
        wait_status(&env, name, Status::Running).await;
    }
    for (t, k) in [(TOKEN_A, 1), (TOKEN_B, 2), (TOKEN_C, 3)] {
        for i in 0..3 {
            sandbox.inject_message(t, 600 + k, "Ann", &format!("hello {k}.{i}"));
        }
    }
    let alpha = sandbox.wait_sent(TOKEN_A, 3, Duration::from_secs(20)).await;
    let bravo = sandbox.wait_sent(TOKEN_B, 3, Duration::from_secs(20)).await;
    let mut a: Vec<String> = alpha.iter().map(|m| m.text.clone()).collect();
    let mut b: Vec<String> = bravo.iter().map(|m| m.text.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(
        a,
        [
            "Alpha agent: hello 1.0",
            "Alpha agent: hello 1.1",
            "Alpha agent: hello 1.2"
        ]
    );
    assert_eq!(
        b,
        [
            "Bravo agent: hello 2.0",
            "Bravo agent: hello 2.1",
            "Bravo agent: hello 2.2"
        ]
    );
    let log = common::runtime::log_text(&env, "Charlie", "attached to no agent").await;
    assert!(log.contains("attached to no agent"), "{log}");
    assert!(
        sandbox.sent(TOKEN_C).is_empty(),
        "nobody answers Charlie's customers"
    );
    h.shutdown().await;
}

on_both!(
    agents_looked_up_together_answer_each_its_own_connection,
    allowed_updates_are_honoured_and_checked,
    webhook_mode_registers_answers_through_the_ingress_and_removes_the_webhook_on_stop,
    a_redelivered_webhook_is_answered_once,
    the_ingress_refuses_bad_secrets_unknown_urls_and_oversized_bodies,
    any_process_can_receive_a_webhook,
    a_recorded_message_is_answered_once_after_start,
    a_large_burst_is_recorded_whole_and_once,
    delivery_reports_and_echoes_are_logged_never_answered,
    an_unreachable_provider_shows_starting_then_error_and_recovers_by_itself,
    stop_is_accepted_while_starting,
    a_panicking_connector_goes_to_error_and_is_not_restarted,
    deleting_a_running_connection_stops_it_and_spares_the_others,
    voice_connections_of_a_started_agent_reach_error_with_a_message,
    a_wrong_api_url_names_the_variable,
    update_ids_going_back_are_followed_without_answering_twice,
    send_goes_through_the_connector_and_keeps_the_provider_id,
);
