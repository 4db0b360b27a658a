//! Many consoles on one PostgreSQL: `cargo bench --bench many_consoles`.
//!
//! For each size (BENCH_SIZES, default 10000,100000) it creates a fresh database, seeds
//! that many connections, starts one real `flametree serve` and BENCH_CONSOLES (3) real
//! consoles, each on a pseudo-terminal of its own, and measures what their terminals
//! receive: launch to first frame, keystroke to redrawn frame, a status change reaching
//! every console, and the idle cost of every process and of the database. The database
//! is dropped at the end. See the README ("Many consoles benchmark").

mod console;
mod pg;
mod procstat;
mod pty;
mod screen;

use console::Console;
use pg::BenchDb;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COLS: u16 = 120;
const ROWS: u16 = 40;
/// Typed into the search box, then erased, once per round.
const QUERY: &str = "channel 0999";
const TYPES: [&str; 6] = [
    "telegram",
    "email",
    "whatsapp",
    "facebook",
    "infobip",
    "messagebird",
];

struct Settings {
    sizes: Vec<usize>,
    admin_url: String,
    consoles: usize,
    idle_secs: u64,
    key_rounds: usize,
    moves: usize,
    changes: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "10000,100000".into());
        Settings {
            sizes: sizes
                .split(',')
                .filter_map(|s| s.trim().replace('_', "").parse().ok())
                .collect(),
            admin_url: std::env::var("BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            consoles: env_or("BENCH_CONSOLES", 3),
            idle_secs: env_or("BENCH_IDLE_SECS", 30),
            key_rounds: env_or("BENCH_KEY_ROUNDS", 5),
            moves: env_or("BENCH_MOVES", 100),
            changes: env_or("BENCH_CHANGES", 10),
        }
    }
}

/// What the processes get: the database, the run's key, a data dir and config of
/// their own, and nothing from the caller's FLAMETREE_* settings.
fn flametree(dir: &Path, url: &str, key_b64: &str, operator: &str, args: &[&str]) -> Command {
    std::fs::create_dir_all(dir).expect("data dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, "").expect("config file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flametree"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FLAMETREE_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env("TERM", "xterm-256color")
        .env("FLAMETREE_DATABASE_URL", url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", key_b64)
        .env("FLAMETREE_GENERAL_DATA_DIR", dir)
        .env("FLAMETREE_ACCESS_OPERATOR", operator)
        // Every process has a webhook ingress of its own, as on separate machines.
        .env("FLAMETREE_HTTP_LISTEN", "127.0.0.1:0");
    cmd
}

fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn p50_p99(samples: &[Duration]) -> String {
    format!(
        "{} / {} (max {})",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99)),
        ms(percentile(samples, 1.0))
    )
}

/// Names of the connections in the "Channels" group, in the list's A→Z order.
fn current_names(n: usize) -> Vec<String> {
    let catalog = flametree::catalog::Catalog::get();
    (0..n)
        .filter_map(|i| {
            let ty = TYPES[i % TYPES.len()];
            let deprecated = catalog.find(ty).is_some_and(|t| t.deprecated);
            (!deprecated).then(|| format!("Channel {i:06} {ty}"))
        })
        .collect()
}

struct Launch {
    first_frame: Duration,
    first_rows: Duration,
    all_loaded: Duration,
}

struct Idle {
    name: String,
    cpu_percent: f64,
    wakeups_per_s: f64,
    frames: u64,
    rss_mib: u64,
}

struct Figures {
    n: usize,
    seed: Duration,
    launches: Vec<Launch>,
    search: Vec<Duration>,
    moves: Vec<Duration>,
    /// Per change: how long until each console showed it.
    changes: Vec<Vec<Duration>>,
    idle: Vec<Idle>,
    commits_per_s: f64,
    rows_per_s: f64,
    load: (String, String),
}

fn launch_console(
    k: usize,
    dir: &Path,
    url: &str,
    key_b64: &str,
    n_current: usize,
) -> (Console, Launch) {
    let operator = format!("bench{k}");
    let cmd = flametree(&dir.join(&operator), url, key_b64, &operator, &[]);
    let started = Instant::now();
    let pty = pty::Pty::spawn(cmd, COLS, ROWS).expect("start a console");
    let mut c = Console::new(format!("console {k}"), pty, COLS, ROWS);
    let limit = Duration::from_secs(120);
    let first_frame = c.frame_where(limit, |s| s.contains("Settings › Channels"));
    let first_rows = c.frame_where(limit, |s| s.contains("Channel 000000"));
    let everything = format!("Channels ({n_current})");
    let all_loaded = c.frame_where(limit, |s| s.contains(&everything));
    let launch = Launch {
        first_frame: first_frame - started,
        first_rows: first_rows - started,
        all_loaded: all_loaded - started,
    };
    (c, launch)
}

