//! The long poll's own HTTP/1.1 client: one keep-alive connection per bot, nothing
//! else. A parked `getUpdates` through reqwest/hyper held about 35 KiB per bot (hyper's
//! read and write buffers, its per-connection request channel, the pending futures);
//! here a parked poll is a socket waiting to become readable, and the read buffer
//! exists only while an answer arrives. Only getUpdates goes this way: it is safe to
//! repeat, so a keep-alive connection the server closed meanwhile is simply retried.
//! Replies (sendMessage) use it too, on connections shared by the process's bots
//! (`take_idle`), but never twice on their own (`post_once`): through teloxide a reply cost more CPU than
//! everything else flametree does for a message (reqwest's layers, and teloxide's
//! decoding of the whole sent `Message` when only its id is kept).

use bytes::{Buf, BytesMut};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer's head and body together may not exceed this (100 updates of a few KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Where the Bot API is, parsed once per bot from `TELEGRAM_API_URL`.
pub struct Endpoint {
    host: String,
    port: u16,
    /// `Host:` header value.
    authority: String,
    /// The URL's path, without a trailing `/`.
    base_path: String,
    tls: bool,
}

#[derive(Debug)]
pub enum WireError {
    /// No answer: the connection failed, closed or timed out.
    Network(String),
    /// An answer that is not HTTP.
    Protocol(String),
}

/// One HTTP answer.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Endpoint {
    /// None when this client cannot do what reqwest would: another scheme, or a proxy
    /// configured in the environment (reqwest honours it; so polling stays with it).
    pub fn parse(api: &str) -> Option<Endpoint> {
        let proxied = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
            .iter()
            .chain(&["ALL_PROXY", "all_proxy"])
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if proxied {
            return None;
        }
        let url = url::Url::parse(api).ok()?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = url.host_str()?.trim_matches(['[', ']']).to_string();
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        Some(Endpoint {
            host,
            port,
            authority,
            base_path: url.path().trim_end_matches('/').to_string(),
            tls,
        })
    }

    /// POSTs a JSON body to `method` of the bot `token` over `conn` (opened when
    /// needed, kept open for the next call); the whole exchange within `timeout`.
    /// For calls that are safe to repeat (getUpdates): a kept connection found closed
    /// only once the request was written is retried on a fresh one.
    pub fn post<'a>(
        &'a self,
        conn: &'a mut Option<Stream>,
        token: &'a str,
        method: &'a str,
        body: &'a [u8],
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, WireError>> + Send + 'a {
        // Not an async fn: that would hold the arguments once more in every parked poll.
        self.call(conn, token, method, body, timeout, true)
    }

    /// `post` for a call that must not be made twice (sendMessage): a kept connection
    /// is checked before the request is written, and one that closes after it was
    /// written is an error (the message may have gone out), never a silent second try.
    /// hyper's pool behaves the same way.
    pub fn post_once<'a>(
        &'a self,
        conn: &'a mut Option<Stream>,
        token: &'a str,
        method: &'a str,
        body: &'a [u8],
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, WireError>> + Send + 'a {
        if conn.as_ref().is_some_and(|c| !c.idle_and_open()) {
            *conn = None;
        }
        self.call(conn, token, method, body, timeout, false)
    }

    async fn call(
        &self,
        conn: &mut Option<Stream>,
        token: &str,
        method: &str,
        body: &[u8],
        timeout: Duration,
        repeatable: bool,
    ) -> Result<Response, WireError> {
        let mut request = format!(
            "POST {}/bot{token}/{method} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.base_path,
            self.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let exchange = async {
            // A kept connection the server closed while idle fails at once: once more
            // on a fresh one (getUpdates is safe to repeat).
            if conn.is_some() {
                match exchange(conn, &request).await {
                    Err(Failure::Stale) if repeatable => *conn = None,
                    Err(Failure::Stale) => {
                        return Err(WireError::Network(
                            "the connection closed before Telegram answered".into(),
                        ));
                    }
                    other => return other.map_err(Failure::into_error),
                }
            }
            // Boxed: a TLS handshake's state is large, and it would otherwise size every
            // parked poll's future.
            *conn = Some(Box::pin(self.connect()).await?);
            exchange(conn, &request).await.map_err(Failure::into_error)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                *conn = None;
                Err(e)
            }
            Err(_) => {
                *conn = None;
                Err(WireError::Network("timed out".into()))
            }
        }
    }

    async fn connect(&self) -> Result<Stream, WireError> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| WireError::Network("connecting timed out".into()))?
        .map_err(|e| WireError::Network(io_cause(&e)))?;
        let _ = tcp.set_nodelay(true);
        if !self.tls {
            return Ok(Stream::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| WireError::Protocol(format!("not a TLS server name ({e})")))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| WireError::Network(format!("TLS: {}", io_cause(&e))))?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// Idle kept-alive connections for calls that are not long polls, per server: any bot
