//! The measured process: N bots run by flametree's runtime or as bare teloxide echo
//! bots, against the sandbox the parent runs. It speaks a line protocol with the parent:
//! it prints `launch <stat>` just before the bots start and `running` once all run,
//! then answers `stat` on stdin with
//! `stat <cpu ticks> <rss KiB> <peak KiB> <anon KiB> <file KiB> <dropped>`
//! (its own /proc/self readings) and ends on `stop`.

use crate::util::{ProcStat, env_or, token};
use flametree::channels::Channels;
use flametree::model::{DesiredState, EnvVar, NewConnection, Status};
use flametree::permission::{Operator, Role};
use flametree::runtime::Runtime;
use flametree::secrets::{KeySource, MasterKey, SecretString};
use flametree::store::AuditNote;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use teloxide::prelude::*;
use tokio::io::AsyncBufReadExt;

/// Environment the parent passes to the child.
pub const ROLE: &str = "BENCH_CHILD";
pub const SANDBOX_URL: &str = "BENCH_SANDBOX_URL";
pub const TOKEN_BASE: &str = "BENCH_TOKEN_BASE";
pub const COUNT: &str = "BENCH_CHILD_BOTS";
pub const POLL: &str = "BENCH_POLL_TIMEOUT";
/// A PostgreSQL URL; SQLite in a temporary directory without it.
pub const DB_URL: &str = "BENCH_CHILD_DB";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Answers `stat` until `stop` (or the parent goes away). `extra` prints what only
/// one kind of child knows (to stderr).
async fn serve(dropped: impl Fn() -> u64, extra: impl Fn()) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(cmd)) = lines.next_line().await {
        match cmd.trim() {
            "stat" => {
                sqlite_memory();
                extra();
                say(&format!(
                    "stat {} {}",
                    ProcStat::read_self().to_line(),
                    dropped()
                ))
            }
            "stop" => break,
            _ => {}
        }
    }
}

/// SQLite's own allocations (page caches, statements), with BENCH_SQLITE_MEMORY=1: how
/// much of the process's memory is the database engine's.
fn sqlite_memory() {
    if env_or("BENCH_SQLITE_MEMORY", 0) != 1 {
        return;
    }
    // SAFETY: both only read SQLite's global memory counters.
    let (now, most) = unsafe {
        (
            libsqlite3_sys::sqlite3_memory_used(),
            libsqlite3_sys::sqlite3_memory_highwater(0),
        )
    };
    eprintln!(
        "  SQLite's own memory: {} KiB now, {} KiB at most",
        now / 1024,
        most / 1024
    );
}

pub async fn main(role: &str) {
    let url = std::env::var(SANDBOX_URL).expect("BENCH_SANDBOX_URL");
    let base: u64 = env_or(TOKEN_BASE, 8_000_000_000);
    let n: usize = env_or(COUNT, 1000);
    let poll: u64 = env_or(POLL, 10);
    let tokens: Vec<String> = (0..n).map(|i| token(base, i)).collect();
    match role {
        "bare" => bare(&url, &tokens, poll).await,
        "flametree" => flametree(&url, &tokens, poll, std::env::var(DB_URL).ok()).await,
        other => panic!("unknown BENCH_CHILD {other}"),
    }
}

async fn bare(url: &str, tokens: &[String], poll: u64) {
    let api = reqwest::Url::parse(url).unwrap();
    let client = teloxide::net::default_reqwest_settings().build().unwrap();
    say(&format!("launch {}", ProcStat::read_self().to_line()));
    let mut handles = Vec::new();
    let mut shutdowns = Vec::new();
    for t in tokens {
        let bot = Bot::with_client(t, client.clone()).set_api_url(api.clone());
        let handler = Update::filter_message().endpoint(|bot: Bot, msg: Message| async move {
            if let Some(text) = msg.text() {
                bot.send_message(msg.chat.id, format!("You said: {text}"))
                    .await?;
            }
            respond(())
        });
        let listener = teloxide::update_listeners::Polling::builder(bot.clone())
            .timeout(Duration::from_secs(poll))
            .build();
        let mut dispatcher = Dispatcher::builder(bot, handler).build();
        shutdowns.push(dispatcher.shutdown_token());
        handles.push(tokio::spawn(async move {
            dispatcher
                .dispatch_with_listener(listener, LoggingErrorHandler::new())
                .await;
        }));
    }
    // The parent sees the first getUpdates of each bot in the sandbox.
    say("running");
    serve(|| 0, || {}).await;
    // All at once: each dispatcher waits for its long poll to end.
    let stops: Vec<_> = shutdowns
        .into_iter()
        .map(|s| async move {
            if let Ok(f) = s.shutdown() {
                f.await;
            }
        })
        .collect();
    let _ = tokio::time::timeout(
        Duration::from_secs(poll + 10),
        futures::future::join_all(stops),
    )
    .await;
    for h in handles {
        h.abort();
    }
    say("stopped");
}

