//! The README tables (markdown).

use crate::Row;
use crate::util::{mib, ms, thousands};
use std::time::Duration;

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// Target 1: throughput, latency and memory against bare teloxide.
pub fn burst(n: usize, per_bot: usize, rows: &[Row]) -> String {
    let mut s = format!(
        "\n| {} bots × {per_bot} messages at once | start all | messages/s | p50 | p99 | memory (RSS growth) | CPU time | msg/s vs bare (≥ 1×) | p99 vs bare (≤ 1.2×) | memory vs bare (≤ 0.2×) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        thousands(n as u64)
    );
    let bare = rows.iter().find(|r| r.label.starts_with("bare"));
    for r in rows {
        let vs = |f: &dyn Fn(&Row) -> f64| match bare {
            Some(b) if !std::ptr::eq(b, r) => ratio(f(r), f(b)),
            _ => "–".into(),
        };
        let answered = if r.load.answered < r.load.messages {
            format!(
                " ({} of {} answered)",
                thousands(r.load.answered as u64),
                thousands(r.load.messages as u64)
            )
        } else {
            String::new()
        };
        s += &format!(
            "| {} | {} | {}{answered} | {} | {} | {} | {:.1} s | {} | {} | {} |\n",
            r.label,
            ms(r.start),
            thousands(r.load.throughput.round() as u64),
            ms(r.load.p50),
            ms(r.load.p99),
            mib(r.rss_growth_kib),
            r.cpu_secs,
            vs(&|x| x.load.throughput),
            vs(&|x| x.load.p99.as_secs_f64()),
            vs(&|x| x.rss_growth_kib.max(1024.0)),
        );
    }
    s
}

/// Target 2: latency under a steady trickle.
pub fn steady(n: usize, rate: f64, secs: f64, rows: &[Row]) -> String {
    let mut s = format!(
        "\n| {rate:.0} messages/s over {} bots for {secs:.0} s | answered | p50 | p99 (≤ 20 ms) | max | CPU time |\n\
         |---|---|---|---|---|---|\n",
        thousands(n as u64)
    );
    for r in rows {
        s += &format!(
            "| {} | {} of {} | {} | {} | {} | {:.1} s |\n",
            r.label,
            thousands(r.load.answered as u64),
            thousands(r.load.messages as u64),
            ms(r.load.p50),
            ms(r.load.p99),
            ms(r.load.max),
            r.cpu_secs
        );
    }
    s
}

#[derive(Debug, Clone)]
pub struct Idle {
    pub label: &'static str,
    pub bots: usize,
    pub start: Duration,
    pub rss_kib: f64,
    pub rss_growth_kib: f64,
    pub cpu_percent: f64,
    pub polls_per_sec: f64,
    pub sandbox_cpu_percent: f64,
}

/// Target 3: many idle bots in one process.
pub fn idle(n: usize, poll: u64, secs: u64, rows: &[Idle]) -> String {
    let mut s = format!(
        "\n| {} idle bots in one process, long polls of {poll} s | start all | RSS (≤ 300 MiB) | RSS growth | CPU over {secs} s, % of one core (≤ 2 %) | getUpdates/s | sandbox's CPU |\n\
         |---|---|---|---|---|---|---|\n",
        thousands(n as u64)
    );
    for r in rows {
        s += &format!(
            "| {} ({} bots) | {} | {} | {} | {:.1} % | {:.0} | {:.1} % |\n",
            r.label,
            thousands(r.bots as u64),
            ms(r.start),
            mib(r.rss_kib),
            mib(r.rss_growth_kib),
            r.cpu_percent,
            r.polls_per_sec,
            r.sandbox_cpu_percent
        );
    }
    s
}
