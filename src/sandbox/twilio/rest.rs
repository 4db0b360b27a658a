//! The REST side of the Twilio sandbox: the account, IncomingPhoneNumbers, Calls; HTTP
//! Basic and Twilio's error JSON. A created call rings its scripted callee.

use super::{
    CallParams, CallRec, Callee, Hub, NumberRec, Shared, Transcript, converse, finish, sid,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn error(status: StatusCode, code: u32, message: String) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

/// Checks HTTP Basic against the account and that the path names it; the refusal if not.
fn refused(h: &Hub, headers: &HeaderMap, acc: &str) -> Option<Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{}:{}", h.account_sid, h.token);
    if given.as_deref() != Some(expected.as_str()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate".into(),
        ));
    }
    if acc != h.account_sid {
        return Some(error(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource /2010-04-01/Accounts/{acc} was not found"),
        ));
    }
    None
}

fn number_json(h: &Hub, n: &NumberRec) -> Value {
    json!({
        "sid": n.sid,
        "account_sid": h.account_sid,
        "friendly_name": n.phone,
        "phone_number": n.phone,
        "voice_url": n.voice_url,
        "voice_method": n.voice_method,
        "status_callback": n.status_callback,
        "status_callback_method": n.status_callback_method,
        "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false},
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{}.json", h.account_sid, n.sid),
    })
}

fn call_json(h: &Hub, c: &CallRec) -> Value {
    json!({
        "sid": c.sid,
        "account_sid": h.account_sid,
        "from": c.from,
        "to": c.to,
        "status": c.status,
        "direction": "outbound-api",
        "duration": c.duration.map(|d| d.to_string()),
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{}.json", h.account_sid, c.sid),
    })
}

fn json_file(file: &str) -> Option<&str> {
    file.strip_suffix(".json")
}

pub(super) async fn account(
    State(hub): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let h = hub.lock().expect("twilio sandbox lock");
    let Some(acc) = json_file(&file) else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            format!("{file} was not found"),
        );
    };
    if let Some(r) = refused(&h, &headers, acc) {
        return r;
    }
    Json(json!({
        "sid": h.account_sid,
        "friendly_name": h.name,
        "status": "active",
        "type": "Full",
        "uri": format!("/2010-04-01/Accounts/{}.json", h.account_sid),
    }))
    .into_response()
}

pub(super) async fn list_numbers(
    State(hub): State<Shared>,
    Path(acc): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let h = hub.lock().expect("twilio sandbox lock");
    if let Some(r) = refused(&h, &headers, &acc) {
        return r;
    }
    let list: Vec<Value> = h
        .numbers
        .iter()
        .filter(|n| q.get("PhoneNumber").is_none_or(|p| *p == n.phone))
        .map(|n| number_json(&h, n))
        .collect();
    Json(json!({
        "incoming_phone_numbers": list,
        "page": 0,
        "page_size": 50,
        "first_page_uri": format!("/2010-04-01/Accounts/{acc}/IncomingPhoneNumbers.json?PageSize=50&Page=0"),
        "next_page_uri": null,
        "previous_page_uri": null,
        "uri": format!("/2010-04-01/Accounts/{acc}/IncomingPhoneNumbers.json?PageSize=50&Page=0"),
    }))
    .into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(super) async fn update_number(
    State(hub): State<Shared>,
    Path((acc, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let mut h = hub.lock().expect("twilio sandbox lock");
    if let Some(r) = refused(&h, &headers, &acc) {
        return r;
    }
    let f = form(&body);
    let sid = json_file(&file).unwrap_or("");
    let Some(i) = h.numbers.iter().position(|n| n.sid == sid) else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{acc}/IncomingPhoneNumbers/{file} was not found"
            ),
        );
    };
    let n = &mut h.numbers[i];
    if let Some(v) = f.get("VoiceUrl") {
        n.voice_url = v.clone();
    }
    if let Some(v) = f.get("VoiceMethod") {
        n.voice_method = v.clone();
    }
    if let Some(v) = f.get("StatusCallback") {
        n.status_callback = v.clone();
    }
    if let Some(v) = f.get("StatusCallbackMethod") {
        n.status_callback_method = v.clone();
    }
    let n = n.clone();
    if f.contains_key("VoiceUrl") {
        h.voice_url_changes
            .push((n.phone.clone(), n.voice_url.clone()));
    }
    Json(number_json(&h, &n)).into_response()
}

pub(super) async fn create_call(
    State(hub): State<Shared>,
    Path(acc): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let f = form(&body);
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let (to, from, url) = (get("To"), get("From"), get("Url"));
    let (call, rec, token, callee) = {
        let mut h = hub.lock().expect("twilio sandbox lock");
        if let Some(r) = refused(&h, &headers, &acc) {
            return r;
        }
        if url.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                21205,
                "Url parameter is required.".into(),
            );
        }
        let digits = to.trim_start_matches('+');
        if !to.starts_with('+') || digits.len() < 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return error(
                StatusCode::BAD_REQUEST,
                21211,
                format!("Invalid 'To' Phone Number: {to}"),
            );
        }
        if !h.numbers.iter().any(|n| n.phone == from) {
            return error(
                StatusCode::BAD_REQUEST,
                21210,
                format!(
                    "The source phone number provided, {from}, is not yet verified for your account."
                ),
            );
        }
        let rec = CallRec {
            sid: sid("CA"),
            from: from.clone(),
            to: to.clone(),
            status: "queued".into(),
            duration: None,
        };
        h.calls.push(rec.clone());
        let call = CallParams {
            account: h.account_sid.clone(),
            sid: rec.sid.clone(),
            from,
            to: to.clone(),
            direction: "outbound-api",
        };
        let callee = h
            .callees
            .get(&to)
            .cloned()
            .unwrap_or(Callee::Answers(Vec::new()));
        (call, rec, h.token.clone(), callee)
    };
    let answer = Json(call_json(&hub.lock().expect("twilio sandbox lock"), &rec));
    let status_callback = get("StatusCallback");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("an HTTP client builds");
    tokio::spawn(async move {
        // Ringing takes a moment, as on a real line.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let began = Instant::now();
        let (t, status) = match callee {
            Callee::Busy => (Transcript::default(), "busy"),
            Callee::NoAnswer => (Transcript::default(), "no-answer"),
            Callee::Failed => (Transcript::default(), "failed"),
            Callee::Answers(turns) => {
                set_status(&hub, &call.sid, "in-progress");
                (
                    converse(&http, &token, &call, "in-progress", &url, turns).await,
                    "completed",
                )
            }
        };
        let t = Transcript {
            sid: call.sid.clone(),
            ..t
        };
        finish(&hub, &http, &call, t, status, &status_callback, began).await;
    });
    (StatusCode::CREATED, answer).into_response()
}

fn set_status(hub: &Shared, sid: &str, status: &str) {
    if let Some(c) = hub
        .lock()
        .expect("twilio sandbox lock")
        .calls
        .iter_mut()
        .find(|c| c.sid == sid)
    {
        c.status = status.to_string();
    }
}

pub(super) async fn fetch_call(
    State(hub): State<Shared>,
    Path((acc, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let h = hub.lock().expect("twilio sandbox lock");
    if let Some(r) = refused(&h, &headers, &acc) {
        return r;
    }
    let sid = json_file(&file).unwrap_or("");
    match h.calls.iter().find(|c| c.sid == sid) {
        Some(c) => Json(call_json(&h, c)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource /2010-04-01/Accounts/{acc}/Calls/{file} was not found"),
        ),
    }
}
