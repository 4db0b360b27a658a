//! A local stand-in for Twilio Voice: the REST API (2010-04-01: the account, its
//! IncomingPhoneNumbers listed and updated, Calls created and fetched; HTTP Basic with
//! the Account SID and Auth token, Twilio's error JSON, 20003 for bad credentials) and
//! Twilio's side of a call. `call_in` places an inbound call to a number: it POSTs the
//! signed form webhooks (`X-Twilio-Signature`, connectors.md §8.1) to the number's voice
//! URL and follows the TwiML it gets back — `<Say>` is heard, `<Gather>` posts the
//! caller's next words as `SpeechResult` (or nothing on silence) to its action,
//! `<Redirect>` is followed, `<Hangup>` ends the call — and a status callback reports
//! the end. Outbound calls (`POST /Calls.json`) ring a scripted callee: busy, no answer,
//! failed, or answered and held by the same conversation.

#[path = "twilio/rest.rs"]
mod rest;
#[path = "twilio/twiml_reader.rs"]
pub mod twiml_reader;

use crate::connectors::twilio::signature;
use axum::Router;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twiml_reader::Verb;

/// What the person on the line does at each `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    Say(String),
    /// Says it, and Twilio posts that turn twice (a retried webhook).
    SayTwice(String),
    Silence,
}

/// How a callee answers an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    Busy,
    NoAnswer,
    Failed,
    Answers(Vec<Turn>),
}

/// What happened on a call, as the person on the line heard it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub sid: String,
    /// Every `<Say>`, in order.
    pub heard: Vec<String>,
    /// The voice and language of each `<Say>` (None when not given).
    pub voices: Vec<(Option<String>, Option<String>)>,
    /// The `<Gather>`s: (language, speechTimeout).
    pub gathers: Vec<(Option<String>, Option<String>)>,
    /// How it ended: "hangup" (the TwiML hung up), "caller hung up", "end of TwiML",
    /// or "application error: …".
    pub ended: String,
    /// Each webhook request: (URL, HTTP status).
    pub requests: Vec<(String, u16)>,
    /// For each retried turn: whether both requests got the same TwiML.
    pub retries_same: Vec<bool>,
    /// The final status: completed, busy, no-answer, failed.
    pub status: String,
}

#[derive(Debug, Clone)]
struct NumberRec {
    sid: String,
    phone: String,
    voice_url: String,
    voice_method: String,
    status_callback: String,
    status_callback_method: String,
}

#[derive(Debug, Clone)]
struct CallRec {
    sid: String,
    from: String,
    to: String,
    status: String,
    duration: Option<u64>,
}

#[derive(Default)]
struct Hub {
    account_sid: String,
    token: String,
    name: String,
    numbers: Vec<NumberRec>,
    calls: Vec<CallRec>,
    callees: HashMap<String, Callee>,
    transcripts: Vec<Transcript>,
    /// Every update of a number's voice URL, in order: (number, new URL).
    voice_url_changes: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Hub>>;

pub struct TwilioSandbox {
    hub: Shared,
    server: super::server::Server,
    /// Twilio gives a webhook 15 s.
    caller: reqwest::Client,
}

/// A resource sid as Twilio makes them: two letters and 32 random hex digits.
fn sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

impl TwilioSandbox {
    /// An account with these credentials and numbers, each with its voice URL.
    pub async fn start(
        account_sid: &str,
        token: &str,
        name: &str,
        numbers: &[(&str, &str)],
    ) -> io::Result<TwilioSandbox> {
        let hub = Arc::new(Mutex::new(Hub {
            account_sid: account_sid.into(),
            token: token.into(),
            name: name.into(),
            ..Hub::default()
        }));
        {
            let mut h = hub.lock().expect("twilio sandbox lock");
            for (phone, url) in numbers {
                let rec = NumberRec {
                    sid: sid("PN"),
                    phone: phone.to_string(),
                    voice_url: url.to_string(),
                    voice_method: "POST".into(),
                    status_callback: String::new(),
                    status_callback_method: "POST".into(),
                };
                h.numbers.push(rec);
            }
        }
        let caller = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(io::Error::other)?;
        let sandbox_hub = hub.clone();
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{file}",
                axum::routing::get(rest::account),
            )
            .route(
                "/2010-04-01/Accounts/{acc}/IncomingPhoneNumbers.json",
                axum::routing::get(rest::list_numbers),
            )
            .route(
                "/2010-04-01/Accounts/{acc}/IncomingPhoneNumbers/{file}",
                axum::routing::post(rest::update_number),
            )
            .route(
                "/2010-04-01/Accounts/{acc}/Calls.json",
                axum::routing::post(rest::create_call),
            )
            .route(
                "/2010-04-01/Accounts/{acc}/Calls/{file}",
                axum::routing::get(rest::fetch_call),
            )
            .with_state(sandbox_hub);
        let server = super::server::Server::start(app).await?;
        Ok(TwilioSandbox {
            hub,
            server,
            caller,
        })
    }

