//! Infobip SMS: replies through the account's own base URL (`Authorization: App <key>`,
//! the v3 or v2 send API), customers' SMS pulled from the inbox every
//! `INFOBIP_PULL_INTERVAL` seconds or received at the webhook URL (`INFOBIP_INBOUND_MODE`).

use super::retry::{self, Outcome, Policy};
use super::{
    ConnConfig, Connector, ConnectorError, Delivery, Event, HookRequest, HookVerdict, Inbound,
    Outbound, Receiver,
};
use async_trait::async_trait;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pull,
    Webhook,
}

pub struct Infobip {
    http: reqwest::Client,
    base: String,
    key: String,
    sender: String,
    mode: Mode,
    interval: Duration,
    v2: bool,
    /// `Basic base64(user:password)` Infobip must send, when a password is set.
    basic: Option<String>,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let base = cfg
        .field("base_url")
        .ok_or_else(|| ConnectorError::Permanent("Base URL is not set".into()))?;
    let base = base.trim().trim_end_matches('/').to_string();
    let base = if base.starts_with("http://") || base.starts_with("https://") {
        base
    } else {
        format!("https://{base}")
    };
    reqwest::Url::parse(&base)
        .map_err(|e| ConnectorError::Permanent(format!("Base URL '{base}' is not a URL ({e})")))?;
    let mode = match cfg.env("INFOBIP_INBOUND_MODE").unwrap_or_default().trim() {
        "" | "pull" => Mode::Pull,
        "webhook" => Mode::Webhook,
        other => {
            return Err(ConnectorError::Permanent(format!(
                "INFOBIP_INBOUND_MODE is '{other}': use pull or webhook"
            )));
        }
    };
    let interval = cfg
        .env("INFOBIP_PULL_INTERVAL")
        .unwrap_or_else(|| "10".into())
        .trim()
        .parse::<u64>()
        .map_err(|_| {
            ConnectorError::Permanent("INFOBIP_PULL_INTERVAL must be a number of seconds".into())
        })?
        .max(1);
    let v2 = match cfg.env("INFOBIP_SMS_API").unwrap_or_default().trim() {
        "" | "v3" => false,
        "v2" => true,
        other => {
            return Err(ConnectorError::Permanent(format!(
                "INFOBIP_SMS_API is '{other}': use v3 or v2"
            )));
        }
    };
    let basic = cfg
        .secret("webhook_password")
        .ok()
        .map(|p| p.expose().to_string())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let user = cfg
                .env("INFOBIP_WEBHOOK_USER")
                .unwrap_or_else(|| "infobip".into());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{p}", user.trim()))
            )
        });
    Ok(Arc::new(Infobip {
        http: cfg.http.clone(),
        base,
        key: cfg.secret("api_key")?.expose().trim().to_string(),
        sender: cfg.field("sender").unwrap_or_default().trim().to_string(),
        mode,
        interval: Duration::from_secs(interval),
        v2,
        basic,
    }))
}

