//! Whether a provider can reach the webhook URL a connection gives it. Providers deliver
//! only to public HTTPS addresses, so a connection switched to webhooks on a server whose
//! `http.public_url` is unset (or plain HTTP, or loopback) would wait for deliveries
//! that never come; the console and the CLI say so when it is saved.

use crate::model::Connection;

/// The URL the provider is given: a `…_WEBHOOK_URL` variable set on the connection
/// overrides the one under the public base.
fn effective_url(c: &Connection, public_base: &str) -> Option<String> {
    let default = crate::connectors::webhook_url_for(c, public_base)?;
    let own = c
        .env
        .iter()
        .find(|e| e.name.ends_with("_WEBHOOK_URL") && !e.value.trim().is_empty())
        .map(|e| e.value.trim().to_string());
    Some(own.unwrap_or(default))
}

/// A warning when `c` receives webhooks at a URL no provider can reach.
pub fn unreachable_webhook(c: &Connection, public_base: &str) -> Option<String> {
    let url = effective_url(c, public_base)?;
    let parsed = url::Url::parse(&url).ok();
    let https = parsed.as_ref().is_some_and(|u| u.scheme() == "https");
    let local = parsed.as_ref().and_then(|u| u.host_str()).is_none_or(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || private(&ip))
    });
    if https && !local {
        return None;
    }
    let own_var = c
        .env
        .iter()
        .find(|e| e.name.ends_with("_WEBHOOK_URL"))
        .map(|e| e.name.clone())
        .or_else(|| {
            crate::catalog::Catalog::get()
                .find(&c.type_key)?
                .env
                .iter()
                .find(|e| e.name.ends_with("_WEBHOOK_URL"))
                .map(|e| e.name.clone())
        });
    let fix = match own_var {
        Some(var) => format!("set http.public_url in the config, or {var} on the connection"),
        None => "set http.public_url in the config".to_string(),
    };
    Some(format!(
        "'{}' receives webhooks at {url}, which the provider cannot reach (it delivers only \
         to a public HTTPS address): {fix}",
        c.name
    ))
}

fn private(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::unreachable_webhook;
    use crate::model::EnvVar;

    fn webhook_bot(env: &[(&str, &str)]) -> crate::model::Connection {
        let mut c = crate::tui::list::tests_support::conn(1, "Hooks bot", "telegram");
        c.hook_id = "0123456789abcdef0123456789abcdef".into();
        c.env = env
            .iter()
            .map(|(n, v)| EnvVar {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        c
    }

    #[test]
    fn a_webhook_bot_on_a_private_or_plain_http_address_is_warned_about() {
        let c = webhook_bot(&[("TELEGRAM_MODE", "webhook")]);
        let w = unreachable_webhook(&c, "http://127.0.0.1:8787").unwrap();
        assert!(w.contains("http://127.0.0.1:8787/hooks/0123"), "{w}");
        assert!(w.contains("TELEGRAM_WEBHOOK_URL on the connection"), "{w}");
        assert!(unreachable_webhook(&c, "https://10.0.0.5").is_some());
        assert_eq!(unreachable_webhook(&c, "https://hooks.example.com"), None);
        let own = webhook_bot(&[
            ("TELEGRAM_MODE", "webhook"),
            ("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/tg"),
        ]);
        assert_eq!(unreachable_webhook(&own, "http://127.0.0.1:8787"), None);
        let polling = webhook_bot(&[]);
        assert_eq!(unreachable_webhook(&polling, "http://127.0.0.1:8787"), None);
    }
}
