//! A shared beat for the next long poll after an empty answer. The Bot API answers an
//! idle poll when its timeout runs out, counted from when the poll arrived: polls sent
//! whenever the last answer came keep 10,000 idle bots' answers spread over every
//! moment (200 separate wake-ups a second), polls sent on a shared beat bring their
//! answers back together (one wake-up per beat). A message to a bot waits at most one
//! beat longer, and only when it comes in that gap between two polls.

use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// Forty wake-ups a second at most for any number of idle bots, and a message that
/// arrives just after an empty answer waits at most this much longer.
pub const BEAT: Duration = Duration::from_millis(25);

/// The next beat after `now`, on a clock shared by every bot of the process.
pub fn next_after(now: Instant) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let beat = BEAT.as_nanos();
    let since = now.saturating_duration_since(origin).as_nanos();
    let beats = since / beat + 1;
    origin + Duration::from_nanos((beats * beat) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_sent_at_different_moments_share_the_next_beat() {
        next_after(Instant::now());
        let a = Instant::now();
        let first = next_after(a);
        assert!(first > a && first - a <= BEAT);
        let b = a + (first - a) / 2;
        assert_eq!(next_after(b), first, "a moment later in the same beat");
        assert_eq!(next_after(first), first + BEAT, "on a beat: the next one");
    }
}
