//! The channel-type catalog: `assets/channel-types.toml`, embedded in the binary.
//!
//! Forms, validation, the CLI and the runtime all read this one description, so a
//! new channel type or field is a data change, not a code change.

use serde::Deserialize;
use std::sync::OnceLock;

const CATALOG_TOML: &str = include_str!("../assets/channel-types.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "types")]
    pub types: Vec<ChannelType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelType {
    /// Stable identifier stored with each connection (`telegram`, `email`, …).
    pub key: String,
    /// Display name as the portal shows it (`Email (IMAP/SMTP)`).
    pub name: String,
    /// One line: what it connects.
    pub summary: String,
    /// Connector family that runs it (`telegram`, `email`, `meta`, `voice`, …).
    pub family: String,
    pub lifecycle: Lifecycle,
    /// Only one agent may attach this connection with Inbound on.
    pub exclusive_inbound: bool,
    /// WhatsApp, Instagram and Facebook show the Advanced mode switch.
    #[serde(default)]
    pub meta_advanced_mode: bool,
    /// An agent's page may create a connection of this type inline (Simple mode: the
    /// name, description and this type's credentials), as the spec allows for WhatsApp
    /// and Telegram.
    #[serde(default)]
    pub simple_mode: bool,
    #[serde(default)]
    pub deprecated: bool,
    /// Calls carried as audio (SIP): the agent needs speech engines to take them.
    #[serde(default)]
    pub needs_speech: bool,
    /// For deprecated types: the key of the current type to migrate to.
    #[serde(default)]
    pub migrates_to: Option<String>,
    /// False for types never created or listed in Settings › Channels.
    #[serde(default = "yes")]
    pub listed: bool,
    /// Why an unlisted type is configured elsewhere.
    #[serde(default)]
    pub not_listed_reason: Option<String>,
    /// Setup page under `assets/setup/`, file name without directory.
    pub setup_page: String,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub env: Vec<EnvSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Has its own Start/Stop and Logs.
    StartStop,
    /// Starts and stops together with the agents it is attached to (SIP, Twilio).
    WithAgent,
    /// Configured on the agent's page (Web Widget) or elsewhere; no lifecycle here.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    /// Holds one comma-separated value per account.
    #[serde(default)]
    pub multi: bool,
    /// Its values are the accounts (Logins, Phone number IDs): every other per-account
    /// field gives one value per account, or one value for all of them.
    #[serde(default)]
    pub accounts: bool,
    /// A per-account field one value cannot serve for all (a password per login).
    #[serde(default)]
    pub each: bool,
    #[serde(default)]
    pub hint: String,
    #[serde(default)]
    pub kind: FieldKind,
    /// For `kind = "pattern"`: the regular expression each value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// For `kind = "pattern"`: what a valid value looks like, in words.
    #[serde(default)]
    pub pattern_help: Option<String>,
    /// For `kind = "choice"`.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    #[default]
    Text,
    Host,
    Port,
    Url,
    Phone,
    Digits,
    Email,
    Token,
    Choice,
    Pattern,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    pub name: String,
    pub meaning: String,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub kind: FieldKind,
    #[serde(default)]
    pub options: Vec<String>,
    /// The range a number must be in (digits kinds), when the provider or the connector
    /// has one.
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

impl EnvSpec {
    /// "0–15", "at least 1": the range, for hints and messages.
    pub fn range_text(&self) -> Option<String> {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => Some(format!("{lo}–{hi}")),
            (Some(lo), None) => Some(format!("at least {lo}")),
            (None, Some(hi)) => Some(format!("at most {hi}")),
            (None, None) => None,
        }
    }
}

impl Catalog {
    /// The embedded catalog. It is checked by unit tests, so a parse failure here
    /// means the binary was built from a broken asset.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(CATALOG_TOML).expect("embedded assets/channel-types.toml is valid")
        })
    }

    pub fn parse(text: &str) -> Result<Catalog, String> {
        let catalog: Catalog = toml::from_str(text).map_err(|e| format!("channel catalog: {e}"))?;
        catalog.check()?;
        Ok(catalog)
    }

    pub fn find(&self, key: &str) -> Option<&ChannelType> {
        self.types.iter().find(|t| t.key == key)
    }

    /// Finds a type by key or display name, case-insensitively, for the CLI.
    pub fn lookup(&self, wanted: &str) -> Result<&ChannelType, String> {
        let w = wanted.trim().to_lowercase();
        self.types
            .iter()
            .find(|t| t.key == w || t.name.to_lowercase() == w)
            .ok_or_else(|| {
                let keys: Vec<&str> = self.listed().map(|t| t.key.as_str()).collect();
                format!(
                    "unknown channel type '{wanted}': use one of {}",
                    keys.join(", ")
                )
            })
    }

    /// Types that appear in Settings › Channels, current ones first.
    pub fn listed(&self) -> impl Iterator<Item = &ChannelType> {
        let current = self.types.iter().filter(|t| t.listed && !t.deprecated);
        let legacy = self.types.iter().filter(|t| t.listed && t.deprecated);
        current.chain(legacy)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for t in &self.types {
            if !seen.insert(t.key.as_str()) {
                return Err(format!("channel catalog: type '{}' appears twice", t.key));
            }
            t.check()?;
        }
        for t in &self.types {
            if let Some(target) = &t.migrates_to
                && self.find(target).is_none_or(|c| c.deprecated)
            {
                return Err(format!(
                    "channel catalog: '{}' migrates to '{target}', which is not a current type",
                    t.key
                ));
            }
        }
        Ok(())
    }
}

