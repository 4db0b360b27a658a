//! The `[widget]` settings (how much a visitor, and a network address, may send) and
//! the token buckets that enforce them.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Messages one visitor may send per minute (bursts up to the same number).
    pub messages_per_visitor_per_minute: u32,
    /// Messages one IP address may send per minute, all its visitors together.
    pub messages_per_ip_per_minute: u32,
    /// Chat connections open at once from one IP address.
    pub connections_per_ip: u32,
    /// Longest message a visitor may send, in characters.
    pub max_message_chars: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            messages_per_visitor_per_minute: 20,
            messages_per_ip_per_minute: 120,
            connections_per_ip: 20,
            max_message_chars: 2000,
        }
    }
}

/// A token bucket per key: `per_minute` tokens, refilled evenly.
pub struct RateLimit {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A refusal: how long until the next message would be accepted, and whether it is
/// the first refusal since the key last had tokens (worth one line in the log).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub wait: Duration,
    pub first: bool,
}

/// Buckets kept before the full ones are dropped (they say nothing a fresh one would not).
const TIDY_AT: usize = 10_000;

impl RateLimit {
    pub fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::default(),
        }
    }

    pub fn take(&self, key: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let rate = self.per_minute / 60.0;
        let mut all = self.buckets.lock().expect("rate buckets lock");
        if all.len() >= TIDY_AT {
            let full = self.per_minute;
            all.retain(|_, b| b.tokens + b.at.elapsed().as_secs_f64() * rate < full);
        }
        let b = all.entry(key.to_string()).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
            refused: false,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(self.per_minute);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refused = false;
            Ok(())
        } else {
            let first = !b.refused;
            b.refused = true;
            Err(Refused {
                wait: Duration::from_secs_f64(((1.0 - b.tokens) / rate).max(1.0)),
                first,
            })
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refused since it last had a token: later refusals are not logged again.
    refused: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_refused_and_logged_once() {
        let r = RateLimit::new(3);
        for _ in 0..3 {
            r.take("a").unwrap();
        }
        let first = r.take("a").unwrap_err();
        assert!(first.first);
        assert!(first.wait >= Duration::from_secs(1));
        let again = r.take("a").unwrap_err();
        assert!(!again.first);
        r.take("b").unwrap();
    }
}
