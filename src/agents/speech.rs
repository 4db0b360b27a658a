//! The agent's speech engines: an OpenAI-compatible transcription endpoint
//! (`/audio/transcriptions`, speech-to-text) and speech endpoint (`/audio/speech`,
//! text-to-speech), with one key sealed like every secret. A voice line (SIP) hears the
//! caller through the first and talks through the second; the responder in between is
//! the same one that answers text channels.

use crate::model::inputs;
use crate::secrets::{SealedSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The sealed key's field name (the AEAD's associated data): a key sealed for the
/// speech engines cannot be passed off as the model's API key or a connection's token.
pub const KEY_FIELD: &str = "agent.speech_key";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpeechConfig {
    /// Base URL (e.g. https://api.openai.com/v1; `/audio/transcriptions` is appended)
    /// or the endpoint's full URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stt_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stt_model: String,
    /// Base URL (`/audio/speech` is appended) or the endpoint's full URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tts_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tts_model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tts_voice: String,
    /// Sent to both endpoints; `None` for servers that need no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SealedSecret>,
}

/// `base` with `suffix` appended, unless the operator gave the endpoint itself.
fn endpoint(base: &str, suffix: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(suffix) {
        base.to_string()
    } else {
        format!("{base}{suffix}")
    }
}

impl SpeechConfig {
    /// The agent's stored document; anything unreadable counts as not configured.
    pub fn parse(text: &str) -> SpeechConfig {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn transcriptions_url(&self) -> String {
        endpoint(&self.stt_url, "/audio/transcriptions")
    }

    pub fn speech_url(&self) -> String {
        endpoint(&self.tts_url, "/audio/speech")
    }

    /// The options still to set before calls can be served, by their CLI names.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("--stt-url", &self.stt_url),
            ("--stt-model", &self.stt_model),
            ("--tts-url", &self.tts_url),
            ("--tts-model", &self.tts_model),
            ("--tts-voice", &self.tts_voice),
        ]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| k)
        .collect()
    }

    /// Nothing set at all.
    pub fn is_empty(&self) -> bool {
        self.missing().len() == 5 && self.api_key.is_none()
    }

    /// One line for people: "speech-to-text whisper-1 at …; text-to-speech tts-1
    /// (voice alloy) at …; key ••••••••".
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "none (SIP calls need them: agents edit --stt-url … --tts-url …)".into();
        }
        let part = |what: &str, model: &str, url: String, set: bool| {
            if set {
                format!("{what} {model} at {url}")
            } else {
                format!("{what} not set")
            }
        };
        let stt = part(
            "speech-to-text",
            &self.stt_model,
            self.transcriptions_url(),
            !self.stt_url.trim().is_empty(),
        );
        let tts = part(
            "text-to-speech",
            &format!("{} (voice {})", self.tts_model, self.tts_voice),
            self.speech_url(),
            !self.tts_url.trim().is_empty(),
        );
        let key = if self.api_key.is_some() {
            crate::secrets::MASK
        } else {
            "not set"
        };
        format!("{stt}; {tts}; key {key}")
    }

    /// As scripts see it: the key only as set / not set.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "stt_url": self.stt_url, "stt_model": self.stt_model,
            "tts_url": self.tts_url, "tts_model": self.tts_model,
            "tts_voice": self.tts_voice, "key_set": self.api_key.is_some(),
        })
    }
}

/// A change to the speech settings; `None` keeps the stored value, `Some("")` empties it.
#[derive(Debug, Default, Clone)]
pub struct SpeechEdit {
    pub stt_url: Option<String>,
    pub stt_model: Option<String>,
    pub tts_url: Option<String>,
    pub tts_model: Option<String>,
    pub tts_voice: Option<String>,
    /// A key typed again (empty: keep the stored one).
    pub key: Option<SecretString>,
    /// Forget every setting and the key first.
    pub clear: bool,
}

/// A refused edit: the field it is about and why.
pub type Refusal = (&'static str, String);

/// The settings after `edit`, validated; the key is still the stored one (the caller
/// seals a retyped key). Changing where the key is sent requires typing it again.
pub fn apply(old: &SpeechConfig, edit: &SpeechEdit) -> Result<SpeechConfig, Refusal> {
    let mut new = if edit.clear {
        SpeechConfig::default()
    } else {
        old.clone()
    };
    let set = |slot: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            *slot = v.trim().to_string();
        }
    };
    set(&mut new.stt_url, &edit.stt_url);
    set(&mut new.stt_model, &edit.stt_model);
    set(&mut new.tts_url, &edit.tts_url);
    set(&mut new.tts_model, &edit.tts_model);
    set(&mut new.tts_voice, &edit.tts_voice);
    for (field, url, flag) in [
        ("stt_url", &new.stt_url, "--stt-url"),
        ("tts_url", &new.tts_url, "--tts-url"),
    ] {
        if !url.is_empty() && !inputs::is_web_url(url) {
            return Err((
                field,
                format!(
                    "{flag} '{}' is not an http(s) URL: use e.g. https://api.openai.com/v1",
                    url.escape_debug()
                ),
            ));
        }
    }
    for (field, ok, message) in [
        (
            "stt_model",
            new.stt_url.is_empty() || !new.stt_model.is_empty(),
            "--stt-model is required with --stt-url (e.g. whisper-1)",
        ),
        (
            "tts_model",
            new.tts_url.is_empty() || !new.tts_model.is_empty(),
            "--tts-model is required with --tts-url (e.g. tts-1)",
        ),
        (
            "tts_voice",
            new.tts_url.is_empty() || !new.tts_voice.is_empty(),
            "--tts-voice is required with --tts-url (e.g. alloy)",
        ),
        (
            "stt_url",
            !new.stt_url.is_empty() || new.stt_model.is_empty(),
            "--stt-url is required with --stt-model",
        ),
        (
            "tts_url",
            !new.tts_url.is_empty() || (new.tts_model.is_empty() && new.tts_voice.is_empty()),
            "--tts-url is required with --tts-model and --tts-voice",
        ),
    ] {
        if !ok {
            return Err((field, message.into()));
        }
    }
    let retyped = edit.key.as_ref().is_some_and(|k| !k.is_empty());
    if new.api_key.is_some() && !retyped {
        let moved: Vec<String> = [
            (&old.stt_url, &new.stt_url, new.transcriptions_url()),
            (&old.tts_url, &new.tts_url, new.speech_url()),
        ]
        .into_iter()
        .filter(|(was, now, _)| !now.is_empty() && was.trim() != now.trim())
        .map(|(_, _, url)| url)
        .collect();
        if !moved.is_empty() {
            return Err((
                "speech_key",
                format!(
                    "the speech URL changed to {}: the stored speech key would be sent there. \
                     Enter the key again to confirm (--speech-key-stdin), or keep the old URL",
                    moved.join(" and ")
                ),
            ));
        }
    }
    if new.stt_url.is_empty() && new.tts_url.is_empty() {
        // A key for no endpoint is a secret kept for nothing.
        new.api_key = None;
    }
    Ok(new)
}

