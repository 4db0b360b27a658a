//! Telegram, with teloxide as the Bot API client: long polling (our own loop, so each
//! batch is recorded before the next getUpdates confirms it) or a webhook through the
//! ingress (`TELEGRAM_MODE=webhook`).

mod beat;
mod classify;
mod updates;
mod wire;

use super::retry::{self, Outcome, Policy};
use super::{
    ConnConfig, Connector, ConnectorError, HookRequest, HookResponse, HookVerdict, Outbound,
    Receiver,
};
use async_trait::async_trait;
use classify::{classify, classify_verify};
use std::sync::Arc;
use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, ChatId};
use tracing::{info, warn};

const DEFAULT_API: &str = "https://api.telegram.org";
/// Telegram picks update ids at random after a week without updates; polling once
/// without an offset then is the only way not to confirm (drop) the new, lower ids.
const ID_RESET_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;
/// getUpdates' long-poll seconds unless TELEGRAM_POLL_TIMEOUT says otherwise: the Bot
/// API server's own maximum (`LONG_POLL_MAX_TIMEOUT` in telegram-bot-api), since an
/// idle bot costs one request per poll (10,000 idle bots: 200 a second, not 333 at 30).
const DEFAULT_POLL_TIMEOUT: u32 = 50;
/// This many 409s in a row mean a rival program, not a previous owner letting go.
const CONFLICTS_BEFORE_ERROR: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Polling,
    Webhook,
}

pub struct Telegram {
    bot: Bot,
    api: String,
    custom_api: bool,
    mode: Mode,
    poll_timeout: u32,
    allowed: Option<Vec<AllowedUpdate>>,
    webhook_url: String,
    secret_token: String,
    /// getUpdates' own lightweight client; None keeps polling on teloxide (a proxy set
    /// in the environment, which only reqwest honours).
    wire: Option<wire::Endpoint>,
    /// `allowed` as getUpdates' JSON, written once.
    allowed_json: Option<String>,
}

/// A reply's whole exchange, as teloxide's client allows it.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(17);

/// A getUpdates that failed: a 409 is counted by the poll loop, the rest classified.
enum PollFailure {
    Conflict,
    Other(ConnectorError),
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let token = cfg.secret("bot_token")?;
    let api = cfg
        .env("TELEGRAM_API_URL")
        .unwrap_or_else(|| DEFAULT_API.into());
    let api_url = reqwest::Url::parse(&api).map_err(|e| {
        ConnectorError::Permanent(format!(
            "TELEGRAM_API_URL '{api}' is not a URL ({e}): fix it in the environment variables, Save, then Start"
        ))
    })?;
    let mode = match cfg.env("TELEGRAM_MODE").as_deref().map(str::trim) {
        None | Some("") | Some("polling") => Mode::Polling,
        Some("webhook") => Mode::Webhook,
        Some(other) => {
            return Err(ConnectorError::Permanent(format!(
                "TELEGRAM_MODE is '{other}': use polling or webhook"
            )));
        }
    };
    let poll_timeout: u32 = cfg
        .env("TELEGRAM_POLL_TIMEOUT")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_POLL_TIMEOUT)
        .min(DEFAULT_POLL_TIMEOUT);
    let allowed = match cfg.env("TELEGRAM_ALLOWED_UPDATES") {
        Some(list) if !list.trim().is_empty() => Some(updates::parse_allowed(&list)?),
        _ => None,
    };
    let webhook_url = match cfg.env("TELEGRAM_WEBHOOK_URL") {
        Some(u) if cfg.env_set("TELEGRAM_WEBHOOK_URL") => u.trim().to_string(),
        _ => cfg.webhook_url.clone(),
    };
    let secret_token = updates::secret_token(token.expose(), &cfg.connection.hook_id);
    let wire = wire::Endpoint::parse(&api);
    let allowed_json = allowed.as_ref().and_then(|a| serde_json::to_string(a).ok());
    Ok(Arc::new(Telegram {
        bot: Bot::with_client(token.expose(), cfg.http.clone()).set_api_url(api_url),
        custom_api: api.trim_end_matches('/') != DEFAULT_API,
        api,
        mode,
        poll_timeout,
        allowed,
        webhook_url,
        secret_token,
        wire,
        allowed_json,
    }))
}

