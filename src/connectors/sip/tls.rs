//! SIP over TLS (RFC 3261 §26; `sip:` URIs with `;transport=tls` as RFC 5630 keeps
//! them). The line dials its one TLS flow to the first hop itself and hands it to
//! rsipstack, rather than letting the stack dial: so the roots are ours (the system's
//! plus SIP_TLS_CA_FILE), the host name checked is the one the operator typed (the
//! stack would check the resolved IP address), and a certificate the line cannot trust
//! is an ERROR that says what to set instead of a string from inside the stack.
//! REGISTERs, outbound INVITEs and requests the server sends back on the flow all ride
//! it; once it closes, the next REGISTER or call dials again.

use super::super::ConnectorError;
use rsipstack::sip::{Transport, Uri};
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use rustls::{CertificateError, pki_types::ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A TLS handshake that takes longer than this counts as the server not answering.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// The port of `sips:`/TLS when the setting names none (RFC 3261 §19.1.2).
pub const DEFAULT_PORT: u16 = 5061;

pub struct Trust(Arc<rustls::ClientConfig>);

/// The system's roots plus the private CA in `ca` (SIP_TLS_CA_FILE), if any.
pub fn trust(ca: Option<&str>) -> Result<Trust, ConnectorError> {
    let (config, _) = crate::connectors::trust::client("SIP_TLS_CA_FILE", ca)?;
    Ok(Trust(config))
}

/// The first hop, as the settings name it.
pub struct Hop<'a> {
    /// "the registrar" or "the outbound proxy", for messages.
    pub what: &'a str,
    /// The host name (or IP address) its certificate must be for.
    pub name: &'a str,
    pub addr: SocketAddr,
}

/// The line's TLS flow, as the transport layer holds it.
pub struct Flow {
    connection: SipConnection,
    /// Where it goes: requests sent there find the flow in the layer's cache.
    pub next_hop: SocketAddr,
    /// Our end of it, for the Contact (servers that reuse the flow match it).
    local: SipAddr,
}

impl Flow {
    /// The stack retires a flow whose peer closed it by cancelling its token.
    pub fn alive(&self) -> bool {
        self.connection
            .cancel_token()
            .is_some_and(|t| !t.is_cancelled())
    }

    /// Gives the flow up, so the next request dials a new one: a server that vanished
    /// without closing it (power, NAT timeout) would otherwise keep the line sending
    /// into a connection nobody reads.
    pub async fn drop_from(self, layer: &rsipstack::transport::TransportLayer) {
        layer.remove_connection(&self.connection);
        self.connection.close().await.ok();
    }

    /// The transport-layer key requests to the next hop are looked up by.
    pub fn target(&self) -> SipAddr {
        target(self.next_hop)
    }

    /// `sip:USER@our-end;transport=tls`.
    pub fn contact(&self, user: &str) -> Option<Uri> {
        Uri::try_from(format!("sip:{user}@{};transport=tls", self.local.addr)).ok()
    }
}

fn target(addr: SocketAddr) -> SipAddr {
    SipAddr {
        r#type: Some(Transport::Tls),
        ..SipAddr::from(addr)
    }
}

/// Connects and verifies `hop`, and gives the flow to `layer`, which reads it from
/// then on (requests arriving on it become transactions like any other).
pub async fn dial(
    trust: &Trust,
    hop: &Hop<'_>,
    layer: &rsipstack::transport::TransportLayer,
    stop: CancellationToken,
) -> Result<Flow, ConnectorError> {
    let Hop { what, name, addr } = *hop;
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
        ConnectorError::Permanent(format!(
            "{what} '{name}' is not a host name a TLS certificate can be checked against"
        ))
    })?;
    let unreachable = |e: &dyn std::fmt::Display| {
        ConnectorError::transient(format!("cannot reach {what} {name} over TLS ({e})"))
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(&e))?;
        tokio_rustls::TlsConnector::from(trust.0.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| refused(what, name, &e))
    };
    let stream = tokio::time::timeout(HANDSHAKE_WITHIN, connect)
        .await
        .map_err(|_| {
            ConnectorError::transient(format!(
                "{what} {name} did not complete a TLS handshake within {} s",
                HANDSHAKE_WITHIN.as_secs()
            ))
        })??;
    let connection = TlsConnection::from_client_stream(stream, target(addr), Some(stop))
        .await
        .map_err(|e| unreachable(&e))?;
    let local = connection.get_addr().clone();
    let connection = SipConnection::Tls(connection);
    layer.add_connection(connection.clone());
    Ok(Flow {
        connection,
        next_hop: addr,
        local,
    })
}

/// What a failed handshake means for the operator: a certificate to trust or a name
/// to correct is a setting (Permanent); anything else may pass (transient).
fn refused(what: &str, name: &str, e: &std::io::Error) -> ConnectorError {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ConnectorError::transient(format!(
            "the TLS handshake with {what} {name} failed ({e})"
        ));
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "{what}'s certificate is not trusted ({name}: {tls}): if it is signed by a \
                 private CA, set SIP_TLS_CA_FILE to that CA's certificate (a PEM file)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{what}'s certificate is not for the name '{name}' ({tls}): set it to the host \
                 name the certificate is for"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "{what}'s certificate has expired ({name}: {tls}): its operator must renew it \
                 (or this server's clock is wrong)"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "{what}'s certificate is not valid yet ({name}: {tls}): check this \
                     server's clock"
                )
            }
            _ => format!("{what}'s certificate was refused ({name}: {tls})"),
        },
        // Not TLS at all at that port (plain SIP answers, say) is a setting too.
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!(
                "{what} {name} did not answer in TLS ({tls}): check the port (SIP over TLS is \
                 usually {DEFAULT_PORT}) and Transport"
            )
        }
        _ => format!("the TLS handshake with {what} {name} failed ({tls})"),
    };
    ConnectorError::Permanent(why)
}

#[cfg(test)]
mod tests {
    use super::{ConnectorError, refused};
    use rustls::{CertificateError, Error};

    fn said(e: Error) -> (bool, String) {
        match refused(
            "the registrar",
            "pbx.example.net",
            &std::io::Error::other(e),
        ) {
            ConnectorError::Permanent(why) => (true, why),
            other => (false, other.to_string()),
        }
    }

    #[test]
    fn certificate_failures_say_what_to_set() {
        let (permanent, why) = said(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(permanent);
        assert!(
            why.starts_with("the registrar's certificate is not trusted (pbx.example.net: ")
                && why.ends_with("set SIP_TLS_CA_FILE to that CA's certificate (a PEM file)"),
            "{why}"
        );
        let (permanent, why) = said(Error::InvalidCertificate(CertificateError::NotValidForName));
        assert!(permanent);
        assert!(
            why.starts_with("the registrar's certificate is not for the name 'pbx.example.net'"),
            "{why}"
        );
        let (_, why) = said(Error::InvalidCertificate(CertificateError::Expired));
        assert!(why.contains("has expired"), "{why}");
        let (permanent, why) = said(Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(permanent);
        assert!(
            why.contains("did not answer in TLS") && why.contains("5061"),
            "{why}"
        );
    }

    #[test]
    fn a_broken_connection_is_tried_again() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = refused("the outbound proxy", "sbc.example.net", &reset);
        assert!(matches!(e, ConnectorError::Transient { .. }), "{e}");
    }
}
