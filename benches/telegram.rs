//! Runtime benchmark: `cargo bench --bench telegram`. N Telegram bots (default 1,000;
//! BENCH_BOTS overrides) in one process against the local sandbox, run by flametree's
//! runtime and, in the same run, by bare teloxide echo bots — so flametree's overhead
//! (ledger, cursor, status, logs in SQLite) shows as a ratio over the plain library.

use flametree::channels::Channels;
use flametree::model::{DesiredState, EnvVar, NewConnection, Status};
use flametree::permission::{Operator, Role};
use flametree::runtime::Runtime;
use flametree::sandbox::telegram::TelegramSandbox;
use flametree::secrets::{KeySource, MasterKey, SecretString};
use flametree::store::AuditNote;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use teloxide::prelude::*;

const MESSAGES_PER_BOT: usize = 5;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn token(prefix: u64, i: usize) -> String {
    format!(
        "{}:AAEbenchTokenForBotNumber{i:08}xxxxxxxxxx",
        prefix + i as u64
    )
}

struct Figures {
    start: Duration,
    throughput: f64,
    p50: Duration,
    p99: Duration,
    rss_delta: f64,
}

/// Sends MESSAGES_PER_BOT messages to every bot at once and times each reply.
async fn load(sandbox: &TelegramSandbox, tokens: &[String]) -> (f64, Duration, Duration) {
    let mut injected: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for k in 0..MESSAGES_PER_BOT {
        for (i, t) in tokens.iter().enumerate() {
            let text = format!("m{i}-{k}");
            injected.insert(format!("You said: {text}"), Instant::now());
            sandbox.inject_message(t, 1_000_000 + i as i64, "Ann", &text);
        }
    }
    let total = tokens.len() * MESSAGES_PER_BOT;
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("BENCH_DEADLINE_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(600),
        );
    loop {
        let done: usize = tokens.iter().map(|t| sandbox.sent(t).len()).sum();
        if done >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(total);
    let mut last = started;
    for t in tokens {
        for (m, at) in sandbox.sent_with_times(t) {
            if let Some(sent) = injected.get(&m.text) {
                latencies.push(at.duration_since(*sent));
                last = last.max(at);
            }
        }
    }
    if latencies.len() != total {
        eprintln!("only {} of {total} messages answered", latencies.len());
        return (0.0, Duration::ZERO, Duration::ZERO);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let throughput = total as f64 / last.duration_since(started).as_secs_f64();
    (throughput, p(0.5), p(0.99))
}

async fn flametree_bots(sandbox: &TelegramSandbox, n: usize) -> Figures {
    let tokens: Vec<String> = (0..n).map(|i| token(8_000_000_000, i)).collect();
    for (i, t) in tokens.iter().enumerate() {
        sandbox.add_bot(t, &format!("ft_bot_{i}"));
    }
    flametree::runtime::logs::install_layer();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = flametree::store::open(&url, 5, 8).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let key = MasterKey::from_bytes([7; 32], KeySource::Config);
    let note = AuditNote::new("bench", "create", "");
    for (i, t) in tokens.iter().enumerate() {
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert(
            "bot_token".to_string(),
            key.seal("bot_token", &SecretString::new(t.as_str()), 1),
        );
        let c = store
            .insert_connection(
                &NewConnection {
                    tenant_id: tenant.id,
                    type_key: "telegram".into(),
                    name: format!("Bot {i:04}"),
                    description: String::new(),
                    fields: Default::default(),
                    secrets,
                    env: vec![
                        EnvVar {
                            name: "TELEGRAM_API_URL".into(),
                            value: sandbox.url(),
                        },
                        EnvVar {
                            name: "TELEGRAM_POLL_TIMEOUT".into(),
                            value: "10".into(),
                        },
                    ],
                },
                &note,
            )
            .await
            .unwrap();
        store
            .set_desired_state(c.id, DesiredState::Running, &note)
            .await
            .unwrap();
    }
    let op = Operator {
        name: "bench".into(),
        role: Role::Editor,
        role_reason: "bench".into(),
    };
    let channels = Arc::new(Channels::new(
        store.clone(),
        tenant.clone(),
        op,
        Ok(Arc::new(key)),
    ));
    let echo = channels
        .create_agent(
            "Echo",
            flametree::agents::service::AgentEdit {
                responder: Some(flametree::agents::ResponderConfig::Rules(
                    flametree::agents::Rules {
                        greeting: String::new(),
                        rules: Vec::new(),
                        fallback: "You said: {text}".into(),
                    },
                )),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for c in store.list_connections(tenant.id).await.unwrap() {
        channels.attach_connection(&echo, &c, true).await.unwrap();
    }
    channels.run_agent(&echo, true).await.unwrap();
    let rss_before = rss_mib();
    eprintln!("  connections and agent ready; starting the runtime");
    let t0 = Instant::now();
    let runtime = Runtime::launch(channels, 1000);
    loop {
        let all = store.list_connections(tenant.id).await.unwrap();
        if all.iter().filter(|c| c.status == Status::Running).count() == n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "bots did not all start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = t0.elapsed();
    eprintln!("  all RUNNING in {start:?}; sending messages");
    let (throughput, p50, p99) = load(sandbox, &tokens).await;
    let rss_delta = rss_mib() - rss_before;
    if throughput == 0.0 {
        let c = &store.list_connections(tenant.id).await.unwrap()[0];
        for l in store.recent_logs(c.id, 30).await.unwrap() {
            eprintln!("    {} {}", l.level, l.message);
        }
    }
    eprintln!("  done; shutting down");
    runtime.shutdown().await;
    Figures {
        start,
        throughput,
        p50,
        p99,
        rss_delta,
    }
}

async fn bare_teloxide_bots(sandbox: &TelegramSandbox, n: usize) -> Figures {
    let tokens: Vec<String> = (0..n).map(|i| token(9_000_000_000, i)).collect();
    for (i, t) in tokens.iter().enumerate() {
        sandbox.add_bot(t, &format!("tx_bot_{i}"));
    }
    let api = reqwest::Url::parse(&sandbox.url()).unwrap();
    let client = teloxide::net::default_reqwest_settings().build().unwrap();
    let rss_before = rss_mib();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    let mut shutdowns = Vec::new();
    for t in &tokens {
        let bot = Bot::with_client(t, client.clone()).set_api_url(api.clone());
        let handler = Update::filter_message().endpoint(|bot: Bot, msg: Message| async move {
            if let Some(text) = msg.text() {
                bot.send_message(msg.chat.id, format!("You said: {text}"))
                    .await?;
            }
            respond(())
        });
        let listener = teloxide::update_listeners::Polling::builder(bot.clone())
            .timeout(Duration::from_secs(10))
            .build();
        let mut dispatcher = Dispatcher::builder(bot, handler).build();
        shutdowns.push(dispatcher.shutdown_token());
        handles.push(tokio::spawn(async move {
            dispatcher
                .dispatch_with_listener(listener, LoggingErrorHandler::new())
                .await;
        }));
    }
    loop {
        if tokens.iter().all(|t| sandbox.calls(t, "getupdates") > 0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "bots did not all start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = t0.elapsed();
    let (throughput, p50, p99) = load(sandbox, &tokens).await;
    let rss_delta = rss_mib() - rss_before;
    // All at once: each dispatcher waits for its long poll to end.
    let stops: Vec<_> = shutdowns
        .into_iter()
        .map(|s| async move {
            if let Ok(f) = s.shutdown() {
                f.await;
            }
        })
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(stops)).await;
    for h in handles {
        h.abort();
    }
    Figures {
        start,
        throughput,
        p50,
        p99,
        rss_delta,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_BOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sandbox = TelegramSandbox::start().await.unwrap();
    eprintln!("bare teloxide: {n} bots…");
    let bare = bare_teloxide_bots(&sandbox, n).await;
    eprintln!("flametree runtime: {n} bots…");
    let ft = flametree_bots(&sandbox, n).await;
    println!();
    println!(
        "| {n} Telegram bots, {} messages each, one process, local sandbox | flametree runtime | bare teloxide echo | ratio |",
        MESSAGES_PER_BOT
    );
    println!("|---|---|---|---|");
    println!(
        "| time to start all (RUNNING / first getUpdates) | {} | {} | {:.1}× |",
        ms(ft.start),
        ms(bare.start),
        ft.start.as_secs_f64() / bare.start.as_secs_f64()
    );
    println!(
        "| messages per second, inbound to reply | {:.0} | {:.0} | {:.2}× |",
        ft.throughput,
        bare.throughput,
        ft.throughput / bare.throughput
    );
    println!(
        "| latency p50 | {} | {} | {:.1}× |",
        ms(ft.p50),
        ms(bare.p50),
        ft.p50.as_secs_f64() / bare.p50.as_secs_f64()
    );
    println!(
        "| latency p99 | {} | {} | {:.1}× |",
        ms(ft.p99),
        ms(bare.p99),
        ft.p99.as_secs_f64() / bare.p99.as_secs_f64()
    );
    println!(
        "| memory (RSS growth while running) | {:.0} MiB | {:.0} MiB | {:.1}× |",
        ft.rss_delta,
        bare.rss_delta,
        ft.rss_delta / bare.rss_delta.max(1.0)
    );
}