#[async_trait]
impl Connector for Telegram {
    async fn verify(&self) -> Result<String, ConnectorError> {
        match self.bot.get_me().send().await {
            Ok(me) => {
                info!(
                    "connected as @{} (id {}), Bot API {}",
                    me.username(),
                    me.id,
                    self.api
                );
                Ok(match self.mode {
                    Mode::Polling => format!("polling as @{}", me.username()),
                    Mode::Webhook => format!("webhook for @{}", me.username()),
                })
            }
            Err(teloxide::RequestError::Api(teloxide::ApiError::InvalidToken)) => {
                Err(self.explain_rejection().await)
            }
            Err(e) => Err(classify_verify(e, self.custom_api)),
        }
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        match self.mode {
            Mode::Polling => self.poll(rx).await,
            Mode::Webhook => self.serve_webhook(rx).await,
        }
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        chat_id(to).map(|_| ())
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let chat = chat_id(out.to).map_err(ConnectorError::Permanent)?;
        if let Some(endpoint) = &self.wire {
            return self.send_wire(endpoint, chat, out.text).await;
        }
        let sent = self
            .bot
            .send_message(ChatId(chat), out.text)
            .send()
            .await
            .map_err(classify)?;
        Ok(sent.id.0.to_string())
    }

    fn webhook(&self, req: &HookRequest) -> HookVerdict {
        if self.mode != Mode::Webhook {
            return HookVerdict::Reject {
                status: 404,
                why: "a webhook delivery arrived, but TELEGRAM_MODE is polling".into(),
            };
        }
        let given = req.header("X-Telegram-Bot-Api-Secret-Token").unwrap_or("");
        if !super::same_secret(given, &self.secret_token) {
            return HookVerdict::Reject {
                status: 401,
                why: if given.is_empty() {
                    "a webhook delivery without X-Telegram-Bot-Api-Secret-Token was refused".into()
                } else {
                    "a webhook delivery with a wrong X-Telegram-Bot-Api-Secret-Token was refused"
                        .into()
                },
            };
        }
        match serde_json::from_slice::<teloxide::types::Update>(&req.body) {
            Ok(update) => HookVerdict::Accept {
                events: vec![updates::event(&update, &String::from_utf8_lossy(&req.body))],
                response: HookResponse::ok(),
            },
            Err(e) => HookVerdict::Reject {
                status: 400,
                why: format!("a webhook delivery is not a Telegram update: {e}"),
            },
        }
    }

    async fn release(&self) {
        if self.mode == Mode::Webhook {
            match self.bot.delete_webhook().send().await {
                Ok(_) => info!("webhook removed from Telegram"),
                Err(e) => warn!(
                    "could not remove the webhook from Telegram: {}",
                    classify(e)
                ),
            }
        }
    }
}

fn chat_id(to: &str) -> Result<i64, String> {
    to.trim()
        .parse()
        .map_err(|_| format!("'{to}' is not a Telegram chat id (a number, e.g. 123456789)"))
}

impl Telegram {
    /// teloxide reports 401 and 404 alike as an invalid token; which one it was tells a
    /// wrong token from a `TELEGRAM_API_URL` that is not a Bot API server.
    async fn explain_rejection(&self) -> ConnectorError {
        let url = format!(
            "{}/bot{}/getMe",
            self.bot.api_url().as_str().trim_end_matches('/'),
            self.bot.token()
        );
        let status = self
            .bot
            .client()
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok();
        match status {
            Some(404) if self.custom_api => ConnectorError::Permanent(
                "TELEGRAM_API_URL does not point at a Telegram Bot API server (404 Not Found for \
                 getMe): fix TELEGRAM_API_URL or remove it to use https://api.telegram.org, Save, \
                 then Start"
                    .into(),
            ),
            Some(404) => ConnectorError::Permanent(
                "Telegram does not know this bot token (404 Not Found): copy it again from \
                 @BotFather, Save, then Start"
                    .into(),
            ),
            _ => classify(teloxide::RequestError::Api(
                teloxide::ApiError::InvalidToken,
            )),
        }
    }