/// may use any of them (the token is in the path), as reqwest's pool shares its
/// connections. One per bot opened 1,000 at once in a burst: more than the server's
/// accept queue held, and a dropped SYN waits a second before it is sent again.
static IDLE: std::sync::Mutex<Vec<(String, Stream)>> = std::sync::Mutex::new(Vec::new());

/// Idle connections kept at most (replies in flight are limited to as many).
const IDLE_KEPT: usize = 256;

impl Endpoint {
    fn key(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port
        )
    }

    /// An idle kept connection to this server, if there is one.
    pub fn take_idle(&self) -> Option<Stream> {
        let key = self.key();
        let mut idle = IDLE.lock().expect("idle connections lock");
        let at = idle.iter().rposition(|(k, _)| *k == key)?;
        Some(idle.swap_remove(at).1)
    }

    /// Keeps `conn` for the next call to this server (closed when enough are kept).
    pub fn keep_idle(&self, conn: Stream) {
        let mut idle = IDLE.lock().expect("idle connections lock");
        if idle.len() < IDLE_KEPT {
            idle.push((self.key(), conn));
        }
    }
}

/// rustls with Mozilla's roots (webpki-roots), as reqwest's `rustls-tls` uses.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("rustls' default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A kept-alive connection to the Bot API.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Nothing to read and not closed: a kept connection the server has not dropped.
    /// (An idle HTTP connection receives nothing; a TLS close alert counts as closing.)
    fn idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.tcp().try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
    }
}

enum Failure {
    /// The kept connection was closed before any answer: try a fresh one.
    Stale,
    Error(WireError),
}

impl Failure {
    fn into_error(self) -> WireError {
        match self {
            Failure::Stale => WireError::Network("the connection closed".into()),
            Failure::Error(e) => e,
        }
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Failure {
        Failure::Error(e)
    }
}

/// Writes the request and reads its answer; the connection stays in `conn` when the
/// server keeps it open.
async fn exchange(conn: &mut Option<Stream>, request: &[u8]) -> Result<Response, Failure> {
    let stream = conn.as_mut().expect("a connection");
    if let Err(e) = stream.write_all(request).await {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Failure::Stale,
            _ => Failure::Error(WireError::Network(io_cause(&e))),
        });
    }
    // Parked here for the long poll without a buffer: it is allocated once bytes come.
    stream
        .tcp()
        .readable()
        .await
        .map_err(|e| WireError::Network(io_cause(&e)))?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut head: Option<Head> = None;
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.len().max(4096));
        }
        let n = match stream.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(Failure::Stale);
            }
            Err(e) => return Err(WireError::Network(io_cause(&e)).into()),
        };
        if n == 0 && buf.is_empty() {
            return Err(Failure::Stale);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(WireError::Protocol("the answer is too large".into()).into());
        }
        if head.is_none() {
            head = parse_head(&buf)?;
        }
        let Some(h) = &head else {
            if n == 0 {
                return Err(WireError::Network("the connection closed mid-answer".into()).into());
            }
            continue;
        };
        let body = &buf[h.len..];
        let done = match h.framing {
            Framing::Length(l) if body.len() >= l => Some(body[..l].to_vec()),
            Framing::Length(_) => None,
            Framing::Chunked => dechunk(body)?,
            Framing::UntilClose if n == 0 => Some(body.to_vec()),
            Framing::UntilClose => None,
        };
        match done {
            Some(body) => {
                if h.close || matches!(h.framing, Framing::UntilClose) {
                    *conn = None;
                }
                return Ok(Response {
                    status: h.status,
                    body,
                });
            }
            None if n == 0 => {
                return Err(WireError::Network("the connection closed mid-answer".into()).into());
            }
            None => {}
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    /// Bytes of the head, up to the body.
    len: usize,
    framing: Framing,
    close: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Protocol(format!("not an HTTP answer ({e})"))),
    };
    let value = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let framing = if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        Framing::Chunked
    } else if let Some(l) = value("content-length") {
        Framing::Length(
            l.trim()
                .parse()
                .map_err(|_| WireError::Protocol("a bad Content-Length".into()))?,
        )
    } else {
        Framing::UntilClose
    };
    let close = r.version == Some(0) || value("connection").is_some_and(|v| v.contains("close"));
    Ok(Some(Head {
        status: r.code.unwrap_or(0),
        len,
        framing,
        close,
    }))
}

