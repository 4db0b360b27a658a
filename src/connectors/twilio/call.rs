//! What one of Twilio's requests about a call asks for. State travels in the URLs
//! flametree gives Twilio (`t` the turn, `s` silent turns so far, `w` how many times the
//! caller has been asked to hold on, `open` an outbound call's first words,
//! `event=status` for status callbacks): Twilio signs them with the rest, and any
//! process can read them.

use crate::connectors::{Delivery, Event};
use std::collections::HashMap;

/// One request of a call, as flametree reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The call begins: the agent's greeting is turn 0.
    Start,
    /// An outbound call was answered: it opens with these words (no agent turn).
    Open(String),
    /// The caller said something in answer to turn `turn - 1`.
    Speech { turn: u32, text: String },
    /// The caller said goodbye.
    Goodbye { turn: u32, text: String },
    /// Nothing was heard; `silent` counts this one.
    Silence { turn: u32, silent: u32 },
    /// The caller was asked to hold on for turn `turn`'s answer `round` times so far.
    Hold { turn: u32, round: u32 },
    /// A status callback: the call's state changed (or it ended).
    Status,
}

/// A call's request: its parameters and what it asks for.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub params: HashMap<String, String>,
    pub step: Step,
}

impl CallRequest {
    pub fn read(query: &[(String, String)], params: &[(String, String)]) -> CallRequest {
        let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let num = |k: &str| q(k).and_then(|v| v.parse::<u32>().ok());
        let params: HashMap<String, String> = params.iter().cloned().collect();
        let speech = params
            .get("SpeechResult")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let step = if q("event") == Some("status") {
            Step::Status
        } else if let (Some(turn), Some(round)) = (num("t"), num("w")) {
            Step::Hold { turn, round }
        } else if let Some(turn) = num("t") {
            if speech.is_empty() {
                Step::Silence {
                    turn,
                    silent: num("s").unwrap_or(0) + 1,
                }
            } else if is_goodbye(&speech) {
                Step::Goodbye { turn, text: speech }
            } else {
                Step::Speech { turn, text: speech }
            }
        } else if let Some(open) = q("open").filter(|o| !o.trim().is_empty()) {
            Step::Open(open.trim().to_string())
        } else {
            Step::Start
        };
        CallRequest { params, step }
    }

    pub fn param(&self, k: &str) -> &str {
        self.params.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn sid(&self) -> &str {
        self.param("CallSid")
    }

    /// Whether flametree placed the call (`flametree call`).
    pub fn outbound(&self) -> bool {
        self.param("Direction").starts_with("outbound")
    }

    /// Who the agent talks to: the caller, or whom flametree called.
    pub fn customer(&self) -> &str {
        if self.outbound() {
            self.param("To")
        } else {
            self.param("From")
        }
    }

    /// The ledger key of a turn: the call and the turn's number.
    pub fn turn_key(&self, turn: u32) -> String {
        format!("{}:{turn}", self.sid())
    }
}

/// Whether the caller is ending the call ("bye", "goodbye", "that's all" …; English).
pub fn is_goodbye(speech: &str) -> bool {
    let words: String = speech
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = words.split_whitespace().collect();
    let joined = words.join(" ");
    words
        .iter()
        .any(|w| matches!(*w, "bye" | "goodbye" | "byebye"))
        || [
            "good bye",
            "that's all",
            "that is all",
            "hang up",
            "see you",
        ]
        .iter()
        .any(|p| joined == *p || joined.ends_with(&format!(" {p}")))
}

/// Why an outbound call did not connect, in words.
pub fn outcome_words(status: &str) -> &'static str {
    match status {
        "busy" => "the line was busy",
        "no-answer" => "nobody answered",
        "failed" => "Twilio could not place the call (a number that cannot be called?)",
        "canceled" => "the call was canceled before it was answered",
        _ => "",
    }
}

/// A status callback's events: the end of a call, or why it never connected.
/// Whether a status callback's `CallStatus` means the call is over.
pub fn is_over(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "no-answer" | "failed" | "canceled"
    )
}

pub fn status_events(r: &CallRequest) -> Vec<Event> {
    let sid = r.sid();
    let status = r.param("CallStatus");
    let (from, to) = (r.param("From"), r.param("To"));
    match status {
        "completed" => vec![Event::Ignored {
            note: format!(
                "call {sid} from {from} to {to} ended after {} s",
                r.param("CallDuration").parse::<u64>().unwrap_or(0)
            ),
        }],
        "busy" | "no-answer" | "failed" | "canceled" => {
            let sip = r.param("SipResponseCode");
            let sip = if sip.is_empty() {
                String::new()
            } else {
                format!(" (SIP {sip})")
            };
            vec![Event::Delivery(Delivery {
                provider_message_id: sid.to_string(),
                status: status.to_string(),
                failed: true,
                detail: format!(
                    "the call to {to} did not connect: {}{sip}",
                    outcome_words(status)
                ),
            })]
        }
        other => vec![Event::Ignored {
            note: format!("call {sid} from {from} to {to}: {other}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_each_kind_of_request() {
        let call = kv(&[("CallSid", "CA1"), ("From", "+1555"), ("To", "+1666")]);
        let step = |q: &[(&str, &str)], extra: &[(&str, &str)]| {
            let mut p = call.clone();
            p.extend(kv(extra));
            CallRequest::read(&kv(q), &p).step
        };
        assert_eq!(step(&[], &[]), Step::Start);
        assert_eq!(
            step(&[("open", "Hi Ann")], &[]),
            Step::Open("Hi Ann".into())
        );
        assert_eq!(
            step(&[("t", "2")], &[("SpeechResult", " opening hours ")]),
            Step::Speech {
                turn: 2,
                text: "opening hours".into()
            }
        );
        assert_eq!(
            step(&[("t", "2"), ("s", "1")], &[("SpeechResult", "")]),
            Step::Silence { turn: 2, silent: 2 }
        );
        assert_eq!(
            step(&[("t", "3")], &[("SpeechResult", "Okay, thanks. Bye!")]),
            Step::Goodbye {
                turn: 3,
                text: "Okay, thanks. Bye!".into()
            }
        );
        assert_eq!(
            step(&[("t", "0"), ("w", "1")], &[]),
            Step::Hold { turn: 0, round: 1 }
        );
        assert_eq!(step(&[("event", "status")], &[]), Step::Status);
        let r = CallRequest::read(&[], &call);
        assert_eq!((r.customer(), r.turn_key(1).as_str()), ("+1555", "CA1:1"));
    }

    #[test]
    fn goodbye_is_a_word_not_a_part_of_one() {
        assert!(is_goodbye("goodbye"));
        assert!(is_goodbye("ok that's all"));
        assert!(!is_goodbye("I want to buy a byelaw book"));
        assert!(!is_goodbye("can you hang up the coat"));
    }
}
