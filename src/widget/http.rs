//! The widget's endpoints on the ingress: `GET /widget/<id>.js` (the script, with the
//! agent's settings in it) and `/widget/<id>/chat` (the visitors' WebSocket; a plain
//! GET answers whether the chat is online, with CORS for the allowed origins only).
//!
//! Why a WebSocket rather than SSE + POST: one connection carries both directions, so
//! a visitor costs one socket instead of a stream plus a request per message, and the
//! Origin check happens once, at the handshake. Browsers send `Origin` on every
//! WebSocket handshake and CORS does not apply to WebSockets, so checking it here is
//! what keeps other sites out.

use super::hub::hub;
use super::limits::{Limits, RateLimit};
use super::protocol;
use super::settings::Settings;
use crate::model::{Agent, Connection, Status};
use crate::runtime::Pipeline;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("../../assets/widget.js");
const CONFIG_MARK: &str = "__FLAMETREE_WIDGET_CONFIG__";
/// How long a widget's settings and its agent's state are reused between lookups.
const LOOKUP_TTL: Duration = Duration::from_secs(1);

pub struct WidgetHttp {
    pub(super) pipe: Arc<Pipeline>,
    public_base: String,
    pub(super) limits: Limits,
    pub(super) per_visitor: RateLimit,
    pub(super) per_ip: RateLimit,
    pub(super) open_per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Widgets looked up lately, with when and at which hub epoch.
    lookups: Mutex<HashMap<String, (Instant, u64, Found)>>,
    /// Refusals logged lately, by widget connection and site: when, and how many were
    /// refused since without a line of their own.
    warned: Mutex<HashMap<(i64, String), (Instant, u64)>>,
}

/// One WARN per widget and refused site in this long: a page (or a script pretending
/// to be one) retrying in a loop must not flood the widget's log.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A widget as one lookup found it.
#[derive(Clone)]
pub(super) struct Found {
    pub(super) conn: Connection,
    agent: Agent,
    /// The running agent answers it (it was started since the widget was turned on).
    applied: bool,
}

impl Found {
    pub(super) fn settings(&self) -> Settings {
        Settings::of(&self.agent)
    }

    /// Whether a message sent now gets an answer.
    pub(super) fn online(&self) -> bool {
        let running = hub()
            .find(&self.conn.hook_id)
            .is_some_and(|w| w.running_here())
            || self.conn.status == Status::Running;
        self.agent.status == Status::Running && self.applied && running
    }
}

pub fn router(pipe: Arc<Pipeline>, public_base: &str, limits: Limits) -> Router {
    let state = Arc::new(WidgetHttp {
        pipe,
        public_base: public_base.trim_end_matches('/').to_string(),
        per_visitor: RateLimit::new(limits.messages_per_visitor_per_minute),
        per_ip: RateLimit::new(limits.messages_per_ip_per_minute),
        limits,
        open_per_ip: Mutex::default(),
        lookups: Mutex::default(),
        warned: Mutex::default(),
    });
    Router::new()
        .route("/widget/{id}", get(script))
        .route("/widget/{id}/chat", get(chat).options(preflight))
        .with_state(state)
}

