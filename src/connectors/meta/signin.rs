//! Signing in with Meta from a terminal (Advanced mode off): Facebook Login for Devices
//! gives a user token once the operator approves a short code on facebook.com/device;
//! flametree then lists what the token reaches — pages, their Instagram accounts,
//! WhatsApp Business Accounts and their numbers — and fills a connection's fields with
//! the one the operator picks.

use crate::secrets::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The server's Meta app (`[meta]` in the config).
#[derive(Clone, Debug)]
pub struct App {
    pub api: String,
    pub version: String,
    pub app_id: String,
    pub app_secret: SecretString,
    pub client_token: SecretString,
}

impl App {
    pub fn from_config(m: &crate::config::Meta) -> App {
        App {
            api: m.graph_api_url.trim().trim_end_matches('/').to_string(),
            version: m.graph_api_version.trim().trim_matches('/').to_string(),
            app_id: m.app_id.trim().to_string(),
            app_secret: SecretString::new(m.app_secret.trim()),
            client_token: SecretString::new(m.client_token.trim()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{}", self.api, self.version, path)
    }

    fn client_pair(&self) -> String {
        format!("{}|{}", self.app_id, self.client_token.expose())
    }

    fn app_pair(&self) -> String {
        format!("{}|{}", self.app_id, self.app_secret.expose())
    }
}

/// What the operator is shown: the code to type at the address.
pub struct DeviceCode {
    code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: Duration,
    pub interval: Duration,
}

/// The permissions each type asks for.
pub fn scopes(type_key: &str) -> &'static str {
    match type_key {
        "whatsapp" => {
            "whatsapp_business_management,whatsapp_business_messaging,business_management"
        }
        "instagram" => {
            "instagram_basic,instagram_manage_messages,pages_show_list,pages_manage_metadata"
        }
        _ => "pages_show_list,pages_messaging,pages_manage_metadata",
    }
}

fn meta_error(v: &Value) -> (i64, i64, String) {
    let e = &v["error"];
    (
        e["code"].as_i64().unwrap_or(0),
        e["error_subcode"].as_i64().unwrap_or(0),
        e["message"]
            .as_str()
            .unwrap_or("no explanation")
            .to_string(),
    )
}

async fn call(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let r = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("cannot reach Meta ({e})"))?;
    let ok = r.status().is_success();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if ok {
        Ok(v)
    } else {
        let (code, sub, msg) = meta_error(&v);
        Err(format!("{code}/{sub}: {msg}"))
    }
}

/// Asks Meta for a device code.
pub async fn start(
    app: &App,
    http: &reqwest::Client,
    type_key: &str,
) -> Result<DeviceCode, String> {
    let v = call(http.post(app.url("device/login")).form(&[
        ("access_token", app.client_pair()),
        ("scope", scopes(type_key).to_string()),
    ]))
    .await
    .map_err(|e| {
        format!(
            "Meta refused to start the sign-in ({e}): check meta.app_id and meta.client_token, and \
             that Login for Devices is enabled in the app"
        )
    })?;
    Ok(DeviceCode {
        code: SecretString::new(v["code"].as_str().unwrap_or("")),
        user_code: v["user_code"].as_str().unwrap_or("").to_string(),
        verification_uri: v["verification_uri"]
            .as_str()
            .unwrap_or("https://www.facebook.com/device")
            .to_string(),
        expires_in: Duration::from_secs(v["expires_in"].as_u64().unwrap_or(420)),
        interval: Duration::from_secs(v["interval"].as_u64().unwrap_or(5).max(1)),
    })
}

/// Polls until the operator approves (the user token), the code expires, or `stop`.
pub async fn wait(
    app: &App,
    http: &reqwest::Client,
    code: &DeviceCode,
    stop: &CancellationToken,
) -> Result<SecretString, String> {
    let deadline = tokio::time::Instant::now() + code.expires_in;
    let mut interval = code.interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return Err("sign-in cancelled".into()),
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the code expired before it was approved: start the sign-in again".into());
        }
        let r = http
            .post(app.url("device/login_status"))
            .form(&[
                ("access_token", app.client_pair()),
                ("code", code.code.expose().to_string()),
            ])
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let Ok(r) = r else { continue };
        let ok = r.status().is_success();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if ok {
            if let Some(t) = v["access_token"].as_str() {
                return Ok(SecretString::new(t));
            }
            continue;
        }
        match meta_error(&v) {
            (_, 1349174, _) => {}
            (_, 1349172, _) => interval += Duration::from_secs(5),
            (_, 1349152, _) => {
                return Err(
                    "the code expired before it was approved: start the sign-in again".into(),
                );
            }
            (code, sub, msg) => {
                return Err(format!("Meta refused the sign-in ({code}/{sub}: {msg})"));
            }
        }
    }
}