    /// The API base URL (`TWILIO_API_URL`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().expect("twilio sandbox lock")
    }

    /// The number's voice URL now.
    pub fn voice_url(&self, phone: &str) -> Option<String> {
        self.lock()
            .numbers
            .iter()
            .find(|n| n.phone == phone)
            .map(|n| n.voice_url.clone())
    }

    /// Sets a number's voice URL as an operator would in the Console.
    pub fn set_voice_url(&self, phone: &str, url: &str) {
        if let Some(n) = self.lock().numbers.iter_mut().find(|n| n.phone == phone) {
            n.voice_url = url.to_string();
        }
    }

    /// Every change of a number's voice URL, in order.
    pub fn voice_url_changes(&self) -> Vec<(String, String)> {
        self.lock().voice_url_changes.clone()
    }

    /// How `to` answers outbound calls (it answers and listens by default).
    pub fn callee(&self, to: &str, callee: Callee) {
        self.lock().callees.insert(to.to_string(), callee);
    }

    /// The transcript of a call once it ended.
    pub async fn wait_call(&self, sid: &str, timeout: Duration) -> Option<Transcript> {
        let found = super::server::wait_for(1, timeout, || {
            self.lock()
                .transcripts
                .iter()
                .filter(|t| t.sid == sid)
                .cloned()
                .collect()
        })
        .await;
        found.into_iter().next()
    }

    /// A form POST to `url`, signed with `token` (None: unsigned), as Twilio sends it.
    pub async fn post_form(
        &self,
        url: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> (u16, String) {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        post(&self.caller, url, &owned, token).await
    }

    /// The same POST as Twilio makes it to `public_url` (and signs it for), arriving
    /// through a reverse proxy at `reach` (its path and query kept).
    pub async fn post_form_through(
        &self,
        public_url: &str,
        reach: &str,
        params: &[(&str, &str)],
        token: &str,
    ) -> (u16, String) {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = signature::sign(token, public_url, &owned);
        let sent = self
            .caller
            .post(reach)
            .header("X-Twilio-Signature", signature)
            .form(&owned)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// A call from `from` to the account's number `to`, the caller taking `turns` at
    /// each `<Gather>` (hanging up when they run out); returns what happened.
    pub async fn call_in(&self, from: &str, to: &str, turns: Vec<Turn>) -> Transcript {
        let (number, account, token, call_sid) = {
            let h = self.lock();
            let call_sid = sid("CA");
            let number = h.numbers.iter().find(|n| n.phone == to).cloned();
            (number, h.account_sid.clone(), h.token.clone(), call_sid)
        };
        let Some(number) = number else {
            return Transcript {
                sid: call_sid,
                ended: format!("{to} is not a number of this account"),
                ..Transcript::default()
            };
        };
        let call = CallParams {
            account,
            sid: call_sid.clone(),
            from: from.into(),
            to: to.into(),
            direction: "inbound",
        };
        self.lock().calls.push(CallRec {
            sid: call_sid.clone(),
            from: from.into(),
            to: to.into(),
            status: "ringing".into(),
            duration: None,
        });
        let began = Instant::now();
        let t = converse(
            &self.caller,
            &token,
            &call,
            "ringing",
            &number.voice_url,
            turns,
        )
        .await;
        finish(
            &self.hub,
            &self.caller,
            &call,
            t,
            "completed",
            &number.status_callback,
            began,
        )
        .await
    }
}

struct CallParams {
    account: String,
    sid: String,
    from: String,
    to: String,
    direction: &'static str,
}

impl CallParams {
    fn params(&self, status: &str) -> Vec<(String, String)> {
        [
            ("AccountSid", self.account.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &self.sid),
            ("CallStatus", status),
            ("Called", &self.to),
            ("Caller", &self.from),
            ("Direction", self.direction),
            ("From", &self.from),
            ("To", &self.to),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    params: &[(String, String)],
    token: Option<&str>,
) -> (u16, String) {
    let mut r = http.post(url).form(params);
    if let Some(token) = token {
        r = r.header("X-Twilio-Signature", signature::sign(token, url, params));
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

fn resolve(base: &str, target: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(target))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| target.to_string())
}

/// Follows the TwiML of a call from its first URL until it ends.
async fn converse(
    http: &reqwest::Client,
    token: &str,
    call: &CallParams,
    first_status: &str,
    first_url: &str,
    turns: Vec<Turn>,
) -> Transcript {
    let mut t = Transcript {
        sid: call.sid.clone(),
        ..Transcript::default()
    };
    if first_url.trim().is_empty() {
        t.ended = "application error: the number has no voice URL".into();
        return t;
    }
    let mut turns = turns.into_iter();
    let mut url = first_url.to_string();
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut twice = false;
    let mut status = first_status.to_string();
    for _ in 0..60 {
        let mut params = call.params(&status);
        params.append(&mut extra);
        status = "in-progress".into();
        let (code, mut body) = post(http, &url, &params, Some(token)).await;
        t.requests.push((url.clone(), code));
        if twice {
            let (again, body2) = post(http, &url, &params, Some(token)).await;
            t.requests.push((url.clone(), again));
            t.retries_same.push(again == code && body2 == body);
            body = body2;
            twice = false;
        }
        if code != 200 {
            t.ended = format!("application error: the webhook answered {code}");
            return t;
        }
        let verbs = match twiml_reader::read(&body) {
            Ok(v) => v,
            Err(e) => {
                t.ended = format!("application error: invalid TwiML ({e})");
                return t;
            }
        };
        let mut next = None;
        for verb in verbs {
            match verb {
                Verb::Say {
                    text,
                    voice,
                    language,
                } => {
                    t.heard.push(text);
                    t.voices.push((voice, language));
                }
                Verb::Pause => {}
                Verb::Hangup | Verb::Reject => {
                    t.ended = "hangup".into();
                    return t;
                }
                Verb::Redirect { url: to } => {
                    next = Some(resolve(&url, &to));
                    break;
                }
                Verb::Gather {
                    action,
                    language,
                    speech_timeout,
                    action_on_empty_result,
                    says,
                    ..
                } => {
                    for s in says {
                        if let Verb::Say {
                            text,
                            voice,
                            language,
                        } = s
                        {
                            t.heard.push(text);
                            t.voices.push((voice, language));
                        }
                    }
                    t.gathers.push((language, speech_timeout));
                    let action = resolve(&url, action.as_deref().unwrap_or(&url));
                    let Some(turn) = turns.next() else {
                        t.ended = "caller hung up".into();
                        return t;
                    };
                    let (words, repeat) = match turn {
                        Turn::Say(w) => (w, false),
                        Turn::SayTwice(w) => (w, true),
                        Turn::Silence => (String::new(), false),
                    };
                    if !words.is_empty() {
                        twice = repeat;
                        extra.push(("SpeechResult".into(), words));
                        extra.push(("Confidence".into(), "0.92".into()));
                        next = Some(action);
                        break;
                    }
                    if action_on_empty_result {
                        next = Some(action);
                        break;
                    }
                    // No speech and no action on an empty result: the next verb.
                }
            }
        }
        match next {
            Some(u) => url = u,
            None => {
                t.ended = "end of TwiML".into();
                return t;
            }
        }
    }
    t.ended = "application error: more than 60 requests on one call".into();
    t
}

/// The call ended: its status recorded, the status callback sent, the transcript kept.
async fn finish(
    hub: &Shared,
    http: &reqwest::Client,
    call: &CallParams,
    mut t: Transcript,
    status: &str,
    status_callback: &str,
    began: Instant,
) -> Transcript {
    let duration = if status == "completed" {
        began.elapsed().as_secs()
    } else {
        0
    };
    t.status = status.to_string();
    let token = {
        let mut h = hub.lock().expect("twilio sandbox lock");
        if let Some(c) = h.calls.iter_mut().find(|c| c.sid == call.sid) {
            c.status = status.to_string();
            c.duration = Some(duration);
        }
        h.token.clone()
    };
    if !status_callback.trim().is_empty() {
        let mut params = call.params(status);
        params.push(("CallDuration".into(), duration.to_string()));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), "0".into()));
        params.push(("Timestamp".into(), chrono::Utc::now().to_rfc2822()));
        let sip = match status {
            "busy" => Some("486"),
            "no-answer" => Some("487"),
            "failed" => Some("404"),
            "completed" => Some("200"),
            _ => None,
        };
        if let Some(code) = sip {
            params.push(("SipResponseCode".into(), code.into()));
        }
        post(http, status_callback, &params, Some(&token)).await;
    }
    hub.lock()
        .expect("twilio sandbox lock")
        .transcripts
        .push(t.clone());
    t
}