/// A request turned away: its status and a few words for whoever looks.
type Refusal = (StatusCode, &'static str);

fn refused((status, text): Refusal) -> Response {
    plain(status, text)
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

impl WidgetHttp {
    /// The widget behind a public id, if it is on (404 otherwise).
    pub(super) async fn lookup(&self, id: &str) -> Result<Found, Refusal> {
        let epoch = hub().find(id).map(|w| w.epoch()).unwrap_or(0);
        if let Some((at, seen, f)) = self.lookups.lock().expect("lookups lock").get(id)
            && at.elapsed() < LOOKUP_TTL
            && *seen == epoch
        {
            return Ok(f.clone());
        }
        let not_found = || (StatusCode::NOT_FOUND, "no such chat widget");
        let store = self.pipe.channels.store();
        let unavailable = |e: crate::store::StoreError| {
            tracing::warn!("web widget: cannot look up a widget: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later")
        };
        let conn = match store.connection_by_hook(id).await {
            Ok(Some(c)) if c.type_key == super::TYPE_KEY => c,
            Ok(_) => return Err(not_found()),
            Err(e) => return Err(unavailable(e)),
        };
        let agents = store
            .connection_agents(conn.id)
            .await
            .map_err(unavailable)?;
        let Some((agent, ch)) = agents.into_iter().find(|(_, ch)| !ch.detached) else {
            return Err(not_found());
        };
        let found = Found {
            conn,
            agent,
            applied: ch.applied_inbound,
        };
        if !found.settings().enabled() {
            return Err(not_found());
        }
        self.lookups
            .lock()
            .expect("lookups lock")
            .insert(id.to_string(), (Instant::now(), epoch, found.clone()));
        Ok(found)
    }

    /// The page's origin when the widget allows it; otherwise the 403 (and a WARN in
    /// the widget's log naming the site, so the operator can add it if it is theirs).
    fn check_origin(&self, found: &Found, headers: &HeaderMap) -> Result<String, Refusal> {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let settings = found.settings();
        if !origin.is_empty() && settings.allows(origin) {
            return Ok(origin.to_string());
        }
        let who = if origin.is_empty() {
            "a request without an Origin header (not a web page)".to_string()
        } else {
            format!("a page on {}", origin.escape_debug())
        };
        if let Some(unlogged) = self.refusal_to_log(found.conn.id, origin) {
            let more = match unlogged {
                0 => String::new(),
                n => format!(" ({n} more refused since the last line about it)"),
            };
            self.pipe.log(
                found.conn.id,
                "WARN",
                format!(
                    "refused {who} (403){more}: the widget allows only {}; add the site to the \
                     agent's Web Widget allowed origins if it is yours",
                    settings.origins.join(", ")
                ),
            );
        }
        Err((StatusCode::FORBIDDEN, "this site may not use this chat"))
    }
}

impl WidgetHttp {
    /// Whether this refusal gets a log line (the first for the site, then one a
    /// minute), and how many went unlogged before it.
    fn refusal_to_log(&self, conn: i64, origin: &str) -> Option<u64> {
        let mut warned = self.warned.lock().expect("warned lock");
        let now = Instant::now();
        if warned.len() > 10_000 {
            warned.retain(|_, (at, _)| now.duration_since(*at) < WARN_EVERY);
        }
        match warned.get_mut(&(conn, origin.to_string())) {
            Some((at, unlogged)) if now.duration_since(*at) < WARN_EVERY => {
                *unlogged += 1;
                None
            }
            Some((at, unlogged)) => {
                let n = *unlogged;
                *at = now;
                *unlogged = 0;
                Some(n)
            }
            None => {
                warned.insert((conn, origin.to_string()), (now, 0));
                Some(0)
            }
        }
    }
}

/// Serves the script with the widget's settings in it.
async fn script(State(s): State<Arc<WidgetHttp>>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".js") else {
        return plain(StatusCode::NOT_FOUND, "no such chat widget");
    };
    let found = match s.lookup(id).await {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    let st = found.settings();
    let config = serde_json::json!({
        "id": id,
        "chat_url": super::chat_url(&s.public_base, id),
        "title": st.title,
        "greeting": st.greeting,
        "colour": st.colour,
        "position": st.position,
        "origins": st.origins,
        "max_chars": s.limits.max_message_chars,
    });
    let body = SCRIPT.replace(CONFIG_MARK, &js_literal(&config));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Settings change: browsers ask again (a 200 of a few KiB, or a 304 later).
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// JSON that is also safe inside any JavaScript source (no `</script>`, no line separators).
fn js_literal(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn cors(origin: &str, mut r: Response) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    r
}

async fn preflight(
    State(s): State<Arc<WidgetHttp>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = match s.lookup(&id).await {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    match s.check_origin(&found, &headers) {
        Ok(origin) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            cors(&origin, r)
        }
        Err(r) => refused(r),
    }
}

async fn chat(State(s): State<Arc<WidgetHttp>>, Path(id): Path<String>, req: Request) -> Response {
    let found = match s.lookup(&id).await {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    let origin = match s.check_origin(&found, req.headers()) {
        Ok(o) => o,
        Err(r) => return refused(r),
    };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let body = serde_json::json!({ "online": found.online(), "title": found.settings().title });
        let r = (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        return cors(&origin, r);
    }
    let visitor = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "visitor")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if !protocol::is_visitor_id(&visitor) {
        return plain(
            StatusCode::BAD_REQUEST,
            "?visitor= must be 8 to 64 letters, digits, '-' or '_'",
        );
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(slot) = super::session::slot(&s, ip) else {
        s.pipe.log(
            found.conn.id,
            "WARN",
            format!(
                "refused a chat from {ip}: it has {} open already (widget.connections_per_ip)",
                s.limits.connections_per_ip
            ),
        );
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many chats open from your network",
        );
    };
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let max_bytes = (s.limits.max_message_chars as usize) * 4 + 1024;
    // tungstenite reads in 128 KiB chunks and buffers 128 KiB of writes by default:
    // most of an idle chat's memory, for frames of a few hundred bytes. A frame goes
    // out at once (a reply should not wait for more).
    ws.max_message_size(max_bytes)
        .max_frame_size(max_bytes)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .on_upgrade(move |socket| {
            super::session::session(s, id, found, visitor, ip, origin, socket, slot)
        })
}
