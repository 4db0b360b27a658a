//! One answered call: the INVITE's SDP offer read and answered, its RTP socket taken
//! from `SIP_RTP_PORT_RANGE`, audio paced out in 20 ms frames and what arrives put back
//! in order, until either side hangs up.

use super::rtp::{FRAME, Jitter, Packet, telephone_event};
use super::sdp::{self, Offer};
use super::vad::Vad;
use crate::agents::speech_client::SpeechClient;
use crate::connectors::twilio::board::{self, Answer};
use crate::connectors::{Event, Inbound, InboxSink};
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, HeadersExt, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

/// Packets held back waiting for a missing one: 3 frames, 60 ms.
const JITTER_DEPTH: usize = 3;
/// How long the caller has to ACK our 200 OK.
const ACK_WITHIN: Duration = Duration::from_secs(32);
/// What the caller's arrival says to the agent: its greeting (as on Twilio calls).
const CALL_OPENS: &str = "Hello";
/// How long one turn may wait for the agent's reply.
const REPLY_WITHIN: Duration = Duration::from_secs(60);
const NOBODY: &str = "Sorry, nobody can take your call right now. Please try again later.";
const GOODBYE: &str = "Thank you for calling. Goodbye.";

/// What every call of one connection shares.
pub struct Lines {
    pub dialogs: Arc<DialogLayer>,
    /// First and last port of `SIP_RTP_PORT_RANGE`.
    pub rtp_ports: (u16, u16),
    pub max_calls: usize,
    /// For the Contact of our answers: our user name and signalling port.
    pub user: String,
    pub sip_port: u16,
    pub active: AtomicUsize,
    /// The calls in progress as the console shows them (`connectors::Calls`).
    pub calls: crate::connectors::Calls,
    /// Cancelled when the connection stops: every call says BYE.
    pub stop: CancellationToken,
    /// The agent's engines (hearing and speaking) and where the caller's words go.
    pub speech: Option<Arc<SpeechClient>>,
    pub inbox: std::sync::OnceLock<Arc<dyn InboxSink>>,
    /// Where `send` posts the agent's replies for the calls to pick up.
    pub board: String,
}

/// Reads the caller's names from the INVITE, for the log.
fn party(tx: &Transaction) -> (String, String, String) {
    let uri = |h: Option<String>| h.unwrap_or_else(|| "an unknown caller".into());
    let from = tx
        .original
        .from_header()
        .ok()
        .and_then(|f| f.uri().ok())
        .map(|u| u.to_string());
    let to = tx
        .original
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .map(|u| u.to_string());
    let call_id = tx
        .original
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    (uri(from), uri(to), call_id)
}

/// Counts a call in while it lasts (inbound and outbound alike: `SIP_MAX_CALLS`).
pub struct Slot(Arc<Lines>);

