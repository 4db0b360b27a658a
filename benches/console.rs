//! Console benchmark: `cargo bench --bench console`. Prints the figures the README
//! quotes. Measures in-process on ratatui's TestBackend (no terminal I/O), release build.

use crossterm::event::{KeyCode, KeyEvent};
use flametree::channels::Channels;
use flametree::model::LogLine;
use flametree::permission::{Operator, Role};
use flametree::secrets::{KeySource, MasterKey};
use flametree::tui::app::{App, HeaderInfo};
use flametree::tui::theme::Theme;
use flametree::tui::view;
use flametree::tui::worker::{self, Command};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sqlx::Connection as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many connections to seed: `BENCH_CONNECTIONS` (10,000).
fn connections() -> usize {
    std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn seed(path: &std::path::Path) {
    let url = format!("sqlite://{}", path.display());
    let store = flametree::store::open(&url, 5, 1).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    drop(store);
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let types = [
        "telegram",
        "email",
        "whatsapp",
        "facebook",
        "infobip",
        "messagebird",
    ];
    let statuses = ["RUNNING", "STOPPED", "ERROR", "RUNNING", "STARTING"];
    for i in 0..connections() {
        sqlx::query(
            "INSERT INTO connections (tenant_id, type_key, name, name_key, description, config, \
             status, status_message, status_since, created_at, created_by, updated_at, updated_by, changed_at, \
             hook_id) VALUES ($1, $2, $3, $4, '', '{}', $5, $6, 0, 0, 'bench', 0, 'bench', 0, $7)",
        )
        .bind(tenant.id)
        .bind(types[i % types.len()])
        .bind(format!("Channel {i:05} {}", types[i % types.len()]))
        .bind(format!("channel {i:05} {}", types[i % types.len()]))
        .bind(statuses[i % statuses.len()])
        .bind(if i % 5 == 2 { "provider rejected the credentials (401)" } else { "" })
        // As flametree writes them: without one, the launch measured would first give
        // all 10,000 rows a webhook path (one UPDATE each, over a second).
        .bind(format!("{i:032x}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99), *samples.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let connections = connections();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let t = Instant::now();
    seed(&db).await;
    println!(
        "seeded {connections} connections in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Launch to first frame: open the store (migrations), load the list, draw.
    let (w, h) = (120u16, 40u16);
    let launch = Instant::now();
    let url = format!("sqlite://{}", db.display());
    let store = flametree::store::open(&url, 5, 2).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let op = Operator {
        name: "bench".into(),
        role: Role::Editor,
        role_reason: "bench".into(),
    };
    let key = MasterKey::from_bytes([3; 32], KeySource::Config);
    let channels = Channels::new(store, tenant, op, Ok(Arc::new(key)));
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "SQLite bench.db".into(),
        operator: "bench".into(),
        role: Role::Editor,
    };
    let mut app = App::new(header, Theme::from_env(), false, (10_000, 4 << 20));
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, &mut app)).unwrap();
    let empty_frame = launch.elapsed();
    // As the event loop does: the first page is drawn as soon as it arrives.
    let mut page_frame = None;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (ctx, crx) = tokio::sync::mpsc::unbounded_channel();
    let channels = Arc::new(channels);
    let worker = tokio::spawn(worker::run(channels.clone(), crx, tx));
    ctx.send(Command::FirstLoad { page: 200 }).unwrap();
    let full_frame = loop {
        let msg = rx.recv().await.unwrap();
        let complete = matches!(msg, worker::Msg::Loaded { complete: true, .. });
        app.on_msg(msg);
        term.draw(|f| view::draw(f, &mut app)).unwrap();
        if page_frame.is_none() {
            page_frame = Some(launch.elapsed());
            assert!(term.backend().to_string().contains("Channel 00000"));
        }
        if complete {
            break launch.elapsed();
        }
    };
    drop(ctx);
    worker.await.unwrap();
    assert_eq!(app.list.all.len(), connections);

    // One frame, redrawn with nothing changed.
    let mut frames = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        term.draw(|f| view::draw(f, &mut app)).unwrap();
        frames.push(t.elapsed());
    }
    let frame = stats(frames);

    // A search keystroke to the redrawn frame: type "channel 0999", then erase it.
    app.on_key(KeyEvent::from(KeyCode::Char('/')));
    let mut keys = Vec::new();
    for _ in 0..20 {
        for c in "channel 0999".chars() {
            let t = Instant::now();
            app.on_key(KeyEvent::from(KeyCode::Char(c)));
            term.draw(|f| view::draw(f, &mut app)).unwrap();
            keys.push(t.elapsed());
        }
        for _ in 0.."channel 0999".len() {
            let t = Instant::now();
            app.on_key(KeyEvent::from(KeyCode::Backspace));
            term.draw(|f| view::draw(f, &mut app)).unwrap();
            keys.push(t.elapsed());
        }
    }
    let key_stats = stats(keys);
    app.on_key(KeyEvent::from(KeyCode::Esc));

    // Moving the selection (builds the details form for each row).
    let mut moves = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        app.on_key(KeyEvent::from(KeyCode::Char('j')));
        term.draw(|f| view::draw(f, &mut app)).unwrap();
        moves.push(t.elapsed());
    }
    let move_stats = stats(moves);

    // Log flood: 1,000,000 lines pushed in batches of 2,000 with a frame after each
    // batch (the console batches what arrives between two frames).
    app.on_key(KeyEvent::from(KeyCode::Char('l')));
    let id = app.logs.for_id.unwrap();
    let rss_before = rss_kib();
    let total = 1_000_000usize;
    let batch = 2_000usize;
    let flood = Instant::now();
    let mut n = 0usize;
    while n < total {
        let lines: Vec<LogLine> = (n..n + batch)
            .map(|i| LogLine {
                connection_id: id,
                at: i as i64,
                level: if i % 50 == 0 {
                    "WARN".into()
                } else {
                    "INFO".into()
                },
                message: format!(
                    "update {i}: inbound message from chat {} handed to the agent",
                    i % 977
                ),
            })
            .collect();
        app.on_log_lines(&lines);
        term.draw(|f| view::draw(f, &mut app)).unwrap();
        n += batch;
    }
    let flood_time = flood.elapsed();
    let rss_after = rss_kib();
    let status = app.logs.status_line();

    let idle = idle_cpu(&db);

    println!();
    println!("| measure ({w}×{h}, {connections} connections) | result |");
    println!("|---|---|");
    println!(
        "| launch to first frame (\"Loading…\") | {} |",
        ms(empty_frame)
    );
    println!(
        "| launch to first frame showing connections (first 200 by name) | {} |",
        ms(page_frame.unwrap())
    );
    println!(
        "| launch to all {connections} loaded, grouped, sorted and drawn | {} |",
        ms(full_frame)
    );
    println!(
        "| one frame, p50 / p99 / max | {} / {} / {} |",
        ms(frame.0),
        ms(frame.1),
        ms(frame.2)
    );
    println!(
        "| search keystroke → redrawn frame, p50 / p99 / max | {} / {} / {} |",
        ms(key_stats.0),
        ms(key_stats.1),
        ms(key_stats.2)
    );
    println!(
        "| j (next row + details form) → redrawn frame, p50 / p99 | {} / {} |",
        ms(move_stats.0),
        ms(move_stats.1)
    );
    println!(
        "| log flood: {total} lines into the Logs pane, a frame every {batch} | {:.0} lines/s |",
        total as f64 / flood_time.as_secs_f64()
    );
    match idle {
        Some((cpu, secs, rss)) => println!(
            "| idle: the real binary in tmux, {connections} connections, {secs} s untouched | {cpu:.2} % CPU, RSS {rss} MiB |"
        ),
        None => println!("| idle | not measured: tmux is missing |"),
    }
    println!(
        "| Logs pane memory bound (10,000 lines / 4 MiB ring) | RSS {} MiB → {} MiB; {status} |",
        rss_before / 1024,
        rss_after / 1024
    );
}

