//! Twilio Voice: calls answered by the agent through TwiML. On start the credentials
//! are checked and the number's voice URL pointed at the connection (the previous one
//! is logged, remembered and put back on stop). Each call is a loop of `<Gather
//! input="speech">` → the caller's words (a ledger entry keyed by CallSid and turn) →
//! the agent's reply in `<Say>` → the next Gather; every request is checked against
//! `X-Twilio-Signature`.

pub mod api;
pub mod board;
pub mod call;
mod settings;
pub mod signature;
pub mod twiml;

pub use call::outcome_words;
pub use settings::open_twilio;

use super::{
    ConnConfig, Connector, ConnectorError, Event, HookRequest, HookResponse, HookVerdict, Inbound,
    Outbound, Receiver,
};
use api::{Api, CallState, Hooks};
use async_trait::async_trait;
use board::Answer;
use call::{CallRequest, Step};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};
use twiml::Voice;

/// Said while the agent's answer is not ready within `TWILIO_REPLY_BUDGET`.
const FILLER: &str = "One moment, please.";
/// The caller is asked to hold on at most this many times for one answer.
const MAX_HOLDS: u32 = 4;
const STILL_THERE: &str = "Sorry, I did not catch that. Are you still there?";
const SILENT_BYE: &str = "I cannot hear you, so I will end the call now. Goodbye.";
const GOODBYE: &str = "Thank you for calling. Goodbye.";
const NOBODY: &str = "Sorry, nobody can take your call right now. Please try again later. Goodbye.";
const TOO_SLOW: &str = "Sorry, that took too long. Could you say that again?";
/// Calls whose turns are answered at the same time, per connection: each caller waits
/// on the line, so one slow answer must not hold up the others.
const CALLS_AT_ONCE: usize = 32;
/// What the caller's arrival says to the agent: its greeting (the rule responder
/// greets a hello).
const CALL_OPENS: &str = "Hello";

pub struct Twilio {
    api: Api,
    number: String,
    /// The connection's webhook path: unique across databases, so replies on the board
    /// never meet another connection's.
    hook_id: String,
    /// The calls in progress, for the connection's status: from a call's first webhook
    /// to its status callback, or to the hang-up we sent.
    calls: super::Calls,
    /// `<TWILIO_WEBHOOK_BASE_URL or public URL>/hooks/<id>`: what Twilio calls and signs.
    webhook: String,
    voice: Voice,
    budget: Duration,
    /// The number's IncomingPhoneNumber sid (found by `verify`) and what its hooks were
    /// before they pointed here (put back by `release`).
    line: Mutex<Option<(String, Option<Hooks>)>>,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(open_twilio(cfg)?))
}

/// A URL as the log may show it: without user and password.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ if url.is_empty() => "(none)".into(),
        _ => url.to_string(),
    }
}

fn twiml(body: String) -> HookResponse {
    HookResponse {
        status: 200,
        content_type: "text/xml",
        body,
    }
}

impl Twilio {
    fn with_query(&self, query: &str) -> String {
        format!("{}?{query}", self.webhook)
    }

    fn action(&self, turn: u32) -> String {
        self.with_query(&format!("t={turn}"))
    }

    /// The URL Twilio requested, rebuilt on our public base: behind a proxy the
    /// ingress's own view of the host is not what Twilio signed.
    fn requested_url(&self, req: &HookRequest) -> String {
        match req.url.split_once('?') {
            Some((_, q)) => self.with_query(q),
            None => self.webhook.clone(),
        }
    }

    /// Places an outbound call whose TwiML comes from this connection; it opens with
    /// `opening`, or the agent's greeting. Returns the call's sid.
    pub async fn place_call(
        &self,
        to: &str,
        opening: Option<&str>,
    ) -> Result<String, ConnectorError> {
        let url = match opening.map(str::trim).filter(|o| !o.is_empty()) {
            Some(o) => {
                let q: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("open", o)
                    .finish();
                self.with_query(&q)
            }
            None => self.webhook.clone(),
        };
        self.api
            .create_call(&self.number, to, &url, &self.with_query("event=status"))
            .await
    }

    pub async fn call_state(&self, sid: &str) -> Result<CallState, ConnectorError> {
        self.api.call_state(sid).await
    }