impl Slot {
    /// A place for one more call; the calls already in progress when there is none.
    pub fn take(lines: &Arc<Lines>) -> Result<Slot, usize> {
        let taken = lines.active.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(lines.clone());
        if taken >= lines.max_calls {
            return Err(taken);
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a call had no place: inbound and outbound calls share `SIP_MAX_CALLS`.
pub fn at_most(taken: usize, max: usize) -> String {
    let calls = if taken == 1 { "call" } else { "calls" };
    format!("SIP_MAX_CALLS is {max} and the line has {taken} {calls} in progress")
}

/// A new INVITE: busy, refused for its offer, or answered and carried to its end.
pub async fn answer(lines: Arc<Lines>, mut tx: Transaction) {
    let (from, to, call_id) = party(&tx);
    let slot = match Slot::take(&lines) {
        Ok(slot) => slot,
        Err(taken) => {
            info!(
                "a call from {from} was turned away: busy (486), {}",
                at_most(taken, lines.max_calls)
            );
            if let Err(e) = tx.reply(StatusCode::BusyHere).await {
                warn!("could not answer the call from {from}: {e}");
            }
            return;
        }
    };
    let body = String::from_utf8_lossy(&tx.original.body).to_string();
    let offer = match sdp::read_offer(&body) {
        Ok(o) => o,
        Err(why) => {
            info!("a call from {from} was refused (488 Not Acceptable Here): {why}");
            let reason = Header::Other("Warning".into(), format!("304 flametree \"{why}\""));
            if let Err(e) = tx
                .reply_with(StatusCode::NotAcceptableHere, vec![reason], None)
                .await
            {
                warn!("could not answer the call from {from}: {e}");
            }
            return;
        }
    };
    let ip = match route_to(offer.remote) {
        Ok(ip) => ip,
        Err(why) => {
            warn!("a call from {from} was refused (503): {why}");
            tx.reply(StatusCode::ServiceUnavailable).await.ok();
            return;
        }
    };
    // The Contact names the address the caller can reach us on (the endpoint listens
    // on every interface, so it cannot tell which one by itself). A call that came in
    // on our TLS flow can only come back on it: we listen for no TLS of our own.
    let contact = match &tx.connection {
        Some(flow @ rsipstack::transport::SipConnection::Tls(_)) => rsipstack::sip::Uri::try_from(
            format!("sip:{}@{};transport=tls", lines.user, flow.get_addr().addr),
        ),
        _ => rsipstack::sip::Uri::try_from(format!(
            "sip:{}@{}",
            lines.user,
            SocketAddr::new(ip, lines.sip_port)
        )),
    }
    .ok();
    let (states_tx, states) = lines.dialogs.new_dialog_state_channel();
    let dialog = match lines
        .dialogs
        .get_or_create_server_invite(&tx, states_tx, None, contact)
    {
        Ok(d) => d,
        Err(e) => {
            warn!("could not take the call from {from}: {e}");
            tx.reply(StatusCode::ServerInternalError).await.ok();
            return;
        }
    };
    let id = dialog.id();
    // The INVITE transaction (100, CANCEL, the ACK) runs alongside the call.
    let mut handler = rsipstack::dialog::dialog::Dialog::Invite(dialog.clone());
    tokio::spawn(
        async move {
            if let Err(e) = handler.handle(&mut tx).await {
                warn!("the call's INVITE: {e}");
            }
        }
        .in_current_span(),
    );
    dialog.ringing(None, None).ok();
    let socket = match bind_rtp(lines.rtp_ports, ip).await {
        Ok(s) => s,
        Err(why) => {
            warn!("a call from {from} was refused (503): {why}");
            dialog
                .reject(Some(StatusCode::ServiceUnavailable), Some(why))
                .ok();
            lines.dialogs.remove_dialog(&id);
            return;
        }
    };
    let local = socket.local_addr().expect("a bound socket has an address");
    let answer = sdp::answer(local, &offer, rand::random::<u32>().into());
    let content = Header::ContentType("application/sdp".into());
    if let Err(e) = dialog.accept(Some(vec![content]), Some(answer.into_bytes())) {
        warn!("could not answer the call from {from}: {e}");
        lines.dialogs.remove_dialog(&id);
        return;
    }
    info!(
        "call from {from} to {to} answered ({}, audio {local} ⇄ {})",
        offer.codec.name(),
        offer.remote
    );
    // Counted in the connection's status ("· 2 calls in progress") while it lasts.
    lines.calls.started(&call_id);
    let counted = call_id.clone();
    let call = Call {
        label: format!("call from {from}"),
        customer: from,
        direction: Direction::Inbound,
        call_id,
        offer,
        socket,
        lines: lines.clone(),
        opening: Opening::Greeting,
    };
    call.run(states, &dialog).await;
    lines.calls.ended(&counted);
    lines.dialogs.remove_dialog(&id);
    drop(slot);
}

/// The local address the system routes to `remote` by (a connected UDP socket sends
/// nothing; it only picks the route).
pub fn route_to(remote: SocketAddr) -> Result<IpAddr, String> {
    std::net::UdpSocket::bind(if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .and_then(|s| s.connect(remote).map(|_| s))
    .and_then(|s| s.local_addr())
    .map(|a| a.ip())
    .map_err(|e| format!("no route to the caller's audio address {remote} ({e})"))
}

/// A UDP port from the range, bound on the address that routes to the caller (so the
/// answer's c= line names an address the caller can reach).
pub async fn bind_rtp((first, last): (u16, u16), ip: IpAddr) -> Result<UdpSocket, String> {
    // RTP takes even ports (RFC 3550 §11); start somewhere random so calls spread.
    let span = u32::from(last - first) / 2 + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = first + (((start + i) % span) * 2) as u16;
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
            return Ok(s);
        }
    }
    Err(format!(
        "every port of SIP_RTP_PORT_RANGE {first}-{last} is taken"
    ))
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    /// flametree placed it (`flametree call`).
    Outbound,
}

impl Direction {
    /// The other side, in the log's words.
    fn peer(self) -> &'static str {
        match self {
            Direction::Inbound => "caller",
            Direction::Outbound => "callee",
        }
    }
}

/// How a call begins once it is answered.
pub enum Opening {
    /// "Hello" goes to the agent as turn 0 and its reply (the greeting) is spoken.
    Greeting,
    /// These words are spoken first (`flametree call --text`); no agent turn.
    Say(String),
}

/// A call in progress, inbound or outbound: the same conversation either way.
pub struct Call {
    /// How the log names it: "call from sip:ada@…", "call to +31612345678".
    pub label: String,
    /// Whom the agent talks to (its conversation and the ledger's customer).
    pub customer: String,
    pub direction: Direction,
    pub call_id: String,
    /// Where the other side wants its audio, and in which codec.
    pub offer: Offer,
    pub socket: UdpSocket,
    pub lines: Arc<Lines>,
    pub opening: Opening,
}

/// Who ended a call, for its log line and its outcome.
pub enum Ended {
    Peer,
    /// The conversation ended it (the other side said goodbye).
    Us,
    /// The connection stopped (Stop, or flametree shutting down): we hung up.
    Stopped,
    Cancelled,
    NoAck,
}

impl Call {
    /// An answered INVITE: until the ACK only CANCEL (or a BYE) can end it; then the
    /// conversation.
    async fn run(
        self,
        mut states: DialogStateReceiver,
        dialog: &rsipstack::dialog::invite_dialog::InviteDialog,
    ) {
        let started = Instant::now();
        let confirmed = tokio::time::timeout(ACK_WITHIN, async {
            while let Some(s) = states.recv().await {
                match s {
                    DialogState::Confirmed(..) => return Ok(()),
                    DialogState::Terminated(_, TerminatedReason::UacCancel) => {
                        return Err(Ended::Cancelled);
                    }
                    DialogState::Terminated(..) => return Err(Ended::Peer),
                    _ => {}
                }
            }
            Err(Ended::Peer)
        })
        .await
        .unwrap_or(Err(Ended::NoAck));
        let label = &self.label;
        match confirmed {
            Ok(()) => {
                self.hold(&mut states, dialog, started).await;
            }
            Err(Ended::Cancelled) => info!("{label} was cancelled before it was answered"),
            Err(Ended::NoAck) => {
                dialog.bye().await.ok();
                warn!(
                    "{label} dropped: the {} never acknowledged the answer (ACK)",
                    self.direction.peer()
                );
            }
            Err(_) => info!(
                "{label} ended by the {} after {:.1} s",
                self.direction.peer(),
                started.elapsed().as_secs_f32()
            ),
        }
    }

