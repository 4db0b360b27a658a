//! How an agent answers: a built-in rule responder that works offline (the default),
//! or any OpenAI-compatible chat-completions API.

use crate::secrets::SealedSecret;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
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
            if keyword_matches(&r.keyword, text) {
                return r.reply.replace("{text}", text.trim());
            }
        }
        self.fallback.replace("{text}", text.trim())
    }
}

/// Whether `text` contains `keyword` as whole words, case-insensitively: "Hi!" and
/// "oh, hi there" match `hi`, "this" and "while" do not. A keyword of several words
/// matches them in order with any whitespace between. Words are Unicode words (letters
/// with their accents and marks, digits, `_`); a keyword's own punctuation must be there
/// as written ("/start", "e-mail"). In scripts written without spaces between words
/// (Chinese, Japanese, Thai…) there is no boundary to find, so an edge of the keyword
/// in such a script matches inside a run of text.
fn keyword_matches(keyword: &str, text: &str) -> bool {
    let words: Vec<&str> = keyword.split_whitespace().collect();
    let (Some(first), Some(last)) = (
        words.first().and_then(|w| w.chars().next()),
        words.last().and_then(|w| w.chars().next_back()),
    ) else {
        return false;
    };
    // \b{start-half} and \b{end-half} ask only that the neighbour is not a word
    // character, so a keyword that begins or ends with punctuation works too.
    let start = if unspaced_script(first) {
        ""
    } else {
        r"\b{start-half}"
    };
    let end = if unspaced_script(last) {
        ""
    } else {
        r"\b{end-half}"
    };
    let body: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    let pattern = format!(r"(?i){start}{}{end}", body.join(r"\s+"));
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(text))
}

/// Letters of scripts that do not separate words with spaces.
fn unspaced_script(c: char) -> bool {
    static UNSPACED: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]$")
            .expect("valid pattern")
    });
    UNSPACED.is_match(c.encode_utf8(&mut [0; 4]))
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
            let detail = crate::runtime::logs::clip(&body, 300);
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

/// Opens an agent's sealed API key, if it has one (`Ok(None)` without); the error
/// names the agent.
pub fn open_api_key(
    channels: &crate::channels::Channels,
    agent: &crate::model::Agent,
) -> Result<Option<crate::secrets::SecretString>, crate::channels::ServiceError> {
    let Ok(ResponderConfig::OpenAi(o)) = serde_json::from_str::<ResponderConfig>(&agent.responder)
    else {
        return Ok(None);
    };
    let Some(sealed) = &o.api_key else {
        return Ok(None);
    };
    let key = channels.key().map_err(|e| e.clone())?;
    Ok(Some(key.open(
        "agent.api_key",
        sealed,
        &format!("API key of agent '{}'", agent.name),
    )?))
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

    fn keyword_rules(keywords: &[&str]) -> Rules {
        Rules {
            greeting: String::new(),
            rules: keywords
                .iter()
                .map(|k| Rule {
                    keyword: (*k).into(),
                    reply: format!("rule {k}"),
                })
                .collect(),
            fallback: "fallback".into(),
        }
    }

    #[test]
    fn keywords_match_whole_words_only() {
        let r = keyword_rules(&["hi"]);
        assert_eq!(r.answer("Hi!"), "rule hi");
        assert_eq!(r.answer("oh, HI there"), "rule hi");
        assert_eq!(r.answer("(hi)"), "rule hi");
        assert_eq!(r.answer("while you are here"), "fallback");
        assert_eq!(r.answer("this is it"), "fallback");
        assert_eq!(
            r.answer("hi5 hi_there"),
            "fallback",
            "digits and _ are word characters"
        );
        assert_eq!(
            r.answer("this, then hi."),
            "rule hi",
            "a later whole word counts"
        );
    }

    #[test]
    fn a_keyword_of_several_words_matches_them_in_order() {
        let r = keyword_rules(&["opening hours"]);
        assert_eq!(
            r.answer("What are your Opening Hours?"),
            "rule opening hours"
        );
        assert_eq!(r.answer("opening\n  hours"), "rule opening hours");
        assert_eq!(r.answer("reopening hours"), "fallback");
        assert_eq!(r.answer("opening hourslong"), "fallback");
        assert_eq!(r.answer("hours opening"), "fallback");
        assert_eq!(r.answer("opening"), "fallback");
    }

    #[test]
    fn keywords_are_unicode_aware() {
        assert!(keyword_matches("über", "Alles ÜBER uns"));
        assert!(!keyword_matches("über", "überall"));
        assert!(keyword_matches("цена", "Какая ЦЕНА?"));
        assert!(!keyword_matches("цена", "с ценами"));
        assert!(keyword_matches("café", "Le CAFÉ, svp"));
        assert!(!keyword_matches("café", "cafés"));
        assert!(
            !keyword_matches("cafe", "café"),
            "a precomposed accent continues the word"
        );
        assert!(
            !keyword_matches("cafe", "cafe\u{301}"),
            "a combining accent continues the word"
        );
        // No spaces between words: the keyword is found inside the sentence.
        assert!(keyword_matches("价格", "请问价格是多少"));
        assert!(keyword_matches("営業時間", "営業時間は？"));
    }

    #[test]
    fn punctuation_in_or_around_a_keyword() {
        assert!(keyword_matches("/help", "/help please"));
        assert!(!keyword_matches("/help", "x/help"));
        assert!(keyword_matches("e-mail", "Your E-Mail?"));
        assert!(keyword_matches("c++", "I write C++."));
        assert!(!keyword_matches("c++", "c++x"));
        assert!(keyword_matches("price", "price?!"));
        assert!(
            !keyword_matches("   ", "anything"),
            "a blank keyword matches nothing"
        );
        assert!(
            !keyword_matches("a.b", "axb"),
            "the keyword is literal text, not a pattern"
        );
    }

    #[test]
    fn config_round_trips_as_tagged_json() {
        let c = ResponderConfig::Rules(rules());
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"kind\":\"rules\""));
        assert_eq!(serde_json::from_str::<ResponderConfig>(&text).unwrap(), c);
    }
}
