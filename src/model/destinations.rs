//! Where a connection's secrets are sent. A host or URL field (IMAP host, a provider's
//! base URL) or such a variable (`TELEGRAM_API_URL`) decides which server receives the
//! stored token or password. Changing one without typing the secret again would let
//! anyone who may edit a connection, but was never told its token, have flametree hand
//! the token to a server of their choosing; so, as GitHub asks for a webhook's secret
//! again when its URL changes, such an edit must carry the secrets again.

use crate::catalog::{ChannelType, FieldKind};
use crate::model::EnvVar;
use crate::model::validation::FieldError;
use std::collections::BTreeMap;

/// A field or variable that names a server, or how the secret travels to it (turning
/// TLS off hands the password to whoever is on the path).
fn is_destination(kind: FieldKind, name: &str) -> bool {
    matches!(kind, FieldKind::Host | FieldKind::Url)
        || [
            "_URL",
            "_HOST",
            "_HOSTS",
            "_PROXY",
            "_security",
            "_SECURITY",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The destinations an edit points somewhere new, by what the operator sees: a field's
/// label, a variable's name. Clearing one (back to the provider's default) is no
/// redirection and is not listed.
pub fn changed_destinations(
    ty: &ChannelType,
    old_fields: &BTreeMap<String, String>,
    old_env: &[EnvVar],
    new_fields: &BTreeMap<String, String>,
    new_env: &[EnvVar],
) -> Vec<String> {
    let mut changed = Vec::new();
    for spec in ty.fields.iter().filter(|f| !f.secret) {
        let new = new_fields.get(&spec.key).map(|v| v.trim()).unwrap_or("");
        let old = old_fields.get(&spec.key).map(|v| v.trim()).unwrap_or("");
        if is_destination(spec.kind, &spec.key) && !new.is_empty() && new != old {
            changed.push(spec.label.clone());
        }
    }
    let value = |env: &[EnvVar], name: &str| -> String {
        env.iter()
            .rev()
            .find(|e| e.name.trim() == name)
            .map(|e| e.value.trim().to_string())
            .unwrap_or_default()
    };
    for spec in &ty.env {
        let new = value(new_env, &spec.name);
        if is_destination(spec.kind, &spec.name)
            && !new.is_empty()
            && new != value(old_env, &spec.name)
        {
            changed.push(spec.name.clone());
        }
    }
    changed
}

/// One error per stored secret that the edit would send to a new destination without
/// its being typed again. `retyped(field)` tells whether the edit carries that secret.
pub fn redirected_secrets<'a>(
    ty: &ChannelType,
    destinations: &[String],
    kept: impl Iterator<Item = &'a str>,
    retyped: impl Fn(&str) -> bool,
) -> Vec<FieldError> {
    if destinations.is_empty() {
        return Vec::new();
    }
    let what = destinations.join(", ");
    kept.filter(|field| !retyped(field))
        .map(|field| {
            let label = ty
                .field(field)
                .map(|f| f.label.clone())
                .unwrap_or_else(|| field.to_string());
            FieldError {
                field: field.to_string(),
                message: format!(
                    "{what} changed: the stored {label} would be sent to the new address. \
                     Enter the {label} again to confirm, or undo the change"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(n, v)| EnvVar {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_new_api_url_or_host_is_a_new_destination_and_clearing_one_is_not() {
        let telegram = Catalog::get().find("telegram").unwrap();
        let none = BTreeMap::new();
        let moved = changed_destinations(
            telegram,
            &none,
            &[],
            &none,
            &env(&[("TELEGRAM_API_URL", "https://evil.example")]),
        );
        assert_eq!(moved, vec!["TELEGRAM_API_URL".to_string()]);
        let cleared = changed_destinations(
            telegram,
            &none,
            &env(&[("TELEGRAM_API_URL", "https://proxy.example")]),
            &none,
            &[],
        );
        assert!(cleared.is_empty());
        let same = env(&[("TELEGRAM_POLL_TIMEOUT", "10")]);
        assert!(changed_destinations(telegram, &none, &[], &none, &same).is_empty());

        let email = Catalog::get().find("email").unwrap();
        let old: BTreeMap<String, String> =
            [("imap_hosts".to_string(), "imap.example.com".to_string())].into();
        let new: BTreeMap<String, String> =
            [("imap_hosts".to_string(), "imap.evil.example".to_string())].into();
        let moved = changed_destinations(email, &old, &[], &new, &[]);
        assert_eq!(moved.len(), 1, "{moved:?}");
    }

    #[test]
    fn every_kept_secret_must_be_typed_again() {
        let email = Catalog::get().find("email").unwrap();
        let errors = redirected_secrets(
            email,
            &["IMAP hosts".to_string()],
            ["passwords"].into_iter(),
            |_| false,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "passwords");
        assert!(errors[0].message.contains("IMAP hosts changed"));
        let retyped = redirected_secrets(
            email,
            &["IMAP hosts".to_string()],
            ["passwords"].into_iter(),
            |_| true,
        );
        assert!(retyped.is_empty());
    }
}