    async fn poll(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        self.remove_leftover_webhook().await?;
        let (mut offset, mut last_seen) = match rx.inbox.cursor().await {
            Some((c, at)) => (c.parse::<i32>().unwrap_or(0), at),
            None => (0, crate::model::now_millis()),
        };
        rx.inbox.running("").await;
        // Consecutive 409s: one or two are the previous owner's last long poll (after a
        // takeover, or when a paused process wakes up); more are a rival program.
        let conflicts = std::sync::atomic::AtomicU32::new(0);
        let mut degraded = false;
        // The kept-alive connection of the lightweight client, between polls.
        let conn = std::sync::Mutex::new(None);
        loop {
            let stale = offset > 0 && crate::model::now_millis() - last_seen > ID_RESET_AFTER_MS;
            if stale {
                info!(
                    "no updates for over a week: Telegram may have restarted its update ids, \
                     so this poll asks without an offset"
                );
            }
            let fetch = || async {
                match self.get_updates(&conn, (!stale).then_some(offset)).await {
                    Ok(b) => {
                        conflicts.store(0, std::sync::atomic::Ordering::Relaxed);
                        Ok(b)
                    }
                    Err(PollFailure::Conflict)
                        if conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
                            < CONFLICTS_BEFORE_ERROR =>
                    {
                        Err(ConnectorError::transient(
                            "another program polled this bot (409), perhaps the process that ran \
                             it before; waiting for it to let go",
                        ))
                    }
                    Err(PollFailure::Conflict) => Err(classify(teloxide::RequestError::Api(
                        teloxide::ApiError::TerminatedByOtherGetUpdates,
                    ))),
                    Err(PollFailure::Other(e)) => Err(e),
                }
            };
            let batch = match retry::retry(
                &rx.stop,
                Policy::FOREVER,
                |w| {
                    degraded = true;
                    warn!("{w}");
                    let inbox = rx.inbox.clone();
                    let msg = w.to_string();
                    tokio::spawn(async move { inbox.degraded(&msg).await });
                },
                fetch,
            )
            .await
            {
                Outcome::Done(b) => b,
                Outcome::Stopped => return Ok(()),
                Outcome::Failed(e) => return Err(e),
            };
            if degraded {
                info!("Telegram reachable again");
                rx.inbox.running("").await;
                degraded = false;
            }
            if batch.is_empty() {
                let beat = beat::next_after(tokio::time::Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep_until(beat) => continue,
                    _ = rx.stop.cancelled() => return Ok(()),
                }
            }
            let newest = batch
                .iter()
                .map(|p| p.update.id.0 as i32)
                .max()
                .unwrap_or(offset);
            if !stale && newest < offset {
                info!(
                    "Telegram's update ids went back (from {offset} to {newest}), as it does after \
                     a quiet week; carrying on from there"
                );
            }
            let events = batch
                .iter()
                .map(|p| updates::event(&p.update, p.raw.get()))
                .collect();
            // teloxide's decoded updates are several times the size of the events: not
            // held by a thousand bots while their batches wait for the commit below.
            drop(batch);
            offset = newest + 1;
            last_seen = crate::model::now_millis();
            // Recorded before the next getUpdates confirms the batch to Telegram.
            rx.inbox.submit(events, Some(offset.to_string())).await?;
        }
    }

