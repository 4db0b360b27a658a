//! Bird (api.bird.com, the Channels API): inbound messages arrive at the webhook URL
//! signed with Bird's scheme and refused when older than `BIRD_WEBHOOK_MAX_AGE`;
//! replies go out through the channel's `messages` endpoint.

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
use tracing::info;

pub struct Bird {
    http: reqwest::Client,
    api: String,
    workspace: String,
    channel: String,
    key: String,
    signing_key: String,
    max_age: i64,
    organization: Option<String>,
    webhook_url: String,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let api = cfg
        .env("BIRD_API_URL")
        .unwrap_or_else(|| "https://api.bird.com".into());
    reqwest::Url::parse(api.trim()).map_err(|e| {
        ConnectorError::Permanent(format!("BIRD_API_URL '{api}' is not a URL ({e})"))
    })?;
    let field = |k: &str, label: &str| {
        cfg.field(k)
            .map(|v| v.trim().to_string())
            .ok_or_else(|| ConnectorError::Permanent(format!("{label} is not set")))
    };
    let max_age = cfg
        .env("BIRD_WEBHOOK_MAX_AGE")
        .unwrap_or_else(|| "86400".into())
        .trim()
        .parse::<i64>()
        .map_err(|_| {
            ConnectorError::Permanent("BIRD_WEBHOOK_MAX_AGE must be a number of seconds".into())
        })?;
    Ok(Arc::new(Bird {
        http: cfg.http.clone(),
        api: api.trim().trim_end_matches('/').to_string(),
        workspace: field("workspace_id", "Workspace ID")?,
        channel: field("channel_id", "Channel ID")?,
        key: cfg.secret("access_key")?.expose().trim().to_string(),
        signing_key: cfg.secret("signing_key")?.expose().trim().to_string(),
        max_age,
        organization: cfg
            .env("BIRD_ORGANIZATION_ID")
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty()),
        webhook_url: cfg.webhook_url.clone(),
    }))
}

