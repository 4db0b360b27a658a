//! One visitor's chat: the WebSocket session (frames both ways, the visitor's open
//! sockets in the hub) and what becomes of each message — refused in words the widget
//! shows (size, rate, offline), or recorded in the ledger and queued for the agent.

use super::http::{Found, WidgetHttp};
use super::hub::hub;
use super::limits::Refused;
use super::protocol::{self, ClientFrame};
use crate::connectors::{Event, Inbound};
use crate::runtime::pipeline::record;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use std::net::IpAddr;
use std::sync::Arc;
use tracing::Instrument;

/// A quiet chat is pinged this often: proxies close idle connections (nginx after 60 s),
/// and a visitor who vanished without closing is noticed.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl WidgetHttp {
    fn limited(&self, found: &Found, what: &str, r: Refused) {
        if r.first {
            self.pipe.log(found.conn.id, "WARN", what.to_string());
        }
    }

    /// One visitor frame: recorded in the ledger and queued for the agent, or refused
    /// with a sentence the widget shows. Returns the frame to send back.
    pub(super) async fn message(
        &self,
        id: &str,
        visitor: &str,
        ip: IpAddr,
        origin: &str,
        raw: &str,
    ) -> String {
        let Ok(frame) = serde_json::from_str::<ClientFrame>(raw) else {
            return protocol::error("", "invalid", "This message could not be read.");
        };
        if frame.t != "msg" || !protocol::is_message_id(&frame.id) {
            return protocol::error("", "invalid", "This message could not be read.");
        }
        let text = frame.text.trim();
        if text.is_empty() {
            return protocol::error(&frame.id, "invalid", "An empty message is not sent.");
        }
        let max = self.limits.max_message_chars as usize;
        let chars = text.chars().count();
        if chars > max {
            return protocol::error(
                &frame.id,
                "size",
                &format!(
                    "Your message is too long ({chars} characters; at most {max}). Please shorten it."
                ),
            );
        }
        let found = match self.lookup(id).await {
            Ok(f) => f,
            Err(_) => {
                return protocol::error(
                    &frame.id,
                    "offline",
                    "This chat is not available any more.",
                );
            }
        };
        if let Err(r) = self.per_visitor.take(&format!("{id}/{visitor}")) {
            self.limited(
                &found,
                &format!(
                    "visitor {visitor} sends more than {} messages a minute; their messages are \
                     refused for now",
                    self.limits.messages_per_visitor_per_minute
                ),
                r,
            );
            return protocol::error(
                &frame.id,
                "rate",
                &format!(
                    "You are sending messages too quickly. Please wait {} seconds and try again.",
                    r.wait.as_secs()
                ),
            );
        }
        if let Err(r) = self.per_ip.take(&ip.to_string()) {
            self.limited(
                &found,
                &format!(
                    "{ip} sends more than {} messages a minute; its messages are refused for now \
                     (widget.messages_per_ip_per_minute)",
                    self.limits.messages_per_ip_per_minute
                ),
                r,
            );
            return protocol::error(
                &frame.id,
                "rate",
                &format!(
                    "Too many messages from your network right now. Please wait {} seconds and try again.",
                    r.wait.as_secs()
                ),
            );
        }
        if !found.online() {
            return protocol::error(
                &frame.id,
                "offline",
                &format!(
                    "{} is offline right now, so your message was not sent. Please try again later.",
                    found.settings().title
                ),
            );
        }
        let inbound = Inbound {
            account: String::new(),
            provider_id: format!("{visitor}:{}", frame.id),
            customer: visitor.to_string(),
            display_name: format!("visitor {}", &visitor[..8]),
            text: text.to_string(),
            raw: serde_json::json!({ "origin": origin }).to_string(),
        };
        let conn_id = found.conn.id;
        let recorded = record(
            &self.pipe.writer,
            conn_id,
            &mut vec![Event::Message(inbound)],
            None,
            None,
        )
        .instrument(self.pipe.span(conn_id))
        .await;
        match recorded {
            Ok(fresh) => {
                if let Some(inbox) = self.pipe.inbox(conn_id) {
                    for entry in fresh {
                        inbox.dispatch(entry);
                    }
                }
                protocol::ack(&frame.id)
            }
            Err(e) => {
                self.pipe.log(
                    conn_id,
                    "WARN",
                    format!("a visitor's message could not be recorded: {e}"),
                );
                protocol::error(
                    &frame.id,
                    "busy",
                    "Your message could not be delivered yet; it is sent again in a moment.",
                )
            }
        }
    }
}

/// Holds one of an address's chat connections; given back when dropped.
pub(super) struct Slot {
    s: Arc<WidgetHttp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.s.open_per_ip.lock().expect("open lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

pub(super) fn slot(s: &Arc<WidgetHttp>, ip: IpAddr) -> Option<Slot> {
    let mut open = s.open_per_ip.lock().expect("open lock");
    let n = open.entry(ip).or_insert(0);
    if *n >= s.limits.connections_per_ip {
        return None;
    }
    *n += 1;
    Some(Slot { s: s.clone(), ip })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn session(
    s: Arc<WidgetHttp>,
    id: String,
    found: Found,
    visitor: String,
    ip: IpAddr,
    origin: String,
    socket: WebSocket,
    _slot: Slot,
) {
    let widget = hub().widget(&id);
    let mut joined = widget.join(&visitor);
    let (mut sink, mut stream) = socket.split();
    let online = found.online();
    let mut first = vec![protocol::status(online, "")];
    first.append(&mut joined.pending);
    for f in first {
        if sink.send(Message::Text(f.into())).await.is_err() {
            widget.leave(&visitor, joined.socket);
            return;
        }
    }
    let mut next_ping = tokio::time::Instant::now() + PING_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_ping) => {
                next_ping += PING_EVERY;
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            f = joined.frames.recv() => match f {
                Some(f) => {
                    if sink.send(Message::Text(f.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let back = s.message(&id, &visitor, ip, &origin, t.as_str()).await;
                    if sink.send(Message::Text(back.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    widget.leave(&visitor, joined.socket);
}