    /// The conversation until either side hangs up (BYE from us when we end it);
    /// logs how it ended and returns who ended it.
    pub async fn hold(
        &self,
        states: &mut DialogStateReceiver,
        dialog: &rsipstack::dialog::invite_dialog::InviteDialog,
        started: Instant,
    ) -> Ended {
        let ended = self.media(states).await;
        let secs = started.elapsed().as_secs_f32();
        let label = &self.label;
        match ended {
            Ended::Us | Ended::Stopped => {
                if let Err(e) = dialog.bye().await {
                    warn!("could not hang up the {label} ({e})");
                }
                let why = match ended {
                    Ended::Stopped => ": the connection stopped",
                    _ => "",
                };
                info!("{label} ended by flametree after {secs:.1} s{why}");
            }
            _ => info!(
                "{label} ended by the {} after {secs:.1} s",
                self.direction.peer()
            ),
        }
        ended
    }

    /// Audio both ways until the dialog ends (BYE) or the connection stops.
    async fn media(&self, states: &mut DialogStateReceiver) -> Ended {
        let codec = self.offer.codec;
        let remote = self.offer.remote;
        let (say, mut queued) = mpsc::unbounded_channel::<Vec<i16>>();
        let (heard, utterances) = mpsc::unbounded_channel::<Vec<i16>>();
        // Set by the conversation when it ends the call: hang up once all is said.
        let hang_up = CancellationToken::new();
        let talk = tokio::spawn(
            self.talk(say, utterances, hang_up.clone())
                .in_current_span(),
        );
        let _ended = AbortOnDrop(talk);
        let mut vad = Vad::default();
        let mut pending: VecDeque<i16> = VecDeque::new();
        let ssrc: u32 = rand::random();
        let mut seq: u16 = rand::random();
        let mut timestamp: u32 = rand::random();
        let mut first = true;
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        // A late tick is sent late, not made up for with a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut jitter = Jitter::new(JITTER_DEPTH);
        let mut buf = [0u8; 2048];
        let mut last_tone: Option<u32> = None;
        loop {
            tokio::select! {
                _ = self.lines.stop.cancelled() => return Ended::Stopped,
                s = states.recv() => match s {
                    Some(DialogState::Terminated(..)) | None => return Ended::Peer,
                    _ => {}
                },
                _ = ticks.tick() => {
                    while let Ok(pcm) = queued.try_recv() {
                        pending.extend(pcm);
                    }
                    if pending.is_empty() && hang_up.is_cancelled() {
                        return Ended::Us;
                    }
                    let frame: Vec<i16> = (0..FRAME)
                        .map(|_| pending.pop_front().unwrap_or(0))
                        .collect();
                    let p = Packet {
                        marker: first,
                        payload_type: codec.payload_type(),
                        seq,
                        timestamp,
                        ssrc,
                        payload: codec.encode(&frame),
                    };
                    first = false;
                    seq = seq.wrapping_add(1);
                    timestamp = timestamp.wrapping_add(FRAME as u32);
                    if let Err(e) = self.socket.send_to(&p.to_bytes(), remote).await {
                        warn!("could not send audio to {remote} ({e})");
                    }
                }
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    let Some(p) = Packet::parse(&buf[..n]) else { continue };
                    jitter.push(p);
                    while let Some(p) = jitter.pop() {
                        if Some(p.payload_type) == self.offer.dtmf {
                            if let Some(tone) = telephone_event(&p.payload)
                                && tone.end
                                && last_tone != Some(p.timestamp)
                            {
                                // The end packet comes three times (RFC 4733 §2.5.1.4).
                                last_tone = Some(p.timestamp);
                                info!(
                                    "{}: the {} pressed {}",
                                    self.label,
                                    self.direction.peer(),
                                    tone.key
                                );
                            }
                        } else if p.payload_type == codec.payload_type()
                            && let Some(utterance) = vad.push(codec.decode(&p.payload))
                        {
                            heard.send(utterance).ok();
                        }
                    }
                }
            }
        }
    }
}

