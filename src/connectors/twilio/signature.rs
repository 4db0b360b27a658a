//! `X-Twilio-Signature`: base64 of HMAC-SHA1, under the account's auth token, of the full
//! URL Twilio requested (query included) followed by every POST parameter's name and
//! value, sorted by name — Twilio's documented algorithm (twilio.com/docs/usage/security).

use base64::Engine;
use hmac::{Hmac, Mac};

/// The signature Twilio sends for a form POST of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Sorted by name, then value: a repeated name (rare) is signed in value order.
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of this request (compared in constant time).
pub fn valid(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    !given.is_empty() && super::super::same_secret(given.trim(), &sign(auth_token, url, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The vectors of Twilio's security documentation (connectors.md §8.1).
    #[test]
    fn matches_twilio_s_published_test_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            sign("12345", url, &params("+14158675310")),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            sign("12345", url, &params("+12349013030")),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        // The order the form carried them in does not matter.
        let mut shuffled = params("+14158675310");
        shuffled.reverse();
        assert!(valid(
            "12345",
            url,
            &shuffled,
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
    }

    #[test]
    fn a_wrong_token_url_or_parameter_fails() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let good = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(!valid("54321", url, &params("+14158675310"), good));
        assert!(!valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params("+14158675310"),
            good
        ));
        assert!(!valid("12345", url, &params("+14158675311"), good));
        assert!(!valid("12345", url, &params("+14158675310"), ""));
    }
}
