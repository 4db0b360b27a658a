//! Checks a connection form against its channel type, field by field.
//!
//! Errors carry the key of the field they belong to, so the console can show each one
//! next to its field and the CLI can print them all at once.

use crate::catalog::{ChannelType, FieldKind, FieldSpec};
use crate::model::EnvVar;
use regex::Regex;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use super::inputs;
pub use super::inputs::{DESCRIPTION_MAX, NAME_MAX};

/// Where an error belongs: a field key, `name`, `description`, or `env.N` (row N, from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// A secret field as validation sees it: how many comma-separated values it holds,
/// and the plaintext only when the operator has just typed it.
#[derive(Debug, Clone, Copy)]
pub enum SecretInput<'a> {
    Unset,
    Kept { count: usize },
    New(&'a str),
}

/// Everything the form holds, in the shape validation needs.
pub struct Form<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub fields: &'a BTreeMap<String, String>,
    pub secrets: BTreeMap<&'a str, SecretInput<'a>>,
    pub env: &'a [EnvVar],
}

pub fn validate(ty: &ChannelType, form: &Form<'_>) -> Report {
    let mut report = Report::default();
    if let Some(problem) = inputs::name_problem(form.name) {
        report.error("name", problem);
    }
    if let Some(problem) = inputs::description_problem(form.description.trim()) {
        report.error("description", problem);
    }
    check_sizes(ty, form, &mut report);
    for key in form.fields.keys() {
        match ty.field(key) {
            None => report.error(
                key,
                format!("{} has no field '{key}'", ty.name) + &known_fields(ty),
            ),
            Some(spec) if spec.secret => report.error(
                key,
                format!(
                    "{} is secret: give it as a secret, not a plain field",
                    spec.label
                ),
            ),
            Some(_) => {}
        }
    }
    let mut counts: Vec<(&FieldSpec, usize)> = Vec::new();
    for spec in &ty.fields {
        let count = if spec.secret {
            check_secret(spec, form.secrets.get(spec.key.as_str()), &mut report)
        } else {
            check_plain(spec, form.fields.get(&spec.key), &mut report)
        };
        if spec.multi && count > 0 {
            counts.push((spec, count));
        }
    }
    check_account_counts(&counts, &mut report);
    check_env(ty, form.env, &mut report);
    report
}

fn known_fields(ty: &ChannelType) -> String {
    let keys: Vec<&str> = ty.fields.iter().map(|f| f.key.as_str()).collect();
    format!(": its fields are {}", keys.join(", "))
}

/// Values too large for a field or variable: refused before anything else looks at them.
fn check_sizes(ty: &ChannelType, form: &Form<'_>, report: &mut Report) {
    for (key, value) in form.fields {
        let label = ty.field(key).map_or(key.as_str(), |f| f.label.as_str());
        if let Some(problem) = inputs::size_problem(label, value.len(), false) {
            report.error(key, problem);
        }
    }
    for (key, input) in &form.secrets {
        if let SecretInput::New(v) = input {
            let label = ty.field(key).map_or(*key, |f| f.label.as_str());
            if let Some(problem) = inputs::size_problem(label, v.len(), true) {
                report.error(key, problem);
            }
        }
    }
    for (i, var) in form.env.iter().enumerate() {
        if let Some(problem) = inputs::size_problem(var.name.trim(), var.value.len(), false) {
            report.error(&format!("env.{}", i + 1), problem);
        }
    }
}

/// Returns how many values the field holds (0 when empty).
fn check_plain(spec: &FieldSpec, value: Option<&String>, report: &mut Report) -> usize {
    let value = value.map(|v| v.trim()).unwrap_or("");
    if value.is_empty() {
        if spec.required {
            report.error(&spec.key, format!("{} is required", spec.label));
        }
        return 0;
    }
    check_values(spec, value, report)
}

fn check_secret(spec: &FieldSpec, input: Option<&SecretInput<'_>>, report: &mut Report) -> usize {
    match input.copied().unwrap_or(SecretInput::Unset) {
        SecretInput::Kept { count } => count,
        SecretInput::New(v) if !v.trim().is_empty() => check_values(spec, v.trim(), report),
        _ => {
            if spec.required {
                report.error(&spec.key, format!("{} is required", spec.label));
            }
            0
        }
    }
}

