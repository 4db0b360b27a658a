//! `flametree secrets status` and `flametree secrets rotate`.

use super::Failure;
use super::view::{print_json, table};
use crate::channels::ServiceError;
use crate::context::Context;
use crate::key_rotation;
use crate::secrets::{KeySource, MasterKey};
use serde_json::json;
use std::path::{Path, PathBuf};

pub async fn status(ctx: &Context, json: bool) -> Result<(), Failure> {
    let counts = key_rotation::status(ctx.channels.store().as_ref()).await?;
    let in_use = ctx.channels.key().ok().map(|k| k.id().to_string());
    if json {
        let keys: Vec<_> = counts
            .iter()
            .map(|(id, n)| json!({"key_id": id, "secrets": n, "in_use": Some(id) == in_use.as_ref()}))
            .collect();
        print_json(&json!({"key_in_use": in_use, "keys": keys}));
        return Ok(());
    }
    match &in_use {
        Some(id) => say!("Key in use: {id}"),
        None => say!("Key in use: none could be loaded (see `flametree info`)"),
    }
    if counts.is_empty() {
        say!("No secrets are stored yet.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|(id, n)| {
            let mark = if Some(id) == in_use.as_ref() {
                "in use"
            } else {
                "NOT the key in use"
            };
            vec![id.clone(), n.to_string(), mark.to_string()]
        })
        .collect();
    say!("{}", table(&["KEY", "SECRETS", ""], &rows));
    Ok(())
}

/// Where a new key waits while the secrets are re-sealed under it: present only while a
/// rotation is unfinished, and read again to finish it.
fn pending_path(key_file: &Path) -> PathBuf {
    key_file.with_file_name(format!(
        "{}.new",
        key_file.file_name().unwrap_or_default().to_string_lossy()
    ))
}

pub async fn rotate(ctx: &Context, new_key_stdin: bool) -> Result<(), Failure> {
    let ch = &ctx.channels;
    ch.operator()
        .require_editor("rotate the master key")
        .map_err(ServiceError::from)?;
    let old = ch.key().map_err(|e| ServiceError::from(e.clone()))?;
    let given = if new_key_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            Failure::invalid(format!("cannot read the new key from standard input: {e}"))
        })?;
        let text = zeroize::Zeroizing::new(text.trim().to_string());
        let key = MasterKey::from_base64(&text, KeySource::Config).map_err(ServiceError::from)?;
        Some((key, text))
    } else {
        None
    };
    let actor = ch.operator().name.clone();
    match old.source().clone() {
        KeySource::File(path) => {
            let pending = pending_path(&path);
            if let Some((_, text)) = &given
                && !pending.exists()
            {
                let mut f = crate::fsutil::create_private_file(&pending).map_err(|e| {
                    Failure::invalid(format!("cannot write {}: {e}", pending.display()))
                })?;
                std::io::Write::write_all(&mut f, format!("{}\n", text.as_str()).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| {
                        Failure::invalid(format!("cannot write {}: {e}", pending.display()))
                    })?;
            }
            // Made now, or left by an interrupted rotation: either way it is the new key.
            let new = MasterKey::load_or_create_file(&pending, true).map_err(ServiceError::from)?;
            if new.id() == old.id() {
                return Err(Failure::invalid(
                    "the new key is the key in use: nothing to rotate",
                ));
            }
            let done = key_rotation::rotate(ch.store().as_ref(), old, &new, &actor).await?;
            let backup = path.with_file_name(format!(
                "{}.{}.bak",
                path.file_name().unwrap_or_default().to_string_lossy(),
                old.id()
            ));
            let moved =
                std::fs::rename(&path, &backup).and_then(|_| std::fs::rename(&pending, &path));
            moved.map_err(|e| Failure {
                code: super::exit::FAILURE,
                message: format!(
                    "the secrets are re-sealed under key {}, but the key files could not be \
                     swapped ({e}): move {} to {} by hand",
                    new.id(),
                    pending.display(),
                    path.display()
                ),
            })?;
            say!(
                "Re-sealed {} secret(s) of {} connection(s) and {} agent(s) under key {}. \
                 The key file {} holds the new key; the old one is kept as {} — delete it \
                 once no backup of the database made before now is needed.",
                done.secrets,
                done.connections,
                done.agents,
                new.id(),
                path.display(),
                backup.display()
            );
        }
        KeySource::Config => {
            let Some((new, _)) = given else {
                return Err(Failure::invalid(
                    "the key in use comes from FLAMETREE_SECRETS_MASTER_KEY or \
                     secrets.master_key, where flametree cannot write: give the new key on \
                     standard input with --new-key-stdin (make one with: head -c32 \
                     /dev/urandom | base64)",
                ));
            };
            if new.id() == old.id() {
                return Err(Failure::invalid(
                    "the new key is the key in use: nothing to rotate",
                ));
            }
            let done = key_rotation::rotate(ch.store().as_ref(), old, &new, &actor).await?;
            say!(
                "Re-sealed {} secret(s) of {} connection(s) and {} agent(s) under key {}. \
                 Now put the new key in FLAMETREE_SECRETS_MASTER_KEY (or secrets.master_key) \
                 everywhere flametree runs on this database.",
                done.secrets,
                done.connections,
                done.agents,
                new.id()
            );
        }
    }
    Ok(())
}