/// Runs the real binary in tmux on the seeded database, leaves it alone, and reads its
/// CPU time from /proc: the console redraws only when something changes.
fn idle_cpu(db: &std::path::Path) -> Option<(f64, u64, u64)> {
    use std::process::Command as Proc;
    let dir = db.parent()?;
    std::fs::copy(db, dir.join("flametree.db")).ok()?;
    let socket = format!("flametree-bench-{}", std::process::id());
    let cmd = format!(
        "exec env FLAMETREE_GENERAL_DATA_DIR={} FLAMETREE_ACCESS_OPERATOR=bench {}",
        dir.display(),
        env!("CARGO_BIN_EXE_flametree")
    );
    let ok = Proc::new("tmux")
        .args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-s",
            "b",
            "-x",
            "120",
            "-y",
            "40",
            &cmd,
        ])
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let pid_out = Proc::new("tmux")
        .args(["-L", &socket, "list-panes", "-t", "b", "-F", "#{pane_pid}"])
        .output()
        .ok()?;
    let pid: u32 = String::from_utf8_lossy(&pid_out.stdout)
        .trim()
        .parse()
        .ok()?;
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit(')').next()?;
        let f: Vec<&str> = after.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    };
    std::thread::sleep(Duration::from_secs(3));
    let start = ticks()?;
    let secs = 10;
    std::thread::sleep(Duration::from_secs(secs));
    let end = ticks()?;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024;
    let _ = Proc::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .status();
    // Clock ticks are 1/100 s on Linux.
    let cpu = (end - start) as f64 / (secs as f64 * 100.0) * 100.0;
    Some((cpu, secs, rss))
}
