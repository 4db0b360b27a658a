//! Web Widget benchmark: `cargo bench --bench widget`. A `flametree serve` process (its
//! own memory and CPU time) runs an agent whose widget the load generator, in this
//! process, visits with BENCH_VISITORS (1,000) WebSocket clients at once; each sends
//! BENCH_MESSAGES (5) messages at once, answered by the echo agent through the ledger.
//! Reported per backend: the time to open every chat, the serve process's memory per
//! open chat (RSS with all open, less RSS before), messages answered per second,
//! reply latency (a message sent → its reply received) and the CPU time serve used.
//! BENCH_BACKENDS (`sqlite,postgres`) picks the rows; PostgreSQL is skipped when none
//! answers.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ORIGIN: &str = "http://bench.example.test";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let n = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(11) + n(12)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(env: &common::ChannelsEnv, port: u16) -> Child {
    let dir = env.dir.path();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_flametree"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("FLAMETREE_GENERAL_DATA_DIR", dir)
        .env("FLAMETREE_DATABASE_URL", &env.url)
        .env("FLAMETREE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
        .env("FLAMETREE_ACCESS_OPERATOR", "bench")
        // Every visitor comes from 127.0.0.1 here.
        .env("FLAMETREE_WIDGET_CONNECTIONS_PER_IP", "1000000")
        .env("FLAMETREE_WIDGET_MESSAGES_PER_IP_PER_MINUTE", "100000000")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("flametree serve starts")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(chat: &str, visitor: usize) -> Socket {
    let mut req = format!("{chat}?visitor=bench-visitor-{visitor:06}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("Origin", ORIGIN.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the chat opens");
    // The first frame says whether the widget is online.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"status\"") => {
                assert!(
                    t.as_str().contains("\"online\":true"),
                    "the widget is offline: {t}"
                );
                return ws;
            }
            Some(Ok(_)) => {}
            other => panic!("the chat closed before its status: {other:?}"),
        }
    }
}

/// Sends `n` messages at once and waits for their replies; the latency of each.
async fn converse(ws: Socket, n: usize, start: Instant) -> Vec<Duration> {
    let (mut tx, mut rx) = ws.split();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let begin = start.max(Instant::now());
    tokio::time::sleep_until(begin.into()).await;
    for i in 0..n {
        let id = format!("m{i}");
        let frame = serde_json::json!({"t": "msg", "id": id, "text": format!("question {i}")});
        sent.insert(id, Instant::now());
        tx.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    let mut took = Vec::with_capacity(n);
    while took.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(120), rx.next())
            .await
            .expect("replies within 2 minutes")
            .expect("the chat stays open")
            .unwrap();
        let Message::Text(t) = m else { continue };
        let f: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        match f["t"].as_str() {
            Some("reply") => {
                if let Some(at) = f["re"].as_str().and_then(|re| sent.get(re)) {
                    took.push(at.elapsed());
                }
            }
            Some("error") => panic!("a message was refused: {f}"),
            _ => {}
        }
    }
    took
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(be: common::Be, visitors: usize, messages: usize) -> Option<String> {
    let env = common::channels_env_on(be).await;
    let mut edit = common::runtime::echo_edit("You said: ");
    edit.widget = Some(serde_json::json!({ "allowed_origins": ORIGIN }));
    let agent = env.channels.create_agent("Bench", edit).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let conn = flametree::widget::connection_of(&env.channels, &agent)
        .await
        .unwrap()
        .unwrap();
    let port = free_port();
    let mut child = serve(&env, port);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = env.channels.find(&conn.name).await.unwrap();
        if c.status == flametree::model::Status::Running {
            break;
        }
        assert!(Instant::now() < deadline, "the widget did not start: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let chat = flametree::widget::chat_url(&format!("http://127.0.0.1:{port}"), &conn.hook_id);
    // Settled: serve's first seconds allocate what it keeps anyway.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(pid);

    let t0 = Instant::now();
    let sockets: Vec<Socket> = futures::stream::iter(0..visitors)
        .map(|i| open(&chat, i))
        .buffer_unordered(200)
        .collect()
        .await;
    let open_all = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = rss_kib(pid);

    let cpu_before = cpu_ticks(pid);
    let start = Instant::now() + Duration::from_millis(200);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(converse(ws, messages, start)))
        .collect();
    let mut all = Vec::with_capacity(visitors * messages);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    all.sort();
    let total = all.len();
    let _ = child.kill();
    let _ = child.wait();
    let per_conn = (rss_open.saturating_sub(rss_before)) as f64 / visitors as f64;
    Some(format!(
        "| {} | {visitors} × {messages} | {:.0} ms | {:.1} KiB ({} → {} MiB) | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {cpu:.1} s | {total} of {} |",
        match be {
            common::Be::Sqlite => "SQLite",
            common::Be::Postgres => "PostgreSQL",
        },
        open_all.as_secs_f64() * 1000.0,
        per_conn,
        rss_before / 1024,
        rss_open / 1024,
        total as f64 / elapsed.as_secs_f64(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        visitors * messages,
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let visitors = env_num("BENCH_VISITORS", 1000);
    let messages = env_num("BENCH_MESSAGES", 5);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "| backend | visitors × messages | open all | serve's memory per open chat (RSS before → with all open) | messages/s | p50 | p99 | max | serve's CPU time | answered |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for b in backends.split(',').map(str::trim) {
        let be = match b {
            "sqlite" => common::Be::Sqlite,
            "postgres" => {
                let url = common::configured_postgres_url();
                let reachable = sqlx::postgres::PgPool::connect(&url).await.is_ok();
                if !reachable {
                    println!("| PostgreSQL | skipped: nothing answers at {url} |");
                    continue;
                }
                common::Be::Postgres
            }
            other => {
                eprintln!("BENCH_BACKENDS: '{other}' is neither sqlite nor postgres");
                std::process::exit(2);
            }
        };
        if let Some(row) = run(be, visitors, messages).await {
            println!("{row}");
        }
    }
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