fn check_values(spec: &FieldSpec, value: &str, report: &mut Report) -> usize {
    let values = split_values(spec, value);
    for (i, v) in values.iter().enumerate() {
        let which = if values.len() > 1 {
            format!("{} value {}", spec.label, i + 1)
        } else {
            spec.label.clone()
        };
        if v.is_empty() {
            report.error(
                &spec.key,
                format!("{which} is empty: remove the extra comma or fill it in"),
            );
            return values.len();
        }
        if let Err(problem) = check_kind(spec.kind, v, spec) {
            // A secret's value is never echoed back, not even in an error.
            let shown = if spec.secret {
                String::new()
            } else {
                format!(" '{v}'")
            };
            report.error(&spec.key, format!("{which}{shown} {problem}"));
            return values.len();
        }
    }
    values.len()
}

/// Splits a multi-account field on commas; other fields hold one value, commas and all.
pub fn split_values<'v>(spec: &FieldSpec, value: &'v str) -> Vec<&'v str> {
    if spec.multi {
        value.split(',').map(str::trim).collect()
    } else {
        vec![value.trim()]
    }
}

/// Every per-account field against the number of accounts (the values of the field
/// marked `accounts`: Logins, Phone number IDs), each reported under itself, all at once.
/// One value serves every account (a default port, one security mode), except in a
/// field marked `each` (a password per login) — as the connectors read them.
fn check_account_counts(counts: &[(&FieldSpec, usize)], report: &mut Report) {
    let Some((accounts, n)) = counts.iter().find(|(s, _)| s.accounts).copied() else {
        return;
    };
    for (spec, c) in counts {
        if spec.accounts || *c == n || (*c == 1 && !spec.each) {
            continue;
        }
        let fix = if spec.each {
            "give one per account, in the same order"
        } else {
            "give one per account, in the same order, or one for all"
        };
        report.error(
            &spec.key,
            format!(
                "{} has {} but {} has {n}: {fix}",
                spec.label,
                values_word(*c),
                accounts.label,
            ),
        );
    }
}

fn values_word(n: usize) -> String {
    if n == 1 {
        "1 value".into()
    } else {
        format!("{n} values")
    }
}

/// Checks one value against its kind; the error reads after the field's label.
pub fn check_kind(kind: FieldKind, v: &str, spec: &FieldSpec) -> Result<(), String> {
    check_kind_with(
        kind,
        v,
        &spec.options,
        spec.pattern.as_deref(),
        spec.pattern_help.as_deref(),
    )
}

fn check_kind_with(
    kind: FieldKind,
    v: &str,
    options: &[String],
    pattern: Option<&str>,
    pattern_help: Option<&str>,
) -> Result<(), String> {
    match kind {
        FieldKind::Text => Ok(()),
        FieldKind::Token if v.chars().any(char::is_whitespace) => {
            Err("contains spaces: paste the token exactly, without spaces or line breaks".into())
        }
        FieldKind::Token => Ok(()),
        FieldKind::Host if is_host(v) => Ok(()),
        FieldKind::Host => Err("is not a host name or IP address (e.g. imap.example.com)".into()),
        FieldKind::Port => match v.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(()),
            _ => Err("is not a port: use a number from 1 to 65535".into()),
        },
        FieldKind::Url if is_url(v) => Ok(()),
        FieldKind::Url => Err("is not a URL: use http:// or https:// and a host".into()),
        FieldKind::Phone if re(&PHONE, r"^\+[1-9][0-9]{6,14}$").is_match(v) => Ok(()),
        FieldKind::Phone => {
            Err("is not a phone number in international format (e.g. +14155550123)".into())
        }
        FieldKind::Digits if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        FieldKind::Digits => Err("must contain digits only".into()),
        FieldKind::Email if re(&EMAIL, r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$").is_match(v) => Ok(()),
        FieldKind::Email => Err("is not an email address (e.g. support@example.com)".into()),
        FieldKind::Choice if options.iter().any(|o| o.eq_ignore_ascii_case(v)) => Ok(()),
        FieldKind::Choice => Err(format!("must be one of: {}", options.join(", "))),
        FieldKind::Pattern => {
            let ok = pattern
                .and_then(|p| Regex::new(p).ok())
                .is_some_and(|r| r.is_match(v));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "does not look right: expected {}",
                    pattern_help.unwrap_or("the provider's format")
                ))
            }
        }
    }
}

