//! How an agent answers: a built-in rule responder that works offline (the default),
//! or any OpenAI-compatible chat-completions API.

use crate::secrets::SealedSecret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResponderConfig {
    Rules(Rules),
    OpenAi(OpenAi),
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig::Rules(Rules::default())
    }
}

/// Greeting for a hello, the first keyword rule that matches, else the fallback.
/// `{text}` in a reply stands for the customer's message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rules {
    #[serde(default)]
    pub greeting: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub fallback: String,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            greeting: "Hello! How can I help you today?".into(),
            rules: Vec::new(),
            fallback: "Thanks for your message — a colleague will get back to you soon.".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    pub keyword: String,
    pub reply: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenAi {
    /// e.g. https://api.openai.com/v1 — `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Sealed like every secret; `None` for servers that need no key.
    #[serde(default)]
    pub api_key: Option<SealedSecret>,
    #[serde(default)]
    pub system_prompt: String,
    /// Earlier turns of the same customer sent along.
    #[serde(default = "default_history")]
    pub history: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Sent when the API fails, so the customer is not left without an answer.
    #[serde(default)]
    pub fallback: String,
}

fn default_history() -> u32 {
    10
}

fn default_timeout() -> u64 {
    20
}

const GREETINGS: [&str; 8] = [
    "hi",
    "hello",
    "hey",
    "/start",
    "hallo",
    "good morning",
    "good afternoon",
    "good evening",
];

impl Rules {
    pub fn answer(&self, text: &str) -> String {
        let lower = text.trim().to_lowercase();
        let words: String = lower
            .chars()
            .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '/')
            .collect();
        if !self.greeting.is_empty()
            && GREETINGS
                .iter()
                .any(|g| words.trim() == *g || words.starts_with(&format!("{g} ")))
        {
            return self.greeting.replace("{text}", text.trim());
        }
        for r in &self.rules {
            if !r.keyword.trim().is_empty() && lower.contains(&r.keyword.trim().to_lowercase()) {
                return r.reply.replace("{text}", text.trim());
            }
        }
        self.fallback.replace("{text}", text.trim())
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage>,
}

#[derive(Serialize, Deserialize)]
struct ChatMessage {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

impl OpenAi {
    /// One chat completion. Errors are worded for the connection's log; they never
    /// contain the key.
    pub async fn complete(
        &self,
        http: &reqwest::Client,
        api_key: Option<&str>,
        history: &[(String, String)],
        text: &str,
    ) -> Result<String, String> {
        let mut messages = Vec::new();
        if !self.system_prompt.trim().is_empty() {
            messages.push(ChatMessage {
                role: "system".into(),
                content: self.system_prompt.clone(),
            });
        }
        messages.extend(history.iter().map(|(role, content)| ChatMessage {
            role: role.clone(),
            content: content.clone(),
        }));
        messages.push(ChatMessage {
            role: "user".into(),
            content: text.into(),
        });
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let mut req = http
            .post(&url)
            .timeout(Duration::from_secs(self.timeout_secs.max(1)))
            .json(&ChatRequest {
                model: &self.model,
                messages,
            });
        if let Some(k) = api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "the model API did not answer within {} s",
                    self.timeout_secs
                )
            } else {
                format!(
                    "cannot reach the model API at {}: {}",
                    self.base_url,
                    e.without_url()
                )
            }
        })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let detail: String = body.chars().take(300).collect();
            return Err(match status.as_u16() {
                401 | 403 => {
                    format!("the model API refused the API key ({status}): fix it on the agent")
                }
                _ => format!("the model API answered {status}: {detail}"),
            });
        }
        let parsed: ChatResponse = resp
            .json()
            .await
            .map_err(|e| format!("the model API's answer is not a chat completion: {e}"))?;
        parsed
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| "the model API returned no answer".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            greeting: "Hi! I'm the shop assistant.".into(),
            rules: vec![
                Rule {
                    keyword: "price".into(),
                    reply: "Our prices are on example.com/prices".into(),
                },
                Rule {
                    keyword: "order".into(),
                    reply: "About your order: {text}".into(),
                },
            ],
            fallback: "You said: {text}".into(),
        }
    }

    #[test]
    fn greeting_then_first_matching_keyword_then_fallback() {
        let r = rules();
        assert_eq!(r.answer("Hello"), "Hi! I'm the shop assistant.");
        assert_eq!(r.answer("/start"), "Hi! I'm the shop assistant.");
        assert_eq!(
            r.answer("What's the PRICE of order 12?"),
            "Our prices are on example.com/prices"
        );
        assert_eq!(
            r.answer("where is my order"),
            "About your order: where is my order"
        );
        assert_eq!(
            r.answer("hello there, where is it?"),
            "Hi! I'm the shop assistant."
        );
        assert_eq!(r.answer("thanks"), "You said: thanks");
    }

    #[test]
    fn config_round_trips_as_tagged_json() {
        let c = ResponderConfig::Rules(rules());
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"kind\":\"rules\""));
        assert_eq!(serde_json::from_str::<ResponderConfig>(&text).unwrap(), c);
    }
}