/// Why a voice line attached to `agent` cannot take calls, if it cannot: the message
/// names the agent and what to set.
pub fn not_ready(agent: &crate::model::Agent) -> Option<String> {
    let missing = SpeechConfig::parse(&agent.speech).missing();
    if missing.is_empty() {
        return None;
    }
    let what = if missing.len() == 5 {
        "has no speech engines".to_string()
    } else {
        format!(
            "has incomplete speech engines ({} not set)",
            missing.join(", ")
        )
    };
    Some(format!(
        "the agent '{name}' {what}: a voice call needs speech-to-text and text-to-speech. \
         Set them with `flametree agents edit \"{name}\" --stt-url URL --stt-model MODEL \
         --tts-url URL --tts-model MODEL --tts-voice VOICE --speech-key-stdin` or on the \
         agents screen (v), then start the agent again",
        name = agent.name
    ))
}

/// Opens the agent's sealed speech key, if it has one; the error names the agent.
pub fn open_key(
    channels: &crate::channels::Channels,
    agent: &crate::model::Agent,
) -> Result<Option<SecretString>, crate::channels::ServiceError> {
    let Some(sealed) = SpeechConfig::parse(&agent.speech).api_key else {
        return Ok(None);
    };
    let key = channels.key().map_err(|e| e.clone())?;
    Ok(Some(key.open(
        KEY_FIELD,
        &sealed,
        &format!("speech key of agent '{}'", agent.name),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> SpeechEdit {
        SpeechEdit {
            stt_url: Some("https://stt.example/v1".into()),
            stt_model: Some("whisper-1".into()),
            tts_url: Some("https://tts.example/v1/audio/speech".into()),
            tts_model: Some("tts-1".into()),
            tts_voice: Some("alloy".into()),
            ..SpeechEdit::default()
        }
    }

    #[test]
    fn endpoints_are_appended_unless_given() {
        let c = apply(&SpeechConfig::default(), &full()).unwrap();
        assert_eq!(
            c.transcriptions_url(),
            "https://stt.example/v1/audio/transcriptions"
        );
        assert_eq!(c.speech_url(), "https://tts.example/v1/audio/speech");
        assert!(c.missing().is_empty());
    }

    #[test]
    fn bad_urls_and_half_settings_are_refused() {
        let bad = SpeechEdit {
            stt_url: Some("file:///etc/passwd".into()),
            ..full()
        };
        assert_eq!(
            apply(&SpeechConfig::default(), &bad).unwrap_err().0,
            "stt_url"
        );
        let half = SpeechEdit {
            tts_voice: None,
            ..full()
        };
        let (field, why) = apply(&SpeechConfig::default(), &half).unwrap_err();
        assert_eq!(field, "tts_voice");
        assert!(why.contains("--tts-voice"), "{why}");
    }

    #[test]
    fn a_stored_key_follows_no_new_url_unless_typed_again() {
        let mut old = apply(&SpeechConfig::default(), &full()).unwrap();
        old.api_key = Some(SealedSecret {
            key_id: "k".into(),
            nonce: "n".into(),
            ciphertext: "c".into(),
            count: 1,
        });
        let moved = SpeechEdit {
            tts_url: Some("https://elsewhere.example/v1".into()),
            ..SpeechEdit::default()
        };
        let (field, why) = apply(&old, &moved).unwrap_err();
        assert_eq!(field, "speech_key");
        assert!(
            why.contains("https://elsewhere.example/v1/audio/speech"),
            "{why}"
        );
        let retyped = SpeechEdit {
            key: Some(SecretString::new("sk-new")),
            ..moved
        };
        assert!(apply(&old, &retyped).is_ok());
        // Models and voice are not destinations.
        let voice = SpeechEdit {
            tts_voice: Some("nova".into()),
            ..SpeechEdit::default()
        };
        assert_eq!(apply(&old, &voice).unwrap().tts_voice, "nova");
        let cleared = apply(
            &old,
            &SpeechEdit {
                clear: true,
                ..SpeechEdit::default()
            },
        )
        .unwrap();
        assert!(cleared.is_empty());
    }
}
