//! WhatsApp Cloud API, Facebook Messenger and Instagram messaging: Meta delivers to the
//! connection's webhook URL (verification handshake, `X-Hub-Signature-256` over the raw
//! body under the app secret), and replies go out through the Graph API.

mod graph;
mod inbound;
pub mod signin;

use super::{
    ConnConfig, Connector, ConnectorError, HookRequest, HookResponse, HookVerdict, Outbound,
    Receiver,
};
use async_trait::async_trait;
use graph::{Graph, GraphError, classify};
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::{info, warn};

pub use graph::{hex_hmac, signature_ok};

enum Product {
    WhatsApp {
        numbers: Vec<String>,
        waba: String,
        mark_read: bool,
        check_subscription: bool,
    },
    Messenger {
        page_id: String,
    },
    Instagram {
        account_id: String,
    },
}

pub struct Meta {
    product: Product,
    graph: Graph,
    app_secret: String,
    verify_token: String,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let ty = cfg.connection.type_key.clone();
    let (prefix, token_key, token_label) = match ty.as_str() {
        "whatsapp" => ("WHATSAPP", "access_token", "Access token"),
        "facebook" => ("FACEBOOK", "page_access_token", "Page access token"),
        "instagram" => ("INSTAGRAM", "access_token", "Access token"),
        other => {
            return Err(ConnectorError::Permanent(format!(
                "the Meta connector does not run '{other}' connections"
            )));
        }
    };
    let field = |key: &str, label: &str| {
        cfg.field(key).map(|v| v.trim().to_string()).ok_or_else(|| {
            ConnectorError::Permanent(format!("{label} is not set: fill it in, Save, then Start"))
        })
    };
    let secret_or_field = |key: &str| -> Result<String, ConnectorError> {
        match cfg.secret(key) {
            Ok(s) => Ok(s.expose().trim().to_string()),
            Err(e) => cfg.field(key).map(|v| v.trim().to_string()).ok_or(e),
        }
    };
    let product = match ty.as_str() {
        "whatsapp" => Product::WhatsApp {
            numbers: field("phone_number_ids", "Phone number IDs")?
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            waba: field("business_account_id", "WhatsApp Business Account ID")?,
            mark_read: cfg.flag("WHATSAPP_MARK_AS_READ")?,
            check_subscription: cfg.flag("WHATSAPP_CHECK_SUBSCRIPTION")?,
        },
        "facebook" => Product::Messenger {
            page_id: field("page_id", "Page ID")?,
        },
        _ => Product::Instagram {
            account_id: field("instagram_account_id", "Instagram account ID")?,
        },
    };
    let app_secret = secret_or_field("app_secret")?;
    let token = secret_or_field(token_key)?;
    let api = cfg
        .env(&format!("{prefix}_GRAPH_API_URL"))
        .unwrap_or_else(|| "https://graph.facebook.com".into());
    reqwest::Url::parse(api.trim()).map_err(|e| {
        ConnectorError::Permanent(format!(
            "{prefix}_GRAPH_API_URL '{api}' is not a URL ({e}): fix or remove it, Save, then Start"
        ))
    })?;
    let version = cfg
        .env(&format!("{prefix}_GRAPH_API_VERSION"))
        .unwrap_or_else(|| "v21.0".into());
    Ok(Arc::new(Meta {
        graph: Graph::new(
            cfg.http.clone(),
            &api,
            &version,
            &token,
            &app_secret,
            token_label,
        ),
        product,
        app_secret,
        verify_token: secret_or_field("verify_token")?,
    }))
}

