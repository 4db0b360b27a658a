//! Small helpers: environment knobs, /proc readings, percentiles, formatting.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `name` parsed, or `default` when unset or unreadable.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The sandbox token of bot `i` of a set whose bot ids start at `base`.
pub fn token(base: u64, i: usize) -> String {
    format!(
        "{}:AAEbenchTokenForBotNumber{i:08}xxxxxxxxxx",
        base + i as u64
    )
}

/// One reading of a process's CPU time and memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStat {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    /// Peak RSS so far.
    pub hwm_kib: u64,
    /// The RSS split: the process's own pages (heap, stacks) and file pages (the
    /// executable's code as it is first run, shared and reclaimable).
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl ProcStat {
    /// Reads /proc/self/stat (CPU time) and /proc/self/status (RSS).
    pub fn read_self() -> ProcStat {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the parenthesised command name: state is the first, then
        // utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        let cpu_ticks = field(11).unwrap_or(0) + field(12).unwrap_or(0);
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        ProcStat {
            cpu_ticks,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
            anon_kib: kib("RssAnon:"),
            file_kib: kib("RssFile:"),
        }
    }

    pub fn to_line(self) -> String {
        format!(
            "{} {} {} {} {}",
            self.cpu_ticks, self.rss_kib, self.hwm_kib, self.anon_kib, self.file_kib
        )
    }

    pub fn parse(words: &[&str]) -> ProcStat {
        let n = |i: usize| words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0);
        ProcStat {
            cpu_ticks: n(0),
            rss_kib: n(1),
            hwm_kib: n(2),
            anon_kib: n(3),
            file_kib: n(4),
        }
    }
}

/// CPU time (utime + stime, in clock ticks) of every process named `comm` on this
/// machine: a local PostgreSQL server's share of a load.
pub fn cpu_ticks_named(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .map(|stat| {
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            field(11).unwrap_or(0) + field(12).unwrap_or(0)
        })
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The `q` quantile of sorted samples (nearest rank below).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * q) as usize]
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 {
        format!("{} ms", thousands(v.round() as u64))
    } else {
        format!("{v:.1} ms")
    }
}

pub fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

/// 12345 → "12,345".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// With BENCH_WATCH_STALLS=1 (else `None`): ticks every 10 ms on the runtime and
/// counts the ticks that came 50 ms or more late, a stall of every worker thread (which
/// a slow commit is not). Each is printed as it happens, with its time, to be set
/// beside the replies' latencies. The load generator's process watches too: a stall
/// both see at once is the machine's. Off by default: a hundred wake-ups a second
/// would be half the idle part's CPU.
pub fn watch_stalls(whose: &'static str) -> Option<Arc<std::sync::Mutex<(u64, u64)>>> {
    if env_or("BENCH_WATCH_STALLS", 0) != 1 {
        return None;
    }
    let seen: Arc<std::sync::Mutex<(u64, u64)>> = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let tick = Duration::from_millis(10);
        loop {
            let before = Instant::now();
            tokio::time::sleep(tick).await;
            let late = before.elapsed().saturating_sub(tick);
            if late >= Duration::from_millis(50) {
                let mut s = seen.lock().unwrap();
                s.0 += 1;
                s.1 = s.1.max(late.as_millis() as u64);
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                eprintln!(
                    "  {whose} runtime stalled: a 10 ms tick came {} ms late, at {:.3}",
                    late.as_millis(),
                    wall.as_secs_f64()
                );
            }
        }
    });
    Some(out)
}
