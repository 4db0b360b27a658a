//! SMTP for one account through lettre: authenticate, and send a reply threaded the
//! way a mail client threads it.

use super::account::{Account, Security};
use super::message::{Thread, reply_references, reply_subject};
use super::tls::Trust;
use crate::connectors::ConnectorError;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub fn transport(account: &Account, trust: &Trust) -> Result<Transport, ConnectorError> {
    let server = &account.smtp;
    let params = || {
        let mut b = TlsParameters::builder(server.host.clone());
        for der in &trust.extra {
            let cert = Certificate::from_der(der.to_vec()).map_err(|e| {
                ConnectorError::Permanent(format!("EMAIL_CA_CERT cannot be used for SMTP: {e}"))
            })?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| {
            ConnectorError::Permanent(format!(
                "{}: TLS set-up for SMTP failed: {e}",
                account.label()
            ))
        })
    };
    let tls = match server.security {
        Security::Tls => Tls::Wrapper(params()?),
        Security::StartTls => Tls::Required(params()?),
        Security::None => Tls::None,
    };
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
            .port(server.port)
            .tls(tls)
            .credentials(Credentials::new(
                account.login.clone(),
                account.password.expose().to_string(),
            ))
            .timeout(Some(Duration::from_secs(30)))
            .build(),
    )
}

/// Connects and authenticates, as a send would.
pub async fn check(account: &Account, t: &Transport) -> Result<(), ConnectorError> {
    match t.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ConnectorError::transient(format!(
            "{}: SMTP server {} did not answer NOOP",
            account.label(),
            account.smtp
        ))),
        Err(e) => Err(classify(account, &e, "SMTP authentication")),
    }
}

/// What lettre's error means for the operator.
pub fn classify(
    account: &Account,
    e: &lettre::transport::smtp::Error,
    what: &str,
) -> ConnectorError {
    let label = account.label();
    let server = &account.smtp;
    let text = chain(e);
    if e.is_permanent() {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if code.starts_with("535") || code.starts_with("534") || code.starts_with("530") {
            return ConnectorError::Permanent(format!(
                "{label}: {what} failed at {server} ({text}): check value {} of Logins and \
                 Passwords, Save, then Start",
                account.number
            ));
        }
        return ConnectorError::Permanent(format!("{label}: SMTP server {server} refused: {text}"));
    }
    if e.is_tls() && text.contains("certificate") {
        return ConnectorError::Permanent(format!(
            "{label}: SMTP server {server}: the server's certificate is not trusted ({text}); if \
             the server uses a private CA, set EMAIL_CA_CERT to its PEM file, and check the host \
             name"
        ));
    }
    ConnectorError::transient(format!("{label}: SMTP server {server}: {text}"))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = std::error::Error::source(source.unwrap());
    }
    out
}

/// RFC 3834: an answer written by a program says so, so that other programs (holiday
/// responders, other bots) do not answer it back.
#[derive(Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".into())
    }
}

/// The message a reply (or `flametree send`) puts on the wire; returns it with its
/// Message-ID (without angle brackets).
pub fn compose(
    account: &Account,
    to: &str,
    text: &str,
    thread: Option<&Thread>,
    answers: Option<&str>,
) -> Result<(Message, String), ConnectorError> {
    let from: Mailbox = account.from.parse().map_err(|e| {
        ConnectorError::Permanent(format!(
            "{}: the From address '{}' is not an address ({e}): fix From addresses or Logins",
            account.label(),
            account.from
        ))
    })?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| ConnectorError::Permanent(format!("'{to}' is not a mail address ({e})")))?;
    // A reply's id follows from what it answers, so a resend after a crash is the same
    // message to every server and client; a new mail gets a fresh one.
    let local = match answers {
        Some(key) => reply_id(&account.login, key),
        None => uuid_like(),
    };
    let id = format!("{local}@{}", account.domain());
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .message_id(Some(format!("<{id}>")))
        .header(AutoSubmitted);
    match thread {
        Some(t) => {
            b = b.subject(reply_subject(&t.subject));
            if !t.message_id.is_empty() {
                b = b.in_reply_to(format!("<{}>", t.message_id));
            }
            let refs = reply_references(t);
            if !refs.is_empty() {
                let joined: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
                b = b.references(joined.join(" "));
            }
        }
        None => b = b.subject(first_line(text)),
    }
    let message = b
        .header(header::ContentType::TEXT_PLAIN)
        .body(text.to_string())
        .map_err(|e| ConnectorError::Permanent(format!("the reply cannot be built: {e}")))?;
    Ok((message, id))
}

pub async fn send(
    account: &Account,
    t: &Transport,
    message: Message,
) -> Result<(), ConnectorError> {
    t.send(message)
        .await
        .map(|_| ())
        .map_err(|e| classify(account, &e, "SMTP authentication"))
}

fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s = crate::runtime::logs::clip(line.trim(), 70);
    if s.is_empty() {
        s = "Message".into();
    }
    s
}

fn reply_id(login: &str, answers: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("flametree-reply\n{login}\n{answers}").as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("re.{hex}")
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    format!(
        "{:016x}.{:08x}",
        r.r#gen::<u64>(),
        crate::model::now_millis() as u32
    )
}
