//! SIP: a user agent built on rsipstack (0.7, pinned: its API moves fast) — the most
//! active Rust SIP stack, with transactions, digest authentication and registration
//! done to RFC 3261, and the dialogs the call side will need. While its agent runs the
//! connection registers with the registrar (`SIP_REGISTER`), renewing at 3/4 of the
//! granted lifetime, and unregisters when it stops. INVITEs are answered (`call`):
//! G.711 over RTP from `SIP_RTP_PORT_RANGE`, up to `SIP_MAX_CALLS` at once (486 Busy
//! Here beyond). Calls queued by `flametree call` are placed from here (`outbound`),
//! as the line's Caller ID, through its outbound proxy.

mod call;
pub mod g711;
mod outbound;
mod rtp;
mod sdp;
mod tls;
mod vad;

use super::twilio::board::{self, Answer};
use super::{ConnConfig, Connector, ConnectorError, Outbound, Receiver};
use async_trait::async_trait;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::registration::{Registration, backoff_interval, refresh_interval};
use rsipstack::sip::StatusCode;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

/// How long a REGISTER may take (challenge included) before the registrar counts as
/// unreachable.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub struct Sip {
    /// host[:port], as the operator wrote it.
    registrar: String,
    username: String,
    password: String,
    transport: Transport,
    /// What a TLS line trusts (Transport tls only).
    tls: Option<tls::Trust>,
    outbound_proxy: Option<String>,
    /// The user part of our From on outbound calls: Caller ID, else the username.
    caller_id: String,
    /// How long an outbound call may ring before it is cancelled (`SIP_RING_TIMEOUT`).
    ring_timeout: Duration,
    register: bool,
    expires: u32,
    local_port: u16,
    rtp_ports: (u16, u16),
    max_calls: usize,
    /// Where the agent's replies meet the calls waiting for them.
    board: String,
    speech: std::sync::Mutex<Option<Arc<crate::agents::speech_client::SpeechClient>>>,
    calls: crate::connectors::Calls,
    /// The lifetime the registrar granted last (it may grant less than asked).
    granted: AtomicU32,
    ua: Mutex<Option<Ua>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The Request-URI's `;transport=` parameter: UDP is the default and needs none.
    fn param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Transport::Tls => tls::DEFAULT_PORT,
            _ => 5060,
        }
    }
}

/// The running user agent: its endpoint (one UDP socket) and registration.
struct Ua {
    stop: CancellationToken,
    registration: Registration,
    lines: Arc<call::Lines>,
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    /// The TLS flow to the first hop (Transport tls), while it is open.
    flow: Option<tls::Flow>,
}

