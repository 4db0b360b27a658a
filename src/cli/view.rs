//! What the CLI prints about connections, as text or JSON. Secrets are masked here and
//! nowhere is there a path that prints a sealed or opened value.

use crate::catalog::{Catalog, ChannelType};
use crate::model::validation::Report;
use crate::model::{Connection, format_millis, rfc3339};
use crate::secrets::MASK;
use serde::Serialize;
use serde_json::{Value, json};

/// A connection as scripts see it: every field present, secrets masked.
#[derive(Debug, Serialize)]
pub struct ConnectionView {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub type_key: String,
    pub type_name: String,
    pub deprecated: bool,
    pub description: String,
    pub fields: serde_json::Map<String, Value>,
    pub env: Vec<crate::model::EnvVar>,
    pub status: String,
    pub status_message: String,
    pub status_since: String,
    pub desired_state: String,
    pub restart_pending: bool,
    pub version: i64,
    pub updated_at: String,
    pub updated_by: String,
    /// Where the provider delivers webhooks (`<http.public_url>/hooks/<id>`); null when
    /// the connection does not receive webhooks (e.g. a polling Telegram bot).
    pub webhook_url: Option<String>,
}

/// A secret field's shown value: the fixed mask when set, null when not.
pub fn masked(c: &Connection, key: &str) -> Value {
    if c.secrets.contains_key(key) {
        Value::String(MASK.into())
    } else {
        Value::Null
    }
}

/// `public_base` is `http.public_url` (or derived from `http.listen`): webhook URLs live
/// under it.
pub fn connection_view(c: &Connection, public_base: &str) -> ConnectionView {
    let ty = Catalog::get().find(&c.type_key);
    let mut fields = serde_json::Map::new();
    if let Some(ty) = ty {
        for spec in &ty.fields {
            let v = if spec.secret {
                masked(c, &spec.key)
            } else {
                c.fields
                    .get(&spec.key)
                    .map(|v| json!(v))
                    .unwrap_or(Value::Null)
            };
            fields.insert(spec.key.clone(), v);
        }
    }
    ConnectionView {
        id: c.id,
        name: c.name.clone(),
        type_key: c.type_key.clone(),
        type_name: ty
            .map(|t| t.display_name())
            .unwrap_or_else(|| c.type_key.clone()),
        deprecated: ty.is_some_and(|t| t.deprecated),
        description: c.description.clone(),
        fields,
        env: c.env.clone(),
        status: c.status.to_string(),
        status_message: c.status_message.clone(),
        status_since: rfc3339(c.status_since),
        desired_state: c.desired.as_str().to_string(),
        restart_pending: c.restart_pending(),
        version: c.version,
        updated_at: rfc3339(c.updated_at),
        updated_by: c.updated_by.clone(),
        webhook_url: crate::connectors::webhook_url_for(c, public_base),
    }
}

pub fn print_json(value: &impl Serialize) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

/// Every validation error on its own line, then warnings.
pub fn report_lines(report: &Report) -> String {
    let mut out: Vec<String> = report
        .errors
        .iter()
        .map(|e| {
            // An environment variable's error names the variable itself; its row
            // number ("env.3") means nothing on a command line.
            if e.field.starts_with("env.") {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    out.extend(report.warnings.iter().map(|w| format!("warning: {w}")));
    out.join("\n")
}

pub fn type_json(t: &ChannelType) -> Value {
    json!({
        "key": t.key,
        "name": t.display_name(),
        "summary": t.summary,
        "deprecated": t.deprecated,
        "migrates_to": t.migrates_to,
        "listed": t.listed,
        "lifecycle": format!("{:?}", t.lifecycle).to_lowercase(),
        "start_stop": t.has_start_stop(),
        "one_inbound_agent": t.exclusive_inbound,
        "meta_advanced_mode": t.meta_advanced_mode,
        "multi_account": t.is_multi_account(),
        "fields": t.fields.iter().map(|f| json!({
            "key": f.key, "label": f.label, "required": f.required, "secret": f.secret,
            "multi": f.multi, "hint": f.hint, "kind": format!("{:?}", f.kind).to_lowercase(),
            "options": f.options, "default": f.default,
        })).collect::<Vec<_>>(),
        "env": t.env.iter().map(|e| json!({
            "name": e.name, "meaning": e.meaning, "default": e.default,
        })).collect::<Vec<_>>(),
    })
}

/// A plain table: columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub fn show_text(c: &Connection, public_base: &str) -> String {
    let v = connection_view(c, public_base);
    let ty = Catalog::get().find(&c.type_key);
    let mut out = vec![
        format!("Name:         {}", c.name),
        format!("Type:         {}", v.type_name),
        format!("Description:  {}", c.description),
        format!(
            "Status:       {}{} (since {})",
            c.status,
            if c.status_message.is_empty() {
                String::new()
            } else {
                format!(" — {}", c.status_message)
            },
            format_millis(c.status_since)
        ),
    ];
    if c.restart_pending() {
        out.push(
            "              restart pending: saved changes apply after Stop, then Start".into(),
        );
    }
    if let Some(url) = &v.webhook_url {
        out.push(format!("Webhook URL:  {url}"));
    }
    out.push(String::new());
    if let Some(ty) = ty {
        let width = ty
            .fields
            .iter()
            .map(|f| f.label.chars().count())
            .max()
            .unwrap_or(0);
        for spec in &ty.fields {
            let shown = match v.fields.get(&spec.key) {
                Some(Value::String(s)) => s.clone(),
                _ => "(not set)".into(),
            };
            out.push(format!("{:<width$}  {shown}", spec.label));
        }
    }
    if !c.env.is_empty() {
        out.push(String::new());
        out.push("Environment variables:".into());
        out.extend(c.env.iter().map(|e| format!("  {}={}", e.name, e.value)));
    }
    out.push(String::new());
    out.push(format!(
        "Version {} · saved by {} at {}",
        c.version,
        c.updated_by,
        format_millis(c.updated_at)
    ));
    out.join("\n")
}
