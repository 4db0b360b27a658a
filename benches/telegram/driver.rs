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

/// One injected message: when, to which bot, its update_id.
pub struct Injected {
    at: Instant,
    bot: usize,
    update_id: i64,
}

/// Waits until `total` replies arrived or `deadline`, then times each reply against
/// the injection it answers (matched by text).
async fn collect(
    sandbox: &TelegramSandbox,
    tokens: &[String],
    injected: &HashMap<String, Injected>,
    started: Instant,
    deadline: Instant,
    explain: bool,
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
    let mut slow = Vec::new();
    let slow_at = Duration::from_millis(env_or("BENCH_SLOW_MS", 100));
    let mut last = started;
    for t in tokens {
        for (m, at) in sandbox.sent_with_times(t) {
            if let Some(sent) = injected.get(&m.text) {
                let took = at.duration_since(sent.at);
                latencies.push(took);
                last = last.max(at);
                if took >= slow_at {
                    slow.push((sent, at));
                }
            }
        }
    }
    latencies.sort();
    let answered = latencies.len();
    if answered < total {
        eprintln!("  only {answered} of {total} messages answered");
    }
    if explain {
        explain_slow(sandbox, tokens, &mut slow);
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

/// Replies of BENCH_SLOW_MS (100) or more: each one's time split at the moment a
/// getUpdates handed its message over. Before it the message waited for a poll (the
/// sandbox, or a bot not polling); after it, for flametree (recording, the agent,
/// sending). A summary, then (unless BENCH_SLOW_LIST=0) at most three per second of
/// wall clock, to be set beside the stall lines.
fn explain_slow(sandbox: &TelegramSandbox, tokens: &[String], slow: &mut [(&Injected, Instant)]) {
    if slow.is_empty() || env_or("BENCH_EXPLAIN_SLOW", 1) != 1 {
        return;
    }
    slow.sort_by_key(|(m, _)| m.at);
    let wall = |at: Instant| {
        let ago = Instant::now().duration_since(at);
        (std::time::SystemTime::now() - ago)
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    // Split at the hand-over; a message never handed over counts as all flametree's.
    let split: Vec<(Instant, Duration, Duration)> = slow
        .iter()
        .map(|(m, sent)| {
            let handed = sandbox
                .handed_over_at(&tokens[m.bot], m.update_id)
                .unwrap_or(m.at);
            (
                m.at,
                handed.duration_since(m.at),
                sent.duration_since(handed),
            )
        })
        .collect();
    let mut polls: Vec<Duration> = split.iter().map(|s| s.1).collect();
    let mut insides: Vec<Duration> = split.iter().map(|s| s.2).collect();
    polls.sort();
    insides.sort();
    eprintln!(
        "  {} replies took {} ms or more; waiting for a poll: median {:?}, max {:?}; \
         in flametree: median {:?}, max {:?}",
        slow.len(),
        env_or("BENCH_SLOW_MS", 100),
        quantile(&polls, 0.5),
        polls.last().copied().unwrap_or_default(),
        quantile(&insides, 0.5),
        insides.last().copied().unwrap_or_default(),
    );
    if env_or("BENCH_SLOW_LIST", 1) != 1 {
        return;
    }
    let mut shown = 0;
    let mut second = None;
    for (at, poll, inside) in split {
        let s = wall(at).floor();
        if second != Some(s) {
            second = Some(s);
            shown = 0;
        }
        shown += 1;
        if shown > 3 {
            continue;
        }
        eprintln!(
            "    injected at {:.3}: waited for a poll {} ms, then in flametree {} ms",
            wall(at),
            poll.as_millis(),
            inside.as_millis()
        );
    }
}

/// Sends `text` to bot `i` from the user `from` (chat id base + i, first name), noting
/// when, under the reply the echo makes of it.
fn inject(
    sandbox: &TelegramSandbox,
    token: &str,
    i: usize,
    from: (i64, &str),
    text: &str,
    injected: &mut HashMap<String, Injected>,
) {
    let at = Instant::now();
    let update_id = sandbox.inject_message(token, from.0 + i as i64, from.1, text);
    let sent = Injected {
        at,
        bot: i,
        update_id,
    };
    injected.insert(format!("You said: {text}"), sent);
}

/// Sends `per_bot` messages to every bot at once.
pub async fn burst(sandbox: &TelegramSandbox, tokens: &[String], per_bot: usize) -> Load {
    let mut injected = HashMap::new();
    let started = Instant::now();
    for k in 0..per_bot {
        for (i, t) in tokens.iter().enumerate() {
            let text = format!("m{i}-{k}");
            inject(sandbox, t, i, (1_000_000, "Ann"), &text, &mut injected);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(env_or("BENCH_DEADLINE_SECS", 600));
    collect(sandbox, tokens, &injected, started, deadline, false).await
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
    // Evenly spaced by default (comparable with earlier figures): each bot then gets a
    // message exactly every n/rate s, which can beat in step with the poll timeout.
    // BENCH_STEADY_POISSON=1 draws the gaps at random, as independent senders would.
    let poisson = env_or("BENCH_STEADY_POISSON", 0) == 1;
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(env_or("BENCH_SEED", 1));
    let mut clock = 0.0;
    for k in 0..total {
        clock = if poisson {
            let u: f64 = rand::Rng::gen_range(&mut rng, f64::EPSILON..1.0);
            clock - u.ln() / rate
        } else {
            k as f64 / rate
        };
        let at = started + Duration::from_secs_f64(clock);
        tokio::time::sleep_until(at.into()).await;
        let i = (k * stride) % n;
        let text = format!("s{i}-{k}");
        inject(
            sandbox,
            &tokens[i],
            i,
            (2_000_000, "Bob"),
            &text,
            &mut injected,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    collect(sandbox, tokens, &injected, started, deadline, true).await
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
