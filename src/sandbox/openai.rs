//! A local OpenAI-compatible chat-completions API, for tests and the demo.
//!
//! `POST /v1/chat/completions` with `{"model": …, "messages": [{"role","content"}…]}`
//! answers a chat completion whose content is predictable: "[model] You asked: <last
//! user message>. Earlier messages from you: N." — so a test can see that the system
//! prompt and the customer's history were sent along. A wrong bearer key gets OpenAI's
//! 401 `invalid_api_key` error; failures and delays can be injected.
//!
//! `POST /v1/audio/speech` (JSON `{model, input, voice, response_format}`) answers a
//! 24 kHz 16-bit WAV (or raw `pcm`), as OpenAI does, of the input said in the tone code
//! of `sandbox::speech`: an audible tune, not silence. `POST /v1/audio/transcriptions`
//! (multipart `file` + `model`) hears that code back into the text, so a test can say
//! something, send it through a call's 8 kHz, and read what was understood.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    key: Option<String>,
    fail_next: u32,
    delay: Duration,
    requests: Vec<Value>,
    /// Requests being answered now, and the most there ever were.
    in_flight: usize,
    most_in_flight: usize,
}

#[derive(Clone)]
pub struct OpenAiSandbox {
    url: String,
    inner: Arc<Mutex<Inner>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl OpenAiSandbox {
    /// Serves on 127.0.0.1:0; requests must carry `Bearer <key>` when a key is given.
    pub async fn start(key: Option<&str>) -> std::io::Result<OpenAiSandbox> {
        let inner = Arc::new(Mutex::new(Inner {
            key: key.map(str::to_string),
            ..Inner::default()
        }));
        let listener = super::server::listen(([127, 0, 0, 1], 0).into())?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/audio/speech", post(speak))
            .route("/v1/audio/transcriptions", post(transcribe))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OpenAiSandbox {
            url,
            inner,
            task: Arc::new(task),
        })
    }

    /// The base URL to configure (`…/v1`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next `n` requests answer 500.
    pub fn fail_next(&self, n: u32) {
        self.inner.lock().expect("sandbox lock").fail_next = n;
    }

    pub fn set_delay(&self, d: Duration) {
        self.inner.lock().expect("sandbox lock").delay = d;
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().expect("sandbox lock").requests.clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn most_in_flight(&self) -> usize {
        self.inner.lock().expect("sandbox lock").most_in_flight
    }
}

impl Drop for OpenAiSandbox {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})),
    )
        .into_response()
}

async fn complete(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (key, delay, fail) = {
        let mut g = inner.lock().expect("sandbox lock");
        g.requests.push(body.clone());
        let fail = g.fail_next > 0;
        if fail {
            g.fail_next -= 1;
        }
        (g.key.clone(), g.delay, fail)
    };
    if let Some(refused) = check_key(key.as_deref(), &headers) {
        return refused;
    }
    if !delay.is_zero() {
        {
            let mut g = inner.lock().expect("sandbox lock");
            g.in_flight += 1;
            g.most_in_flight = g.most_in_flight.max(g.in_flight);
        }
        tokio::time::sleep(delay).await;
        inner.lock().expect("sandbox lock").in_flight -= 1;
    }
    if fail {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
        );
    }
    let model = body["model"].as_str().unwrap_or("model").to_string();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let users: Vec<&Value> = messages.iter().filter(|m| m["role"] == "user").collect();
    let Some(last) = users.last() else {
        return error(
            StatusCode::BAD_REQUEST,
            "messages must end with a user message",
            "invalid_messages",
        );
    };
    let content = format!(
        "[{model}] You asked: {}. Earlier messages from you: {}.",
        last["content"].as_str().unwrap_or(""),
        users.len() - 1
    );
    Json(json!({
        "id": "chatcmpl-sandbox",
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }))
    .into_response()
}

/// OpenAI's 401 when a key is required and the bearer token is not it.
fn check_key(key: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let k = key?;
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(k)).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_api_key",
        )
    })
}

/// Records the request; the key check's answer, or an injected failure, if any.
fn admit(inner: &Mutex<Inner>, headers: &HeaderMap, record: Value) -> Option<Response> {
    let (key, fail) = {
        let mut g = inner.lock().expect("sandbox lock");
        g.requests.push(record);
        let fail = g.fail_next > 0;
        if fail {
            g.fail_next -= 1;
        }
        (g.key.clone(), fail)
    };
    if let Some(refused) = check_key(key.as_deref(), headers) {
        return Some(refused);
    }
    fail.then(|| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
        )
    })
}

/// What OpenAI's speech endpoint returns: 24 kHz.
const SPEECH_RATE: u32 = 24_000;

async fn speak(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = admit(&inner, &headers, body.clone()) {
        return r;
    }
    let input = body["input"].as_str().unwrap_or("");
    for field in ["model", "voice"] {
        if body[field].as_str().is_none_or(|v| v.trim().is_empty()) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Missing required parameter: '{field}'."),
                "missing_required_parameter",
            );
        }
    }
    if input.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'input'.",
            "missing_required_parameter",
        );
    }
    let samples = super::speech::encode(input, SPEECH_RATE);
    match body["response_format"].as_str().unwrap_or("wav") {
        "wav" => (
            [(axum::http::header::CONTENT_TYPE, "audio/wav")],
            crate::agents::audio::wav(&samples, SPEECH_RATE),
        )
            .into_response(),
        "pcm" => (
            [(axum::http::header::CONTENT_TYPE, "audio/pcm")],
            samples
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
            .into_response(),
        other => error(
            StatusCode::BAD_REQUEST,
            &format!("The sandbox speaks wav and pcm, not '{other}'."),
            "unsupported_format",
        ),
    }
}

async fn transcribe(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let (mut model, mut format, mut file) = (None, None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let Ok(bytes) = field.bytes().await else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Unreadable form field.",
                        "bad_form",
                    );
                };
                match name.as_str() {
                    "model" => model = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "response_format" => {
                        format = Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    "file" => file = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text(), "bad_form"),
        }
    }
    let record = json!({
        "model": model, "response_format": format,
        "file_bytes": file.as_ref().map(|f| f.len()),
    });
    if let Some(r) = admit(&inner, &headers, record) {
        return r;
    }
    if model.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "missing_required_parameter",
        );
    }
    let Some(file) = file else {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'file'.",
            "missing_required_parameter",
        );
    };
    let (samples, rate) = match crate::agents::audio::read_wav(&file) {
        Ok(audio) => audio,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("The sandbox understands 16-bit PCM WAV only: {why}."),
                "invalid_file_format",
            );
        }
    };
    let text = super::speech::transcribe(&samples, rate);
    if format.as_deref() == Some("text") {
        return text.into_response();
    }
    Json(json!({"text": text})).into_response()
}