/// Ends the call's conversation when the media loop ends (however it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Call {
    /// The conversation: the opening (the agent's greeting, or the words it was asked
    /// to open with), then each utterance heard → text → the agent (through the
    /// runtime's ledger, keyed by Call-ID and turn) → speech.
    fn talk(
        &self,
        say: mpsc::UnboundedSender<Vec<i16>>,
        mut utterances: mpsc::UnboundedReceiver<Vec<i16>>,
        hang_up: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let speech = self.lines.speech.clone();
        let inbox = self.lines.inbox.get().cloned();
        let board = self.lines.board.clone();
        let (label, customer, call_id) = (
            self.label.clone(),
            self.customer.clone(),
            self.call_id.clone(),
        );
        let direction = self.direction;
        let peer = direction.peer();
        let opening = match &self.opening {
            Opening::Greeting => None,
            Opening::Say(text) => Some(text.clone()),
        };
        async move {
            let (Some(speech), Some(inbox)) = (speech, inbox) else {
                warn!("{label}: no speech engines or agent to talk with; the line stays silent");
                return;
            };
            let t = Turns {
                speech,
                inbox,
                board,
                outbound: direction == Direction::Outbound,
                label,
                customer,
                call_id,
                say,
            };
            match opening {
                Some(text) => {
                    info!("{}: opening with \"{text}\"", t.label);
                    t.say_text(&text).await;
                }
                None => t.turn(0, CALL_OPENS).await,
            }
            let mut n = 0;
            while let Some(audio) = utterances.recv().await {
                let text = match t.speech.transcribe(&audio).await {
                    Ok(text) => text.trim().to_string(),
                    Err(e) => {
                        warn!("{}: speech-to-text failed ({e})", t.label);
                        continue;
                    }
                };
                if text.is_empty() {
                    continue;
                }
                n += 1;
                if crate::connectors::twilio::call::is_goodbye(&text) {
                    info!(
                        "{}, turn {n}: the {peer} said \"{text}\"; saying goodbye and hanging \
                         up",
                        t.label
                    );
                    t.say_text(GOODBYE).await;
                    hang_up.cancel();
                    return;
                }
                info!("{}, turn {n}: the {peer} said \"{text}\"", t.label);
                t.turn(n, &text).await;
            }
        }
    }
}

