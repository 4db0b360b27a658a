//! One outbound call: INVITE (an SDP offer of PCMU, PCMA and telephone-event) to
//! `sip:NUMBER@registrar`, through the outbound proxy when there is one, the digest
//! challenge answered; ringing until `SIP_RING_TIMEOUT`, then CANCEL; once answered
//! (the stack ACKs the 200) the same conversation as an inbound call.

use super::call::{self, Call, Direction, Ended, Lines, Opening, Slot};
use super::sdp;
use crate::model::{CallProgress, CallRequest, CallState};
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Response, StatusCode};
use rsipstack::transport::SipAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

/// Where and as whom a call goes out.
pub struct Route {
    /// `sip:NUMBER@registrar`: the Request-URI and To.
    pub callee: rsipstack::sip::Uri,
    /// `sip:CALLER_ID@registrar`: the From.
    pub caller: rsipstack::sip::Uri,
    /// The outbound proxy, when the line has one: every request goes there.
    pub proxy: Option<SipAddr>,
    /// The first hop (the proxy, else the registrar), to pick our own address by.
    pub next_hop: SocketAddr,
    /// Our Contact when calls ride a TLS flow (its own end); else our address and
    /// signalling port.
    pub contact: Option<rsipstack::sip::Uri>,
    pub credential: Credential,
    pub ring_timeout: Duration,
}

/// Reports each step of the call; a closed receiver (the runtime stopped) is no
/// reason to stop the call.
struct Steps(UnboundedSender<CallProgress>);

impl Steps {
    fn send(&self, step: CallProgress) {
        self.0.send(step).ok();
    }

    fn at(&self, state: CallState, reason: impl Into<String>) {
        self.send(CallProgress::to(state).because(reason));
    }
}

/// What a final response other than 2xx means for the request, by RFC 3261's codes:
/// the callee's line is busy, nobody took the call, or it could not be placed.
pub fn outcome_of(status: &StatusCode) -> CallState {
    match status.code() {
        486 | 600 => CallState::Busy,
        408 | 480 | 487 => CallState::NoAnswer,
        _ => CallState::Failed,
    }
}

/// The reason of a call hung up because its connection stopped: it was held, so it
/// is completed (as a provider reports a call either side hung up), and this says who.
const STOPPED_ANSWERED: &str = "flametree hung up: the connection stopped during the call";
/// The reason of a call cancelled because its connection stopped while it rang.
const STOPPED_RINGING: &str = "the connection stopped while it rang; CANCEL sent";

/// Why we cancelled an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// Nobody answered within `SIP_RING_TIMEOUT`.
    RingTimeout,
    /// The connection is stopping.
    Stopping,
}