#[async_trait]
impl Connector for Meta {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let label = self.graph.token_label;
        match &self.product {
            Product::WhatsApp {
                numbers,
                waba,
                check_subscription,
                ..
            } => {
                let mut shown = Vec::new();
                for (i, n) in numbers.iter().enumerate() {
                    let v = self
                        .graph
                        .get(n, &[("fields", "id,display_phone_number,verified_name")])
                        .await
                        .map_err(|e| {
                            wrong_id(
                                &e,
                                label,
                                &format!("Phone number IDs value {} '{n}'", i + 1),
                            )
                        })?;
                    let phone = v["display_phone_number"].as_str().unwrap_or(n).to_string();
                    info!(
                        "phone number id {n}: {phone} ({})",
                        v["verified_name"].as_str().unwrap_or("no verified name")
                    );
                    shown.push(phone);
                }
                if *check_subscription {
                    self.ensure_subscribed(waba).await?;
                }
                Ok(format!("WhatsApp {}", shown.join(", ")))
            }
            Product::Messenger { page_id } => {
                let v = self
                    .graph
                    .get(page_id, &[("fields", "id,name")])
                    .await
                    .map_err(|e| wrong_id(&e, label, &format!("Page ID '{page_id}'")))?;
                Ok(format!("page {}", v["name"].as_str().unwrap_or(page_id)))
            }
            Product::Instagram { account_id } => {
                let v = self
                    .graph
                    .get(account_id, &[("fields", "id,username")])
                    .await
                    .map_err(|e| {
                        wrong_id(&e, label, &format!("Instagram account ID '{account_id}'"))
                    })?;
                Ok(format!(
                    "Instagram @{}",
                    v["username"].as_str().unwrap_or(account_id)
                ))
            }
        }
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        info!("waiting for Meta's deliveries at this connection's webhook URL");
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        let to = to.trim();
        let ok = match self.product {
            Product::WhatsApp { .. } => {
                let digits = to.trim_start_matches('+');
                (6..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
                    || to.contains('.')
            }
            _ => !to.is_empty() && to.chars().all(|c| c.is_ascii_alphanumeric()),
        };
        if ok {
            Ok(())
        } else if matches!(self.product, Product::WhatsApp { .. }) {
            Err(format!(
                "'{to}' is not a WhatsApp number (digits with the country code, e.g. 15551234567)"
            ))
        } else {
            Err(format!(
                "'{to}' is not a page-scoped user id (the sender id Meta gave)"
            ))
        }
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let label = self.graph.token_label;
        match &self.product {
            Product::WhatsApp {
                numbers, mark_read, ..
            } => {
                let from = if out.account.is_empty() {
                    numbers.first().cloned().unwrap_or_default()
                } else if numbers.iter().any(|n| n == out.account) {
                    out.account.to_string()
                } else {
                    return Err(ConnectorError::Permanent(format!(
                        "phone number id '{}' is not in this connection: its numbers are {}",
                        out.account,
                        numbers.join(", ")
                    )));
                };
                let body = json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": out.to.trim().trim_start_matches('+'),
                    "type": "text",
                    "text": {"body": out.text},
                });
                let v = self
                    .graph
                    .post(&format!("{from}/messages"), &body)
                    .await
                    .map_err(|e| classify(&e, label, "the reply"))?;
                let id = v["messages"][0]["id"].as_str().unwrap_or("").to_string();
                if *mark_read
                    && let Some(wamid) = out
                        .in_reply_to
                        .and_then(|k| k.split_once('/'))
                        .map(|(_, m)| m)
                {
                    self.mark_read(&from, wamid).await;
                }
                Ok(id)
            }
            Product::Messenger { .. } | Product::Instagram { .. } => {
                let body = json!({
                    "recipient": {"id": out.to.trim()},
                    "messaging_type": "RESPONSE",
                    "message": {"text": out.text},
                });
                let v = self
                    .graph
                    .post("me/messages", &body)
                    .await
                    .map_err(|e| classify(&e, label, "the reply"))?;
                Ok(v["message_id"].as_str().unwrap_or("").to_string())
            }
        }
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        if req.method.eq_ignore_ascii_case("GET") {
            return self.handshake(req);
        }
        let Some(sig) = req.header("X-Hub-Signature-256") else {
            return HookVerdict::Reject {
                status: 401,
                why: "a delivery without X-Hub-Signature-256 was refused".into(),
            };
        };
        if !signature_ok(sig, &self.app_secret, &req.body) {
            return HookVerdict::Reject {
                status: 401,
                why: "a delivery whose X-Hub-Signature-256 does not match was refused: check \
                      that App secret is the secret of the app that sends these webhooks"
                    .into(),
            };
        }
        let v: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                return HookVerdict::Reject {
                    status: 400,
                    why: format!("a signed delivery is not JSON: {e}"),
                };
            }
        };
        let object = v["object"].as_str().unwrap_or("");
        let events = match (&self.product, object) {
            (Product::WhatsApp { numbers, .. }, "whatsapp_business_account") => {
                inbound::whatsapp(&v, numbers)
            }
            (Product::Messenger { .. }, "page") => inbound::messaging(&v, "Messenger"),
            (Product::Instagram { .. }, "instagram" | "page") => {
                inbound::messaging(&v, "Instagram")
            }
            _ => vec![super::Event::Ignored {
                note: format!(
                    "a delivery for object '{object}', which this connection does not handle"
                ),
            }],
        };
        HookVerdict::Accept {
            events,
            response: HookResponse::ok(),
        }
    }
}

