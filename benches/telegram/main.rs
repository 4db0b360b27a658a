//! Runtime benchmark: `cargo bench --bench telegram`. Telegram bots against the local
//! sandbox, run by flametree's runtime (on SQLite and on PostgreSQL) and, in the same
//! run, as bare teloxide echo bots, so flametree's overhead shows as a ratio over the
//! plain library. Prints markdown tables for the README.
//!
//! Each configuration runs in a child process of its own (this binary again, with
//! BENCH_CHILD set), so its memory and CPU time are its own; the sandbox and the load
//! generator run in this process, as Telegram would run elsewhere.
//!
//! Parts (BENCH_PARTS, comma-separated; default all):
//! - `burst`: BENCH_BOTS (1,000) bots, BENCH_BURST (5) messages to each at once.
//! - `steady`: BENCH_STEADY_RATE (100) messages/s spread over BENCH_BOTS bots for
//!   BENCH_STEADY_SECS (30) s, evenly spaced; BENCH_STEADY_POISSON=1 draws the gaps
//!   at random (seed BENCH_SEED). Replies of BENCH_SLOW_MS (100) or more are split at
//!   the moment a getUpdates handed their message over (BENCH_EXPLAIN_SLOW=0: not), and
//!   the flametree process reports its slow commits; BENCH_WATCH_STALLS=1: both report
//!   their runtime stalls.
//! - `idle`: BENCH_IDLE_BOTS (10,000) flametree bots on SQLite, no messages: RSS, and
//!   CPU time over BENCH_IDLE_SECS (20) s once all are RUNNING and settled
//!   (BENCH_IDLE_SETTLE_SECS, default the poll timeout). BENCH_IDLE_PG=1 adds a row on
//!   PostgreSQL (with its server processes' CPU), BENCH_IDLE_BARE=1 bare teloxide bots.
//!
//! BENCH_CONFIGS (bare,sqlite,postgres) picks the rows of burst and steady;
//! BENCH_POLL_TIMEOUT (10) is every bot's long-poll timeout; BENCH_PG_URL the
//! PostgreSQL server (a database is created per row and dropped at the end);
//! BENCH_PG_STATS=1 prints the database's counters per message for PostgreSQL rows,
//! and the CPU time of the PostgreSQL processes on this machine over the load;
//! BENCH_PG_WAITS=1 samples what the database's backends wait on during the load
//! (every BENCH_PG_WAITS_MS, 5 ms) and lists the COMMITs that waited 10 ms or more;
//! BENCH_CHILD_WRAPPER runs each bots' process under a profiler (e.g. `heaptrack`).

mod child;
mod driver;
mod pg;
mod report;
mod util;

use driver::{Bots, Kind, Load};
use flametree::sandbox::telegram::TelegramSandbox;
use std::time::Duration;
use util::{ProcStat, env_or, loadavg};

/// One configuration's figures in one part.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: &'static str,
    pub start: Duration,
    pub load: Load,
    pub rss_growth_kib: f64,
    pub rss_kib: f64,
    pub cpu_secs: f64,
    pub dropped: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Bare,
    Sqlite,
    Postgres,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Bare => "bare teloxide echo",
            Config::Sqlite => "flametree, SQLite",
            Config::Postgres => "flametree, PostgreSQL",
        }
    }
}

struct Bench {
    sandbox: TelegramSandbox,
    pg: Option<pg::Pg>,
    launches: u64,
    tck: f64,
}

impl Bench {
    /// Starts a configuration's bots in a fresh process (and database).
    async fn launch(&mut self, config: Config, n: usize) -> Option<(Bots, Option<String>)> {
        let db = match config {
            Config::Postgres => Some(self.pg.as_mut()?.create().await),
            _ => None,
        };
        let kind = match config {
            Config::Bare => Kind::Bare,
            _ => Kind::Flametree(db.clone()),
        };
        self.launches += 1;
        let base = 10_000_000_000 + self.launches * 100_000;
        eprintln!("  {}: starting {n} bots…", config.label());
        let bots = driver::launch(&self.sandbox, &kind, base, n).await;
        eprintln!("  all polling after {:?}", bots.start);
        Some((bots, db))
    }

