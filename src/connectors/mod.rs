//! Connectors: one module per channel family. A connector runs until told to stop,
//! reports RUNNING once it is really connected, retries what is transient, and returns
//! a permanent error — in words an operator can act on — for what is not.

pub mod telegram;

use crate::channels::Channels;
use crate::model::{Connection, Status};
use crate::runtime::logs::LogRouter;
use crate::secrets::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Bad or revoked credentials, a conflict only the operator can settle: ERROR.
    #[error("{0}")]
    Permanent(String),
}

/// What a running connector may use and report.
pub struct TaskContext {
    pub connection: Connection,
    pub channels: Arc<Channels>,
    pub router: Option<LogRouter>,
    pub stop: watch::Receiver<bool>,
    pub shared: Shared,
}

/// Resources shared by every task in the process (one HTTP connection pool).
#[derive(Clone)]
pub struct Shared {
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new() -> Shared {
        // teloxide's own settings: its long-poll timeouts assume them.
        let http = teloxide::net::default_reqwest_settings()
            .build()
            .expect("an HTTP client with rustls builds");
        Shared { http }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

impl TaskContext {
    pub fn id(&self) -> i64 {
        self.connection.id
    }

    /// The connection's environment variable, or its catalog default.
    pub fn env(&self, name: &str) -> Option<String> {
        self.connection
            .env
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value.clone())
            .or_else(|| {
                crate::catalog::Catalog::get()
                    .find(&self.connection.type_key)
                    .and_then(|t| t.env_var(name))
                    .and_then(|e| e.default.clone())
            })
    }

    /// Opens a secret field and masks it in this connection's logs from now on.
    pub fn secret(&self, field: &str) -> Result<SecretString, ConnectorError> {
        let value = self
            .channels
            .reveal(&self.connection, field)
            .map_err(|e| ConnectorError::Permanent(format!("{e}")))?
            .ok_or_else(|| {
                ConnectorError::Permanent(format!(
                    "{field} is not set: open the connection, fill it in, Save, then Start"
                ))
            })?;
        if let Some(r) = &self.router {
            r.protect(self.id(), value.expose());
        }
        Ok(value)
    }

    pub async fn status(&self, status: Status, message: &str) {
        if let Err(e) = self
            .channels
            .store()
            .set_status(self.id(), status, message)
            .await
        {
            tracing::warn!("could not record status {status}: {e}");
        }
    }

    /// Connected for real: RUNNING, and the config version this task runs.
    pub async fn running(&self, message: &str) {
        self.status(Status::Running, message).await;
        if let Err(e) = self
            .channels
            .store()
            .set_running_version(self.id(), Some(self.connection.version))
            .await
        {
            tracing::warn!("could not record the running version: {e}");
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, or returns early (true) when asked to stop.
    pub async fn pause(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.stop.changed() => true,
        }
    }
}

/// Capped exponential backoff: 1 s, 2 s, 4 s … 60 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60))
}

/// Runs the connector for the connection's family until stopped or failed for good.
pub async fn run(ctx: TaskContext) -> Result<(), ConnectorError> {
    let ty = crate::catalog::Catalog::get().find(&ctx.connection.type_key);
    match ty.map(|t| t.family.as_str()) {
        Some("telegram") => telegram::run(ctx).await,
        _ => Err(ConnectorError::Permanent(format!(
            "the {} connector is not part of this build yet: the connection is saved, but it cannot run",
            ty.map(|t| t.name.as_str())
                .unwrap_or(&ctx.connection.type_key)
        ))),
    }
}
