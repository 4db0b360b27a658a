//! Twilio's REST API (2010-04-01), the few calls flametree makes: the account (the
//! credential check), the number's IncomingPhoneNumber (its voice URL), and Calls
//! (outbound calls and their outcome). HTTP Basic with Account SID and Auth token.

use crate::connectors::ConnectorError;
use serde_json::Value;
use std::time::Duration;

pub struct Api {
    pub http: reqwest::Client,
    /// `TWILIO_API_URL`, without a trailing slash.
    pub base: String,
    pub account_sid: String,
    pub token: String,
}

/// What the number's webhooks are set to: saved before flametree points them at
/// itself, put back on stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hooks {
    pub voice_url: String,
    pub voice_method: String,
    pub status_callback: String,
    pub status_callback_method: String,
}

/// The account's IncomingPhoneNumber for the connection's number.
#[derive(Debug, Clone)]
pub struct Number {
    pub sid: String,
    pub hooks: Hooks,
}

/// A call's state, as the Calls API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    /// queued, ringing, in-progress, completed, busy, no-answer, failed, canceled.
    pub status: String,
    pub duration_secs: Option<u64>,
}

impl CallState {
    pub fn ended(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "busy" | "no-answer" | "failed" | "canceled"
        )
    }
}

const FIX_CREDENTIALS: &str = "copy the Account SID and the Auth token from Account Info on the \
     Twilio Console's home page, Save, then start the agent again";

fn text(v: &Value) -> String {
    match (v["code"].as_i64(), v["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c} {m}"),
        (None, Some(m)) => m.to_string(),
        (Some(c), None) => c.to_string(),
        (None, None) => "no explanation".into(),
    }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{path}",
            self.base, self.account_sid
        )
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth(&self.account_sid, Some(&self.token))
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(30))
    }

    async fn call(&self, r: reqwest::RequestBuilder, what: &str) -> Result<Value, ConnectorError> {
        let resp = r.send().await.map_err(|e| {
            ConnectorError::transient(format!("cannot reach Twilio at {} ({e})", self.base))
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let why = text(&v);
        Err(match (status, v["code"].as_i64()) {
            (401 | 403, _) | (_, Some(20003)) => ConnectorError::Permanent(format!(
                "Twilio refused the Account SID / Auth token ({status} {why}): {FIX_CREDENTIALS}"
            )),
            (429, _) => ConnectorError::Transient {
                why: format!("Twilio asks to slow down (429 {why})"),
                retry_after: Some(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 120))),
            },
            (s, _) if s >= 500 => ConnectorError::transient(format!("Twilio answered {s} ({why})")),
            (s, _) => ConnectorError::Permanent(format!("{what}: Twilio refused ({s} {why})")),
        })
    }

    /// The credential check: the account's friendly name, if it is active.
    pub async fn account(&self) -> Result<String, ConnectorError> {
        let v = self
            .call(
                self.request(reqwest::Method::GET, ".json"),
                "the account check",
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Permanent(m) if m.contains("(404") => {
                    ConnectorError::Permanent(format!(
                        "Twilio has no account {} (404): {FIX_CREDENTIALS}",
                        self.account_sid
                    ))
                }
                other => other,
            })?;
        let status = v["status"].as_str().unwrap_or("active");
        if status != "active" {
            return Err(ConnectorError::Permanent(format!(
                "the Twilio account {} is {status}: reactivate it in the Twilio Console, then \
                 start the agent again",
                self.account_sid
            )));
        }
        Ok(v["friendly_name"]
            .as_str()
            .unwrap_or(&self.account_sid)
            .to_string())
    }

    /// The account's IncomingPhoneNumber for `number` (E.164), if it has it.
    pub async fn number(&self, number: &str) -> Result<Option<Number>, ConnectorError> {
        let v = self
            .call(
                self.request(reqwest::Method::GET, "/IncomingPhoneNumbers.json")
                    .query(&[("PhoneNumber", number)]),
                "looking up the phone number",
            )
            .await?;
        let found = v["incoming_phone_numbers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["phone_number"].as_str() == Some(number));
        Ok(found.map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
            Number {
                sid: s("sid"),
                hooks: Hooks {
                    voice_url: s("voice_url"),
                    voice_method: s("voice_method"),
                    status_callback: s("status_callback"),
                    status_callback_method: s("status_callback_method"),
                },
            }
        }))
    }

    /// Points the number's voice URL and status callback at `hooks`.
    pub async fn set_hooks(&self, number_sid: &str, hooks: &Hooks) -> Result<(), ConnectorError> {
        let method = |m: &str| if m.is_empty() { "POST" } else { m }.to_string();
        let form = [
            ("VoiceUrl", hooks.voice_url.clone()),
            ("VoiceMethod", method(&hooks.voice_method)),
            ("StatusCallback", hooks.status_callback.clone()),
            (
                "StatusCallbackMethod",
                method(&hooks.status_callback_method),
            ),
        ];
        self.call(
            self.request(
                reqwest::Method::POST,
                &format!("/IncomingPhoneNumbers/{number_sid}.json"),
            )
            .form(&form),
            "setting the number's voice URL",
        )
        .await
        .map(|_| ())
    }

    /// Places a call from `from` to `to` whose TwiML comes from `url`; returns its sid.
    pub async fn create_call(
        &self,
        from: &str,
        to: &str,
        url: &str,
        status_callback: &str,
    ) -> Result<String, ConnectorError> {
        let form = [
            ("To", to),
            ("From", from),
            ("Url", url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
        ];
        let v = self
            .call(
                self.request(reqwest::Method::POST, "/Calls.json")
                    .form(&form),
                &format!("the call to {to}"),
            )
            .await?;
        v["sid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::transient("Twilio's answer to a new call has no sid"))
    }

    pub async fn call_state(&self, sid: &str) -> Result<CallState, ConnectorError> {
        let v = self
            .call(
                self.request(reqwest::Method::GET, &format!("/Calls/{sid}.json")),
                &format!("looking up call {sid}"),
            )
            .await?;
        Ok(CallState {
            status: v["status"].as_str().unwrap_or("").to_string(),
            duration_secs: v["duration"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .or(v["duration"].as_u64()),
        })
    }
}