impl Drop for Ua {
    /// A connection that failed never reaches `release`: its endpoint must still let go
    /// of the port, or the next start after the fix finds SIP_LOCAL_PORT taken.
    fn drop(&mut self) {
        self.lines.stop.cancel();
        self.stop.cancel();
    }
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let field = |k: &str, label: &str| {
        cfg.field(k)
            .map(|v| v.trim().to_string())
            .ok_or_else(|| ConnectorError::Permanent(format!("{label} is not set")))
    };
    let transport = cfg
        .field("transport")
        .unwrap_or_else(|| "udp".into())
        .trim()
        .to_ascii_lowercase();
    let transport = match transport.as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        other => {
            return Err(ConnectorError::Permanent(format!(
                "Transport is '{other}': use udp, tcp or tls"
            )));
        }
    };
    let tls = match transport {
        Transport::Tls => Some(tls::trust(cfg.env("SIP_TLS_CA_FILE").as_deref())?),
        _ => None,
    };
    let expires = cfg
        .env("SIP_REGISTER_EXPIRES")
        .unwrap_or_else(|| "3600".into());
    let expires = match expires.trim().parse::<u32>() {
        Ok(e) if (60..=86_400).contains(&e) => e,
        _ => {
            return Err(ConnectorError::Permanent(format!(
                "SIP_REGISTER_EXPIRES is '{}': use seconds from 60 to 86400",
                expires.trim()
            )));
        }
    };
    let port = cfg.env("SIP_LOCAL_PORT").unwrap_or_else(|| "5060".into());
    let local_port = port.trim().parse::<u16>().map_err(|_| {
        ConnectorError::Permanent(format!(
            "SIP_LOCAL_PORT is '{}': use a port number",
            port.trim()
        ))
    })?;
    let range = cfg
        .env("SIP_RTP_PORT_RANGE")
        .unwrap_or_else(|| "10000-20000".into());
    let rtp_ports = rtp_range(range.trim()).ok_or_else(|| {
        ConnectorError::Permanent(format!(
            "SIP_RTP_PORT_RANGE is '{}': use first-last, e.g. 10000-20000 (ports 1024 to \
             65535, at least two)",
            range.trim()
        ))
    })?;
    let most = cfg.env("SIP_MAX_CALLS").unwrap_or_else(|| "4".into());
    let max_calls = match most.trim().parse::<usize>() {
        Ok(n) if (1..=500).contains(&n) => n,
        _ => {
            return Err(ConnectorError::Permanent(format!(
                "SIP_MAX_CALLS is '{}': use a number of calls from 1 to 500",
                most.trim()
            )));
        }
    };
    let ring = cfg.env("SIP_RING_TIMEOUT").unwrap_or_else(|| "30".into());
    let ring_timeout = match ring.trim().parse::<u64>() {
        Ok(n) if (1..=600).contains(&n) => Duration::from_secs(n),
        _ => {
            return Err(ConnectorError::Permanent(format!(
                "SIP_RING_TIMEOUT is '{}': use seconds from 1 to 600",
                ring.trim()
            )));
        }
    };
    let username = field("username", "Username")?;
    let caller_id = cfg
        .field("caller_id")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| username.clone());
    Ok(Arc::new(Sip {
        board: format!("sip-{}", cfg.connection.id),
        speech: std::sync::Mutex::default(),
        calls: cfg.calls.clone(),
        rtp_ports,
        max_calls,
        registrar: field("registrar", "Registrar")?,
        username,
        caller_id,
        ring_timeout,
        password: cfg.secret("password")?.expose().to_string(),
        transport,
        tls,
        outbound_proxy: cfg
            .field("outbound_proxy")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
        register: cfg.flag("SIP_REGISTER")?,
        expires,
        local_port,
        granted: AtomicU32::new(expires),
        ua: Mutex::default(),
    }))
}

/// `first-last` with room for at least one RTP port (RTP takes the even ones).
fn rtp_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let first = a.checked_add(a % 2)?;
    (a >= 1024 && first <= b).then_some((first, b))
}

fn with_port(host: &str, default: u16) -> String {
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{default}")
    }
}

/// The host of a host[:port] setting.
fn host_of(setting: &str) -> &str {
    setting.split_once(':').map_or(setting, |(host, _)| host)
}

