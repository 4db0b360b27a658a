//! The parent's side: starts a child process running the bots, waits until every bot
//! polls, and generates load through the sandbox (which runs in the parent, like
//! Telegram's servers would run elsewhere), timing each reply from injection to the
//! moment the sandbox received the bot's sendMessage.

use crate::child;
use crate::util::{ProcStat, env_or, quantile, token};
use flametree::sandbox::telegram::TelegramSandbox;
use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

#[derive(Debug, Clone)]
pub enum Kind {
    Bare,
    /// Flametree's runtime on SQLite (`None`) or on the PostgreSQL database at this URL.
    Flametree(Option<String>),
}

/// A running child process with its bots.
pub struct Bots {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub tokens: Vec<String>,
    /// The child's reading just before its bots started.
    pub at_launch: ProcStat,
    /// From launch until every bot polled (and, for flametree, showed RUNNING).
    pub start: Duration,
}

/// Registers `n` bots in the sandbox and starts a child that runs them.
pub async fn launch(sandbox: &TelegramSandbox, kind: &Kind, base: u64, n: usize) -> Bots {
    let tokens: Vec<String> = (0..n).map(|i| token(base, i)).collect();
    for (i, t) in tokens.iter().enumerate() {
        sandbox.add_bot(t, &format!("bot_{base}_{i}"));
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    // BENCH_CHILD_WRAPPER runs the child under a profiler, e.g. "heaptrack -o /tmp/ht".
    let wrapper = std::env::var("BENCH_CHILD_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.env(child::SANDBOX_URL, sandbox.url())
        .env(child::TOKEN_BASE, base.to_string())
        .env(child::COUNT, n.to_string())
        .env(
            child::POLL,
            env_or::<u64>("BENCH_POLL_TIMEOUT", 10).to_string(),
        )
        .env_remove(child::DB_URL)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    match kind {
        Kind::Bare => {
            cmd.env(child::ROLE, "bare");
        }
        Kind::Flametree(db) => {
            cmd.env(child::ROLE, "flametree");
            if let Some(url) = db {
                cmd.env(child::DB_URL, url);
            }
        }
    }
    let mut process = cmd.spawn().expect("cannot start the bots' process");
    let stdin = process.stdin.take().unwrap();
    let lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let mut bots = Bots {
        child: process,
        stdin,
        lines,
        tokens,
        at_launch: ProcStat::default(),
        start: Duration::ZERO,
    };
    let words = bots.expect("launch").await;
    let t0 = Instant::now();
    bots.at_launch = ProcStat::parse(&words.iter().map(String::as_str).collect::<Vec<_>>());
    bots.expect("running").await;
    loop {
        if bots
            .tokens
            .iter()
            .all(|t| sandbox.calls(t, "getupdates") > 0)
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "bots did not all poll"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bots.start = t0.elapsed();
    bots
}

impl Bots {
    /// Waits for the child's line starting with `word`; returns the words after it.
    async fn expect(&mut self, word: &str) -> Vec<String> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => {
                    let mut words = line.split_whitespace().map(str::to_string);
                    if words.next().as_deref() == Some(word) {
                        return words.collect();
                    }
                }
                _ => panic!("the bots' process ended before saying '{word}'"),
            }
        }
    }

    /// The child's CPU time and memory now, and the log lines its writer dropped.
    pub async fn stat(&mut self) -> (ProcStat, u64) {
        self.stdin.write_all(b"stat\n").await.unwrap();
        let words = self.expect("stat").await;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let dropped = words.get(5).and_then(|w| w.parse().ok()).unwrap_or(0);
        (ProcStat::parse(&words), dropped)
    }

    /// Asks the child to stop its bots and waits for it (killed after two minutes).
    pub async fn stop(mut self) {
        let _ = self.stdin.write_all(b"stop\n").await;
        let _ = self.stdin.flush().await;
        let ended = tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await;
        if ended.is_err() {
            eprintln!("  the bots' process did not stop within 120 s; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// What a load run found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub messages: usize,
    pub answered: usize,
    /// Messages over the time from the first injection to the last reply.
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Waits until `total` replies arrived or `deadline`, then times each reply against
/// the injection it answers (matched by text).
async fn collect(
    sandbox: &TelegramSandbox,
    tokens: &[String],
    injected: &HashMap<String, Instant>,
    started: Instant,
    deadline: Instant,
) -> Load {
    let total = injected.len();
    loop {
        let done: usize = tokens.iter().map(|t| sandbox.calls(t, "sendmessage")).sum();
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
    latencies.sort();
    let answered = latencies.len();
    if answered < total {
        eprintln!("  only {answered} of {total} messages answered");
    }
    Load {
        messages: total,
        answered,
        throughput: answered as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

/// Sends `per_bot` messages to every bot at once.
pub async fn burst(sandbox: &TelegramSandbox, tokens: &[String], per_bot: usize) -> Load {
    let mut injected = HashMap::new();
    let started = Instant::now();
    for k in 0..per_bot {
        for (i, t) in tokens.iter().enumerate() {
            let text = format!("m{i}-{k}");
            injected.insert(format!("You said: {text}"), Instant::now());
            sandbox.inject_message(t, 1_000_000 + i as i64, "Ann", &text);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(env_or("BENCH_DEADLINE_SECS", 600));
    collect(sandbox, tokens, &injected, started, deadline).await
}

/// `rate` messages a second for `secs`, each to the next bot in a stride through all
/// of them (so consecutive messages go to different bots, and each bot gets its share).
pub async fn steady(sandbox: &TelegramSandbox, tokens: &[String], rate: f64, secs: f64) -> Load {
    let total = (rate * secs).round() as usize;
    let n = tokens.len();
    // A stride coprime with n visits every bot before repeating one.
    let stride = (n / 2..n)
        .chain(1..n / 2)
        .find(|s| gcd(*s, n) == 1)
        .unwrap_or(1);
    let mut injected = HashMap::new();
    let started = Instant::now();
    for k in 0..total {
        let at = started + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let i = (k * stride) % n;
        let text = format!("s{i}-{k}");
        injected.insert(format!("You said: {text}"), Instant::now());
        sandbox.inject_message(&tokens[i], 2_000_000 + i as i64, "Bob", &text);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    collect(sandbox, tokens, &injected, started, deadline).await
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
