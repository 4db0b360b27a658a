//! `flametree info` and `flametree audit`.

use super::Failure;
use super::view::{print_json, table};
use crate::context::Context;
use crate::model::format_millis;
use serde_json::json;

pub async fn info(ctx: &Context, json: bool) -> Result<(), Failure> {
    let loaded = &ctx.loaded;
    let ch = &ctx.channels;
    let store = ch.store();
    let (key_line, key_id) = match ch.key() {
        Ok(k) => (
            format!("{} ({})", k.id(), k.source()),
            Some(k.id().to_string()),
        ),
        Err(e) => (format!("unavailable: {e}"), None),
    };
    let problems = ch.undecryptable().await?;
    let processes: Vec<_> = store
        .processes()
        .await
        .map_err(crate::channels::ServiceError::from)?
        .into_iter()
        .filter(crate::runtime::presence::alive)
        .collect();
    let config_file = loaded
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "none (built-in defaults)".into());
    if json {
        print_json(&json!({
            "config_file": loaded.file,
            "env_overrides": loaded.env_overrides,
            "data_dir": loaded.data_dir,
            "database": store.describe(),
            "backend": store.backend().name(),
            "tenant": ch.tenant().name,
            "operator": ch.operator().name,
            "role": ch.operator().role.as_str(),
            "key_file": loaded.key_file,
            "key_id": key_id,
            "key": key_line,
            "undecryptable_secrets": problems,
            "meta_app_configured": loaded.config.meta.configured(),
            "processes": processes.iter().map(|p| json!({
                "host": p.host, "pid": p.pid, "role": p.role, "tenant": p.tenant,
                "runs_channels": p.runs_channels,
                "since": crate::model::rfc3339(p.started_at),
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    say!("Config file:    {config_file}");
    if !loaded.env_overrides.is_empty() {
        say!("Env overrides:  {}", loaded.env_overrides.join(", "));
    }
    say!("Data directory: {}", loaded.data_dir.display());
    say!(
        "Database:       {} ({})",
        store.describe(),
        store.backend().name()
    );
    say!("Tenant:         {}", ch.tenant().name);
    say!("Operator:       {}", ch.operator());
    say!("Key file:       {}", loaded.key_file.display());
    say!("Master key:     {key_line}");
    if processes.is_empty() {
        say!("Processes:      none alive (no console or `flametree serve` runs channels)");
    } else {
        say!(
            "Processes:      {} alive on this database:",
            processes.len()
        );
        for p in &processes {
            say!(
                "  - {} on {} (pid {}), tenant {}, since {}{}",
                p.role,
                p.host,
                p.pid,
                p.tenant,
                format_millis(p.started_at),
                if p.runs_channels {
                    ", runs channels"
                } else {
                    ""
                }
            );
        }
    }
    if problems.is_empty() {
        say!("Secrets:        all stored secrets can be decrypted");
    } else {
        say!("Secrets:        {} cannot be decrypted:", problems.len());
        for p in &problems {
            say!("  - {p}");
        }
    }
    Ok(())
}

pub async fn audit(ctx: &Context, limit: u32, json: bool) -> Result<(), Failure> {
    let ch = &ctx.channels;
    let entries = ch
        .store()
        .audit_trail(ch.tenant().id, limit)
        .await
        .map_err(crate::channels::ServiceError::from)?;
    if json {
        let out: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "at": crate::model::rfc3339(e.at), "actor": e.actor, "action": e.action,
                    "target_kind": e.target_kind, "target_id": e.target_id,
                    "target_name": e.target_name, "details": e.details, "db_user": e.db_user,
                })
            })
            .collect();
        print_json(&out);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_millis(e.at),
                match &e.db_user {
                    Some(db) if db != &e.actor => format!("{} (db: {db})", e.actor),
                    _ => e.actor.clone(),
                },
                e.action.clone(),
                format!("{} '{}'", e.target_kind, e.target_name),
                e.details.clone(),
            ]
        })
        .collect();
    say!(
        "{}",
        table(&["WHEN", "WHO", "ACTION", "TARGET", "DETAILS"], &rows)
    );
    Ok(())
}