struct Turns {
    speech: Arc<SpeechClient>,
    inbox: Arc<dyn InboxSink>,
    board: String,
    /// flametree placed the call: its turns are answered with Inbound off too.
    outbound: bool,
    label: String,
    customer: String,
    call_id: String,
    say: mpsc::UnboundedSender<Vec<i16>>,
}

/// Whether a turn's recorded payload belongs to a call flametree placed.
pub fn placed_by_us(raw: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("outbound")?.as_bool())
        .unwrap_or(false)
}

impl Turns {
    async fn turn(&self, n: u32, text: &str) {
        let key = format!("{}:{n}", self.call_id);
        let raw = if self.outbound {
            serde_json::json!({
                "call_id": self.call_id, "to": self.customer, "turn": n, "outbound": true
            })
        } else {
            serde_json::json!({ "call_id": self.call_id, "from": self.customer, "turn": n })
        };
        let event = Event::Message(Inbound {
            account: String::new(),
            provider_id: key.clone(),
            customer: self.customer.clone(),
            display_name: String::new(),
            text: text.to_string(),
            raw: raw.to_string(),
        });
        if let Err(e) = self.inbox.submit(vec![event], None).await {
            warn!("{}: could not record turn {n} ({e})", self.label);
            return;
        }
        let reply = match board::wait(&self.board, &key, REPLY_WITHIN).await {
            Some(Answer::Reply(reply)) => reply,
            Some(Answer::Nobody) => NOBODY.to_string(),
            None => {
                warn!("{}: no answer for turn {n} in time", self.label);
                return;
            }
        };
        self.say_text(&reply).await;
    }

    async fn say_text(&self, text: &str) {
        match self.speech.speak(text).await {
            Ok(pcm) => {
                self.say.send(pcm).ok();
            }
            Err(e) => warn!("{}: text-to-speech failed ({e})", self.label),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_turns_of_calls_we_placed_count_as_ours() {
        assert!(super::placed_by_us(
            r#"{"call_id":"a@b","to":"+31612345678","turn":1,"outbound":true}"#
        ));
        assert!(!super::placed_by_us(
            r#"{"call_id":"a@b","from":"sip:ada@h","turn":1}"#
        ));
        assert!(!super::placed_by_us("not json"));
    }
}
