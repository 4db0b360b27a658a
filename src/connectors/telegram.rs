//! Telegram over long polling, with teloxide as the Bot API client.
//!
//! The polling loop is ours, not teloxide's Dispatcher: the Dispatcher confirms a batch
//! with its next getUpdates before the handlers finish, so a crash could lose messages.
//! Here each update is written to the inbound ledger before it is answered, the resume
//! offset is stored after each one, and an update seen before is never answered again.

use super::{ConnectorError, TaskContext, backoff};
use crate::model::Status;
use crate::store::LedgerState;
use teloxide::prelude::*;
use teloxide::types::{Update, UpdateKind};
use teloxide::{ApiError, RequestError};
use tracing::{debug, info, warn};

const DEFAULT_API: &str = "https://api.telegram.org";

/// A request failed: either wait and try again, or stop with a reason.
enum Failure {
    Retry {
        after: Option<std::time::Duration>,
        why: String,
    },
    Fatal(String),
}

fn classify(e: RequestError) -> Failure {
    match e {
        RequestError::Api(ApiError::InvalidToken) => Failure::Fatal(
            "Telegram rejected the bot token (401 Unauthorized): fix the token, Save, then Start"
                .into(),
        ),
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => Failure::Fatal(
            "another program is polling this bot (409 Conflict: terminated by other getUpdates \
             request): stop it or use another bot, then Start"
                .into(),
        ),
        RequestError::RetryAfter(s) => Failure::Retry {
            after: Some(s.duration()),
            why: format!(
                "Telegram asked to slow down (429, retry after {} s)",
                s.seconds()
            ),
        },
        RequestError::Network(e) => Failure::Retry {
            after: None,
            // Without the URL: it carries the bot token.
            why: format!("cannot reach Telegram: {}", strip_url(&e)),
        },
        other => Failure::Retry {
            after: None,
            why: format!("Telegram answered with an error: {other}"),
        },
    }
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<Bot API URL>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

pub async fn run(mut ctx: TaskContext) -> Result<(), ConnectorError> {
    let token = ctx.secret("bot_token")?;
    let api = ctx
        .env("TELEGRAM_API_URL")
        .unwrap_or_else(|| DEFAULT_API.into());
    let api_url = reqwest::Url::parse(&api).map_err(|e| {
        ConnectorError::Permanent(format!(
            "TELEGRAM_API_URL '{api}' is not a URL ({e}): fix it in the environment variables, Save, then Start"
        ))
    })?;
    let poll_timeout: u32 = ctx
        .env("TELEGRAM_POLL_TIMEOUT")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .min(15);
    let bot = Bot::with_client(token.expose(), ctx.shared.http.clone()).set_api_url(api_url);

    let Some(me) = connect(&mut ctx, &bot).await? else {
        return Ok(());
    };
    info!(
        "connected as @{} (id {}), polling {api}",
        me.username(),
        me.id
    );
    ctx.running(&format!("polling as @{}", me.username())).await;

    let mut offset: i32 = match ctx.channels.store().cursor(ctx.id()).await {
        Ok(Some(c)) => c.parse().unwrap_or(0),
        _ => 0,
    };
    let mut attempt = 0u32;
    let mut degraded = false;
    loop {
        if ctx.stopping() {
            return Ok(());
        }
        let request = bot
            .get_updates()
            .offset(offset)
            .limit(100)
            .timeout(poll_timeout);
        let result = tokio::select! {
            r = request.send() => r,
            _ = ctx.stop.changed() => return Ok(()),
        };
        let updates = match result {
            Ok(u) => u,
            Err(e) => match classify(e) {
                Failure::Fatal(why) => return Err(ConnectorError::Permanent(why)),
                Failure::Retry { after, why } => {
                    let wait = after.unwrap_or_else(|| backoff(attempt));
                    attempt += 1;
                    warn!(
                        "{why}; retrying in {} s (attempt {attempt})",
                        wait.as_secs()
                    );
                    ctx.status(
                        Status::Running,
                        &format!(
                            "{why}; retrying in {} s (attempt {attempt})",
                            wait.as_secs()
                        ),
                    )
                    .await;
                    degraded = true;
                    if ctx.pause(wait).await {
                        return Ok(());
                    }
                    continue;
                }
            },
        };
        if degraded {
            info!("Telegram reachable again");
            ctx.status(Status::Running, &format!("polling as @{}", me.username()))
                .await;
            degraded = false;
        }
        attempt = 0;
        for update in updates {
            if ctx.stopping() {
                // The rest of the batch is redelivered: nothing is confirmed past here.
                return Ok(());
            }
            handle(&ctx, &bot, &update).await?;
            offset = update.id.0 as i32 + 1;
            if let Err(e) = ctx
                .channels
                .store()
                .set_cursor(ctx.id(), &offset.to_string())
                .await
            {
                warn!("could not store the update offset {offset}: {e}");
            }
        }
    }
}

/// getMe (retrying what is transient), then removes a webhook if one is set, since
/// Telegram refuses getUpdates while it exists. `None` when stopped meanwhile.
async fn connect(
    ctx: &mut TaskContext,
    bot: &Bot,
) -> Result<Option<teloxide::types::Me>, ConnectorError> {
    let mut attempt = 0u32;
    loop {
        let result = tokio::select! {
            r = bot.get_me().send() => r,
            _ = ctx.stop.changed() => return Ok(None),
        };
        match result.map_err(classify) {
            Ok(me) => {
                match bot.get_webhook_info().send().await {
                    Ok(info) if info.url.is_some() => {
                        warn!("a webhook was set for this bot; removing it to poll instead");
                        if let Err(e) = bot.delete_webhook().send().await {
                            return Err(ConnectorError::Permanent(format!(
                                "could not remove the bot's webhook: {e}"
                            )));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warn!("could not read the webhook settings: {e}"),
                }
                return Ok(Some(me));
            }
            Err(Failure::Fatal(why)) => return Err(ConnectorError::Permanent(why)),
            Err(Failure::Retry { after, why }) => {
                let wait = after.unwrap_or_else(|| backoff(attempt));
                attempt += 1;
                warn!("{why}; retrying in {} s", wait.as_secs());
                ctx.status(
                    Status::Starting,
                    &format!("{why}; retrying in {} s", wait.as_secs()),
                )
                .await;
                if ctx.pause(wait).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// One update, at most one answer: ledger first, then the reply, then the mark.
async fn handle(ctx: &TaskContext, bot: &Bot, update: &Update) -> Result<(), ConnectorError> {
    let store = ctx.channels.store();
    let key = update.id.0.to_string();
    let state = match store.ledger_receive(ctx.id(), &key).await {
        Ok(s) => s,
        Err(e) => {
            // Without the ledger a reply could be sent twice later: stop here and let the
            // update come again.
            return Err(ConnectorError::Permanent(format!(
                "cannot record incoming update {key}: {e}"
            )));
        }
    };
    match state {
        LedgerState::Answered | LedgerState::Ignored => {
            debug!("update {key} was handled before; skipped");
            return Ok(());
        }
        LedgerState::Sending => {
            warn!(
                "update {key}: flametree stopped while sending its reply; it is not sent again, \
                 so the customer may have no answer"
            );
            mark(ctx, &key, LedgerState::Ignored).await;
            return Ok(());
        }
        LedgerState::Received => {}
    }
    let UpdateKind::Message(msg) = &update.kind else {
        debug!("update {key}: not a message; ignored");
        mark(ctx, &key, LedgerState::Ignored).await;
        return Ok(());
    };
    let Some(text) = msg.text() else {
        info!(
            "update {key}: a message without text from chat {}; ignored",
            msg.chat.id
        );
        mark(ctx, &key, LedgerState::Ignored).await;
        return Ok(());
    };
    info!("update {key}: message from chat {}", msg.chat.id);
    let customer = format!("telegram:{}", msg.chat.id);
    let Some(reply) = crate::agents::answer(ctx, &customer, text).await else {
        mark(ctx, &key, LedgerState::Ignored).await;
        return Ok(());
    };
    mark(ctx, &key, LedgerState::Sending).await;
    let mut attempt = 0u32;
    loop {
        match bot.send_message(msg.chat.id, reply.clone()).send().await {
            Ok(sent) => {
                info!(
                    "update {key}: replied to chat {} (message {})",
                    msg.chat.id, sent.id
                );
                mark(ctx, &key, LedgerState::Answered).await;
                return Ok(());
            }
            Err(e) => match classify(e) {
                Failure::Fatal(why) => return Err(ConnectorError::Permanent(why)),
                Failure::Retry { after, why } if attempt < 5 => {
                    let wait = after.unwrap_or_else(|| backoff(attempt));
                    attempt += 1;
                    warn!(
                        "update {key}: reply not sent ({why}); retrying in {} s",
                        wait.as_secs()
                    );
                    tokio::time::sleep(wait).await;
                }
                Failure::Retry { why, .. } => {
                    warn!(
                        "update {key}: reply not sent after {attempt} attempts ({why}); giving up on it"
                    );
                    mark(ctx, &key, LedgerState::Ignored).await;
                    return Ok(());
                }
            },
        }
    }
}

async fn mark(ctx: &TaskContext, key: &str, state: LedgerState) {
    if let Err(e) = ctx.channels.store().ledger_mark(ctx.id(), key, state).await {
        warn!("could not record update {key} as {}: {e}", state.as_str());
    }
}

/// Sends one message outside any running task (`flametree send`). The error is worded
/// for the operator and never carries the token.
pub async fn send_one(
    channels: &crate::channels::Channels,
    c: &crate::model::Connection,
    chat: i64,
    text: &str,
) -> Result<i32, String> {
    let token = channels
        .reveal(c, "bot_token")
        .map_err(|e| e.to_string())?
        .ok_or("the bot token is not set")?;
    crate::runtime::logs::protect_in_diagnostics(token.expose());
    let api = c
        .env
        .iter()
        .find(|e| e.name == "TELEGRAM_API_URL")
        .map(|e| e.value.clone())
        .unwrap_or_else(|| DEFAULT_API.into());
    let url = reqwest::Url::parse(&api).map_err(|e| format!("TELEGRAM_API_URL '{api}': {e}"))?;
    let bot = Bot::new(token.expose()).set_api_url(url);
    match bot
        .send_message(teloxide::types::ChatId(chat), text)
        .send()
        .await
    {
        Ok(m) => Ok(m.id.0),
        Err(e) => Err(match classify(e) {
            Failure::Fatal(why) | Failure::Retry { why, .. } => why,
        }),
    }
}