/// Something the token reaches that a connection can be made of.
#[derive(Clone, Debug)]
pub enum Choice {
    Page {
        id: String,
        name: String,
        token: SecretString,
    },
    Instagram {
        id: String,
        page_id: String,
        page_name: String,
        token: SecretString,
    },
    WhatsApp {
        waba: String,
        /// (phone number id, display number)
        numbers: Vec<(String, String)>,
        token: SecretString,
    },
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Choice::Page { id, name, .. } => write!(f, "Facebook page {name} ({id})"),
            Choice::Instagram { id, page_name, .. } => {
                write!(f, "Instagram account {id} (linked to page {page_name})")
            }
            Choice::WhatsApp { waba, numbers, .. } => {
                let shown: Vec<&str> = numbers.iter().map(|(_, d)| d.as_str()).collect();
                write!(f, "WhatsApp Business Account {waba}: {}", shown.join(", "))
            }
        }
    }
}

/// Exchanges the user token for a long-lived one (60 days; page tokens derived from it do
/// not expire), then lists what it reaches for this type of connection.
pub async fn discover(
    app: &App,
    http: &reqwest::Client,
    user_token: &SecretString,
    type_key: &str,
) -> Result<(Vec<Choice>, SecretString), String> {
    let long = call(http.get(app.url("oauth/access_token")).query(&[
        ("grant_type", "fb_exchange_token"),
        ("client_id", app.app_id.as_str()),
        ("client_secret", app.app_secret.expose()),
        ("fb_exchange_token", user_token.expose()),
    ]))
    .await
    .ok()
    .and_then(|v| v["access_token"].as_str().map(SecretString::new))
    .unwrap_or_else(|| user_token.clone());
    let mut out = Vec::new();
    if type_key == "whatsapp" {
        let debug = call(http.get(app.url("debug_token")).query(&[
            ("input_token", long.expose()),
            ("access_token", app.app_pair().as_str()),
        ]))
        .await
        .map_err(|e| format!("cannot read what the sign-in granted ({e})"))?;
        let mut wabas: Vec<String> = Vec::new();
        for g in debug["data"]["granular_scopes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if g["scope"] == "whatsapp_business_management" {
                for id in g["target_ids"].as_array().into_iter().flatten() {
                    if let Some(id) = id.as_str().filter(|i| !wabas.iter().any(|w| w == i)) {
                        wabas.push(id.to_string());
                    }
                }
            }
        }
        for waba in wabas {
            let v = call(
                http.get(app.url(&format!("{waba}/phone_numbers")))
                    .bearer_auth(long.expose()),
            )
            .await
            .map_err(|e| format!("cannot list the phone numbers of {waba} ({e})"))?;
            let numbers = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| {
                    Some((
                        n["id"].as_str()?.to_string(),
                        n["display_phone_number"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect();
            out.push(Choice::WhatsApp {
                waba,
                numbers,
                token: long.clone(),
            });
        }
    } else {
        let v = call(
            http.get(app.url("me/accounts"))
                .query(&[("fields", "id,name,access_token,instagram_business_account")])
                .bearer_auth(long.expose()),
        )
        .await
        .map_err(|e| format!("cannot list the pages this account manages ({e})"))?;
        for p in v["data"].as_array().into_iter().flatten() {
            let (Some(id), Some(token)) = (p["id"].as_str(), p["access_token"].as_str()) else {
                continue;
            };
            let name = p["name"].as_str().unwrap_or(id).to_string();
            if type_key == "instagram" {
                if let Some(ig) = p["instagram_business_account"]["id"].as_str() {
                    out.push(Choice::Instagram {
                        id: ig.to_string(),
                        page_id: id.to_string(),
                        page_name: name,
                        token: SecretString::new(token),
                    });
                }
            } else {
                out.push(Choice::Page {
                    id: id.to_string(),
                    name,
                    token: SecretString::new(token),
                });
            }
        }
    }
    Ok((out, long))
}

/// The fields and secrets a choice fills in (the app secret from the server's config, a
/// fresh verify token).
pub fn fill(
    app: &App,
    choice: &Choice,
) -> (BTreeMap<String, String>, BTreeMap<String, SecretString>) {
    let mut fields = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    secrets.insert("app_secret".to_string(), app.app_secret.clone());
    secrets.insert(
        "verify_token".to_string(),
        SecretString::new(verify_token()),
    );
    match choice {
        Choice::Page { id, token, .. } => {
            fields.insert("page_id".into(), id.clone());
            secrets.insert("page_access_token".into(), token.clone());
        }
        Choice::Instagram {
            id, page_id, token, ..
        } => {
            fields.insert("instagram_account_id".into(), id.clone());
            fields.insert("page_id".into(), page_id.clone());
            secrets.insert("access_token".into(), token.clone());
        }
        Choice::WhatsApp {
            waba,
            numbers,
            token,
        } => {
            let ids: Vec<&str> = numbers.iter().map(|(i, _)| i.as_str()).collect();
            fields.insert("phone_number_ids".into(), ids.join(","));
            fields.insert("business_account_id".into(), waba.clone());
            secrets.insert("access_token".into(), token.clone());
        }
    }
    (fields, secrets)
}

fn verify_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