static PHONE: OnceLock<Regex> = OnceLock::new();
static EMAIL: OnceLock<Regex> = OnceLock::new();
static ENV_NAME: OnceLock<Regex> = OnceLock::new();
static HOST_LABEL: OnceLock<Regex> = OnceLock::new();

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in pattern"))
}

fn is_host(v: &str) -> bool {
    if v.parse::<IpAddr>().is_ok() {
        return true;
    }
    let label = re(
        &HOST_LABEL,
        r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
    );
    v.len() <= 253 && v.split('.').all(|l| label.is_match(l))
}

fn is_url(v: &str) -> bool {
    inputs::is_web_url(v)
}

pub fn is_env_name(name: &str) -> bool {
    re(&ENV_NAME, r"^[A-Za-z_][A-Za-z0-9_]*$").is_match(name)
}

fn check_env(ty: &ChannelType, env: &[EnvVar], report: &mut Report) {
    let mut seen = HashSet::new();
    for (i, var) in env.iter().enumerate() {
        let at = format!("env.{}", i + 1);
        let name = var.name.trim();
        if name.is_empty() {
            report.error(&at, "Variable name is empty: type a name or remove the row");
            continue;
        }
        if !is_env_name(name) {
            report.error(
                &at,
                format!(
                    "'{name}' is not a valid variable name: use letters, digits and _ \
                     (e.g. {})",
                    ty.env
                        .first()
                        .map(|e| e.name.as_str())
                        .unwrap_or("MY_OPTION")
                ),
            );
            continue;
        }
        if !seen.insert(name.to_string()) {
            report.error(&at, format!("{name} is set twice: keep one row"));
            continue;
        }
        match ty.env_var(name) {
            Some(spec) => {
                let value = var.value.trim();
                if let Err(problem) = check_kind_with(spec.kind, value, &spec.options, None, None) {
                    report.error(&at, format!("{name} value '{value}' {problem}"));
                } else if let Some(range) = out_of_range(spec, value) {
                    report.error(&at, format!("{name} value '{value}' must be {range}"));
                }
            }
            None => report.warnings.push(unsupported_env(ty, name)),
        }
    }
}

/// The documented range `value` is outside of, if it is (digits only; the kind check
/// has run).
fn out_of_range(spec: &crate::catalog::EnvSpec, value: &str) -> Option<String> {
    let n: u64 = value.parse().ok()?;
    let below = spec.min.is_some_and(|lo| n < lo);
    let above = spec.max.is_some_and(|hi| n > hi);
    (below || above).then(|| match spec.range_text() {
        Some(r) if r.contains('–') => format!("from {}", r.replace('–', " to ")),
        Some(r) => r,
        None => String::new(),
    })
}