/// Search typing and erasing, then `j` down the list: keystroke to redrawn frame.
fn keystrokes(c: &mut Console, s: &Settings, names: &[String]) -> (Vec<Duration>, Vec<Duration>) {
    let mut search = Vec::new();
    for _ in 0..s.key_rounds {
        c.key_to_frame(b"/", |sc| sc.contains("/▏"));
        let mut typed = String::new();
        for ch in QUERY.chars() {
            typed.push(ch);
            let want = format!("/{typed}▏");
            search.push(c.key_to_frame(ch.to_string().as_bytes(), |sc| sc.contains(&want)));
        }
        while typed.pop().is_some() {
            let want = format!("/{typed}▏");
            search.push(c.key_to_frame(b"\x7f", |sc| sc.contains(&want)));
        }
        c.key_to_frame(b"\x1b", |sc| sc.contains("/ to search by name"));
    }
    let title = |name: &str| format!(" {name} · ");
    let top = title(&names[0]);
    c.key_to_frame(b"g", |sc| sc.contains(&top));
    let mut moves = Vec::new();
    for name in names.iter().skip(1).take(s.moves) {
        let want = title(name);
        moves.push(c.key_to_frame(b"j", |sc| sc.contains(&want)));
    }
    c.key_to_frame(b"g", |sc| sc.contains(&top));
    (search, moves)
}

/// Status changes written the way the runtime writes them, each awaited on every
/// console's screen (the first connection is selected in each, so its status message
/// shows under the list and in the details).
async fn status_changes(
    consoles: &mut [Console],
    db: &BenchDb,
    id: i64,
    rounds: usize,
) -> Vec<Vec<Duration>> {
    use flametree::model::Status;
    let store = flametree::store::open(&db.url, 5, 1)
        .await
        .expect("open the store");
    let mut out = Vec::new();
    for r in 0..rounds {
        for c in consoles.iter_mut() {
            c.settle();
        }
        let token = format!("bench change {r} of {rounds}");
        let status = if r % 2 == 0 {
            Status::Error
        } else {
            Status::Starting
        };
        let written = Instant::now();
        store
            .set_status(id, status, &token)
            .await
            .expect("write a status");
        let seen = consoles
            .iter_mut()
            .map(|c| {
                c.frame_where(Duration::from_secs(30), |sc| sc.contains(&token))
                    .saturating_duration_since(written)
            })
            .collect();
        out.push(seen);
    }
    out
}

fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn terminate(child: &mut Child) {
    // SAFETY: a signal to our own child, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    if !wait_exit(child, Duration::from_secs(20)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits (up to a minute) until `pid` has used at most one clock tick of CPU in two
/// seconds.
async fn wait_until_quiet(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let ticks = || procstat::usage(pid).map(|u| u.cpu_ticks).unwrap_or(0);
    let mut before = ticks();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = ticks();
        if now - before <= 1 {
            return;
        }
        before = now;
    }
    eprintln!("serve was still busy after a minute; measuring idle anyway");
}

async fn run_size(s: &Settings, n: usize) -> anyhow::Result<Figures> {
    let load_start = procstat::load_average();
    let db = BenchDb::create(&s.admin_url, &format!("flametree_bench_consoles_{n}")).await?;
    let result = measure(s, n, &db, load_start).await;
    if let Err(e) = db.drop_it().await {
        eprintln!("could not drop database {}: {e}", db.name);
    }
    result
}

