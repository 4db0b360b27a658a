//! MessageBird (deprecated: the legacy Conversations API, before Bird): messages arrive
//! at the webhook URL, signed with MessageBird's request signature when a Signing key is
//! set; replies go out through `POST /send` from the channel. Kept running until its
//! owners migrate to Bird.

use super::{
    ConnConfig, Connector, ConnectorError, Delivery, Event, HookRequest, HookVerdict, Inbound,
    Outbound, Receiver,
};
use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub struct MessageBird {
    http: reqwest::Client,
    api: String,
    key: String,
    channel: String,
    signing_key: Option<String>,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let api = cfg
        .env("MESSAGEBIRD_API_URL")
        .unwrap_or_else(|| "https://conversations.messagebird.com/v1".into());
    reqwest::Url::parse(api.trim()).map_err(|e| {
        ConnectorError::Permanent(format!("MESSAGEBIRD_API_URL '{api}' is not a URL ({e})"))
    })?;
    Ok(Arc::new(MessageBird {
        http: cfg.http.clone(),
        api: api.trim().trim_end_matches('/').to_string(),
        key: cfg.secret("access_key")?.expose().trim().to_string(),
        channel: cfg
            .field("channel_id")
            .map(|c| c.trim().to_string())
            .ok_or_else(|| ConnectorError::Permanent("Channel ID is not set".into()))?,
        signing_key: cfg
            .secret("signing_key")
            .ok()
            .map(|s| s.expose().trim().to_string())
            .filter(|s| !s.is_empty()),
    }))
}

/// MessageBird's request signature: `base64(HMAC-SHA256(signing key, timestamp + "\n" +
/// sorted query string + "\n" + SHA256(body)))`, the body's hash as raw bytes.
pub fn signature(
    signing_key: &str,
    timestamp: &str,
    query: &[(String, String)],
    body: &[u8],
) -> String {
    let mut pairs = query.to_vec();
    pairs.sort();
    let qs = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut msg = format!("{timestamp}\n{qs}\n").into_bytes();
    msg.extend_from_slice(&Sha256::digest(body));
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("any key");
    mac.update(&msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl MessageBird {
    async fn call(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value, ConnectorError> {
        let provider = super::rest::Provider {
            name: "MessageBird",
            base: &self.api,
            unauthorized: "paste a live Access key, Save, then Start — or migrate to Bird",
            explain: |v| {
                v["errors"][0]["description"]
                    .as_str()
                    .unwrap_or("no explanation")
                    .to_string()
            },
        };
        let r = r
            .header("Authorization", format!("AccessKey {}", self.key))
            .timeout(Duration::from_secs(30));
        super::rest::call(&provider, r, what).await
    }
}

#[async_trait]
impl Connector for MessageBird {
    async fn verify(&self) -> Result<String, ConnectorError> {
        self.call(
            self.http.get(format!("{}/conversations?limit=1", self.api)),
            "the key check",
        )
        .await?;
        warn!(
            "MessageBird is a deprecated channel type: it keeps running, but plan its migration \
             to Bird (`flametree channels migrate NAME`, or Migrate… in the console)"
        );
        if self.signing_key.is_none() {
            warn!(
                "no Signing key: webhooks are accepted without checking that MessageBird sent them"
            );
        }
        Ok(format!("MessageBird channel {} (deprecated)", self.channel))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        info!("waiting for MessageBird's webhooks");
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let body = json!({
            "to": out.to.trim(),
            "from": self.channel,
            "type": "text",
            "content": {"text": out.text},
        });
        let v = self
            .call(
                self.http.post(format!("{}/send", self.api)).json(&body),
                "the reply",
            )
            .await?;
        Ok(v["id"].as_str().unwrap_or("").to_string())
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        if let Some(key) = &self.signing_key {
            let (Some(sig), Some(ts)) = (
                req.header("MessageBird-Signature"),
                req.header("MessageBird-Request-Timestamp"),
            ) else {
                return HookVerdict::Reject {
                    status: 401,
                    why: "a delivery without MessageBird-Signature was refused".into(),
                };
            };
            if !super::same_secret(sig, &signature(key, ts, &req.query, &req.body)) {
                return HookVerdict::Reject {
                    status: 401,
                    why: "a delivery whose MessageBird-Signature does not match was refused: \
                          check the Signing key"
                        .into(),
                };
            }
        }
        super::accept_json(&req.body, |v| events(v, &self.channel))
    }
}

/// A Conversations API webhook (`message.created` / `message.updated`) as events.
pub fn events(v: &Value, channel: &str) -> Vec<Event> {
    let m = &v["message"];
    let id = m["id"].as_str().unwrap_or("").to_string();
    if m["channelId"].as_str().is_some_and(|c| c != channel) {
        return vec![Event::Ignored {
            note: format!("a MessageBird message {id} for another channel; nothing to answer"),
        }];
    }
    match m["direction"].as_str() {
        Some("sent") if v["type"] == "message.updated" => {
            let status = m["status"].as_str().unwrap_or("").to_string();
            vec![Event::Delivery(Delivery {
                provider_message_id: id,
                failed: matches!(status.as_str(), "failed" | "rejected"),
                detail: m["error"]["description"].as_str().unwrap_or("").to_string(),
                status,
            })]
        }
        Some("sent") => vec![Event::Echo {
            note: format!("MessageBird message {id} sent by this channel"),
        }],
        _ => {
            let text = m["content"]["text"].as_str().unwrap_or("").trim();
            let from = v["contact"]["msisdn"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["contact"]["msisdn"].as_i64().map(|n| n.to_string()))
                .unwrap_or_default();
            if text.is_empty() || from.is_empty() {
                return vec![Event::Ignored {
                    note: format!(
                        "a MessageBird '{}' message {id} without text; not answered",
                        m["type"].as_str().unwrap_or("?")
                    ),
                }];
            }
            vec![Event::Message(Inbound {
                account: String::new(),
                provider_id: id,
                customer: format!("+{}", from.trim_start_matches('+')),
                display_name: v["contact"]["displayName"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                text: text.to_string(),
                raw: m.to_string(),
            })]
        }
    }
}
