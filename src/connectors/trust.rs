//! The TLS trust every connector that dials a server uses: the system's trusted roots,
//! plus a private CA when the connection names one. Verification is never turned off.

use super::ConnectorError;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

/// A client configuration (ring) trusting the system's roots and the CA that `ca`, the
/// value of the setting named `setting`, gives: a PEM file's path, or the PEM text
/// itself. Also returns that CA's certificates (DER), for libraries with their own
/// TLS set-up.
pub fn client(
    setting: &str,
    ca: Option<&str>,
) -> Result<(Arc<rustls::ClientConfig>, Vec<CertificateDer<'static>>), ConnectorError> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let bad_ca = |why: &str| {
        ConnectorError::Permanent(format!(
            "{setting} is not a PEM certificate ({why}): give the CA's certificate, \
             -----BEGIN CERTIFICATE----- and all"
        ))
    };
    let mut extra = Vec::new();
    if let Some(ca) = ca.map(str::trim).filter(|c| !c.is_empty()) {
        let pem = if ca.starts_with("-----BEGIN") {
            ca.as_bytes().to_vec()
        } else {
            std::fs::read(ca).map_err(|e| {
                ConnectorError::Permanent(format!(
                    "{setting} names the file '{ca}', which cannot be read ({e}): give the \
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
    Ok((Arc::new(client), extra))
}