async fn measure(
    s: &Settings,
    n: usize,
    db: &BenchDb,
    load_start: String,
) -> anyhow::Result<Figures> {
    let (key, key_b64) = pg::run_key();
    let t = Instant::now();
    let first_id = db.seed(n, key).await?;
    let seed = t.elapsed();
    eprintln!("{n}: seeded in {:.1} s", seed.as_secs_f64());
    let names = current_names(n);

    let dir = tempfile::tempdir()?;
    let serve_dir = dir.path().join("serve");
    let log = std::fs::File::create(dir.path().join("serve.log"))?;
    let mut serve = flametree(&serve_dir, &db.url, &key_b64, "bench-serve", &["serve"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !db.serve_alive().await? {
        anyhow::ensure!(Instant::now() < deadline, "serve did not announce itself");
        anyhow::ensure!(serve.try_wait()?.is_none(), "serve exited at start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{n}: serve is up");

    let mut consoles = Vec::new();
    let mut launches = Vec::new();
    for k in 1..=s.consoles {
        let (c, l) = launch_console(k, dir.path(), &db.url, &key_b64, names.len());
        eprintln!(
            "{n}: console {k}: first frame {}, rows {}, all {}",
            ms(l.first_frame),
            ms(l.first_rows),
            ms(l.all_loaded)
        );
        consoles.push(c);
        launches.push(l);
    }

    let (mut search, mut moves) = (Vec::new(), Vec::new());
    for c in consoles.iter_mut() {
        let (a, b) = keystrokes(c, s, &names);
        search.extend(a);
        moves.extend(b);
    }
    eprintln!(
        "{n}: keys: search {}, j {}",
        p50_p99(&search),
        p50_p99(&moves)
    );

    let changes = status_changes(&mut consoles, db, first_id, s.changes).await;
    eprintln!("{n}: status changes done");

    // Idle: nobody touches anything. Every change makes `serve` look at all the
    // connections again, so the window starts once it has finished with the last one.
    for c in consoles.iter_mut() {
        c.settle();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_until_quiet(serve.id()).await;
    let mut pids: Vec<(String, u32)> = consoles
        .iter()
        .map(|c| (c.name.clone(), c.pty.pid()))
        .collect();
    pids.push(("serve".into(), serve.id()));
    for c in consoles.iter_mut() {
        c.drain();
    }
    let frames_before: Vec<u64> = consoles.iter().map(|c| c.frames).collect();
    let before: Vec<_> = pids.iter().map(|(_, p)| procstat::usage(*p)).collect();
    let db_before = db.counters().await?;
    let idle_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(s.idle_secs)).await;
    let db_after = db.counters().await?;
    let after: Vec<_> = pids.iter().map(|(_, p)| procstat::usage(*p)).collect();
    let secs = idle_from.elapsed().as_secs_f64();
    for c in consoles.iter_mut() {
        c.drain();
    }
    let mut idle = Vec::new();
    for (i, (name, pid)) in pids.iter().enumerate() {
        let (Some(b), Some(a)) = (before[i], after[i]) else {
            anyhow::bail!("{name} is gone");
        };
        idle.push(Idle {
            name: name.clone(),
            cpu_percent: (a.cpu_ticks - b.cpu_ticks) as f64 / secs,
            wakeups_per_s: (a.switches - b.switches) as f64 / secs,
            frames: consoles
                .get(i)
                .map(|c| c.frames - frames_before[i])
                .unwrap_or(0),
            rss_mib: procstat::rss_mib(*pid),
        });
    }
    let load_end = procstat::load_average();

    for c in consoles.iter_mut() {
        let _ = c.pty.keys(b"q");
    }
    for c in consoles.iter_mut() {
        if !wait_exit(&mut c.pty.child, Duration::from_secs(10)) {
            terminate(&mut c.pty.child);
        }
    }
    terminate(&mut serve);

    Ok(Figures {
        n,
        seed,
        launches,
        search,
        moves,
        changes,
        idle,
        commits_per_s: (db_after.commits - db_before.commits) as f64 / secs,
        rows_per_s: ((db_after.rows_returned - db_before.rows_returned)
            + (db_after.rows_fetched - db_before.rows_fetched)) as f64
            / secs,
        load: (load_start, load_end),
    })
}

fn report(s: &Settings, f: &Figures) {
    let max = |pick: fn(&Launch) -> Duration| f.launches.iter().map(pick).max().unwrap_or_default();
    let each = |pick: fn(&Launch) -> Duration| {
        f.launches
            .iter()
            .map(|l| ms(pick(l)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let everyone: Vec<Duration> = f
        .changes
        .iter()
        .map(|per| per.iter().copied().max().unwrap_or_default())
        .collect();
    println!();
    println!(
        "### {} connections, {} consoles + 1 serve ({}×{}, seeded in {:.1} s, load average {} → {})",
        f.n,
        s.consoles,
        COLS,
        ROWS,
        f.seed.as_secs_f64(),
        f.load.0,
        f.load.1
    );
    println!();
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| launch → first frame, each console | {} |",
        each(|l| l.first_frame)
    );
    println!(
        "| launch → first frame showing connections, each console (worst) | {} ({}) |",
        each(|l| l.first_rows),
        ms(max(|l| l.first_rows))
    );
    println!(
        "| launch → all {} loaded and drawn, each console | {} |",
        f.n,
        each(|l| l.all_loaded)
    );
    println!(
        "| search keystroke → redrawn frame, p50 / p99 ({} keys) | {} |",
        f.search.len(),
        p50_p99(&f.search)
    );
    println!(
        "| `j` → redrawn frame, p50 / p99 ({} keys) | {} |",
        f.moves.len(),
        p50_p99(&f.moves)
    );
    println!(
        "| status change → shown on every console, p50 / max ({} changes) | {} / {} |",
        everyone.len(),
        ms(percentile(&everyone, 0.5)),
        ms(percentile(&everyone, 1.0))
    );
    for i in &f.idle {
        println!(
            "| idle {} s: {} | {:.2} % CPU, {:.1} wake-ups/s, {} frames drawn, RSS {} MiB |",
            s.idle_secs, i.name, i.cpu_percent, i.wakeups_per_s, i.frames, i.rss_mib
        );
    }
    println!(
        "| idle {} s: database (pg_stat_database) | {:.2} transactions/s, {:.0} rows read/s |",
        s.idle_secs, f.commits_per_s, f.rows_per_s
    );
}

#[tokio::main]
async fn main() {
    let s = Settings::from_env();
    if let Err(e) = sqlx::PgPool::connect(&s.admin_url).await {
        eprintln!(
            "many_consoles: PostgreSQL at BENCH_PG_URL does not answer ({e}); nothing measured"
        );
        return;
    }
    for &n in &s.sizes {
        match run_size(&s, n).await {
            Ok(f) => report(&s, &f),
            Err(e) => eprintln!("{n} connections: {e:#}"),
        }
    }
}
