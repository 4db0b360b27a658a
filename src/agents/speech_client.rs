//! Calls to the agent's speech engines, as OpenAI's API reference shapes them:
//! `POST …/audio/transcriptions` (multipart: `file`, `model`, `response_format=json`
//! → `{"text": …}`) and `POST …/audio/speech` (JSON `{model, input, voice,
//! response_format: "wav"}` → the audio). Audio in and out is what a call carries:
//! 8 kHz mono 16-bit samples. Errors name the endpoint and the HTTP status, never the
//! key (an OpenAI 401 body quotes part of it, so refusals carry no body).

use super::audio::{self, CALL_RATE};
use super::speech::SpeechConfig;
use crate::secrets::SecretString;
use std::time::Duration;

/// What OpenAI's `pcm` format is: raw 24 kHz 16-bit little-endian mono.
const PCM_RATE: u32 = 24_000;

pub struct SpeechClient {
    config: SpeechConfig,
    key: Option<SecretString>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for SpeechClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechClient")
            .field("stt", &self.config.transcriptions_url())
            .field("tts", &self.config.speech_url())
            .field("key", &self.key.as_ref().map(|_| crate::secrets::MASK))
            .finish()
    }
}

#[derive(serde::Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'a str,
}

impl SpeechClient {
    pub fn new(
        config: SpeechConfig,
        key: Option<SecretString>,
        http: reqwest::Client,
    ) -> SpeechClient {
        SpeechClient {
            config,
            key,
            http,
            timeout: Duration::from_secs(30),
        }
    }

    /// The agent's engines with its key opened (the error names the agent).
    pub fn for_agent(
        channels: &crate::channels::Channels,
        agent: &crate::model::Agent,
        http: reqwest::Client,
    ) -> Result<SpeechClient, crate::channels::ServiceError> {
        let key = super::speech::open_key(channels, agent)?;
        Ok(SpeechClient::new(
            SpeechConfig::parse(&agent.speech),
            key,
            http,
        ))
    }

    fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.post(url).timeout(self.timeout);
        match &self.key {
            Some(k) if !k.is_empty() => req.bearer_auth(k.expose()),
            _ => req,
        }
    }

    /// Sends the request; a failure worded for the connection's log.
    async fn call(
        &self,
        what: &str,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "the {what} engine at {url} did not answer within {} s",
                    self.timeout.as_secs()
                )
            } else {
                format!(
                    "cannot reach the {what} engine at {url}: {}",
                    e.without_url()
                )
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if matches!(status.as_u16(), 401 | 403) {
            return Err(format!(
                "the {what} engine at {url} refused the speech key ({status}): set it again \
                 with `agents edit … --speech-key-stdin`"
            ));
        }
        let body = resp.text().await.unwrap_or_default();
        let mut detail = crate::runtime::logs::clip(&body, 300);
        if let Some(k) = self.key.as_ref().filter(|k| !k.is_empty()) {
            detail = detail.replace(k.expose(), crate::secrets::MASK);
        }
        Err(format!(
            "the {what} engine at {url} answered {status}: {detail}"
        ))
    }

    /// The words in `samples` (8 kHz mono), by the transcription endpoint.
    pub async fn transcribe(&self, samples: &[i16]) -> Result<String, String> {
        let url = self.config.transcriptions_url();
        let boundary = format!("flametree-{:032x}", rand::random::<u128>());
        let mut body = Vec::new();
        for (name, value) in [
            ("model", self.config.stt_model.as_str()),
            ("response_format", "json"),
        ] {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"call.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&audio::wav(samples, CALL_RATE));
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = self
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let resp = self.call("speech-to-text", &url, req).await?;
        let value: serde_json::Value = resp.json().await.map_err(|e| {
            format!("the speech-to-text engine at {url} did not answer a transcription: {e}")
        })?;
        value["text"]
            .as_str()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| format!("the speech-to-text engine at {url} answered without text"))
    }

    /// `text` spoken by the speech endpoint, as 8 kHz mono samples.
    pub async fn speak(&self, text: &str) -> Result<Vec<i16>, String> {
        let url = self.config.speech_url();
        let req = self.post(&url).json(&SpeechRequest {
            model: &self.config.tts_model,
            input: text,
            voice: &self.config.tts_voice,
            response_format: "wav",
        });
        let resp = self.call("text-to-speech", &url, req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("the text-to-speech engine at {url}: {e}"))?;
        // Some compatible servers ignore the format asked for and send raw `pcm`.
        let (samples, rate) = if bytes.starts_with(b"RIFF") {
            audio::read_wav(&bytes)
                .map_err(|e| format!("the text-to-speech engine at {url} sent {e}"))?
        } else {
            let samples = bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            (samples, PCM_RATE)
        };
        if samples.is_empty() {
            return Err(format!("the text-to-speech engine at {url} sent no audio"));
        }
        Ok(audio::resample(&samples, rate, CALL_RATE))
    }
}
