//! The webhook ingress: one axum server per process (`serve`, or a console that runs
//! channels). Each webhook-driven connection has an unguessable path under
//! `http.public_url`; a delivery is checked by the connection's connector on the raw
//! body, written durably to the ledger, and answered 2xx at once — the process that
//! holds the connection's lease answers the customer, wherever the webhook landed.

use crate::connectors::{self, Connector, HookRequest, HookVerdict};
use crate::runtime::Pipeline;
use crate::runtime::pipeline::{describe_event, record};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Ingress {
    pub addr: SocketAddr,
    /// What providers call: `http.public_url`, or `http://<addr>`.
    pub public_base: String,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A connector opened for webhooks, with the configuration version it was opened from.
type Opened = (i64, Arc<dyn Connector>);

struct Shared {
    pipe: Arc<Pipeline>,
    public_base: String,
    max_body: usize,
    /// Opened connectors by webhook path, with the configuration version they were
    /// opened from (an edit opens a fresh one).
    opened: Mutex<HashMap<String, Opened>>,
}

impl Ingress {
    /// Binds `listen` (port 0 picks one) and serves until `shutdown`.
    pub async fn start(
        pipe: Arc<Pipeline>,
        listen: &str,
        http: &crate::config::Http,
    ) -> std::io::Result<Ingress> {
        Ingress::start_with(pipe, listen, http, crate::widget::Limits::default()).await
    }

    /// The same, with the Web Widget's limits (`[widget]`).
    pub async fn start_with(
        pipe: Arc<Pipeline>,
        listen: &str,
        http: &crate::config::Http,
        widget: crate::widget::Limits,
    ) -> std::io::Result<Ingress> {
        let listener = bind(listen.trim()).await?;
        let addr = listener.local_addr()?;
        let public_base = http.public_base(Some(addr));
        let shared = Arc::new(Shared {
            pipe,
            public_base: public_base.clone(),
            max_body: http.max_body_bytes.max(1024),
            opened: Mutex::default(),
        });
        let widget = crate::widget::http::router(shared.pipe.clone(), &public_base, widget);
        let app = Router::new()
            .route("/hooks/{hook}", any(hook))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(shared)
            .merge(widget);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            // The peer's address: the widget's per-address limits.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!("the webhook ingress stopped: {e}");
            }
        });
        Ok(Ingress {
            addr,
            public_base,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().expect("ingress task lock").take();
        if let Some(mut t) = task
            && tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
                .await
                .is_err()
        {
            t.abort();
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        text.to_string(),
    )
        .into_response()
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    Path(hook_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let pipe = &shared.pipe;
    let c = match pipe.channels.store().connection_by_hook(&hook_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!(
                "webhook ingress: a {method} to an unknown webhook path (/hooks/{}…) was refused",
                hook_id.chars().take(6).collect::<String>()
            );
            return plain(StatusCode::NOT_FOUND, "unknown webhook");
        }
        Err(e) => {
            tracing::warn!("webhook ingress: cannot look up a webhook path: {e}");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let id = c.id;
    let bytes = match to_bytes(body, shared.max_body).await {
        Ok(b) => b,
        Err(_) => {
            pipe.log(
                id,
                "WARN",
                format!(
                    "a webhook delivery larger than {} bytes was refused (413); raise \
                     http.max_body_bytes if the provider really sends that much",
                    shared.max_body
                ),
            );
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
    };
    let connector = match connector_for(&shared, &hook_id, &c) {
        Ok(k) => k,
        Err(why) => {
            pipe.log(id, "WARN", format!("a webhook delivery was refused: {why}"));
            return plain(
                StatusCode::NOT_FOUND,
                "this connection cannot take webhooks",
            );
        }
    };
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let url = match uri.query() {
        Some(q) => format!("{}{}?{q}", shared.public_base, uri.path()),
        None => format!("{}{}", shared.public_base, uri.path()),
    };
    let req = HookRequest {
        method: method.to_string(),
        url,
        query,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: bytes,
    };
    match connector.webhook(&req) {
        HookVerdict::Reject { status, why } => {
            pipe.log(id, "WARN", format!("webhook refused ({status}): {why}"));
            plain(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                "refused",
            )
        }
        HookVerdict::Accept {
            mut events,
            response,
        } => {
            let recorded = record(&pipe.writer, id, &mut events, None, None)
                .instrument(pipe.span(id))
                .await;
            let fresh = match recorded {
                Ok(f) => f,
                Err(e) => {
                    // Not recorded: the provider retries on a 5xx, so nothing is lost.
                    pipe.log(
                        id,
                        "WARN",
                        format!("a webhook delivery could not be recorded: {e}"),
                    );
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "try again later");
                }
            };
            for e in &events {
                if let Some((level, line)) = describe_event(&pipe.channels, id, e).await {
                    pipe.log(id, level, line);
                }
            }
            if let Some(inbox) = pipe.inbox(id) {
                for entry in fresh {
                    inbox.dispatch(entry);
                }
            }
            let response = connector.respond(&req, response).await;
            (
                StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK),
                [(header::CONTENT_TYPE, response.content_type)],
                response.body,
            )
                .into_response()
        }
    }
}

fn connector_for(
    shared: &Shared,
    hook_id: &str,
    c: &crate::model::Connection,
) -> Result<Arc<dyn Connector>, String> {
    if let Some((version, k)) = shared.opened.lock().expect("opened lock").get(hook_id)
        && *version == c.version
    {
        return Ok(k.clone());
    }
    let cfg = crate::runtime::open_config_with(&shared.pipe, &shared.public_base, c)?;
    if let Some(r) = &shared.pipe.router {
        for s in cfg.masked() {
            r.protect(c.id, s);
        }
    }
    let k = connectors::open(cfg).map_err(|e| e.to_string())?;
    shared
        .opened
        .lock()
        .expect("opened lock")
        .insert(hook_id.to_string(), (c.version, k.clone()));
    Ok(k)
}

/// A listening socket with room for thousands of connections arriving at once.
/// `TcpListener::bind` asks for std's 128: a burst of new connections beyond it (a
/// provider's webhook deliveries, or in the sandboxes a burst's replies) waited for
/// their SYN to be sent again, a second later. The kernel caps it at
/// `net.core.somaxconn`.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// `listen` on the first address `host:port` names that can be bound.
async fn bind(at: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(at).await? {
        match listen(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("'{at}' names no address to listen on"),
        )
    }))
}

#[cfg(test)]
mod listen_tests {
    /// Hundreds of connections arriving before the server accepts any all complete at
    /// once. With std's backlog of 128 those beyond it waited a second for their SYN to
    /// be sent again.
    #[tokio::test]
    async fn a_burst_of_connections_is_not_kept_waiting() {
        let listener = super::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures::future::join_all(connects).await;
        let late = results.iter().filter(|r| !matches!(r, Ok(Ok(_)))).count();
        assert_eq!(late, 0, "connections not accepted into the queue at once");
        drop(listener);
    }
}
