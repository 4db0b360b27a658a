//! A TLS terminator in front of SIPp, whose Debian build has no TLS: like an SBC
//! offloading TLS for a PBX, it accepts the line's TLS on 127.0.0.1 with a certificate
//! from a throwaway CA (for 127.0.0.1 and localhost) and relays each connection's bytes
//! to SIPp's TCP port and back. It counts the handshakes that succeeded and failed, so
//! a test can tell that the line spoke TLS and how many flows it opened. Like an SBC it
//! keeps its one connection to SIPp when the line's flow is cut: SIPp takes a call
//! whose connection closed for dead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

pub struct Relay {
    pub port: u16,
    /// The CA that signed the relay's certificate, as a PEM file (SIP_TLS_CA_FILE).
    pub ca_file: PathBuf,
    handshakes: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    /// Cancelled by `cut`: the connections open then end.
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays to SIPp listening on TCP at 127.0.0.1:`upstream`.
    pub async fn start(dir: &Path, port_of_sipp: u16) -> Relay {
        let dir = dir.join(format!("tls-relay-{port_of_sipp}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = crate::common::mail::Ca::new(&dir);
        let certs = CertificateDer::pem_file_iter(&ca.cert_pem)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.key_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (handshakes, refused) = (Arc::default(), Arc::default());
        let (ok, bad): (Arc<AtomicUsize>, Arc<AtomicUsize>) =
            (Arc::clone(&handshakes), Arc::clone(&refused));
        let cut: Arc<std::sync::Mutex<CancellationToken>> = Arc::default();
        let cuts = cut.clone();
        // One TLS flow at a time is relayed; the next waits for it to end.
        let upstream: Arc<tokio::sync::Mutex<Option<tokio::net::TcpStream>>> = Arc::default();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, ok, bad) = (acceptor.clone(), ok.clone(), bad.clone());
                let cut = cuts.lock().unwrap().clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        // The line refused the certificate (it sends an alert).
                        Err(_) => {
                            bad.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    ok.fetch_add(1, Ordering::SeqCst);
                    let mut slot = upstream.lock().await;
                    if slot.is_none() {
                        *slot = tokio::net::TcpStream::connect(("127.0.0.1", port_of_sipp))
                            .await
                            .ok();
                    }
                    let Some(sipp) = slot.as_mut() else {
                        return;
                    };
                    tokio::select! {
                        // Ended by either side: SIPp's end was shut down with it.
                        _ = tokio::io::copy_bidirectional(&mut tls, sipp) => *slot = None,
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        Relay {
            port,
            ca_file: ca.ca_pem,
            handshakes,
            refused,
            cut,
            task,
        }
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Closes the connections open now, as a server restarting would.
    pub fn cut(&self) {
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// TLS handshakes the client broke off.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
