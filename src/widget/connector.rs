//! The widget as a connector: receiving is the ingress's WebSocket (see `http`), so
//! `receive` only marks the widget online here and keeps the live-visitor count in the
//! status line; `send` pushes the agent's reply to the visitor's open sockets.

use super::hub::{Widget, hub};
use super::protocol;
use crate::connectors::{ConnConfig, Connector, ConnectorError, Outbound, Receiver};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// How often the status line's visitor count is brought up to date (when it changed).
const COUNT_EVERY: Duration = Duration::from_secs(2);

pub struct WidgetConnector {
    widget: Arc<Widget>,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(WidgetConnector {
        widget: hub().widget(&cfg.connection.hook_id),
    }))
}

/// The id of the reply to the visitor's message `re`: the same however often it is sent.
fn reply_id(re: &str) -> String {
    if re.is_empty() {
        protocol::new_id()
    } else {
        format!("re-{re}")
    }
}

pub fn status_line(live: usize) -> String {
    match live {
        1 => "serving the web widget · 1 live visitor".into(),
        n => format!("serving the web widget · {n} live visitors"),
    }
}

#[async_trait]
impl Connector for WidgetConnector {
    async fn verify(&self) -> Result<String, ConnectorError> {
        Ok(status_line(self.widget.live_visitors()))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        self.widget.set_running_here(true);
        self.widget.broadcast(&protocol::status(true, ""));
        rx.inbox.running("").await;
        let mut shown = self.widget.live_visitors();
        loop {
            tokio::select! {
                _ = rx.stop.cancelled() => break,
                _ = tokio::time::sleep(COUNT_EVERY) => {
                    let live = self.widget.live_visitors();
                    if live != shown {
                        shown = live;
                        rx.inbox.degraded(&status_line(live)).await;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        if protocol::is_visitor_id(to) {
            Ok(())
        } else {
            Err(format!(
                "'{to}' is not a widget visitor id (8 to 64 letters, digits, '-' or '_')"
            ))
        }
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        if !self.widget.running_here() {
            // `flametree send`: its process has no visitor's socket, and its pending
            // replies would die with it.
            return Err(ConnectorError::Permanent(
                "a Web Widget visitor is answered only by their agent (the process that runs \
                 the agent's widget); there is no sending to them from here"
                    .into(),
            ));
        }
        let re = out
            .in_reply_to
            .and_then(|k| k.split_once(':'))
            .map(|(_, m)| m)
            .unwrap_or("");
        let id = reply_id(re);
        self.widget
            .deliver(out.to, protocol::reply(&id, out.text, re));
        Ok(id)
    }

    /// A reply sent again (flametree stopped while sending it) keeps its id, and the
    /// script shows a reply id once: the visitor sees it once.
    fn idempotent_replies(&self) -> bool {
        true
    }

    async fn release(&self) {
        self.widget.set_running_here(false);
        self.widget.broadcast(&protocol::status(false, ""));
    }
}