    /// The events of a verified request, and its TwiML when no agent's answer is needed.
    fn read(&self, r: &CallRequest) -> (Vec<Event>, Option<String>) {
        let sid = r.sid().to_string();
        let note = |note: String| Event::Ignored { note };
        let message = |turn: u32, text: &str| {
            Event::Message(Inbound {
                account: String::new(),
                provider_id: r.turn_key(turn),
                customer: r.customer().to_string(),
                display_name: r.param("CallerName").to_string(),
                text: text.to_string(),
                raw: serde_json::to_string(&r.params).unwrap_or_default(),
            })
        };
        match &r.step {
            Step::Goodbye { .. } | Step::Silence { silent: 2.., .. } => self.calls.ended(&sid),
            Step::Status if call::is_over(r.param("CallStatus")) => self.calls.ended(&sid),
            Step::Start | Step::Open(_) => self.calls.started(&sid),
            _ => {}
        }
        match &r.step {
            Step::Start => {
                let line = if r.outbound() {
                    format!("call {sid} to {} answered (outbound)", r.param("To"))
                } else {
                    format!("call {sid} from {} to {}", r.param("From"), r.param("To"))
                };
                (vec![note(line), message(0, CALL_OPENS)], None)
            }
            Step::Open(text) => (
                vec![note(format!(
                    "call {sid} to {} answered (outbound); opening with \"{text}\"",
                    r.param("To")
                ))],
                Some(twiml::listen(&self.voice, text, &self.action(1))),
            ),
            Step::Speech { turn, text } => (
                vec![
                    note(format!(
                        "call {sid}, turn {turn}: the caller said \"{text}\""
                    )),
                    message(*turn, text),
                ],
                None,
            ),
            Step::Goodbye { turn, text } => (
                vec![note(format!(
                    "call {sid}, turn {turn}: the caller said \"{text}\"; saying goodbye and \
                     hanging up"
                ))],
                Some(twiml::hang_up(&self.voice, GOODBYE)),
            ),
            Step::Silence { turn, silent } if *silent >= 2 => (
                vec![note(format!(
                    "call {sid}, turn {turn}: silence again; hanging up politely"
                ))],
                Some(twiml::hang_up(&self.voice, SILENT_BYE)),
            ),
            Step::Silence { turn, silent } => (
                vec![note(format!(
                    "call {sid}, turn {turn}: silence; asking again"
                ))],
                Some(twiml::listen(
                    &self.voice,
                    STILL_THERE,
                    &self.with_query(&format!("t={turn}&s={silent}")),
                )),
            ),
            Step::Hold { .. } => (Vec::new(), None),
            Step::Status => (call::status_events(r), Some(twiml::empty())),
        }
    }
}

