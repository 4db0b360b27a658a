//! Intercom: customers' messages arrive as `conversation.user.created` /
//! `conversation.user.replied` notifications at the webhook URL (`X-Hub-Signature`,
//! HMAC-SHA1 of the raw body under the app's client secret); the reply is posted to the
//! conversation as the configured admin.

use super::{
    ConnConfig, Connector, ConnectorError, Event, HookRequest, HookVerdict, Inbound, Outbound,
    Receiver,
};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

pub struct Intercom {
    http: reqwest::Client,
    api: String,
    version: Option<String>,
    token: String,
    admin_id: String,
    client_secret: String,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let region = cfg.env("INTERCOM_REGION").unwrap_or_default();
    let api = if cfg.env_set("INTERCOM_API_URL") {
        cfg.env("INTERCOM_API_URL").unwrap_or_default()
    } else {
        match region.trim().to_ascii_lowercase().as_str() {
            "" | "us" => "https://api.intercom.io".to_string(),
            "eu" => "https://api.eu.intercom.io".to_string(),
            "au" => "https://api.au.intercom.io".to_string(),
            other => {
                return Err(ConnectorError::Permanent(format!(
                    "INTERCOM_REGION is '{other}': use us, eu or au (where the workspace is hosted)"
                )));
            }
        }
    };
    reqwest::Url::parse(api.trim()).map_err(|e| {
        ConnectorError::Permanent(format!("INTERCOM_API_URL '{api}' is not a URL ({e})"))
    })?;
    let admin_id = cfg
        .field("admin_id")
        .map(|a| a.trim().to_string())
        .ok_or_else(|| ConnectorError::Permanent("Admin ID is not set".into()))?;
    Ok(Arc::new(Intercom {
        http: cfg.http.clone(),
        api: api.trim().trim_end_matches('/').to_string(),
        version: cfg
            .env("INTERCOM_API_VERSION")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
        token: cfg.secret("access_token")?.expose().trim().to_string(),
        admin_id,
        client_secret: cfg.secret("client_secret")?.expose().trim().to_string(),
    }))
}

/// `sha1=<hex HMAC-SHA1 of the body under the client secret>`.
pub fn signature(client_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(client_secret.as_bytes()).expect("any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha1={hex}")
}

impl Intercom {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(
                method,
                format!("{}/{}", self.api, path.trim_start_matches('/')),
            )
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(30));
        if let Some(v) = &self.version {
            r = r.header("Intercom-Version", v);
        }
        r
    }

    async fn call(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value, ConnectorError> {
        let resp = r.send().await.map_err(|e| {
            ConnectorError::transient(format!("cannot reach Intercom at {} ({e})", self.api))
        })?;
        let status = resp.status().as_u16();
        let reset = resp
            .headers()
            .get("X-RateLimit-Reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let text = body["errors"][0]["message"]
            .as_str()
            .or(body["errors"][0]["code"].as_str())
            .unwrap_or("no explanation")
            .to_string();
        Err(match status {
            401 => ConnectorError::Permanent(format!(
                "Intercom rejected the Access token (401 {text}): create a new one in the \
                 Developer Hub, paste it, Save, then Start"
            )),
            429 => ConnectorError::Transient {
                why: format!("Intercom asks to slow down (429 {text})"),
                retry_after: reset.map(|r| {
                    Duration::from_secs((r - chrono::Utc::now().timestamp()).clamp(1, 120) as u64)
                }),
            },
            s if s >= 500 => ConnectorError::transient(format!("Intercom answered {s} ({text})")),
            s => ConnectorError::Permanent(format!("{what}: Intercom refused ({s} {text})")),
        })
    }
}

#[async_trait]
impl Connector for Intercom {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let me = self
            .call(self.request(reqwest::Method::GET, "me"), "the token check")
            .await?;
        let workspace = me["app"]["name"]
            .as_str()
            .unwrap_or("the workspace")
            .to_string();
        let admin = self
            .call(
                self.request(reqwest::Method::GET, &format!("admins/{}", self.admin_id)),
                "the admin check",
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Permanent(m) if m.contains("(404") => {
                    ConnectorError::Permanent(format!(
                        "Admin ID '{}' is not an admin of {workspace} (404): copy the id from \
                         Settings › Teammates, Save, then Start",
                        self.admin_id
                    ))
                }
                other => other,
            })?;
        let name = admin["name"].as_str().unwrap_or(&self.admin_id).to_string();
        info!(
            "connected to Intercom workspace {workspace} ({}) as admin {name}",
            self.api
        );
        Ok(format!("{workspace}, replying as {name}"))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        if !to.trim().is_empty() && to.trim().chars().all(|c| c.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!(
                "'{to}' is not an Intercom conversation id (digits)"
            ))
        }
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let body = json!({
            "message_type": "comment",
            "type": "admin",
            "admin_id": self.admin_id,
            "body": out.text,
        });
        let conv = out.to.trim();
        let v = self
            .call(
                self.request(
                    reqwest::Method::POST,
                    &format!("conversations/{conv}/reply"),
                )
                .json(&body),
                &format!("the reply to conversation {conv}"),
            )
            .await?;
        let part = v["conversation_parts"]["conversation_parts"]
            .as_array()
            .and_then(|p| p.last())
            .and_then(|p| p["id"].as_str())
            .unwrap_or("")
            .to_string();
        Ok(if part.is_empty() {
            conv.to_string()
        } else {
            part
        })
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        let given = req.header("X-Hub-Signature").unwrap_or("");
        if given.is_empty() {
            return HookVerdict::Reject {
                status: 401,
                why: "a notification without X-Hub-Signature was refused".into(),
            };
        }
        if !super::same_secret(given, &signature(&self.client_secret, &req.body)) {
            return HookVerdict::Reject {
                status: 401,
                why: "a notification whose X-Hub-Signature does not match was refused: check \
                      that Client secret is the one of the app that sends these webhooks"
                    .into(),
            };
        }
        super::accept_json(&req.body, events)
    }
}