    async fn measure(
        &mut self,
        config: Config,
        n: usize,
        run: impl AsyncFnOnce(&TelegramSandbox, &[String]) -> Load,
    ) -> Option<Row> {
        let (mut bots, db) = self.launch(config, n).await?;
        tokio::time::sleep(Duration::from_secs(env_or("BENCH_SETTLE_SECS", 2))).await;
        let stats = env_or("BENCH_PG_STATS", 0) == 1;
        let before_db = match (&db, stats) {
            (Some(url), true) => Some(pg::counters(url).await),
            _ => None,
        };
        let (before, _) = bots.stat().await;
        let pg_before = util::cpu_ticks_named("postgres");
        let tokens = bots.tokens.clone();
        let waits = match &db {
            Some(url) if env_or("BENCH_PG_WAITS", 0) == 1 => {
                let every = Duration::from_millis(env_or("BENCH_PG_WAITS_MS", 5));
                pg::WaitWatch::start(url, every).await
            }
            _ => None,
        };
        let load = run(&self.sandbox, &tokens).await;
        if let Some(w) = waits {
            w.finish().await.print();
        }
        let (after, dropped) = bots.stat().await;
        if stats && db.is_some() {
            let ticks = util::cpu_ticks_named("postgres") - pg_before;
            eprintln!(
                "  PostgreSQL's processes on this machine used {:.2} s of CPU over the load",
                ticks as f64 / self.tck
            );
        }
        if let (Some(url), Some(before_db)) = (&db, before_db) {
            // Backends report their counters about once a second.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after_db = pg::counters(url).await;
            eprintln!("  PostgreSQL counters over the load (and the 2 s after it):");
            for l in pg::per_message(&before_db, &after_db, load.messages) {
                eprintln!("    {l}");
            }
        }
        let row = Row {
            label: config.label(),
            start: bots.start,
            load,
            rss_growth_kib: after.rss_kib as f64 - bots.at_launch.rss_kib as f64,
            rss_kib: after.rss_kib as f64,
            cpu_secs: (after.cpu_ticks - before.cpu_ticks) as f64 / self.tck,
            dropped,
        };
        eprintln!(
            "  {:.0} msg/s, p50 {:?}, p99 {:?}, max {:?}, {} of {} answered; RSS +{:.0} MiB \
             (+{:.0} MiB of it once all ran, before the load; own pages +{:.1}, code +{:.1}); \
             CPU {:.2} s; log lines dropped {}",
            load.throughput,
            load.p50,
            load.p99,
            load.max,
            load.answered,
            load.messages,
            row.rss_growth_kib / 1024.0,
            (before.rss_kib as f64 - bots.at_launch.rss_kib as f64) / 1024.0,
            (after.anon_kib as f64 - bots.at_launch.anon_kib as f64) / 1024.0,
            (after.file_kib as f64 - bots.at_launch.file_kib as f64) / 1024.0,
            row.cpu_secs,
            dropped
        );
        bots.stop().await;
        Some(row)
    }

    /// 10,000 (BENCH_IDLE_BOTS) bots with nothing to do: memory and CPU time.
    async fn idle(&mut self, config: Config, n: usize) -> Option<report::Idle> {
        let (mut bots, _db) = self.launch(config, n).await?;
        let poll: u64 = env_or("BENCH_POLL_TIMEOUT", 10);
        let settle: u64 = env_or("BENCH_IDLE_SETTLE_SECS", poll);
        let secs: u64 = env_or("BENCH_IDLE_SECS", 20);
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let (before, _) = bots.stat().await;
        let here = ProcStat::read_self();
        let pg_before = util::cpu_ticks_named("postgres");
        let polls_before: usize = bots
            .tokens
            .iter()
            .map(|t| self.sandbox.calls(t, "getupdates"))
            .sum();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (after, _) = bots.stat().await;
        let here_after = ProcStat::read_self();
        let polls: usize = bots
            .tokens
            .iter()
            .map(|t| self.sandbox.calls(t, "getupdates"))
            .sum::<usize>()
            - polls_before;
        let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / self.tck;
        if config == Config::Postgres {
            let ticks = util::cpu_ticks_named("postgres") - pg_before;
            eprintln!(
                "  PostgreSQL's processes on this machine: {:.2} % of one core over {secs} s",
                ticks as f64 / self.tck / secs as f64 * 100.0
            );
        }
        let sandbox_cpu = (here_after.cpu_ticks - here.cpu_ticks) as f64 / self.tck;
        let idle = report::Idle {
            label: config.label(),
            bots: n,
            start: bots.start,
            rss_kib: after.rss_kib as f64,
            rss_growth_kib: after.rss_kib as f64 - bots.at_launch.rss_kib as f64,
            cpu_percent: cpu / secs as f64 * 100.0,
            polls_per_sec: polls as f64 / secs as f64,
            sandbox_cpu_percent: sandbox_cpu / secs as f64 * 100.0,
        };
        eprintln!(
            "  RSS {:.0} MiB (+{:.0} since launch), CPU {:.2} % of one core over {secs} s, \
             {:.0} getUpdates/s; sandbox process {:.2} %",
            idle.rss_kib / 1024.0,
            idle.rss_growth_kib / 1024.0,
            idle.cpu_percent,
            idle.polls_per_sec,
            idle.sandbox_cpu_percent
        );
        bots.stop().await;
        Some(idle)
    }
}

