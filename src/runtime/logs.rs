//! Per-connection logs through `tracing`. A channel task runs inside a span carrying
//! its `connection_id`; this layer turns every event inside such a span into a log
//! line: published live on the bus at once, and written to the store in batches.
//! Secrets the connector registers are masked in every line before it goes anywhere.

use super::writer::Writer;
use crate::logbus::LogBus;
use crate::model::{LogLine, now_millis};
use crate::secrets::MASK;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span name and fields a channel task runs under.
pub const SPAN: &str = "connection";
pub const FIELD: &str = "connection_id";
pub const ROUTER_FIELD: &str = "router";

/// Every runtime of the process registers its router here; a task's span names its
/// router by index (tests and benchmarks run several runtimes in one process).
static ROUTERS: RwLock<Vec<LogRouter>> = RwLock::new(Vec::new());

/// Registers a router; the returned index goes into each task's span.
pub fn install_router(router: LogRouter) -> usize {
    let mut all = ROUTERS.write().expect("routers lock");
    all.push(router);
    all.len() - 1
}

fn router(index: usize) -> Option<LogRouter> {
    ROUTERS.read().expect("routers lock").get(index).cloned()
}

/// For processes that set up no subscriber of their own (tests, benchmarks): installs
/// one with just the connection log layer. Harmless if one is already set.
pub fn install_layer() {
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(ConnectionLogLayer)
        .try_init();
}

#[derive(Clone)]
pub struct LogRouter {
    bus: LogBus,
    secrets: Arc<Mutex<HashMap<i64, Vec<String>>>>,
    to_store: Writer,
}

impl LogRouter {
    /// Lines go live on the bus at once and to the store through the group-commit writer.
    pub fn new(bus: LogBus, writer: Writer) -> LogRouter {
        LogRouter {
            bus,
            secrets: Arc::default(),
            to_store: writer,
        }
    }

    /// Masks `secret` in every later line of this connection, and in the process's
    /// own diagnostics (a library logging a request URL at debug level must not leak
    /// the bot token in it).
    pub fn protect(&self, connection_id: i64, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        protect_in_diagnostics(secret);
        let mut map = self.secrets.lock().expect("secrets lock");
        let list = map.entry(connection_id).or_default();
        for form in secret_forms(secret) {
            if !list.contains(&form) {
                list.push(form);
            }
        }
        // Longest first: a form inside another (the part after a colon) must not
        // leave the rest of the longer one showing.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn forget(&self, connection_id: i64) {
        self.secrets
            .lock()
            .expect("secrets lock")
            .remove(&connection_id);
    }

    pub fn route(&self, connection_id: i64, level: &str, mut message: String) {
        if let Some(list) = self
            .secrets
            .lock()
            .expect("secrets lock")
            .get(&connection_id)
        {
            for s in list {
                if message.contains(s.as_str()) {
                    message = message.replace(s.as_str(), MASK);
                }
            }
        }
        let line = LogLine {
            connection_id,
            at: now_millis(),
            level: level.to_string(),
            message,
        };
        self.bus.publish(line.clone());
        // A full queue means the store is far behind: dropped rather than block a channel.
        self.to_store.log(vec![line]);
    }
}

/// Every secret a connector opened in this process, longest first: a form inside
/// another (the part after a colon) must not leave the rest of the longer one showing.
/// A set, not a sorted list: starting 10,000 bots added 40,000 forms, each to a list
/// searched and sorted again.
static PROTECTED: RwLock<BTreeSet<(Reverse<usize>, String)>> = RwLock::new(BTreeSet::new());

/// Masks `secret` in everything this process prints as diagnostics from now on; for
/// code that opens a secret outside a channel task (`flametree send`).
pub fn protect_in_diagnostics(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let mut all = PROTECTED.write().expect("protected lock");
    for form in secret_forms(secret) {
        all.insert((Reverse(form.len()), form));
    }
}

/// Every form in which a secret reaches a line: as it is; URL-encoded (a token in a
/// logged request URL or form body), with upper- and lower-case hex; and, for a token
/// shaped `digits:secret` (Telegram's), the part after the colon, which some messages
/// quote alone.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let lower = lower_hex_escapes(&encoded);
    forms.extend([encoded, lower]);
    if let Some((id, rest)) = secret.split_once(':')
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && rest.len() >= 8
    {
        forms.push(rest.to_string());
    }
    forms.dedup();
    forms.sort();
    forms.dedup();
    forms
}