/// Places the call and holds it to its end, reporting each step.
pub async fn place(
    lines: Arc<Lines>,
    route: Route,
    request: &CallRequest,
    progress: UnboundedSender<CallProgress>,
) {
    let steps = Steps(progress);
    let to = request.callee.as_str();
    let label = format!("call to {to}");
    let _slot = match Slot::take(&lines) {
        Ok(slot) => slot,
        Err(taken) => {
            let why = call::at_most(taken, lines.max_calls);
            warn!("{label} was not placed: {why}");
            return steps.at(CallState::Failed, why);
        }
    };
    let ip = match call::route_to(route.next_hop) {
        Ok(ip) => ip,
        Err(why) => return steps.at(CallState::Failed, why),
    };
    let socket = match call::bind_rtp(lines.rtp_ports, ip).await {
        Ok(s) => s,
        Err(why) => return steps.at(CallState::Failed, why),
    };
    let local = socket.local_addr().expect("a bound socket has an address");
    let contact = match route.contact.clone() {
        Some(uri) => Ok(uri),
        None => rsipstack::sip::Uri::try_from(format!(
            "sip:{}@{}",
            lines.user,
            SocketAddr::new(ip, lines.sip_port)
        )),
    };
    let Ok(contact) = contact else {
        return steps.at(CallState::Failed, "the line's own SIP address is not valid");
    };
    let call_id = format!("{:032x}@flametree", rand::random::<u128>());
    steps.send(CallProgress {
        call_id: call_id.clone(),
        ..CallProgress::to(CallState::Dialing)
    });
    info!(
        "{label}: INVITE {} as {} (call {call_id}, audio {local})",
        route.callee, route.caller
    );
    let option = InviteOption {
        caller: route.caller.clone(),
        callee: route.callee.clone(),
        destination: route.proxy.clone(),
        content_type: Some("application/sdp".into()),
        offer: Some(sdp::offer(local, rand::random::<u32>().into()).into_bytes()),
        contact,
        credential: Some(route.credential.clone()),
        call_id: Some(call_id.clone()),
        ..Default::default()
    };
    let (states_tx, mut states) = lines.dialogs.new_dialog_state_channel();
    let (dialog, mut invite) = match lines.dialogs.do_invite_async(option, states_tx) {
        Ok(started) => started,
        Err(e) => return steps.at(CallState::Failed, format!("the INVITE: {e}")),
    };
    let ring_until = tokio::time::Instant::now() + route.ring_timeout;
    let mut rang = false;
    let mut cancelled: Option<Cancelled> = None;
    let mut states_open = true;
    let answered = loop {
        // States first: a 180 followed at once by the 200 is still reported as ringing
        // (the state is queued before the INVITE's outcome is).
        tokio::select! {
            biased;
            state = states.recv(), if states_open => match state {
                Some(DialogState::Early(_, resp)) if !rang => {
                    rang = true;
                    info!("{label}: ringing ({})", resp.status_code);
                    steps.at(CallState::Ringing, resp.status_code.to_string());
                }
                Some(_) => {}
                None => states_open = false,
            },
            done = &mut invite => break done,
            _ = tokio::time::sleep_until(ring_until), if cancelled.is_none() => {
                cancelled = Some(Cancelled::RingTimeout);
                info!(
                    "{label}: no answer within {} s (SIP_RING_TIMEOUT); cancelling",
                    route.ring_timeout.as_secs()
                );
                if let Err(e) = dialog.cancel().await {
                    warn!("{label}: the CANCEL failed ({e})");
                }
            }
            _ = lines.stop.cancelled(), if cancelled.is_none() => {
                cancelled = Some(Cancelled::Stopping);
                info!("{label}: the connection is stopping; cancelling");
                if let Err(e) = dialog.cancel().await {
                    warn!("{label}: the CANCEL failed ({e})");
                }
            }
        }
    };
    let (dialog_id, response) = match answered {
        Ok(Ok(done)) => done,
        // The endpoint went away with the connection before the CANCEL was answered.
        _ if cancelled == Some(Cancelled::Stopping) => {
            return steps.at(CallState::Canceled, STOPPED_RINGING);
        }
        Ok(Err(e)) => {
            warn!("{label}: not placed ({e})");
            return steps.at(CallState::Failed, e.to_string());
        }
        Err(e) => return steps.at(CallState::Failed, format!("the INVITE ended early ({e})")),
    };
    let response: Response = match response {
        Some(r) if r.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => r,
        other => {
            let status = other.map(|r| r.status_code);
            let (state, reason) = refused(status.as_ref(), cancelled, route.ring_timeout);
            info!("{label} did not connect: {state} ({reason})");
            return steps.at(state, reason);
        }
    };
    if cancelled.is_some() {
        // Answered as the CANCEL crossed it: the stack hangs that session up itself.
        return steps.at(CallState::NoAnswer, "answered after the CANCEL; hung up");
    }
    let body = String::from_utf8_lossy(&response.body).to_string();
    let offer = match sdp::read_offer(&body) {
        Ok(o) => o,
        Err(why) => {
            warn!("{label}: the callee's answer cannot be used ({why}); hanging up");
            dialog.bye().await.ok();
            lines.dialogs.remove_dialog(&dialog_id);
            return steps.at(CallState::Failed, format!("the callee's answer: {why}"));
        }
    };
    info!(
        "{label} answered ({}, audio {local} ⇄ {})",
        offer.codec.name(),
        offer.remote
    );
    steps.send(CallProgress::to(CallState::Answered));
    lines.calls.started(&call_id);
    let started = Instant::now();
    let call = Call {
        label,
        customer: to.to_string(),
        direction: Direction::Outbound,
        call_id: call_id.clone(),
        offer,
        socket,
        lines: lines.clone(),
        opening: match request.opening.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => Opening::Say(text.to_string()),
            _ => Opening::Greeting,
        },
    };
    let ended = call.hold(&mut states, &dialog, started).await;
    lines.calls.ended(&call_id);
    lines.dialogs.remove_dialog(&dialog_id);
    let by = match ended {
        Ended::Us => "ended by flametree",
        Ended::Stopped => STOPPED_ANSWERED,
        _ => "ended by the callee",
    };
    steps.send(CallProgress {
        duration_secs: Some(started.elapsed().as_secs() as i64),
        ..CallProgress::to(CallState::Completed).because(by)
    });
}

/// The outcome of a call that was not answered, with the words for it.
fn refused(
    status: Option<&StatusCode>,
    cancelled: Option<Cancelled>,
    ring_timeout: Duration,
) -> (CallState, String) {
    match (status, cancelled) {
        (_, Some(Cancelled::RingTimeout)) => (
            CallState::NoAnswer,
            format!(
                "no answer within SIP_RING_TIMEOUT, {} s; CANCEL sent{}",
                ring_timeout.as_secs(),
                status.map(|s| format!(", {s}")).unwrap_or_default()
            ),
        ),
        (_, Some(Cancelled::Stopping)) => (CallState::Canceled, STOPPED_RINGING.into()),
        (Some(s), None) => (outcome_of(s), s.to_string()),
        (None, None) => (CallState::Failed, "no final answer to the INVITE".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_responses_become_outcomes() {
        let code = StatusCode::from;
        assert_eq!(outcome_of(&StatusCode::BusyHere), CallState::Busy);
        assert_eq!(outcome_of(&code(600)), CallState::Busy);
        for c in [408, 480, 487] {
            assert_eq!(outcome_of(&code(c)), CallState::NoAnswer, "{c}");
        }
        for c in [403, 404, 407, 488, 503] {
            assert_eq!(outcome_of(&code(c)), CallState::Failed, "{c}");
        }
        let (state, why) = refused(Some(&StatusCode::BusyHere), None, Duration::ZERO);
        assert_eq!((state, why.as_str()), (CallState::Busy, "486 Busy Here"));
        let (state, why) = refused(
            Some(&code(487)),
            Some(Cancelled::RingTimeout),
            Duration::from_secs(30),
        );
        assert_eq!(state, CallState::NoAnswer);
        assert!(
            why.starts_with("no answer within SIP_RING_TIMEOUT, 30 s; CANCEL sent"),
            "{why}"
        );
    }
}