impl Infobip {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.base))
            .header("Authorization", format!("App {}", self.key))
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(30))
    }

    async fn call(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value, ConnectorError> {
        let provider = super::rest::Provider {
            name: "Infobip",
            base: &self.base,
            unauthorized: "copy the API key again from Developer tools › API keys and check \
                           the Base URL, Save, then Start",
            explain: |v| {
                let legacy = &v["requestError"]["serviceException"];
                format!(
                    "{}: {}",
                    v["errorCode"]
                        .as_str()
                        .or(legacy["messageId"].as_str())
                        .unwrap_or(""),
                    v["description"]
                        .as_str()
                        .or(legacy["text"].as_str())
                        .unwrap_or("no explanation")
                )
            },
        };
        super::rest::call(&provider, r, what).await
    }

    async fn pull(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        info!(
            "pulling incoming SMS from Infobip every {} s",
            self.interval.as_secs()
        );
        rx.inbox.running("").await;
        let mut degraded = false;
        loop {
            let fetch = || async {
                self.call(
                    self.req(reqwest::Method::GET, "sms/1/inbox/reports?limit=1000"),
                    "pulling the inbox",
                )
                .await
            };
            let report = |w: &retry::Waiting| {
                warn!("{w}");
                let inbox = rx.inbox.clone();
                let m = w.to_string();
                tokio::spawn(async move { inbox.degraded(&m).await });
            };
            let batch = match retry::retry(
                &rx.stop,
                Policy::FOREVER,
                |w| {
                    degraded = true;
                    report(w)
                },
                fetch,
            )
            .await
            {
                Outcome::Done(v) => v,
                Outcome::Stopped => return Ok(()),
                Outcome::Failed(e) => return Err(e),
            };
            if degraded {
                info!("Infobip reachable again");
                rx.inbox.running("").await;
                degraded = false;
            }
            let events = events(&batch);
            if !events.is_empty() {
                // Infobip hands each message out once: keep trying to record it.
                let record = || rx.inbox.submit(events.clone(), None);
                match retry::retry(&rx.stop, Policy::FOREVER, |w| warn!("{w}"), record).await {
                    Outcome::Done(()) => {}
                    Outcome::Stopped => {
                        warn!(
                            "stopped before {} pulled message(s) were recorded",
                            events.len()
                        );
                        return Ok(());
                    }
                    Outcome::Failed(e) => return Err(e),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = rx.stop.cancelled() => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl Connector for Infobip {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let v = self
            .call(
                self.req(reqwest::Method::GET, "account/1/balance"),
                "the balance check",
            )
            .await?;
        let balance = match (v["balance"].as_f64(), v["currency"].as_str()) {
            (Some(b), Some(c)) => format!("balance {b:.2} {c}"),
            _ => "balance unknown".into(),
        };
        info!("connected to Infobip at {} ({balance})", self.base);
        Ok(format!(
            "SMS from {} ({}, {balance})",
            self.sender,
            if self.mode == Mode::Pull {
                "pulling"
            } else {
                "webhook"
            }
        ))
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        match self.mode {
            Mode::Pull => self.pull(rx).await,
            Mode::Webhook => {
                if self.basic.is_none() {
                    info!(
                        "Infobip's forward carries no signature: the webhook URL's secret path is \
                         the protection (set Webhook password for Basic auth as well)"
                    );
                }
                rx.inbox.running("").await;
                rx.stop.cancelled().await;
                Ok(())
            }
        }
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        super::phone_recipient(to)
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let to = out.to.trim().trim_start_matches('+');
        let (path, body) = if self.v2 {
            (
                "sms/2/text/advanced",
                json!({"messages":[{"from": self.sender, "destinations":[{"to": to}], "text": out.text}]}),
            )
        } else {
            (
                "sms/3/messages",
                json!({"messages":[{"sender": self.sender, "destinations":[{"to": to}], "content":{"text": out.text}}]}),
            )
        };
        let v = self
            .call(
                self.req(reqwest::Method::POST, path).json(&body),
                "the reply",
            )
            .await?;
        let m = &v["messages"][0];
        let group = m["status"]["groupName"].as_str().unwrap_or("");
        if group == "REJECTED" {
            return Err(ConnectorError::Permanent(format!(
                "Infobip rejected the SMS to {to}: {} ({})",
                m["status"]["description"].as_str().unwrap_or(""),
                m["status"]["name"].as_str().unwrap_or("")
            )));
        }
        Ok(m["messageId"].as_str().unwrap_or("").to_string())
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        if self.mode != Mode::Webhook {
            return HookVerdict::Reject {
                status: 404,
                why: "a webhook delivery arrived, but INFOBIP_INBOUND_MODE is pull".into(),
            };
        }
        if let Some(expected) = &self.basic {
            let given = req.header("Authorization").unwrap_or("");
            if !super::same_secret(given, expected) {
                return HookVerdict::Reject {
                    status: 401,
                    why: "a delivery without the right Basic-auth credentials was refused: check \
                          Webhook password and INFOBIP_WEBHOOK_USER against Infobip's \
                          notification profile"
                        .into(),
                };
            }
        }
        super::accept_json(&req.body, events)
    }
}

/// MO messages (`results[]` with `from`/`text`) and delivery reports (`status`).
pub fn events(v: &Value) -> Vec<Event> {
    let mut out = Vec::new();
    for r in v["results"].as_array().into_iter().flatten() {
        let id = r["messageId"].as_str().unwrap_or("").to_string();
        if r["status"].is_object() {
            let group = r["status"]["groupName"].as_str().unwrap_or("").to_string();
            out.push(Event::Delivery(Delivery {
                provider_message_id: id,
                failed: matches!(group.as_str(), "UNDELIVERABLE" | "EXPIRED" | "REJECTED"),
                detail: format!(
                    "{} {}",
                    r["status"]["description"].as_str().unwrap_or(""),
                    r["error"]["description"].as_str().unwrap_or("")
                )
                .trim()
                .to_string(),
                status: group.to_ascii_lowercase(),
            }));
            continue;
        }
        let text = r["cleanText"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .or(r["text"].as_str())
            .unwrap_or("")
            .trim()
            .to_string();
        let from = r["from"].as_str().unwrap_or("").to_string();
        if id.is_empty() || from.is_empty() || text.is_empty() {
            out.push(Event::Ignored {
                note: format!("an Infobip message without sender, id or text ({id}); not answered"),
            });
            continue;
        }
        out.push(Event::Message(Inbound {
            account: String::new(),
            provider_id: id,
            customer: from,
            display_name: String::new(),
            text,
            raw: r.to_string(),
        }));
    }
    out
}
