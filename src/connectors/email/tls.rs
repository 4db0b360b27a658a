//! TLS for both mail protocols: the system's trusted roots, plus a private CA when the
//! connection names one (`EMAIL_CA_CERT`). Verification is never turned off.

use super::super::ConnectorError;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

pub struct Trust {
    pub client: Arc<rustls::ClientConfig>,
    /// The private CA's certificates (DER), for lettre's own TLS set-up.
    pub extra: Vec<CertificateDer<'static>>,
}

/// `ca` is the value of EMAIL_CA_CERT: a PEM file's path, or the PEM text itself.
pub fn trust(ca: Option<&str>) -> Result<Trust, ConnectorError> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let mut extra = Vec::new();
    if let Some(ca) = ca.map(str::trim).filter(|c| !c.is_empty()) {
        let pem = if ca.starts_with("-----BEGIN") {
            ca.as_bytes().to_vec()
        } else {
            std::fs::read(ca).map_err(|e| {
                ConnectorError::Permanent(format!(
                    "EMAIL_CA_CERT names the file '{ca}', which cannot be read ({e}): give the \
                     path of the CA's PEM file on this server, or paste the PEM itself"
                ))
            })?
        };
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad_ca(&e.to_string()))?;
            roots
                .add(cert.clone())
                .map_err(|e| bad_ca(&e.to_string()))?;
            extra.push(cert);
        }
        if extra.is_empty() {
            return Err(bad_ca("no certificate in it"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Permanent(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Trust {
        client: Arc::new(client),
        extra,
    })
}

fn bad_ca(why: &str) -> ConnectorError {
    ConnectorError::Permanent(format!(
        "EMAIL_CA_CERT is not a PEM certificate ({why}): give the CA's certificate, \
         -----BEGIN CERTIFICATE----- and all"
    ))
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
