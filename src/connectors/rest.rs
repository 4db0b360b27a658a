//! One JSON call to a provider's REST API, and what its HTTP status means: the part every
//! small client of ours (Infobip, Bird, Intercom, MessageBird) shares.

use super::ConnectorError;
use serde_json::Value;
use std::time::Duration;

/// How a provider is named and how its failures read.
pub struct Provider<'a> {
    /// "Bird", "Infobip" …
    pub name: &'a str,
    pub base: &'a str,
    /// What the operator should do about a 401/403 (the credential to fix).
    pub unauthorized: &'a str,
    /// The provider's explanation, from its error body.
    pub explain: fn(&Value) -> String,
}

/// Sends the request; Ok is the JSON of a 2xx answer.
pub async fn call(
    p: &Provider<'_>,
    r: reqwest::RequestBuilder,
    what: &str,
) -> Result<Value, ConnectorError> {
    let resp = r.send().await.map_err(|e| {
        ConnectorError::transient(format!("cannot reach {} at {} ({e})", p.name, p.base))
    })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(v);
    }
    let text = (p.explain)(&v);
    Err(match status {
        401 | 403 => ConnectorError::Permanent(format!(
            "{} refused the credentials ({status} {text}): {}",
            p.name, p.unauthorized
        )),
        429 => ConnectorError::Transient {
            why: format!("{} asks to slow down (429 {text})", p.name),
            retry_after: Some(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 120))),
        },
        s if s >= 500 => ConnectorError::transient(format!("{} answered {s} ({text})", p.name)),
        s => ConnectorError::Permanent(format!("{what}: {} refused ({s} {text})", p.name)),
    })
}
