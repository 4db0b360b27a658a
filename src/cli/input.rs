//! Parsing what scripts pass: `FIELD=VALUE` options and secret lines on standard input.

use super::{Failure, FormArgs};
use crate::catalog::ChannelType;
use crate::channels::Draft;
use crate::model::EnvVar;
use crate::secrets::SecretString;
use std::io::{BufRead, IsTerminal};

fn split_pair<'a>(raw: &'a str, what: &str, example: &str) -> Result<(&'a str, &'a str), Failure> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim(), v))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| {
            Failure::invalid(format!("{what} '{raw}' is not NAME=VALUE (e.g. {example})"))
        })
}

/// Applies `--description`, `--set`, `--env` and `--secrets-stdin` onto a draft.
pub fn apply_form(ty: &ChannelType, form: &FormArgs, draft: &mut Draft) -> Result<(), Failure> {
    if let Some(d) = &form.description {
        draft.description = d.clone();
    }
    for raw in &form.set {
        let (key, value) = split_pair(raw, "--set", "--set imap_hosts=imap.example.com")?;
        match ty.field(key) {
            None => {
                let keys: Vec<&str> = ty.fields.iter().map(|f| f.key.as_str()).collect();
                return Err(Failure::invalid(format!(
                    "{} has no field '{key}': its fields are {}",
                    ty.name,
                    keys.join(", ")
                )));
            }
            Some(spec) if spec.secret => {
                return Err(Failure::invalid(format!(
                    "{} ({key}) is secret: pass it on standard input with --secrets-stdin \
                     (a line {key}=VALUE), so it stays out of shell history and process lists",
                    spec.label
                )));
            }
            Some(_) if value.trim().is_empty() => {
                draft.fields.remove(key);
            }
            Some(_) => {
                draft.fields.insert(key.to_string(), value.to_string());
            }
        }
    }
    for raw in &form.env {
        let (name, value) = split_pair(raw, "--env", "--env EMAIL_IMAP_FOLDER=Support")?;
        match draft.env.iter_mut().find(|e| e.name == name) {
            Some(existing) => existing.value = value.to_string(),
            None => draft.env.push(EnvVar {
                name: name.to_string(),
                value: value.to_string(),
            }),
        }
    }
    if form.secrets_stdin {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            esay!("Type FIELD=VALUE lines for the secret fields, then Ctrl-D:");
        }
        read_secrets(ty, stdin.lock(), draft)?;
    }
    Ok(())
}

/// Reads `FIELD=VALUE` lines; blank lines and `#` comments are skipped.
pub fn read_secrets(
    ty: &ChannelType,
    input: impl BufRead,
    draft: &mut Draft,
) -> Result<(), Failure> {
    for (n, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Failure::invalid(format!("cannot read standard input: {e}")))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::invalid(format!(
                "standard input line {}: expected FIELD=VALUE (the value is not shown here)",
                n + 1
            )));
        };
        let key = key.trim();
        match ty.field(key) {
            Some(spec) if spec.secret => {
                draft
                    .secrets
                    .insert(key.to_string(), SecretString::new(value.trim()));
            }
            Some(spec) => {
                return Err(Failure::invalid(format!(
                    "standard input line {}: {} ({key}) is not secret: pass it with --set {key}=VALUE",
                    n + 1,
                    spec.label
                )));
            }
            None => {
                let secret: Vec<&str> = ty
                    .fields
                    .iter()
                    .filter(|f| f.secret)
                    .map(|f| f.key.as_str())
                    .collect();
                return Err(Failure::invalid(format!(
                    "standard input line {}: {} has no field '{key}': its secret fields are {}",
                    n + 1,
                    ty.name,
                    secret.join(", ")
                )));
            }
        }
    }
    Ok(())
}