/// `base64(HMAC-SHA256(signing key, timestamp + "\n" + url + "\n" + SHA256(body)))`,
/// the body's hash as raw bytes.
pub fn signature(signing_key: &str, timestamp: &str, url: &str, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}\n{url}\n").into_bytes();
    msg.extend_from_slice(&Sha256::digest(body));
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("any key");
    mac.update(&msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Bird {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/{}", self.api, path))
            .header("Authorization", format!("AccessKey {}", self.key))
            .timeout(Duration::from_secs(30))
    }

    async fn call(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value, ConnectorError> {
        let provider = super::rest::Provider {
            name: "Bird",
            base: &self.api,
            unauthorized: "check the Access key and that its access policy allows this \
                           workspace's channels, Save, then Start",
            explain: |v| {
                v["message"]
                    .as_str()
                    .or(v["code"].as_str())
                    .unwrap_or("no explanation")
                    .to_string()
            },
        };
        super::rest::call(&provider, r, what).await
    }

    async fn ensure_subscription(&self, org: &str) -> Result<(), ConnectorError> {
        let path = format!(
            "organizations/{org}/workspaces/{}/webhook-subscriptions",
            self.workspace
        );
        let list = self
            .call(
                self.req(reqwest::Method::GET, &path),
                "listing webhook subscriptions",
            )
            .await?;
        let exists = list["results"].as_array().into_iter().flatten().any(|s| {
            s["url"].as_str() == Some(self.webhook_url.as_str())
                && s["event"].as_str() == Some("sms.inbound")
        });
        if exists {
            info!("Bird's webhook subscription for this channel is in place");
            return Ok(());
        }
        let body = json!({
            "service": "channels",
            "event": "sms.inbound",
            "url": self.webhook_url,
            "signingKey": self.signing_key,
            "eventFilters": [{"key": "channelId", "value": self.channel}],
        });
        self.call(
            self.req(reqwest::Method::POST, &path).json(&body),
            "registering the webhook subscription",
        )
        .await?;
        info!("registered Bird's webhook subscription (sms.inbound) for this channel");
        Ok(())
    }
}

#[async_trait]
impl Connector for Bird {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let v = self
            .call(
                self.req(
                    reqwest::Method::GET,
                    &format!("workspaces/{}/channels", self.workspace),
                ),
                &format!("Workspace ID '{}'", self.workspace),
            )
            .await?;
        let channels: Vec<&Value> = v["results"].as_array().into_iter().flatten().collect();
        let Some(ch) = channels
            .iter()
            .find(|c| c["id"].as_str() == Some(self.channel.as_str()))
        else {
            let known: Vec<&str> = channels.iter().filter_map(|c| c["id"].as_str()).collect();
            return Err(ConnectorError::Permanent(format!(
                "Channel ID '{}' is not a channel of workspace {} (it has: {}): copy the id \
                 from Bird's channel settings, Save, then Start",
                self.channel,
                self.workspace,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        match &self.organization {
            Some(org) => self.ensure_subscription(org).await?,
            None => info!(
                "give Bird this connection's webhook URL and Signing key (a webhook \
                 subscription for sms.inbound on this channel), or set BIRD_ORGANIZATION_ID \
                 to have Start register it"
            ),
        }
        Ok(format!(
            "Bird channel {}",
            ch["name"].as_str().unwrap_or(&self.channel)
        ))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        super::phone_recipient(to)
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let body = json!({
            "receiver": {"contacts": [{"identifierValue": out.to.trim()}]},
            "body": {"type": "text", "text": {"text": out.text}},
        });
        let v = self
            .call(
                self.req(
                    reqwest::Method::POST,
                    &format!(
                        "workspaces/{}/channels/{}/messages",
                        self.workspace, self.channel
                    ),
                )
                .json(&body),
                "the reply",
            )
            .await?;
        Ok(v["id"].as_str().unwrap_or("").to_string())
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        let (Some(sig), Some(ts)) = (
            req.header("MessageBird-Signature"),
            req.header("MessageBird-Request-Timestamp"),
        ) else {
            return HookVerdict::Reject {
                status: 401,
                why: "a delivery without MessageBird-Signature and MessageBird-Request-Timestamp \
                      was refused"
                    .into(),
            };
        };
        if !super::same_secret(sig, &signature(&self.signing_key, ts, &req.url, &req.body)) {
            return HookVerdict::Reject {
                status: 401,
                why: "a delivery whose MessageBird-Signature does not match was refused: check \
                      the Signing key, and that http.public_url is the address Bird calls"
                    .into(),
            };
        }
        let age = ts
            .trim()
            .parse::<i64>()
            .map(|t| (chrono::Utc::now().timestamp() - t).abs());
        if age.map_or(true, |a| a > self.max_age) {
            return HookVerdict::Reject {
                status: 401,
                why: format!(
                    "a delivery timestamped {ts} is older than BIRD_WEBHOOK_MAX_AGE ({} s) and was \
                     refused (a replay, or this server's clock is off)",
                    self.max_age
                ),
            };
        }
        super::accept_json(&req.body, |v| events(v, &self.channel))
    }
}

/// Removes the webhook subscriptions Start registered for a deleted connection (those
/// whose URL ends in its webhook path); returns how many went.
pub async fn forget_subscriptions(
    http: &reqwest::Client,
    api: &str,
    organization: &str,
    workspace: &str,
    key: &str,
    hook_id: &str,
) -> Result<usize, String> {
    let base = format!(
        "{}/organizations/{organization}/workspaces/{workspace}/webhook-subscriptions",
        api.trim().trim_end_matches('/')
    );
    let auth = format!("AccessKey {key}");
    let list: Value = http
        .get(&base)
        .header("Authorization", &auth)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("cannot reach Bird ({e})"))?
        .json()
        .await
        .map_err(|e| format!("Bird's answer is not JSON ({e})"))?;
    let suffix = format!("/hooks/{hook_id}");
    let mut gone = 0;
    for s in list["results"].as_array().into_iter().flatten() {
        let ours = s["url"].as_str().is_some_and(|u| u.ends_with(&suffix));
        if let (true, Some(id)) = (ours, s["id"].as_str()) {
            http.delete(format!("{base}/{id}"))
                .header("Authorization", &auth)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| format!("cannot reach Bird ({e})"))?;
            gone += 1;
        }
    }
    Ok(gone)
}

/// A Bird event turned into events for the pipeline.
pub fn events(v: &Value, channel: &str) -> Vec<Event> {
    let event = v["event"].as_str().unwrap_or("");
    let p = &v["payload"];
    let id = p["id"].as_str().unwrap_or("").to_string();
    if p["channelId"].as_str().is_some_and(|c| c != channel) {
        return vec![Event::Ignored {
            note: format!("a Bird '{event}' event for another channel; nothing to answer"),
        }];
    }
    if p["direction"].as_str() != Some("incoming") {
        let status = p["status"].as_str().unwrap_or(event).to_string();
        return vec![Event::Delivery(Delivery {
            provider_message_id: id,
            failed: matches!(status.as_str(), "failed" | "rejected" | "undeliverable"),
            detail: p["reason"].as_str().unwrap_or("").to_string(),
            status,
        })];
    }
    let text = p["body"]["text"]["text"].as_str().unwrap_or("").trim();
    let from = p["sender"]["contact"]["identifierValue"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if text.is_empty() || from.is_empty() {
        return vec![Event::Ignored {
            note: format!(
                "a Bird message {id} of type '{}' without text; not answered",
                p["body"]["type"].as_str().unwrap_or("?")
            ),
        }];
    }
    vec![Event::Message(Inbound {
        account: String::new(),
        provider_id: id,
        customer: from,
        display_name: String::new(),
        text: text.to_string(),
        raw: p.to_string(),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_signature_vector_verifies() {
        assert_eq!(
            signature(
                "signing_key_123",
                "1719823259",
                "https://example.com/webhooks/bird",
                br#"{"service":"channels","event":"sms.inbound","payload":{}}"#
            ),
            "13DfMm0ASkITfqxo6ehG9T6B7apE/ZCi0gjuMRr6hag="
        );
    }

    #[test]
    fn the_documented_inbound_sms_is_a_message() {
        let v = json!({"service":"channels","event":"sms.inbound","payload":{"id":"96a0b5fa-a986-453d-be5c-3117f989f025","channelId":"614208aa-b153-4d5d-9989-2fddfc0ce4c3",
            "sender":{"contact":{"id":"32cf5eee-f940-422c-ab8c-5f753aad5efd","identifierKey":"phonenumber","identifierValue":"+31612345678"}},
            "receiver":{"connector":{"id":"86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},
            "body":{"type":"text","text":{"text":"Sample incoming text message"}},
            "status":"delivered","direction":"incoming"}});
        let ev = events(&v, "614208aa-b153-4d5d-9989-2fddfc0ce4c3");
        let [Event::Message(m)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(m.customer, "+31612345678");
        assert_eq!(m.text, "Sample incoming text message");
        assert!(matches!(
            events(&v, "other").as_slice(),
            [Event::Ignored { .. }]
        ));
    }
}