/// A wrong id and a wrong token look alike to the operator; Meta's code tells them apart.
fn wrong_id(e: &GraphError, token_label: &str, what: &str) -> ConnectorError {
    if e.code == 100 || e.code == 803 {
        return ConnectorError::Permanent(format!(
            "{what} is not something this {token_label} can reach (Meta {}: {}): check the id \
             and the token's permissions, Save, then Start",
            e.code, e.message
        ));
    }
    classify(e, token_label, what)
}

impl Meta {
    /// Meta's verification handshake: echo `hub.challenge` for the right verify token.
    fn handshake(&self, req: &HookRequest) -> HookVerdict {
        let mode = req.query("hub.mode").unwrap_or("");
        let token = req.query("hub.verify_token").unwrap_or("");
        if mode == "subscribe" && super::same_secret(token, &self.verify_token) {
            info!("Meta verified this webhook URL (hub.mode=subscribe)");
            return HookVerdict::Accept {
                events: Vec::new(),
                response: HookResponse {
                    status: 200,
                    content_type: "text/plain",
                    body: req.query("hub.challenge").unwrap_or("").to_string(),
                },
            };
        }
        HookVerdict::Reject {
            status: 403,
            why: if mode != "subscribe" {
                format!("a verification request with hub.mode '{mode}' was refused")
            } else {
                "a verification request with a wrong verify token was refused: the Verify token \
                 field must match the one typed in the Meta app's webhook settings"
                    .into()
            },
        }
    }

    async fn ensure_subscribed(&self, waba: &str) -> Result<(), ConnectorError> {
        let label = self.graph.token_label;
        let what = format!("WhatsApp Business Account ID '{waba}'");
        let v = self
            .graph
            .get(&format!("{waba}/subscribed_apps"), &[])
            .await
            .map_err(|e| wrong_id(&e, label, &what))?;
        if v["data"].as_array().is_some_and(|a| !a.is_empty()) {
            info!("the app is subscribed to WhatsApp Business Account {waba}");
            return Ok(());
        }
        self.graph
            .post(&format!("{waba}/subscribed_apps"), &json!({}))
            .await
            .map_err(|e| wrong_id(&e, label, &what))?;
        info!("the app was not subscribed to WhatsApp Business Account {waba}; subscribed it");
        Ok(())
    }

    async fn mark_read(&self, from: &str, wamid: &str) {
        let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        if let Err(e) = self.graph.post(&format!("{from}/messages"), &body).await {
            warn!(
                "could not mark message {wamid} read: {} ({})",
                e.message, e.code
            );
        }
    }
}
