//! The long poll's own HTTP/1.1 client: one keep-alive connection per bot, nothing
//! else. A parked `getUpdates` through reqwest/hyper held about 35 KiB per bot (hyper's
//! read and write buffers, its per-connection request channel, the pending futures);
//! here a parked poll is a socket waiting to become readable, and the read buffer
//! exists only while an answer arrives. Only getUpdates goes this way: it is safe to
//! repeat, so a keep-alive connection the server closed meanwhile is simply retried.
//! Replies go through teloxide, which never sends one twice on its own.

use bytes::{Buf, BytesMut};
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
    pub async fn post(
        &self,
        conn: &mut Option<Stream>,
        token: &str,
        method: &str,
        body: &[u8],
        timeout: Duration,
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
                    Err(Failure::Stale) => *conn = None,
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
