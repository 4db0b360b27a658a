//! A Twilio connection's settings, read and checked when it opens: each mistake is an
//! error naming the field or variable.

use super::Twilio;
use super::api::Api;
use super::twiml::Voice;
use crate::connectors::{ConnConfig, ConnectorError};
use std::sync::Mutex;
use std::time::Duration;

fn url_setting(cfg: &ConnConfig, name: &str, default: &str) -> Result<String, ConnectorError> {
    let v = cfg
        .env(name)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let v = v.trim().trim_end_matches('/').to_string();
    reqwest::Url::parse(&v)
        .map_err(|e| ConnectorError::Permanent(format!("{name} '{v}' is not a URL ({e})")))?;
    Ok(v)
}

/// The connector with its Twilio-only calls (`flametree call` uses them).
pub fn open_twilio(cfg: ConnConfig) -> Result<Twilio, ConnectorError> {
    let base = url_setting(&cfg, "TWILIO_API_URL", "https://api.twilio.com")?;
    let webhook = if cfg.env_set("TWILIO_WEBHOOK_BASE_URL") {
        let b = url_setting(&cfg, "TWILIO_WEBHOOK_BASE_URL", "")?;
        crate::runtime::webhook_url(&b, &cfg.connection.hook_id)
    } else {
        cfg.webhook_url.clone()
    };
    let speech_timeout = cfg
        .env("TWILIO_SPEECH_TIMEOUT")
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "auto".into());
    if speech_timeout != "auto"
        && !speech_timeout
            .parse::<u32>()
            .is_ok_and(|s| (1..=60).contains(&s))
    {
        return Err(ConnectorError::Permanent(format!(
            "TWILIO_SPEECH_TIMEOUT is '{speech_timeout}': use auto or a number of seconds (1-60)"
        )));
    }
    let budget = cfg.env("TWILIO_REPLY_BUDGET").unwrap_or_else(|| "8".into());
    let budget = match budget.trim().parse::<u64>() {
        Ok(s) if (1..=14).contains(&s) => Duration::from_secs(s),
        _ => {
            return Err(ConnectorError::Permanent(format!(
                "TWILIO_REPLY_BUDGET is '{}': use whole seconds from 1 to 14 (Twilio waits 15 s \
                 for an answer)",
                budget.trim()
            )));
        }
    };
    let account_sid = cfg
        .field("account_sid")
        .map(|s| s.trim().to_string())
        .ok_or_else(|| ConnectorError::Permanent("Account SID is not set".into()))?;
    let number = cfg
        .field("phone_number")
        .map(|n| n.trim().replace([' ', '-', '(', ')'], ""))
        .ok_or_else(|| ConnectorError::Permanent("Phone number is not set".into()))?;
    let number = if number.starts_with('+') {
        number
    } else {
        format!("+{number}")
    };
    Ok(Twilio {
        api: Api {
            http: cfg.http.clone(),
            base,
            account_sid,
            token: cfg.secret("auth_token")?.expose().trim().to_string(),
        },
        number,
        hook_id: cfg.connection.hook_id.clone(),
        calls: cfg.calls.clone(),
        webhook,
        voice: Voice {
            voice: cfg
                .env("TWILIO_VOICE")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            language: cfg
                .env("TWILIO_SPEECH_LANGUAGE")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "en-US".into()),
            speech_timeout,
        },
        budget,
        line: Mutex::default(),
    })
}