fn lower_hex_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` cut to `max` characters for a log line, masked first: cutting first could
/// leave the start of a secret that no longer matches it whole.
pub fn clip(text: &str, max: usize) -> String {
    redact(text).chars().take(max).collect()
}

/// `text` with every protected secret masked.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let all = PROTECTED.read().expect("protected lock");
    if !all.iter().any(|(_, s)| text.contains(s.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for (_, s) in all.iter() {
        out = out.replace(s.as_str(), MASK);
    }
    std::borrow::Cow::Owned(out)
}

/// Wraps a diagnostics writer so nothing it prints carries a protected secret.
pub struct Redacting<M>(pub M);

pub struct RedactingWriter<W>(W);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacting<M>
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    // The fmt layer writes each event with one call, so a secret is never split
    // across two writes.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Stored in a span's extensions: the connection it belongs to, and its router.
struct ConnectionOf(i64, usize);

/// The tracing layer. Install it in the process's subscriber; it does nothing until a
/// router is installed.
///
/// It filters by itself (flametree's DEBUG and up, others' WARN and up) rather than
/// through a per-layer filter: a library that asks whether a level is enabled without
/// then emitting an event (sqlx and the `log` bridge do) leaves a per-layer filter's
/// state stale on that thread, and the next connection log line there was lost.
pub struct ConnectionLogLayer;

fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    let level = *meta.level();
    if meta.target().starts_with("flametree") {
        level <= tracing::Level::DEBUG
    } else {
        level <= tracing::Level::WARN
    }
}

#[derive(Default)]
struct IdVisitor {
    connection: Option<i64>,
    router: Option<usize>,
}

impl Visit for IdVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            FIELD => self.connection = Some(value),
            ROUTER_FIELD => self.router = usize::try_from(value).ok(),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            FIELD => self.connection = i64::try_from(value).ok(),
            ROUTER_FIELD => self.router = usize::try_from(value).ok(),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The event as one line: the message, then other fields as key=value.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S> Layer<S> for ConnectionLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut v = IdVisitor::default();
        attrs.record(&mut v);
        if let (Some(cid), Some(r), Some(span)) = (v.connection, v.router, ctx.span(id)) {
            span.extensions_mut().insert(ConnectionOf(cid, r));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !wanted(event.metadata()) {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some((cid, index)) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<ConnectionOf>().map(|c| (c.0, c.1)))
        else {
            return;
        };
        let Some(router) = router(index) else { return };
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let level = event.metadata().level().as_str();
        router.route(cid, level, format!("{}{}", v.message, v.fields));
    }
}

#[cfg(test)]
mod masking_tests {
    use super::*;

    #[test]
    fn a_token_is_masked_plain_url_encoded_by_its_secret_part_and_before_a_cut() {
        let token = "7000000123:AAEsecretPartOfTheToken_abc-def";
        protect_in_diagnostics(token);
        for leak in [
            format!("GET /bot{token}/getMe"),
            "GET /bot7000000123%3AAAEsecretPartOfTheToken_abc-def/getMe".to_string(),
            "url=7000000123%3aAAEsecretPartOfTheToken_abc-def".to_string(),
            "the key AAEsecretPartOfTheToken_abc-def was refused".to_string(),
        ] {
            let shown = redact(&leak);
            assert!(!shown.contains("AAEsecret"), "{shown}");
            assert!(shown.contains(MASK), "{shown}");
        }
        // Cut inside the token: what remains is the mask, never the token's start.
        let cut = clip(&format!("error body: {{\"token\":\"{token}\"}}"), 24);
        assert!(!cut.contains("7000000123"), "{cut}");
        assert!(!cut.contains("AAE"), "{cut}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_and_its_part_after_the_colon_are_both_masked_whole() {
        protect_in_diagnostics("4242:unit-test-secret-part");
        protect_in_diagnostics("4242:unit-test-secret-part");
        let out = redact("url /bot4242:unit-test-secret-part/getMe; alone unit-test-secret-part");
        assert_eq!(out, format!("url /bot{MASK}/getMe; alone {MASK}"));
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