impl ChannelType {
    /// The name as the list shows it, with the `DEPRECATED` suffix for legacy types.
    pub fn display_name(&self) -> String {
        if self.deprecated {
            format!("{} DEPRECATED", self.name)
        } else {
            self.name.clone()
        }
    }

    pub fn field(&self, key: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.key == key)
    }

    pub fn env_var(&self, name: &str) -> Option<&EnvSpec> {
        self.env.iter().find(|e| e.name == name)
    }

    pub fn is_multi_account(&self) -> bool {
        self.fields.iter().any(|f| f.multi)
    }

    pub fn has_start_stop(&self) -> bool {
        self.lifecycle == Lifecycle::StartStop
    }

    pub fn setup_text(&self) -> &'static str {
        crate::assets::setup_page(&self.setup_page)
            .unwrap_or("This channel type has no setup page in this build. Report it as a bug.")
    }

    fn check(&self) -> Result<(), String> {
        let err = |m: String| Err(format!("channel catalog: type '{}': {m}", self.key));
        if self.deprecated && self.migrates_to.is_none() {
            return err("a deprecated type must name the type it migrates to".into());
        }
        if !self.listed && self.not_listed_reason.is_none() {
            return err("an unlisted type must say where it is configured".into());
        }
        if crate::assets::setup_page(&self.setup_page).is_none() {
            return err(format!("setup page '{}' is missing", self.setup_page));
        }
        let mut keys = std::collections::HashSet::new();
        for f in &self.fields {
            if !keys.insert(f.key.as_str()) {
                return err(format!("field '{}' appears twice", f.key));
            }
            match f.kind {
                FieldKind::Pattern => {
                    let Some(p) = &f.pattern else {
                        return err(format!("field '{}' has kind pattern but no pattern", f.key));
                    };
                    if let Err(e) = regex::Regex::new(p) {
                        return err(format!("field '{}': bad pattern: {e}", f.key));
                    }
                }
                FieldKind::Choice if f.options.is_empty() => {
                    return err(format!("field '{}' has kind choice but no options", f.key));
                }
                _ => {}
            }
        }
        for e in &self.env {
            if !crate::model::validation::is_env_name(&e.name) {
                return err(format!(
                    "environment variable '{}' is not a valid name",
                    e.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Catalog {
        Catalog::get()
    }

    #[test]
    fn every_type_of_the_spec_table_is_listed_under_its_portal_name() {
        let names: Vec<&str> = cat()
            .listed()
            .filter(|t| !t.deprecated)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "WhatsApp",
                "Telegram",
                "Email (IMAP/SMTP)",
                "Instagram",
                "Facebook",
                "Infobip",
                "Bird",
                "Intercom",
                "SIP",
                "Twilio"
            ]
        );
    }

    #[test]
    fn legacy_types_carry_the_suffix_and_name_a_current_type() {
        let legacy: Vec<&ChannelType> = cat().types.iter().filter(|t| t.deprecated).collect();
        assert!(legacy.len() >= 2);
        for t in legacy {
            assert!(t.display_name().ends_with(" DEPRECATED"), "{}", t.key);
            let target = cat().find(t.migrates_to.as_deref().unwrap()).unwrap();
            assert!(!target.deprecated && target.listed);
        }
    }

    #[test]
    fn web_widget_and_mobile_push_are_never_listed() {
        for key in ["web_widget", "mobile_push"] {
            let t = cat().find(key).unwrap();
            assert!(!t.listed);
            assert!(cat().listed().all(|l| l.key != key));
        }
    }

    #[test]
    fn voice_types_run_with_their_agent_and_the_rest_have_start_stop() {
        for t in cat().listed() {
            let voice = matches!(t.key.as_str(), "sip" | "twilio");
            assert_eq!(t.has_start_stop(), !voice, "{}", t.key);
        }
    }

    #[test]
    fn one_inbound_agent_list_matches_the_spec() {
        let exclusive: Vec<&str> = cat()
            .listed()
            .filter(|t| !t.deprecated && t.exclusive_inbound)
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(
            exclusive,
            [
                "whatsapp", "telegram", "email", "facebook", "bird", "intercom", "sip", "twilio"
            ]
        );
    }

    #[test]
    fn advanced_mode_applies_to_meta_types_only() {
        let meta: Vec<&str> = cat()
            .types
            .iter()
            .filter(|t| t.meta_advanced_mode)
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(meta, ["whatsapp", "instagram", "facebook"]);
    }

    #[test]
    fn simple_mode_types_are_whatsapp_and_telegram() {
        let simple: Vec<&str> = cat()
            .types
            .iter()
            .filter(|t| t.simple_mode)
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(simple, ["whatsapp", "telegram"]);
    }

    #[test]
    fn multi_account_types_are_whatsapp_and_email() {
        let multi: Vec<&str> = cat()
            .listed()
            .filter(|t| t.is_multi_account())
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(multi, ["whatsapp", "email"]);
    }

    #[test]
    fn every_type_has_a_setup_page_and_telegram_a_configurable_api_url() {
        for t in &cat().types {
            assert!(
                t.setup_text().len() > 200,
                "{} setup page is too thin",
                t.key
            );
        }
        let tg = cat().find("telegram").unwrap();
        assert!(tg.env_var("TELEGRAM_API_URL").is_some());
        assert!(tg.field("bot_token").unwrap().secret);
    }

    #[test]
    fn lookup_accepts_key_or_name_and_lists_choices_when_wrong() {
        assert_eq!(cat().lookup("Email (IMAP/SMTP)").unwrap().key, "email");
        assert_eq!(cat().lookup("TELEGRAM").unwrap().key, "telegram");
        let err = cat().lookup("fax").unwrap_err();
        assert!(err.contains("unknown channel type 'fax'") && err.contains("telegram"));
    }

    #[test]
    fn a_broken_catalog_is_refused_with_the_reason() {
        let bad = r#"
            [[types]]
            key = "x"
            name = "X"
            summary = "s"
            family = "x"
            lifecycle = "start_stop"
            exclusive_inbound = false
            deprecated = true
            setup_page = "telegram.md"
        "#;
        let err = Catalog::parse(bad).unwrap_err();
        assert!(err.contains("must name the type it migrates to"), "{err}");
    }
}
