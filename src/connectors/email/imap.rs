//! IMAP for one account: connect (TLS, STARTTLS or plain), log in, open the folder.

use super::account::{Account, Security, Server};
use super::tls;
use crate::connectors::ConnectorError;
use async_imap::{Client, Session};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A plain or TLS stream behind one type, as async-imap wants one.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}
pub type Stream = Box<dyn Io>;
pub type ImapSession = Session<Stream>;

/// How long connecting and each command may take before the server counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Connects and logs in; failures say which account and what to fix.
pub async fn login(
    account: &Account,
    trust: &Arc<rustls::ClientConfig>,
) -> Result<ImapSession, ConnectorError> {
    let label = account.label();
    let server = &account.imap;
    let client = tokio::time::timeout(TIMEOUT, connect(server, trust, &label))
        .await
        .map_err(|_| {
            ConnectorError::transient(format!(
                "{label}: IMAP server {server} did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        })??;
    match tokio::time::timeout(
        TIMEOUT,
        client.login(&account.login, account.password.expose()),
    )
    .await
    {
        Err(_) => Err(ConnectorError::transient(format!(
            "{label}: IMAP server {server} did not answer the login within {} s",
            TIMEOUT.as_secs()
        ))),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(text), _))) => {
            Err(ConnectorError::Permanent(format!(
                "{label}: IMAP login failed ({}): check value {} of Logins and Passwords, Save, \
                 then Start",
                text.trim(),
                account.number
            )))
        }
        Ok(Err((e, _))) => Err(lost(&label, server, &e)),
    }
}

async fn connect(
    server: &Server,
    trust: &Arc<rustls::ClientConfig>,
    label: &str,
) -> Result<Client<Stream>, ConnectorError> {
    let tcp = TcpStream::connect((server.host.as_str(), server.port))
        .await
        .map_err(|e| unreachable(label, server, &e))?;
    // A command written in pieces (and the TLS handshake) must not wait ~40 ms for the
    // server's delayed ACK; as for the database's sockets.
    let _ = tcp.set_nodelay(true);
    match server.security {
        Security::Tls => {
            let tls = wrap(tcp, server, trust, label).await?;
            greeted(Client::new(Box::new(tls) as Stream), label, server).await
        }
        Security::None => greeted(Client::new(Box::new(tcp) as Stream), label, server).await,
        Security::StartTls => {
            let mut client = greeted(Client::new(Box::new(tcp) as Stream), label, server).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .map_err(|e| {
                    ConnectorError::Permanent(format!(
                        "{label}: IMAP server {server} refused STARTTLS ({e}): use ssl/tls \
                         (usually port 993) in IMAP security, or check the port"
                    ))
                })?;
            // The stream is still the plain TCP one: nothing is buffered after the OK.
            let plain = client.into_inner();
            let tls = wrap(plain, server, trust, label).await?;
            Ok(Client::new(Box::new(tls) as Stream))
        }
    }
}

async fn wrap<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    server: &Server,
    trust: &Arc<rustls::ClientConfig>,
    label: &str,
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectorError> {
    let name = ServerName::try_from(server.host.clone()).map_err(|_| {
        ConnectorError::Permanent(format!(
            "{label}: IMAP host '{}' is not a host name",
            server.host
        ))
    })?;
    tokio_rustls::TlsConnector::from(trust.clone())
        .connect(name, io)
        .await
        .map_err(|e| {
            tls::untrusted(&format!("{label}: IMAP server {server}"), &e).unwrap_or_else(|| {
                ConnectorError::transient(format!(
                    "{label}: TLS with IMAP server {server} failed ({e}); if the port speaks \
                     STARTTLS, set IMAP security to starttls"
                ))
            })
        })
}

async fn greeted(
    mut client: Client<Stream>,
    label: &str,
    server: &Server,
) -> Result<Client<Stream>, ConnectorError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(client),
        Ok(None) => Err(ConnectorError::transient(format!(
            "{label}: IMAP server {server} closed the connection before greeting"
        ))),
        Err(e) => Err(
            tls::untrusted(&format!("{label}: IMAP server {server}"), &e).unwrap_or_else(|| {
                ConnectorError::transient(format!(
                    "{label}: IMAP server {server} did not greet ({e}); check the port and IMAP \
                     security"
                ))
            }),
        ),
    }
}

fn unreachable(label: &str, server: &Server, e: &std::io::Error) -> ConnectorError {
    ConnectorError::transient(format!("{label}: cannot reach IMAP server {server} ({e})"))
}

/// An error on an open session: the connection is gone or the server misbehaved.
pub fn lost(label: &str, server: &Server, e: &async_imap::error::Error) -> ConnectorError {
    ConnectorError::transient(format!("{label}: IMAP connection to {server} failed ({e})"))
}