fn unsupported_env(ty: &ChannelType, name: &str) -> String {
    let supported: Vec<&str> = ty.env.iter().map(|e| e.name.as_str()).collect();
    let list = if supported.is_empty() {
        "it supports none".to_string()
    } else {
        format!("supported: {}", supported.join(", "))
    };
    format!(
        "{} does not use {name}; the channel will ignore it ({list})",
        ty.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn ty(key: &str) -> &'static ChannelType {
        Catalog::get().find(key).unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run<'a>(
        t: &ChannelType,
        name: &'a str,
        f: &'a BTreeMap<String, String>,
        secrets: &[(&'a str, SecretInput<'a>)],
        env: &'a [EnvVar],
    ) -> Report {
        validate(
            t,
            &Form {
                name,
                description: "",
                fields: f,
                secrets: secrets.iter().copied().collect(),
                env,
            },
        )
    }

    fn email_fields(logins: &str) -> BTreeMap<String, String> {
        fields(&[
            ("imap_hosts", "imap.a.com,imap.b.com"),
            ("imap_ports", "993,993"),
            ("imap_security", "ssl/tls,ssl/tls"),
            ("logins", logins),
            ("smtp_hosts", "smtp.a.com,smtp.b.com"),
            ("smtp_ports", "587,587"),
            ("smtp_security", "starttls,starttls"),
        ])
    }

    #[test]
    fn a_complete_telegram_form_passes() {
        let f = fields(&[]);
        let r = run(
            ty("telegram"),
            "Sales bot",
            &f,
            &[(
                "bot_token",
                SecretInput::New("123456789:AAEabcdefghijklmnopqrstuvwxyz0123456"),
            )],
            &[],
        );
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn name_and_required_secret_are_reported_at_their_fields() {
        let f = fields(&[]);
        let r = run(ty("telegram"), "  ", &f, &[], &[]);
        assert_eq!(r.error_for("name"), Some("Name is required"));
        assert_eq!(r.error_for("bot_token"), Some("Bot token is required"));
    }

    #[test]
    fn every_per_account_field_is_compared_with_the_accounts_and_one_value_serves_all() {
        // One value in each field (as defaults are), then the given overrides.
        let mail = |over: &[(&str, &str)], passwords: &'static str| {
            let mut f = fields(&[
                ("imap_hosts", "imap.a.com"),
                ("imap_ports", "993"),
                ("imap_security", "ssl/tls"),
                ("smtp_hosts", "smtp.a.com"),
                ("smtp_ports", "587"),
                ("smtp_security", "starttls"),
            ]);
            f.extend(fields(over));
            let secrets = [("passwords", SecretInput::New(passwords))];
            run(ty("email"), "Mail", &f, &secrets, &[])
        };
        // Two IMAP hosts and two SMTP ports for one login.
        let r = mail(
            &[
                ("imap_hosts", "imap.a.com,imap.b.com"),
                ("logins", "a@a.com"),
                ("smtp_ports", "587,587"),
            ],
            "p1",
        );
        assert_eq!(
            r.error_for("imap_hosts"),
            Some(
                "IMAP hosts has 2 values but Logins has 1: give one per account, in the same \
                 order, or one for all"
            )
        );
        assert!(
            r.error_for("smtp_ports")
                .unwrap()
                .starts_with("SMTP ports has 2 values but Logins has 1")
        );
        assert_eq!(r.errors.len(), 2, "{r:?}");
        // Two logins: single values serve both, a single password does not.
        let two = [("logins", "a@a.com,b@b.com")];
        let one = mail(&two, "p1");
        assert_eq!(one.errors.len(), 1, "{one:?}");
        assert!(one.error_for("passwords").is_some());
        assert!(mail(&two, "p1,p2").is_ok());
    }

    #[test]
    fn account_counts_must_match_and_the_error_names_both_fields() {
        let f = email_fields("a@a.com,b@b.com");
        let r = run(
            ty("email"),
            "Mail",
            &f,
            &[("passwords", SecretInput::New("p1"))],
            &[],
        );
        assert_eq!(
            r.error_for("passwords"),
            Some("Passwords has 1 value but Logins has 2: give one per account, in the same order")
        );
        assert_eq!(r.errors.len(), 1, "only the odd field is blamed: {r:?}");
    }

    #[test]
    fn kept_secrets_count_without_being_decrypted() {
        let f = email_fields("a@a.com,b@b.com");
        let ok = run(
            ty("email"),
            "Mail",
            &f,
            &[("passwords", SecretInput::Kept { count: 2 })],
            &[],
        );
        assert!(ok.is_ok(), "{ok:?}");
        let bad = run(
            ty("email"),
            "Mail",
            &f,
            &[("passwords", SecretInput::Kept { count: 3 })],
            &[],
        );
        assert!(bad.error_for("passwords").unwrap().contains("has 3 values"));
    }

    #[test]
    fn an_empty_account_value_is_pointed_at() {
        let f = email_fields("a@a.com,,");
        let r = run(
            ty("email"),
            "Mail",
            &f,
            &[("passwords", SecretInput::New("p1,p2"))],
            &[],
        );
        assert!(
            r.error_for("logins").unwrap().contains("value 2 is empty"),
            "{r:?}"
        );
    }

    #[test]
    fn kinds_are_checked_per_value_with_a_fix_in_the_message() {
        let mut f = email_fields("a@a.com,b@b.com");
        f.insert("imap_ports".into(), "993,99999".into());
        f.insert("imap_hosts".into(), "imap.a.com,bad host".into());
        let r = run(
            ty("email"),
            "Mail",
            &f,
            &[("passwords", SecretInput::New("p1,p2"))],
            &[],
        );
        assert!(
            r.error_for("imap_ports").unwrap().contains("1 to 65535"),
            "{r:?}"
        );
        assert!(
            r.error_for("imap_hosts")
                .unwrap()
                .contains("'bad host' is not a host")
        );
    }

    #[test]
    fn a_bad_secret_is_reported_without_echoing_it() {
        let f = fields(&[]);
        let r = run(
            ty("telegram"),
            "Bot",
            &f,
            &[("bot_token", SecretInput::New("hunter2 hunter2"))],
            &[],
        );
        let msg = r.error_for("bot_token").unwrap();
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn twilio_sid_and_whatsapp_ids_follow_provider_formats() {
        let good = fields(&[
            ("account_sid", "AC0123456789abcdef0123456789abcdef"),
            ("phone_number", "+14155550123"),
        ]);
        let r = run(
            ty("twilio"),
            "Voice",
            &good,
            &[(
                "auth_token",
                SecretInput::New("0123456789abcdef0123456789abcdef"),
            )],
            &[],
        );
        assert!(r.is_ok(), "{r:?}");
        let bad = fields(&[("account_sid", "SK123"), ("phone_number", "4155550123")]);
        let r = run(
            ty("twilio"),
            "Voice",
            &bad,
            &[("auth_token", SecretInput::Kept { count: 1 })],
            &[],
        );
        assert!(r.error_for("account_sid").is_some());
        assert!(
            r.error_for("phone_number")
                .unwrap()
                .contains("+14155550123")
        );
    }

    #[test]
    fn env_names_are_checked_and_unsupported_ones_warned() {
        let f = fields(&[]);
        let env = vec![
            EnvVar {
                name: "TELEGRAM_API_URL".into(),
                value: "http://127.0.0.1:8081".into(),
            },
            EnvVar {
                name: "NOT SUPPORTED".into(),
                value: "1".into(),
            },
            EnvVar {
                name: "EXTRA_THING".into(),
                value: "1".into(),
            },
            EnvVar {
                name: "TELEGRAM_API_URL".into(),
                value: "x".into(),
            },
        ];
        let r = run(
            ty("telegram"),
            "Bot",
            &f,
            &[("bot_token", SecretInput::Kept { count: 1 })],
            &env,
        );
        assert!(r.error_for("env.1").is_none());
        assert!(
            r.error_for("env.2")
                .unwrap()
                .contains("not a valid variable name")
        );
        assert!(r.error_for("env.4").unwrap().contains("set twice"));
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].contains("EXTRA_THING") && r.warnings[0].contains("TELEGRAM_API_URL")
        );
    }

    #[test]
    fn env_values_follow_their_kind() {
        let f = fields(&[]);
        let env = vec![EnvVar {
            name: "TELEGRAM_API_URL".into(),
            value: "not a url".into(),
        }];
        let r = run(
            ty("telegram"),
            "Bot",
            &f,
            &[("bot_token", SecretInput::Kept { count: 1 })],
            &env,
        );
        assert!(r.error_for("env.1").unwrap().contains("is not a URL"));
    }

    #[test]
    fn env_numbers_stay_in_their_documented_range() {
        let f = fields(&[]);
        let check = |value: &str| {
            let env = vec![EnvVar {
                name: "TELEGRAM_POLL_TIMEOUT".into(),
                value: value.into(),
            }];
            run(
                ty("telegram"),
                "Bot",
                &f,
                &[("bot_token", SecretInput::Kept { count: 1 })],
                &env,
            )
            .error_for("env.1")
            .map(str::to_string)
        };
        assert_eq!(check("50"), None);
        assert_eq!(check("0"), None);
        assert_eq!(
            check("99").as_deref(),
            Some("TELEGRAM_POLL_TIMEOUT value '99' must be from 0 to 50")
        );
    }

    #[test]
    fn unknown_and_secret_plain_fields_are_refused() {
        let f = fields(&[("bot_token", "123:abc"), ("colour", "red")]);
        let r = run(ty("telegram"), "Bot", &f, &[], &[]);
        assert!(
            r.error_for("colour")
                .unwrap()
                .contains("its fields are bot_token")
        );
        assert!(r.error_for("bot_token").unwrap().contains("is secret"));
    }
}
