//! What every sandbox shares: its HTTP server on a free port of 127.0.0.1, the client
//! with which it plays the provider's side (webhook deliveries), and waiting for what
//! it records.

use axum::Router;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Server {
    pub addr: SocketAddr,
    /// For the provider's own requests (webhook deliveries), never through a proxy.
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

/// The sandboxes listen as a provider's servers do, with room for a burst of new
/// connections (see `crate::http::listen`).
pub fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    crate::http::listen(addr)
}

impl Server {
    pub async fn start(app: Router) -> io::Result<Server> {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(io::Error::other)?;
        Ok(Server { addr, http, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `read` returns once it holds `n` items, or as it is after `timeout`.
pub async fn wait_for<T>(n: usize, timeout: Duration, read: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let items = read();
        if items.len() >= n || tokio::time::Instant::now() >= deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