    /// A sendMessage through the lightweight client, on an idle kept connection to
    /// the Bot API when there is one.
    async fn send_wire(
        &self,
        endpoint: &wire::Endpoint,
        chat: i64,
        text: &str,
    ) -> Result<String, ConnectorError> {
        #[derive(serde::Serialize)]
        struct Message<'a> {
            chat_id: i64,
            text: &'a str,
        }
        let body = serde_json::to_vec(&Message {
            chat_id: chat,
            text,
        })
        .map_err(|e| ConnectorError::Permanent(format!("the reply cannot be written ({e})")))?;
        let mut stream = endpoint.take_idle();
        let answer = endpoint
            .post_once(
                &mut stream,
                self.bot.token(),
                "sendMessage",
                &body,
                SEND_TIMEOUT,
            )
            .await;
        if let Some(kept) = stream {
            endpoint.keep_idle(kept);
        }
        match answer {
            Ok(r) => updates::parse_sent(r.status, &r.body),
            Err(wire::WireError::Network(cause)) => Err(ConnectorError::transient(format!(
                "cannot reach Telegram ({cause})"
            ))),
            Err(wire::WireError::Protocol(why)) => Err(ConnectorError::transient(format!(
                "Telegram's answer was not understood ({why})"
            ))),
        }
    }

    /// One getUpdates from `offset` (none: without one).
    async fn get_updates(
        &self,
        conn: &std::sync::Mutex<Option<wire::Stream>>,
        offset: Option<i32>,
    ) -> Result<Vec<updates::Polled>, PollFailure> {
        let Some(endpoint) = &self.wire else {
            // teloxide's client gives up after 17 s: its polls stay shorter.
            let mut req = self
                .bot
                .get_updates()
                .limit(100)
                .timeout(self.poll_timeout.min(15));
            if let Some(o) = offset {
                req = req.offset(o);
            }
            if let Some(a) = &self.allowed {
                req = req.allowed_updates(a.clone());
            }
            return match req.send().await {
                Ok(list) => Ok(list.into_iter().map(updates::Polled::from_update).collect()),
                Err(teloxide::RequestError::Api(
                    teloxide::ApiError::TerminatedByOtherGetUpdates,
                )) => Err(PollFailure::Conflict),
                Err(e) => Err(PollFailure::Other(classify(e))),
            };
        };
        // Written directly: a thousand polls a second (10,000 idle bots) add up.
        let mut body = format!("{{\"limit\":100,\"timeout\":{}", self.poll_timeout);
        if let Some(o) = offset {
            body.push_str(&format!(",\"offset\":{o}"));
        }
        if let Some(list) = &self.allowed_json {
            body.push_str(&format!(",\"allowed_updates\":{list}"));
        }
        body.push('}');
        let body = body.into_bytes();
        // Taken out while in use: a poll abandoned on Stop drops its connection with it.
        let mut stream = conn.lock().expect("poll connection lock").take();
        let timeout = std::time::Duration::from_secs(u64::from(self.poll_timeout) + 10);
        let answer = endpoint
            .post(&mut stream, self.bot.token(), "getUpdates", &body, timeout)
            .await;
        *conn.lock().expect("poll connection lock") = stream;
        match answer {
            Ok(r) => updates::parse_answer(r.status, &r.body),
            Err(wire::WireError::Network(cause)) => Err(PollFailure::Other(
                ConnectorError::transient(format!("cannot reach Telegram ({cause})")),
            )),
            Err(wire::WireError::Protocol(why)) => Err(PollFailure::Other(
                ConnectorError::transient(format!("Telegram's answer was not understood ({why})")),
            )),
        }
    }

    /// Telegram refuses getUpdates while a webhook is set (one left by another program,
    /// or by this connection in webhook mode).
    async fn remove_leftover_webhook(&self) -> Result<(), ConnectorError> {
        match self.bot.get_webhook_info().send().await {
            Ok(info) if info.url.is_some() => {
                warn!("a webhook was set for this bot; removing it to poll instead");
                self.bot.delete_webhook().send().await.map_err(|e| {
                    ConnectorError::Permanent(format!(
                        "could not remove the bot's webhook: {}",
                        classify(e)
                    ))
                })?;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                warn!("could not read the webhook settings: {}", classify(e));
                Ok(())
            }
        }
    }

    async fn serve_webhook(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        let url = reqwest::Url::parse(&self.webhook_url).map_err(|e| {
            ConnectorError::Permanent(format!(
                "the webhook URL '{}' is not a URL ({e}): set http.public_url in the config or \
                 TELEGRAM_WEBHOOK_URL on the connection",
                self.webhook_url
            ))
        })?;
        let register = || async {
            let mut req = self
                .bot
                .set_webhook(url.clone())
                .secret_token(self.secret_token.clone());
            if let Some(a) = &self.allowed {
                req = req.allowed_updates(a.clone());
            }
            req.send().await.map_err(|e| match e {
                // Telegram's word on the URL (not HTTPS, unreachable, bad port): a
                // setting to fix, not a blip.
                teloxide::RequestError::Api(teloxide::ApiError::Unknown(text))
                    if text.starts_with("Bad Request") =>
                {
                    ConnectorError::Permanent(format!(
                        "Telegram refused the webhook URL {url} ({text}): set http.public_url to \
                         this server's public HTTPS address, or TELEGRAM_WEBHOOK_URL on the \
                         connection, then Start"
                    ))
                }
                other => classify(other),
            })
        };
        match retry::retry(&rx.stop, Policy::FOREVER, |w| warn!("{w}"), register).await {
            Outcome::Done(_) => {}
            Outcome::Stopped => return Ok(()),
            Outcome::Failed(e) => return Err(e),
        }
        info!("webhook set: Telegram delivers updates to {url}");
        rx.inbox.running("").await;
        rx.stop.cancelled().await;
        Ok(())
    }
}
