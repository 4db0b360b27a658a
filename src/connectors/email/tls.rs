//! TLS for both mail protocols: the system's trusted roots, plus a private CA when the
//! connection names one (`EMAIL_CA_CERT`). Verification is never turned off.

use super::super::ConnectorError;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

pub struct Trust {
    pub client: Arc<rustls::ClientConfig>,
    /// The private CA's certificates (DER), for lettre's own TLS set-up.
    pub extra: Vec<CertificateDer<'static>>,
}

/// `ca` is the value of EMAIL_CA_CERT: a PEM file's path, or the PEM text itself.
pub fn trust(ca: Option<&str>) -> Result<Trust, ConnectorError> {
    let (client, extra) = crate::connectors::trust::client("EMAIL_CA_CERT", ca)?;
    Ok(Trust { client, extra })
}

/// A certificate the server showed was not trusted: a setting to fix, not a blip.
pub fn untrusted(what: &str, e: &std::io::Error) -> Option<ConnectorError> {
    let text = e.to_string();
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(|r| r.to_string())
        .unwrap_or_else(|| text.clone());
    (text.contains("certificate") || inner.contains("certificate")).then(|| {
        ConnectorError::Permanent(format!(
            "{what}: the server's certificate is not trusted ({inner}); if the server uses a \
             private CA, set EMAIL_CA_CERT to its PEM file, and check the host name"
        ))
    })
}
