//! A small typed client for the parts of Meta's Graph API the three products use, and
//! what Meta's error envelope means for the operator.

use crate::connectors::ConnectorError;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

pub struct Graph {
    pub http: reqwest::Client,
    /// `https://graph.facebook.com/v21.0`, without a trailing slash.
    pub base: String,
    token: String,
    /// `appsecret_proof` for the token (apps with "Require App Secret" want it).
    proof: String,
    /// Which setting names the token, for error messages ("Access token").
    pub token_label: &'static str,
}

/// Meta's error envelope, `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
#[derive(Debug, Clone, Default)]
pub struct GraphError {
    pub code: i64,
    pub message: String,
    pub fbtrace: String,
    pub status: u16,
}

impl GraphError {
    fn parse(status: u16, body: &str) -> GraphError {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let e = &v["error"];
        GraphError {
            code: e["code"].as_i64().unwrap_or(0),
            message: e["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("HTTP {status}: {}", crate::runtime::logs::clip(body, 200))
                }),
            fbtrace: e["fbtrace_id"].as_str().unwrap_or("").to_string(),
            status,
        }
    }

    fn trace(&self) -> String {
        if self.fbtrace.is_empty() {
            String::new()
        } else {
            format!(", fbtrace {}", self.fbtrace)
        }
    }
}

/// Codes Meta uses to say "slow down" (app, WABA, page and pair rate limits).
const THROTTLED: &[i64] = &[4, 17, 32, 613, 80007, 130429, 131056, 131057];
/// Codes Meta documents as temporary.
const TEMPORARY: &[i64] = &[1, 2, 1200];

/// What an error means: the token is dead, slow down, try again, or a setting is wrong.
pub fn classify(e: &GraphError, token_label: &str, what: &str) -> ConnectorError {
    if e.code == 190 || (e.status == 401 && e.code == 0) {
        return ConnectorError::Permanent(format!(
            "Meta rejected the access token (190): sign in again or paste a new {token_label}, \
             Save, then Start ({}{})",
            e.message,
            e.trace()
        ));
    }
    if THROTTLED.contains(&e.code) {
        return ConnectorError::Transient {
            why: format!("Meta asks to slow down ({}: {})", e.code, e.message),
            retry_after: Some(Duration::from_secs(if e.code == 131056 { 6 } else { 2 })),
        };
    }
    if TEMPORARY.contains(&e.code) || e.status >= 500 || e.status == 429 {
        return ConnectorError::transient(format!(
            "Meta is not answering properly ({} {}{})",
            e.code,
            e.message,
            e.trace()
        ));
    }
    ConnectorError::Permanent(format!(
        "{what}: Meta refused ({}: {}{})",
        e.code,
        e.message,
        e.trace()
    ))
}

impl Graph {
    pub fn new(
        http: reqwest::Client,
        api: &str,
        version: &str,
        token: &str,
        app_secret: &str,
        token_label: &'static str,
    ) -> Graph {
        Graph {
            http,
            base: format!(
                "{}/{}",
                api.trim().trim_end_matches('/'),
                version.trim().trim_matches('/')
            ),
            proof: appsecret_proof(app_secret, token),
            token: token.to_string(),
            token_label,
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, GraphError> {
        let req = self
            .http
            .get(format!("{}/{}", self.base, path.trim_start_matches('/')))
            .query(query);
        self.call(req).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, GraphError> {
        let req = self
            .http
            .post(format!("{}/{}", self.base, path.trim_start_matches('/')))
            .json(body);
        self.call(req).await
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, GraphError> {
        let sent = req
            .bearer_auth(&self.token)
            .query(&[("appsecret_proof", self.proof.as_str())])
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(GraphError {
                    code: 2,
                    message: format!("cannot reach the Graph API ({})", short_reqwest(&e)),
                    status: 0,
                    ..GraphError::default()
                });
            }
        };
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
        } else {
            Err(GraphError::parse(status, &body))
        }
    }
}

fn short_reqwest(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = inner.to_string();
        src = inner.source();
    }
    s
}

/// `hex(HMAC-SHA256(key = app secret, message = access token))`.
pub fn appsecret_proof(app_secret: &str, token: &str) -> String {
    hex_hmac(app_secret.as_bytes(), token.as_bytes())
}

pub fn hex_hmac(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `X-Hub-Signature-256` is `sha256=<hex HMAC of the raw body under the app secret>`.
pub fn signature_ok(header: &str, app_secret: &str, body: &[u8]) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = from_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_signature_vector_verifies() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = "sha256=02fe0c96d28c59ddb7cf81eff0ca05809b360ba73b63c28210b5906a0a107d1f";
        assert!(signature_ok(header, "app_secret_123", body));
        assert!(!signature_ok(header, "app_secret_124", body));
        assert!(!signature_ok(
            &header.replace("sha256=", "sha1="),
            "app_secret_123",
            body
        ));
        assert!(!signature_ok("sha256=zz", "app_secret_123", body));
        assert_eq!(
            format!("sha256={}", hex_hmac(b"app_secret_123", body)),
            header
        );
    }

    #[test]
    fn meta_error_codes_mean_what_the_docs_say() {
        let e = |code| GraphError {
            code,
            message: "m".into(),
            status: 400,
            ..GraphError::default()
        };
        assert!(
            matches!(classify(&e(190), "Access token", "send"), ConnectorError::Permanent(m) if m.contains("Meta rejected the access token (190)"))
        );
        for code in [4, 613, 80007, 130429, 131056] {
            assert!(
                matches!(
                    classify(&e(code), "Access token", "send"),
                    ConnectorError::Transient {
                        retry_after: Some(_),
                        ..
                    }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(&e(131026), "Access token", "send"),
            ConnectorError::Permanent(_)
        ));
    }
}