/// The address of a host[:port] setting (`what` names it in the error).
async fn resolve(host: &str, what: &str, default_port: u16) -> Result<SocketAddr, ConnectorError> {
    tokio::net::lookup_host(with_port(host, default_port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ConnectorError::transient(format!("cannot resolve {what} {host}")))
}

/// Whether `to` is someone a SIP line can call: a phone number, or the user part of a
/// SIP address at the registrar ("reception", "2001").
pub fn callee(to: &str) -> Result<(), String> {
    let to = to.trim();
    if to.starts_with('+') {
        return super::phone_recipient(to);
    }
    let user_part = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if (1..=64).contains(&to.len()) && to.chars().all(user_part) {
        Ok(())
    } else {
        Err(format!(
            "'{to}' is neither a phone number (+31612345678) nor a SIP user at the registrar \
             (letters, digits and - . _ ~, e.g. 2001 or reception)"
        ))
    }
}

impl Sip {
    fn server(&self) -> Result<rsipstack::sip::Uri, ConnectorError> {
        let param = self.transport.param();
        rsipstack::sip::Uri::try_from(format!("sip:{}{param}", self.registrar)).map_err(|e| {
            ConnectorError::Permanent(format!(
                "Registrar '{}' is not a SIP address ({e})",
                self.registrar
            ))
        })
    }

    /// Binds the signalling socket and starts the endpoint.
    async fn start_ua(&self) -> Result<Ua, ConnectorError> {
        let stop = CancellationToken::new();
        let local: SocketAddr = ([0, 0, 0, 0], self.local_port).into();
        let udp = UdpConnection::create_connection(local, None, Some(stop.child_token()))
            .await
            .map_err(|e| {
                ConnectorError::Permanent(format!(
                    "cannot use SIP_LOCAL_PORT {} ({e}): another program (or connection) has \
                     it; set SIP_LOCAL_PORT to a free port",
                    self.local_port
                ))
            })?;
        let layer = TransportLayer::new(stop.clone());
        layer.add_transport(udp.into());
        let endpoint = rsipstack::EndpointBuilder::new()
            .with_cancel_token(stop.clone())
            .with_transport_layer(layer)
            .with_user_agent("flametree")
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| ConnectorError::Permanent(format!("the SIP endpoint: {e}")))?;
        let inner = endpoint.inner.clone();
        let lines = Arc::new(call::Lines {
            dialogs: Arc::new(DialogLayer::new(inner.clone())),
            rtp_ports: self.rtp_ports,
            max_calls: self.max_calls,
            user: self.username.clone(),
            sip_port: self.local_port,
            active: AtomicUsize::new(0),
            calls: self.calls.clone(),
            stop: CancellationToken::new(),
            speech: self.speech.lock().expect("speech lock").clone(),
            inbox: std::sync::OnceLock::new(),
            board: self.board.clone(),
        });
        let span = tracing::Span::current();
        tokio::spawn(async move { endpoint.serve().await }.instrument(span.clone()));
        tokio::spawn(serve_calls(incoming, lines.clone(), stop.clone()).instrument(span));
        let mut registration = Registration::new(inner.clone(), Some(self.credential()));
        if let Some(proxy) = &self.outbound_proxy
            && self.tls.is_none()
        {
            registration.outbound_proxy = Some(self.resolve_proxy(proxy).await?);
        }
        let mut ua = Ua {
            stop,
            registration,
            lines,
            endpoint: inner,
            flow: None,
        };
        self.tls_flow(&mut ua).await?;
        Ok(ua)
    }

    async fn resolve_proxy(&self, proxy: &str) -> Result<SocketAddr, ConnectorError> {
        resolve(proxy, "the outbound proxy", self.transport.default_port()).await
    }

    /// A TLS line's flow to its first hop, dialled again when it has closed: every
    /// request (REGISTER, INVITE) is sent on it, and the server may send its own back.
    async fn tls_flow(&self, ua: &mut Ua) -> Result<(), ConnectorError> {
        let Some(trust) = &self.tls else {
            return Ok(());
        };
        if ua.flow.as_ref().is_some_and(tls::Flow::alive) {
            return Ok(());
        }
        let (what, setting) = match &self.outbound_proxy {
            Some(proxy) => ("the outbound proxy", proxy),
            None => ("the registrar", &self.registrar),
        };
        let hop = tls::Hop {
            what,
            name: host_of(setting),
            addr: resolve(setting, what, tls::DEFAULT_PORT).await?,
        };
        let layer = &ua.endpoint.transport_layer;
        // The stack would close an idle flow after 5 minutes, and with it the only
        // way the server can reach us (we listen for no TLS of our own); the flow
        // lives as long as the line, and a dead one shows when the next REGISTER
        // goes unanswered.
        layer.set_stream_idle_timeout(Duration::ZERO);
        let flow = tls::dial(trust, &hop, layer, ua.stop.child_token()).await?;
        info!("TLS to {what} {} ({}) verified", hop.name, hop.addr);
        // Packets go to the flow's peer (the cache key) while the Request-URI keeps
        // the registrar's name.
        ua.registration.outbound_proxy = Some(flow.next_hop);
        ua.registration.contact =
            flow.contact(&self.username)
                .map(|uri| rsipstack::sip::typed::Contact {
                    display_name: None,
                    uri,
                    params: vec![],
                });
        ua.flow = Some(flow);
        Ok(())
    }

    fn credential(&self) -> Credential {
        Credential {
            username: self.username.clone(),
            password: self.password.clone(),
            realm: None,
            auth_username: None,
        }
    }

    /// How an outbound call to `to` goes out: addressed at the registrar, sent to the
    /// outbound proxy when there is one.
    async fn route(
        &self,
        to: &str,
        flow: Option<&tls::Flow>,
    ) -> Result<outbound::Route, ConnectorError> {
        let param = self.transport.param();
        let uri = |user: &str| {
            rsipstack::sip::Uri::try_from(format!("sip:{user}@{}{param}", self.registrar)).map_err(
                |e| {
                    ConnectorError::Permanent(format!(
                        "'{user}@{}' is not a SIP address ({e})",
                        self.registrar
                    ))
                },
            )
        };
        if let Some(flow) = flow {
            return Ok(outbound::Route {
                callee: uri(to)?,
                caller: uri(&self.caller_id)?,
                proxy: Some(flow.target()),
                next_hop: flow.next_hop,
                contact: flow.contact(&self.username),
                credential: self.credential(),
                ring_timeout: self.ring_timeout,
            });
        }
        let proxy = match &self.outbound_proxy {
            Some(p) => Some(self.resolve_proxy(p).await?),
            None => None,
        };
        let next_hop = match proxy {
            Some(addr) => addr,
            None => resolve(&self.registrar, "the registrar", 5060).await?,
        };
        let transport = if self.transport == Transport::Tcp {
            rsipstack::sip::Transport::Tcp
        } else {
            rsipstack::sip::Transport::Udp
        };
        Ok(outbound::Route {
            callee: uri(to)?,
            caller: uri(&self.caller_id)?,
            proxy: proxy.map(|addr| rsipstack::transport::SipAddr {
                r#type: Some(transport),
                ..rsipstack::transport::SipAddr::from(addr)
            }),
            next_hop,
            contact: None,
            credential: self.credential(),
            ring_timeout: self.ring_timeout,
        })
    }

    /// One REGISTER (with its digest challenge); Ok carries the granted lifetime.
    async fn register(&self, ua: &mut Ua, expires: u32) -> Result<u32, ConnectorError> {
        let server = self.server()?;
        self.tls_flow(ua).await?;
        let answer = tokio::time::timeout(
            ANSWER_WITHIN,
            ua.registration.register(server, Some(expires)),
        )
        .await;
        if !matches!(answer, Ok(Ok(_)))
            && let Some(flow) = ua.flow.take()
        {
            flow.drop_from(&ua.endpoint.transport_layer).await;
        }
        let resp = match answer {
            Err(_) => {
                return Err(ConnectorError::transient(format!(
                    "the registrar {} did not answer within {} s",
                    self.registrar,
                    ANSWER_WITHIN.as_secs()
                )));
            }
            Ok(Err(e)) => {
                return Err(ConnectorError::transient(format!(
                    "cannot reach the registrar {} ({e})",
                    self.registrar
                )));
            }
            Ok(Ok(resp)) => resp,
        };
        let code = resp.status_code.code();
        // rsipstack's Display is already "403 Forbidden".
        let why = resp.status_code.to_string();
        match resp.status_code {
            StatusCode::OK => Ok(ua.registration.expires()),
            StatusCode::Unauthorized
            | StatusCode::ProxyAuthenticationRequired
            | StatusCode::Forbidden => Err(ConnectorError::Permanent(format!(
                "the registrar refused username/password ({why}): check Username and Password, \
                 Save, then start the agent again"
            ))),
            StatusCode::NotFound => Err(ConnectorError::Permanent(format!(
                "the registrar does not know user '{}' ({why}): check Username",
                self.username
            ))),
            StatusCode::IntervalTooBrief => Err(ConnectorError::Permanent(format!(
                "the registrar wants a longer registration ({why}): raise SIP_REGISTER_EXPIRES"
            ))),
            _ if code == 408 || code >= 500 => Err(ConnectorError::transient(format!(
                "the registrar {} answered {why}",
                self.registrar
            ))),
            _ => Err(ConnectorError::Permanent(format!(
                "the registrar {} refused the registration ({why})",
                self.registrar
            ))),
        }
    }
}