/// A chunked body decoded, or None while it is incomplete.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
    let bad = || WireError::Protocol("a bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let Some(end) = line_end(data) else {
            return Ok(None);
        };
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|l| l.split(';').next())
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(bad)?;
        data.advance(end + 2);
        if size == 0 {
            // Trailers, if any, up to an empty line.
            loop {
                let Some(end) = line_end(data) else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(out));
                }
                data.advance(end + 2);
            }
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data.advance(size + 2);
    }
}

fn line_end(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

/// "connection refused", "timed out": the innermost cause, without the OS error code.
fn io_cause(e: &std::io::Error) -> String {
    let text = e
        .get_ref()
        .map(|inner| inner.to_string())
        .unwrap_or_else(|| e.to_string());
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that reads each request whole and, per connection, answers the first
    /// `answered` of them (keep-alive), then closes it — at once, or (`then_read_one`)
    /// after reading one more request. Counts the requests it read.
    async fn server(answered: usize, then_read_one: bool) -> (Endpoint, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut done = 0;
                    loop {
                        let mut got = Vec::new();
                        let mut buf = [0u8; 4096];
                        // A request of this test ends with its one-line JSON body's `}`.
                        while !got.ends_with(b"}") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        if done == answered {
                            return;
                        }
                        let body = format!("{{\"ok\":true,\"result\":{{\"message_id\":{n}}}}}");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        done += 1;
                        if done == answered && !then_read_one {
                            return;
                        }
                    }
                });
            }
        });
        (Endpoint::parse(&url).unwrap(), seen)
    }

    async fn until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the condition was not met within 5 s");
    }

    #[tokio::test]
    async fn a_reply_is_sent_once_even_when_its_connection_closes() {
        let t = Duration::from_secs(5);
        // One answer per connection: the kept connection is closed by the server after
        // the first reply, so the second goes out on a fresh one, found closed before
        // anything was written.
        let (api, seen) = server(1, false).await;
        let mut conn = None;
        let first = api.post_once(&mut conn, "T", "sendMessage", b"{}", t).await;
        assert_eq!(first.unwrap().status, 200);
        assert!(conn.is_some(), "kept alive");
        let c = conn.as_ref().unwrap();
        until(|| !c.idle_and_open()).await;
        let second = api.post_once(&mut conn, "T", "sendMessage", b"{}", t).await;
        assert_eq!(second.unwrap().status, 200);
        assert_eq!(seen.load(Ordering::SeqCst), 2, "each reply written once");

        // The kept connection is open, but closes once the next request was read and
        // before any answer. The reply may have gone out: an error, not a second try...
        let (api, seen) = server(1, true).await;
        let mut conn = None;
        api.post_once(&mut conn, "T", "sendMessage", b"{}", t)
            .await
            .unwrap();
        let lost = api.post_once(&mut conn, "T", "sendMessage", b"{}", t).await;
        assert!(matches!(lost, Err(WireError::Network(_))), "an error");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "the lost reply written once"
        );
        // ...while a repeatable call (getUpdates) tries again on a fresh connection.
        let (api, seen) = server(1, true).await;
        let mut conn = None;
        api.post(&mut conn, "T", "getUpdates", b"{}", t)
            .await
            .unwrap();
        let again = api.post(&mut conn, "T", "getUpdates", b"{}", t).await;
        assert_eq!(again.unwrap().status, 200);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_chunked_body_is_decoded_once_complete() {
        let whole = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(
            dechunk(whole).unwrap().as_deref(),
            Some(&b"hello world"[..])
        );
        for cut in [3, 10, 20, whole.len() - 1] {
            assert!(dechunk(&whole[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn the_head_says_how_the_body_ends() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Length(12)) && !h.close && h.status == 200);
        let h = parse_head(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.framing, Framing::Chunked) && h.close && h.status == 409);
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-")
                .unwrap()
                .is_none()
        );
        assert!(parse_head(b"<html>").is_err());
    }

    #[test]
    fn an_api_url_becomes_an_endpoint() {
        let e = Endpoint::parse("http://127.0.0.1:8081/prefix/").unwrap();
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.authority.as_str(),
                e.base_path.as_str(),
                e.tls
            ),
            ("127.0.0.1", 8081, "127.0.0.1:8081", "/prefix", false)
        );
        let e = Endpoint::parse("https://api.telegram.org").unwrap();
        assert_eq!((e.port, e.base_path.as_str(), e.tls), (443, "", true));
        assert!(Endpoint::parse("ftp://example.org").is_none());
    }
}