#[async_trait]
impl Connector for Twilio {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let account = self.api.account().await?;
        let Some(number) = self.api.number(&self.number).await? else {
            return Err(ConnectorError::Permanent(format!(
                "Phone number {} is not a number of the Twilio account '{account}': check \
                 Phone number (E.164, e.g. +14155550123), Save, then start the agent again",
                self.number
            )));
        };
        info!(
            "connected to Twilio account '{account}'; {} is its number {}",
            self.number, number.sid
        );
        let mut line = self.line.lock().expect("line lock");
        let before = line.as_ref().and_then(|(_, h)| h.clone());
        *line = Some((number.sid, before.or(Some(number.hooks))));
        Ok(format!("answering {} (account '{account}')", self.number))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        let (sid, current) = self
            .line
            .lock()
            .expect("line lock")
            .clone()
            .ok_or_else(|| ConnectorError::transient("the number was not looked up yet"))?;
        let mut previous = current.unwrap_or_default();
        if previous.voice_url == self.webhook {
            // Still ours: flametree did not stop cleanly. What was there before it was
            // remembered when it took the number over.
            match rx.inbox.cursor().await {
                Some((saved, _)) => {
                    previous = serde_json::from_str(&saved).unwrap_or_default();
                }
                None => previous = Hooks::default(),
            }
        } else {
            let saved = serde_json::to_string(&previous).unwrap_or_default();
            rx.inbox.submit(Vec::new(), Some(saved)).await?;
        }
        let ours = Hooks {
            voice_url: self.webhook.clone(),
            voice_method: "POST".into(),
            status_callback: self.with_query("event=status"),
            status_callback_method: "POST".into(),
        };
        self.api.set_hooks(&sid, &ours).await?;
        info!(
            "the voice URL of {} was {}; it now points at this connection (put back on stop)",
            self.number,
            shown(&previous.voice_url)
        );
        *self.line.lock().expect("line lock") = Some((sid, Some(previous)));
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        super::phone_recipient(to)
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let Some(key) = out.in_reply_to.filter(|k| k.contains(':')) else {
            return Err(ConnectorError::Permanent(
                "a Twilio connection speaks on calls: place one with `flametree call \
                 --connection NAME --to NUMBER --text …`"
                    .into(),
            ));
        };
        let (sid, turn) = key.rsplit_once(':').unwrap_or((key, ""));
        info!("call {sid}, turn {turn}: the agent says \"{}\"", out.text);
        board::post(&self.hook_id, key, Answer::Reply(out.text.to_string()));
        Ok(format!("{key}:reply"))
    }

    fn unanswered(&self, key: &str) {
        board::post(&self.hook_id, key, Answer::Nobody);
    }

    fn answers_at_once(&self) -> usize {
        CALLS_AT_ONCE
    }

    fn started_by_us(&self, raw: &str) -> bool {
        serde_json::from_str::<std::collections::HashMap<String, String>>(raw)
            .ok()
            .and_then(|p| p.get("Direction").cloned())
            .is_some_and(|d| d.starts_with("outbound"))
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        if req.method != "POST" {
            return HookVerdict::Reject {
                status: 405,
                why: format!(
                    "a {} request was refused: Twilio POSTs its webhooks",
                    req.method
                ),
            };
        }
        let params: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        let given = req.header("X-Twilio-Signature").unwrap_or("");
        if !signature::valid(&self.api.token, &self.requested_url(req), &params, given) {
            let why = if given.is_empty() {
                "a request without X-Twilio-Signature was refused".to_string()
            } else {
                "a request whose X-Twilio-Signature does not match was refused: check that Auth \
                 token is this account's, and that Twilio calls exactly the webhook URL (set \
                 TWILIO_WEBHOOK_BASE_URL or http.public_url to the public address)"
                    .to_string()
            };
            return HookVerdict::Reject { status: 403, why };
        }
        let r = CallRequest::read(&req.query, &params);
        if r.param("AccountSid") != self.api.account_sid {
            return HookVerdict::Reject {
                status: 403,
                why: "a request for another Twilio account was refused".into(),
            };
        }
        let (events, response) = self.read(&r);
        HookVerdict::Accept {
            events,
            response: twiml(response.unwrap_or_else(twiml::empty)),
        }
    }

    async fn respond(&self, req: &HookRequest, accepted: HookResponse) -> HookResponse {
        let params: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        let r = CallRequest::read(&req.query, &params);
        let (turn, round) = match r.step {
            Step::Start => (0, 0),
            Step::Speech { turn, .. } => (turn, 0),
            Step::Hold { turn, round } => (turn, round),
            _ => return accepted,
        };
        let key = r.turn_key(turn);
        match board::wait(&self.hook_id, &key, self.budget).await {
            Some(Answer::Reply(text)) => {
                twiml(twiml::listen(&self.voice, &text, &self.action(turn + 1)))
            }
            Some(Answer::Nobody) => {
                self.calls.ended(r.sid());
                twiml(twiml::hang_up(&self.voice, NOBODY))
            }
            None if round >= MAX_HOLDS => {
                warn!("call {}: no answer for turn {turn} in time", r.sid());
                twiml(twiml::listen(&self.voice, TOO_SLOW, &self.action(turn + 1)))
            }
            None => twiml(twiml::hold(
                &self.voice,
                FILLER,
                &self.with_query(&format!("t={turn}&w={}", round + 1)),
            )),
        }
    }

    async fn release(&self) {
        let line = self.line.lock().expect("line lock").clone();
        let Some((sid, Some(previous))) = line else {
            return;
        };
        match self.api.set_hooks(&sid, &previous).await {
            Ok(()) => info!(
                "the voice URL of {} is back to {}",
                self.number,
                shown(&previous.voice_url)
            ),
            Err(e) => warn!(
                "could not put the voice URL of {} back to {} ({e}): set it in the Twilio \
                 Console",
                self.number,
                shown(&previous.voice_url)
            ),
        }
    }
}
