//! WhatsApp On-Premises API (deprecated: the self-hosted WhatsApp Business API client):
//! log in for a bearer token (`POST /v1/users/login`, renewed when it lapses), point the
//! client's webhook at this connection, receive its webhooks, reply with `POST
//! /v1/messages`. Kept running until its owners migrate to the Cloud API.

use super::{
    ConnConfig, Connector, ConnectorError, Delivery, Event, HookRequest, HookVerdict, Inbound,
    Outbound, Receiver,
};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

pub struct OnPrem {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    number: String,
    webhook_url: String,
    insecure: bool,
    token: Mutex<Option<String>>,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let base = cfg
        .field("base_url")
        .map(|b| b.trim().trim_end_matches('/').to_string())
        .ok_or_else(|| ConnectorError::Permanent("Base URL is not set".into()))?;
    reqwest::Url::parse(&base)
        .map_err(|e| ConnectorError::Permanent(format!("Base URL '{base}' is not a URL ({e})")))?;
    let insecure = matches!(
        cfg.env("WHATSAPP_ONPREM_ACCEPT_INVALID_CERTS")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "true" | "yes" | "1"
    );
    let http = if insecure {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ConnectorError::Permanent(format!("HTTP client: {e}")))?
    } else {
        cfg.http.clone()
    };
    Ok(Arc::new(OnPrem {
        http,
        base,
        user: cfg.field("username").unwrap_or_default().trim().to_string(),
        password: cfg.secret("password")?.expose().to_string(),
        number: cfg
            .field("phone_number")
            .unwrap_or_default()
            .trim()
            .to_string(),
        webhook_url: cfg.webhook_url.clone(),
        insecure,
        token: Mutex::new(None),
    }))
}

fn error_text(v: &Value) -> String {
    let e = &v["errors"][0];
    format!(
        "{} {}{}",
        e["code"].as_i64().unwrap_or(0),
        e["title"].as_str().unwrap_or("no explanation"),
        e["details"]
            .as_str()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )
}

impl OnPrem {
    async fn login(&self) -> Result<String, ConnectorError> {
        let r = self
            .http
            .post(format!("{}/v1/users/login", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .json(&json!({}))
            .send()
            .await
            .map_err(|e| {
                ConnectorError::transient(format!(
                    "cannot reach the On-Premises API client at {} ({e})",
                    self.base
                ))
            })?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => {
                let token = v["users"][0]["token"].as_str().unwrap_or("").to_string();
                *self.token.lock().expect("token lock") = Some(token.clone());
                Ok(token)
            }
            401 => Err(ConnectorError::Permanent(format!(
                "the On-Premises API client refused Username and Password (401 {})",
                error_text(&v)
            ))),
            s if s >= 500 => Err(ConnectorError::transient(format!(
                "the On-Premises API client answered {s} ({})",
                error_text(&v)
            ))),
            s => Err(ConnectorError::Permanent(format!(
                "logging in to the On-Premises API client failed ({s} {})",
                error_text(&v)
            ))),
        }
    }

    /// A call with the bearer token, logging in again once when it lapsed.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ConnectorError> {
        for attempt in 0..2 {
            let held = self.token.lock().expect("token lock").clone();
            let token = match held {
                Some(t) if attempt == 0 => t,
                _ => self.login().await?,
            };
            let r = self
                .http
                .request(method.clone(), format!("{}/{path}", self.base))
                .bearer_auth(&token)
                .json(body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| {
                    ConnectorError::transient(format!(
                        "cannot reach the On-Premises API client at {} ({e})",
                        self.base
                    ))
                })?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            match status {
                200..=299 => return Ok(v),
                401 if attempt == 0 => continue,
                429 => {
                    return Err(ConnectorError::Transient {
                        why: format!("the client asks to slow down (429 {})", error_text(&v)),
                        retry_after: Some(Duration::from_secs(1)),
                    });
                }
                s if s >= 500 => {
                    return Err(ConnectorError::transient(format!(
                        "the On-Premises API client answered {s} ({})",
                        error_text(&v)
                    )));
                }
                s => {
                    return Err(ConnectorError::Permanent(format!(
                        "the On-Premises API client refused ({s} {})",
                        error_text(&v)
                    )));
                }
            }
        }
        Err(ConnectorError::Permanent(
            "the On-Premises API client refused the token it had just issued".into(),
        ))
    }
}

#[async_trait]
impl Connector for OnPrem {
    async fn verify(&self) -> Result<String, ConnectorError> {
        if self.insecure {
            warn!(
                "WHATSAPP_ONPREM_ACCEPT_INVALID_CERTS is on: the client's certificate is not \
                 checked; use this only on a network you trust"
            );
        }
        self.login().await?;
        warn!(
            "WhatsApp On-Premises API is a deprecated channel type: it keeps running, but plan \
             its migration to the WhatsApp Cloud API (`flametree channels migrate NAME`, or \
             Migrate… in the console)"
        );
        Ok(format!("WhatsApp On-Premises {} (deprecated)", self.number))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        self.call(
            reqwest::Method::PATCH,
            "v1/settings/application",
            &json!({"webhooks": {"url": self.webhook_url}}),
        )
        .await?;
        info!(
            "the On-Premises API client now delivers webhooks to {}",
            self.webhook_url
        );
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        super::phone_recipient(to)
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let body = json!({
            "recipient_type": "individual",
            "to": out.to.trim().trim_start_matches('+'),
            "type": "text",
            "text": {"body": out.text},
        });
        let v = self
            .call(reqwest::Method::POST, "v1/messages", &body)
            .await?;
        Ok(v["messages"][0]["id"].as_str().unwrap_or("").to_string())
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        super::accept_json(&req.body, events)
    }
}

/// The client's webhook: `messages[]`, `statuses[]`, with `contacts[]` for names.
pub fn events(v: &Value) -> Vec<Event> {
    let mut out = Vec::new();
    for m in v["messages"].as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or("").to_string();
        let from = m["from"].as_str().unwrap_or("").to_string();
        let name = v["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["wa_id"].as_str() == Some(from.as_str()))
            .and_then(|c| c["profile"]["name"].as_str())
            .unwrap_or("")
            .to_string();
        match m["text"]["body"].as_str() {
            Some(text) if m["type"] == "text" && !from.is_empty() => {
                out.push(Event::Message(Inbound {
                    account: String::new(),
                    provider_id: id,
                    customer: from,
                    display_name: name,
                    text: text.to_string(),
                    raw: m.to_string(),
                }))
            }
            _ => out.push(Event::Ignored {
                note: format!(
                    "a '{}' message {id} from {from}; not answered",
                    m["type"].as_str().unwrap_or("?")
                ),
            }),
        }
    }
    for s in v["statuses"].as_array().into_iter().flatten() {
        let status = s["status"].as_str().unwrap_or("").to_string();
        out.push(Event::Delivery(Delivery {
            provider_message_id: s["id"].as_str().unwrap_or("").to_string(),
            failed: status == "failed",
            detail: s["errors"][0]["title"].as_str().unwrap_or("").to_string(),
            status,
        }));
    }
    out
}
