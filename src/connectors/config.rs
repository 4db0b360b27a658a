//! A connection's decrypted configuration: all a connector knows of flametree.

use super::ConnectorError;
use crate::model::Connection;
use crate::secrets::SecretString;
use std::collections::BTreeMap;

pub struct ConnConfig {
    pub connection: Connection,
    secrets: BTreeMap<String, SecretString>,
    /// `<public_url>/hooks/<hook_id>`: where the provider delivers webhooks.
    pub webhook_url: String,
    /// The process's shared HTTP client (one connection pool).
    pub http: reqwest::Client,
    /// Where a voice connector reports the calls it holds (see `Calls`); the runtime
    /// shows the count in the connection's status.
    pub calls: super::Calls,
}

impl std::fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnConfig")
            .field("connection", &self.connection.name)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("webhook_url", &"<hidden>")
            .finish()
    }
}

impl ConnConfig {
    pub fn new(
        connection: Connection,
        secrets: BTreeMap<String, SecretString>,
        webhook_url: String,
        http: reqwest::Client,
    ) -> ConnConfig {
        ConnConfig {
            connection,
            secrets,
            webhook_url,
            http,
            calls: super::Calls::none(),
        }
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

    /// Whether the operator set the variable (a default does not count).
    pub fn env_set(&self, name: &str) -> bool {
        self.connection
            .env
            .iter()
            .any(|e| e.name == name && !e.value.trim().is_empty())
    }

    /// A true/false environment variable (its default when unset); anything else is an
    /// error naming it.
    pub fn flag(&self, name: &str) -> Result<bool, ConnectorError> {
        match self
            .env(name)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "false" | "no" | "0" => Ok(false),
            "true" | "yes" | "1" => Ok(true),
            other => Err(ConnectorError::Permanent(format!(
                "{name} is '{other}': use true or false"
            ))),
        }
    }

    /// A non-secret field, or its catalog default.
    pub fn field(&self, key: &str) -> Option<String> {
        self.connection
            .fields
            .get(key)
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .or_else(|| {
                crate::catalog::Catalog::get()
                    .find(&self.connection.type_key)
                    .and_then(|t| t.field(key))
                    .and_then(|f| f.default.clone())
            })
    }

    /// A secret field, opened at start; a missing one is a permanent error naming it.
    pub fn secret(&self, key: &str) -> Result<&SecretString, ConnectorError> {
        self.secrets.get(key).ok_or_else(|| {
            let label = crate::catalog::Catalog::get()
                .find(&self.connection.type_key)
                .and_then(|t| t.field(key))
                .map(|f| f.label.clone())
                .unwrap_or_else(|| key.to_string());
            ConnectorError::Permanent(format!(
                "{label} is not set: open the connection, fill it in, Save, then Start"
            ))
        })
    }

    /// What must never be shown: every secret, and each account's part of a
    /// multi-account secret (one password of several may reach an error on its own).
    pub fn masked(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in self.secrets.values() {
            let whole = s.expose();
            out.push(whole);
            if whole.contains(',') {
                // Very short parts would mask ordinary words; they are no secret alone.
                out.extend(whole.split(',').map(str::trim).filter(|p| p.len() >= 4));
            }
        }
        out
    }
}