/// Each new INVITE becomes a call of its own; requests inside a call go to its dialog.
async fn serve_calls(
    mut incoming: rsipstack::transaction::TransactionReceiver,
    lines: Arc<call::Lines>,
    stop: CancellationToken,
) {
    use rsipstack::sip::{HeadersExt, Method};
    // The loop holds the dialog layer, which holds the endpoint and its socket: it
    // must end with the endpoint, or a failed start keeps SIP_LOCAL_PORT taken.
    while let Some(mut tx) = tokio::select! {
        _ = stop.cancelled() => None,
        tx = incoming.recv() => tx,
    } {
        let method = tx.original.method;
        let in_dialog = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        if method == Method::Invite && !in_dialog {
            tokio::spawn(call::answer(lines.clone(), tx).in_current_span());
            continue;
        }
        if let Some(mut dialog) = lines.dialogs.match_dialog(&tx) {
            tokio::spawn(
                async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        warn!("a SIP {method} in a call: {e}");
                    }
                }
                .in_current_span(),
            );
            continue;
        }
        let status = match method {
            Method::Ack => continue,
            Method::Options => StatusCode::OK,
            Method::Bye | Method::Cancel | Method::Invite => {
                StatusCode::CallTransactionDoesNotExist
            }
            _ => StatusCode::MethodNotAllowed,
        };
        if let Err(e) = tx.reply(status).await {
            warn!("could not answer a SIP {method}: {e}");
        }
    }
}

