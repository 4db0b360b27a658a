//! Outbound calls asked for with `flametree call` and dialed by whichever process runs
//! the connection: the request as stored, and the progress a connector reports.

use super::Millis;

/// Where an outbound call is: queued → dialing → ringing → answered → completed, or it
/// ended without a conversation (busy, no-answer, failed, canceled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    Queued,
    Dialing,
    Ringing,
    Answered,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallState {
    /// The stored word; the same words as Twilio's call statuses, so both paths of
    /// `flametree call` report alike.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Dialing => "dialing",
            CallState::Ringing => "ringing",
            CallState::Answered => "answered",
            CallState::Completed => "completed",
            CallState::Busy => "busy",
            CallState::NoAnswer => "no-answer",
            CallState::Failed => "failed",
            CallState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        Some(match s {
            "queued" => CallState::Queued,
            "dialing" => CallState::Dialing,
            "ringing" => CallState::Ringing,
            "answered" => CallState::Answered,
            "completed" => CallState::Completed,
            "busy" => CallState::Busy,
            "no-answer" => CallState::NoAnswer,
            "failed" => CallState::Failed,
            "canceled" => CallState::Canceled,
            _ => return None,
        })
    }

    /// Whether the call is over (nothing moves it any more).
    pub fn ended(self) -> bool {
        matches!(
            self,
            CallState::Completed
                | CallState::Busy
                | CallState::NoAnswer
                | CallState::Failed
                | CallState::Canceled
        )
    }
}

impl std::fmt::Display for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step of a call as its connector reports it; empty fields leave what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallProgress {
    pub state: CallState,
    /// The provider's words: a SIP status code and reason phrase ("486 Busy Here").
    pub reason: String,
    /// The provider's id of the call (SIP's Call-ID).
    pub call_id: String,
    pub duration_secs: Option<i64>,
}

impl CallProgress {
    pub fn to(state: CallState) -> CallProgress {
        CallProgress {
            state,
            reason: String::new(),
            call_id: String::new(),
            duration_secs: None,
        }
    }

    pub fn because(mut self, reason: impl Into<String>) -> CallProgress {
        self.reason = reason.into();
        self
    }
}

/// A queued outbound call, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub id: i64,
    pub connection_id: i64,
    /// Whom to call, as given to `flametree call --to`.
    pub callee: String,
    /// What the agent opens with; `None`: its greeting.
    pub opening: Option<String>,
    pub requested_by: String,
    pub state: CallState,
    pub reason: String,
    pub call_id: String,
    pub duration_secs: Option<i64>,
    /// The process that dialed it (a lease owner name).
    pub claimed_by: Option<String>,
    pub requested_at: Millis,
    pub updated_at: Millis,
    pub answered_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for s in [
            CallState::Queued,
            CallState::Dialing,
            CallState::Ringing,
            CallState::Answered,
            CallState::Completed,
            CallState::Busy,
            CallState::NoAnswer,
            CallState::Failed,
            CallState::Canceled,
        ] {
            assert_eq!(CallState::parse(s.as_str()), Some(s));
        }
        assert_eq!(CallState::parse("ringing "), None);
        assert!(CallState::NoAnswer.ended() && !CallState::Answered.ended());
    }
}
