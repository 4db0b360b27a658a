//! The widget's settings as the agent stores them (a JSON object of strings, keys from
//! the catalog's `web_widget` type), read with the catalog's defaults and checked with
//! its field rules.

use crate::catalog::{Catalog, ChannelType};
use crate::model::Agent;
use crate::model::validation::check_kind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Normalized (`scheme://host[:port]`, lower case, no trailing slash).
    pub origins: Vec<String>,
    pub title: String,
    pub greeting: String,
    pub colour: String,
    pub position: String,
}

fn spec() -> &'static ChannelType {
    Catalog::get()
        .find("web_widget")
        .expect("the catalog has the web_widget type")
}

/// An origin as browsers send it in the `Origin` header.
pub fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Settings {
    pub fn parse(widget_json: &str) -> Settings {
        let v: serde_json::Value = serde_json::from_str(widget_json).unwrap_or_default();
        let get = |key: &str| {
            let given = v
                .get(key)
                .and_then(|x| x.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty());
            given
                .map(str::to_string)
                .or_else(|| spec().field(key).and_then(|f| f.default.clone()))
                .unwrap_or_default()
        };
        Settings {
            origins: get("allowed_origins")
                .split(',')
                .map(normalize_origin)
                .filter(|o| !o.is_empty())
                .collect(),
            title: get("title"),
            greeting: get("greeting"),
            colour: get("colour"),
            position: get("position").to_ascii_lowercase(),
        }
    }

    pub fn of(agent: &Agent) -> Settings {
        Settings::parse(&agent.widget)
    }

    /// The widget is on once some site may embed it.
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    pub fn allows(&self, origin: &str) -> bool {
        let o = normalize_origin(origin);
        self.origins.contains(&o)
    }
}

/// Checks settings an operator typed: every key is a widget setting, every value has
/// the catalog's shape. The error names the setting and says what is expected.
pub fn validate(widget: &serde_json::Value) -> Result<(), String> {
    let ty = spec();
    let Some(obj) = widget.as_object() else {
        return Err("the Web Widget settings must be an object of NAME: value".into());
    };
    for (k, v) in obj {
        let Some(field) = ty.field(k) else {
            let keys: Vec<&str> = ty.fields.iter().map(|f| f.key.as_str()).collect();
            return Err(format!(
                "the Web Widget has no setting '{k}': its settings are {}",
                keys.join(", ")
            ));
        };
        let Some(value) = v.as_str() else {
            return Err(format!("Web Widget {}: must be text", field.label));
        };
        let value = value.trim();
        if value.chars().count() > 500 {
            return Err(format!(
                "Web Widget {}: is longer than 500 characters; shorten it",
                field.label
            ));
        }
        if !value.is_empty() {
            check_kind(field.kind, value, field)
                .map_err(|why| format!("Web Widget {} '{value}' {why}", field.label))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_come_from_the_catalog_and_origins_are_normalized() {
        let s = Settings::parse(
            r#"{"allowed_origins":"https://Shop.example.com/, http://localhost:8080"}"#,
        );
        assert_eq!(
            s.origins,
            ["https://shop.example.com", "http://localhost:8080"]
        );
        assert_eq!(s.title, "Chat with us");
        assert_eq!(s.colour, "#E25822");
        assert_eq!(s.position, "bottom-right");
        assert!(s.allows("https://shop.example.com"));
        assert!(!s.allows("https://evil.example.com"));
        assert!(!Settings::parse("{}").enabled());
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let e = validate(&json!({"colour": "red; background:url(x)"})).unwrap_err();
        assert!(e.contains("hex colour"), "{e}");
        let e = validate(&json!({"allowed_origins": "https://a.com/path"})).unwrap_err();
        assert!(e.contains("no paths"), "{e}");
        let e = validate(&json!({"colour_x": "#000000"})).unwrap_err();
        assert!(e.contains("no setting 'colour_x'"), "{e}");
        let e = validate(&json!({"position": "top"})).unwrap_err();
        assert!(e.contains("bottom-right"), "{e}");
        validate(&json!({"allowed_origins": "https://a.com", "colour": "#112233"})).unwrap();
    }
}