#[async_trait]
impl Connector for Sip {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let mut guard = self.ua.lock().await;
        if guard.is_none() {
            *guard = Some(self.start_ua().await?);
        }
        let ua = guard.as_mut().expect("just set");
        if !self.register {
            return Ok(format!(
                "not registering (SIP_REGISTER=false); listening on port {}",
                self.local_port
            ));
        }
        let granted = self.register(ua, self.expires).await?;
        self.granted.store(granted, Ordering::Relaxed);
        info!(
            "registered as {} with {} for {granted} s",
            self.username, self.registrar
        );
        Ok(format!(
            "registered as {}@{}",
            self.username, self.registrar
        ))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        if let Some(ua) = self.ua.lock().await.as_ref() {
            let _ = ua.lines.inbox.set(rx.inbox.clone());
        }
        rx.inbox.running("").await;
        if !self.register {
            rx.stop.cancelled().await;
            return Ok(());
        }
        let mut wait = refresh_interval(self.granted.load(Ordering::Relaxed));
        let mut failures = 0;
        loop {
            tokio::select! {
                _ = rx.stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            let mut guard = self.ua.lock().await;
            let Some(ua) = guard.as_mut() else {
                return Err(ConnectorError::transient(
                    "the SIP user agent is not running",
                ));
            };
            match self.register(ua, self.expires).await {
                Ok(granted) => {
                    if failures > 0 {
                        rx.inbox.running("").await;
                    }
                    failures = 0;
                    info!("registration renewed for {granted} s");
                    wait = refresh_interval(granted);
                }
                Err(ConnectorError::Transient { why, .. }) => {
                    failures += 1;
                    warn!("{why}; trying again");
                    rx.inbox.degraded(&format!("{why}; trying again")).await;
                    wait = backoff_interval(failures);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        callee(to)
    }

    /// A reply to a call's turn (ledger key `Call-ID:turn`) goes to the call waiting
    /// for it, which speaks it.
    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let Some(key) = out.in_reply_to.filter(|k| k.contains(':')) else {
            return Err(ConnectorError::Permanent(
                "a SIP connection speaks on calls only: place one with `flametree call \
                 --connection NAME --to NUMBER --text …`"
                    .into(),
            ));
        };
        let (call, turn) = key.rsplit_once(':').unwrap_or((key, ""));
        info!("call {call}, turn {turn}: the agent says \"{}\"", out.text);
        board::post(&self.board, key, Answer::Reply(out.text.to_string()));
        Ok(format!("{key}:reply"))
    }

    fn unanswered(&self, key: &str) {
        board::post(&self.board, key, Answer::Nobody);
    }

    fn answers_at_once(&self) -> usize {
        self.max_calls
    }

    fn started_by_us(&self, raw: &str) -> bool {
        call::placed_by_us(raw)
    }

    async fn place_call(
        &self,
        request: &crate::model::CallRequest,
        progress: tokio::sync::mpsc::UnboundedSender<crate::model::CallProgress>,
    ) -> Result<(), ConnectorError> {
        callee(&request.callee).map_err(ConnectorError::Permanent)?;
        let (lines, route) = {
            let mut guard = self.ua.lock().await;
            let ua = guard
                .as_mut()
                .ok_or_else(|| ConnectorError::transient("the SIP user agent is not running"))?;
            self.tls_flow(ua).await?;
            (
                ua.lines.clone(),
                self.route(&request.callee, ua.flow.as_ref()).await?,
            )
        };
        outbound::place(lines, route, request, progress).await;
        Ok(())
    }

    fn use_speech(&self, speech: crate::agents::speech_client::SpeechClient) {
        *self.speech.lock().expect("speech lock") = Some(Arc::new(speech));
    }

    async fn release(&self) {
        let Some(mut ua) = self.ua.lock().await.take() else {
            return;
        };
        // Calls in progress say BYE while the endpoint can still send it.
        ua.lines.stop.cancel();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while ua.lines.active.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.register {
            match self.register(&mut ua, 0).await {
                Ok(_) => info!("unregistered from {}", self.registrar),
                Err(e) => warn!("could not unregister from {} ({e})", self.registrar),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{callee, rtp_range};

    #[test]
    fn callees_are_numbers_or_sip_users() {
        assert!(callee("+31612345678").is_ok());
        assert!(callee("2001").is_ok());
        assert!(callee("reception.desk").is_ok());
        assert!(callee("+3161234").is_ok());
        let e = callee("+31 6 12").unwrap_err();
        assert!(e.contains("not a phone number"), "{e}");
        for bad in [
            "",
            "ann@example.com",
            "a b",
            "sip:2001",
            "x;transport=tcp",
            "<2001>",
        ] {
            let e = callee(bad).unwrap_err();
            assert!(e.contains("neither a phone number"), "{bad}: {e}");
        }
        assert!(callee(&"9".repeat(65)).is_err());
    }

    #[test]
    fn rtp_port_ranges_start_even_and_hold_a_port() {
        assert_eq!(rtp_range("10000-20000"), Some((10000, 20000)));
        assert_eq!(rtp_range(" 41001 - 41003 "), Some((41002, 41003)));
        assert_eq!(rtp_range("41001-41001"), None, "no even port in it");
        assert_eq!(rtp_range("80-90"), None, "privileged ports");
        assert_eq!(rtp_range("20000-10000"), None);
        assert_eq!(rtp_range("10000"), None);
        assert_eq!(rtp_range("a-b"), None);
        assert_eq!(rtp_range("65535-65535"), None, "no even port, no overflow");
    }
}