fn main() {
    if std::env::var(child::ROLE).as_deref() == Ok("flametree") {
        // What the flametree binary does first, before any thread starts.
        flametree::runtime::memory::limit_arenas();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

async fn run() {
    if let Ok(role) = std::env::var(child::ROLE) {
        child::main(&role).await;
        return;
    }
    let _stalls = util::watch_stalls("the load generator's");
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "burst,steady,idle".into());
    let wants = |p: &str| parts.split(',').any(|x| x.trim() == p);
    let configs: Vec<Config> = std::env::var("BENCH_CONFIGS")
        .unwrap_or_else(|_| "bare,sqlite,postgres".into())
        .split(',')
        .filter_map(|c| match c.trim() {
            "bare" => Some(Config::Bare),
            "sqlite" => Some(Config::Sqlite),
            "postgres" | "pg" => Some(Config::Postgres),
            _ => None,
        })
        .collect();
    let n: usize = env_or("BENCH_BOTS", 1000);
    let per_bot: usize = env_or("BENCH_BURST", 5);
    let rate: f64 = env_or("BENCH_STEADY_RATE", 100.0);
    let secs: f64 = env_or("BENCH_STEADY_SECS", 30.0);
    let idle_n: usize = env_or("BENCH_IDLE_BOTS", 10_000);
    let poll: u64 = env_or("BENCH_POLL_TIMEOUT", 10);

    let idle_pg = wants("idle") && env_or("BENCH_IDLE_PG", 0) == 1;
    let pg =
        if idle_pg || configs.contains(&Config::Postgres) && (wants("burst") || wants("steady")) {
            pg::Pg::connect().await
        } else {
            None
        };
    let mut bench = Bench {
        sandbox: TelegramSandbox::start().await.unwrap(),
        pg,
        launches: 0,
        tck: util::clk_tck(),
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut notes = vec![format!(
        "{cores} cores; load average (1/5/15 min) at the start: {}",
        loadavg()
    )];

    let mut out = String::new();
    if wants("burst") {
        eprintln!("burst: {n} bots, {per_bot} messages each");
        let mut rows = Vec::new();
        for &c in &configs {
            let r = bench
                .measure(c, n, async |s, t| driver::burst(s, t, per_bot).await)
                .await;
            rows.extend(r);
        }
        out += &report::burst(n, per_bot, &rows);
        notes.push(format!("load average after burst: {}", loadavg()));
    }
    if wants("steady") {
        eprintln!("steady: {rate} messages/s over {n} bots for {secs} s");
        let mut rows = Vec::new();
        for &c in &configs {
            let r = bench
                .measure(c, n, async |s, t| driver::steady(s, t, rate, secs).await)
                .await;
            rows.extend(r);
        }
        out += &report::steady(n, rate, secs, &rows);
        notes.push(format!("load average after steady: {}", loadavg()));
    }
    if wants("idle") {
        eprintln!("idle: {idle_n} bots, poll timeout {poll} s");
        let mut rows = Vec::new();
        rows.extend(bench.idle(Config::Sqlite, idle_n).await);
        if idle_pg {
            rows.extend(bench.idle(Config::Postgres, idle_n).await);
        }
        if env_or("BENCH_IDLE_BARE", 0) == 1 {
            rows.extend(bench.idle(Config::Bare, idle_n).await);
        }
        out += &report::idle(idle_n, poll, env_or("BENCH_IDLE_SECS", 20), &rows);
        notes.push(format!("load average after idle: {}", loadavg()));
    }
    if let Some(pg) = bench.pg.as_mut() {
        pg.drop_all().await;
    }
    println!("{out}");
    for n in notes {
        println!("- {n}");
    }
}