async fn flametree(url: &str, tokens: &[String], poll: u64, db: Option<String>) {
    flametree::runtime::logs::install_layer();
    let dir = tempfile::tempdir().unwrap();
    let db = db.unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let store = flametree::store::open(&db, 5, env_or("BENCH_DB_POOL", 8))
        .await
        .unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let key = MasterKey::from_bytes([7; 32], KeySource::Config);
    let note = AuditNote::new("bench", "create", "");
    let op = Operator {
        name: "bench".into(),
        role: Role::Editor,
        role_reason: "bench".into(),
    };
    let sealed: Vec<_> = tokens
        .iter()
        .map(|t| key.seal("bot_token", &SecretString::new(t.as_str()), 1))
        .collect();
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
    for (i, secret) in sealed.into_iter().enumerate() {
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert("bot_token".to_string(), secret);
        let c = store
            .insert_connection(
                &NewConnection {
                    tenant_id: tenant.id,
                    type_key: "telegram".into(),
                    name: format!("Bot {i:05}"),
                    description: String::new(),
                    fields: Default::default(),
                    secrets,
                    env: vec![
                        EnvVar {
                            name: "TELEGRAM_API_URL".into(),
                            value: url.to_string(),
                        },
                        EnvVar {
                            name: "TELEGRAM_POLL_TIMEOUT".into(),
                            value: poll.to_string(),
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
        channels.attach_connection(&echo, &c, true).await.unwrap();
    }
    channels.run_agent(&echo, true).await.unwrap();
    sqlite_memory();
    say(&format!("launch {}", ProcStat::read_self().to_line()));
    let t0 = Instant::now();
    // As `serve` runs it: on PostgreSQL it is told of changes by the feed (without it,
    // the runtime asks for the connections' change marker every second instead, and
    // keeps routes for a second: BENCH_NO_FEED=1, for comparison).
    let feed = match env_or("BENCH_NO_FEED", 0) {
        1 => None,
        _ => flametree::store::feed::ChangeFeed::start(&db).await,
    };
    let options = flametree::runtime::Options {
        feed,
        ..Default::default()
    };
    let runtime = Runtime::start(flametree::runtime::Pipeline::start(channels, 1000), options);
    let every = Duration::from_millis(if tokens.len() > 2000 { 500 } else { 50 });
    loop {
        let all = store.list_connections(tenant.id).await.unwrap();
        let running = all.iter().filter(|c| c.status == Status::Running).count();
        if running == tokens.len() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "only {running} of {} bots are RUNNING after 600 s",
            tokens.len()
        );
        tokio::time::sleep(every).await;
    }
    say("running");
    let pipe = runtime.pipeline();
    let stalls = crate::util::watch_stalls("flametree's");
    let extra = || {
        let (slow, slowest, at) = pipe.writer.slow_commits().read();
        eprintln!(
            "  commits of 250 ms or more: {slow} (slowest {slowest} ms, ended at {:.3})",
            at as f64 / 1000.0
        );
        if let Some(stalls) = &stalls {
            let (n, longest) = *stalls.lock().unwrap();
            eprintln!("  runtime stalls of 50 ms or more: {n} (longest {longest} ms)");
        }
    };
    serve(|| pipe.writer.dropped(), extra).await;
    runtime.shutdown().await;
    say("stopped");
}