/// A notification turned into events: the customer's newest words, or a line.
pub fn events(v: &Value) -> Vec<Event> {
    let topic = v["topic"].as_str().unwrap_or("");
    let item = &v["data"]["item"];
    let conv = item["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| item["id"].to_string());
    let part = match topic {
        "conversation.user.created" => Some(&item["source"]),
        "conversation.user.replied" => item["conversation_parts"]["conversation_parts"]
            .as_array()
            .and_then(|parts| {
                parts.iter().rev().find(|p| {
                    matches!(
                        p["author"]["type"].as_str(),
                        Some("user" | "lead" | "contact")
                    )
                })
            }),
        t if t.starts_with("conversation.admin.") => {
            return vec![Event::Echo {
                note: format!(
                    "Intercom '{t}' on conversation {conv} (an admin's or our own reply)"
                ),
            }];
        }
        "ping" => {
            return vec![Event::Ignored {
                note: "Intercom's ping: the webhook URL works".into(),
            }];
        }
        other => {
            return vec![Event::Ignored {
                note: format!("an Intercom '{other}' notification; nothing to answer"),
            }];
        }
    };
    let Some(part) = part else {
        return vec![Event::Ignored {
            note: format!("Intercom '{topic}' on conversation {conv} without a customer's part"),
        }];
    };
    let html = part["body"].as_str().unwrap_or("");
    let text = mail_parser::decoders::html::html_to_text(html)
        .trim()
        .to_string();
    if text.is_empty() {
        return vec![Event::Ignored {
            note: format!(
                "a message without text on conversation {conv} (an attachment?); not answered"
            ),
        }];
    }
    let id = part["id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let author = &part["author"];
    let name = author["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or(author["email"].as_str())
        .unwrap_or("")
        .to_string();
    vec![Event::Message(Inbound {
        account: String::new(),
        provider_id: id,
        customer: conv,
        display_name: name,
        text,
        raw: part.to_string(),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_signature_vector_verifies() {
        assert_eq!(
            signature(
                "client_secret_123",
                br#"{"type":"notification_event","topic":"ping"}"#
            ),
            "sha1=892b7769941a3e2be74c75f056cfee7b10f5834d"
        );
    }

    #[test]
    fn a_user_reply_is_the_newest_customer_part() {
        let v = json!({"type":"notification_event","topic":"conversation.user.replied","id":"notif_1",
            "data":{"item":{"type":"conversation","id":"123","conversation_parts":{"conversation_parts":[
                {"id":"p1","body":"<p>first</p>","author":{"type":"user","name":"Ann"}},
                {"id":"p2","body":"<p>Where is <b>my</b> order?</p>","author":{"type":"user","name":"Ann"}},
                {"id":"p3","body":"<p>note</p>","author":{"type":"admin","name":"Bot"}}]}}}});
        let ev = events(&v);
        let [Event::Message(m)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!((m.customer.as_str(), m.provider_id.as_str()), ("123", "p2"));
        assert_eq!(m.text, "Where is my order?");
        let admin = json!({"topic":"conversation.admin.replied","data":{"item":{"id":"123"}}});
        assert!(matches!(events(&admin).as_slice(), [Event::Echo { .. }]));
    }
}
