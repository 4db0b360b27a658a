//! `flametree channels …`

use super::input::apply_form;
use super::view::{self, connection_view, print_json, table};
use super::{AddArgs, ChannelsCmd, EditArgs, Failure, MigrateArgs};
use crate::catalog::Catalog;
use crate::channels::{Draft, Saved, channel_type};
use crate::context::Context;
use std::io::{BufRead, IsTerminal, Write};

pub fn types(json: bool) -> Result<(), Failure> {
    let catalog = Catalog::get();
    if json {
        let all: Vec<_> = catalog.types.iter().map(view::type_json).collect();
        print_json(&all);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = catalog
        .listed()
        .map(|t| {
            vec![
                t.key.clone(),
                t.display_name(),
                if t.has_start_stop() {
                    "start/stop"
                } else {
                    "with agent"
                }
                .into(),
                if t.exclusive_inbound { "one" } else { "many" }.into(),
                if t.is_multi_account() { "yes" } else { "" }.into(),
                t.fields
                    .iter()
                    .map(|f| f.key.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    say!(
        "{}",
        table(
            &[
                "KEY",
                "NAME",
                "LIFECYCLE",
                "INBOUND AGENTS",
                "MULTI",
                "FIELDS"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn run(ctx: &Context, cmd: ChannelsCmd, json: bool) -> Result<(), Failure> {
    match cmd {
        ChannelsCmd::Types => types(json),
        ChannelsCmd::List => list(ctx, json).await,
        ChannelsCmd::Add(args) => add(ctx, args, json).await,
        ChannelsCmd::Show { name } => {
            let c = ctx.channels.find(&name).await?;
            let base = public_base(ctx);
            if json {
                print_json(&connection_view(&c, &base));
            } else {
                say!("{}", view::show_text(&c, &base));
            }
            Ok(())
        }
        ChannelsCmd::Edit(args) => edit(ctx, args, json).await,
        ChannelsCmd::Migrate(args) => migrate(ctx, args, json).await,
        ChannelsCmd::Delete { name, yes } => delete(ctx, &name, yes, json).await,
        other => super::runtime_cmd::channels(ctx, other, json).await,
    }
}

/// Where webhook URLs live: `http.public_url`, or derived from `http.listen`.
fn public_base(ctx: &Context) -> String {
    ctx.loaded.config.http.public_base(None)
}

async fn list(ctx: &Context, json: bool) -> Result<(), Failure> {
    let all = ctx.channels.list().await?;
    let base = public_base(ctx);
    if json {
        let views: Vec<_> = all.iter().map(|c| connection_view(c, &base)).collect();
        print_json(&views);
        return Ok(());
    }
    let catalog = Catalog::get();
    let deprecated = |type_key: &str| catalog.find(type_key).is_some_and(|t| t.deprecated);
    let row = |c: &crate::model::Connection| {
        let v = connection_view(c, &base);
        vec![
            c.name.clone(),
            v.type_name,
            c.status.to_string(),
            if c.restart_pending() {
                format!("restart pending. {}", c.status_message)
            } else {
                c.status_message.clone()
            },
        ]
    };
    let current: Vec<_> = all
        .iter()
        .filter(|c| !deprecated(&c.type_key))
        .map(row)
        .collect();
    let legacy: Vec<_> = all
        .iter()
        .filter(|c| deprecated(&c.type_key))
        .map(row)
        .collect();
    let header = ["NAME", "TYPE", "STATUS", "MESSAGE"];
    say!("Channels ({})", current.len());
    if current.is_empty() {
        say!(
            "  none yet: add one with `flametree channels add --type telegram --name \"Sales bot\" --secrets-stdin`"
        );
    } else {
        say!("{}", table(&header, &current));
    }
    if !legacy.is_empty() {
        say!(
            "\nDeprecated Channels ({}): they still work; plan a migration",
            legacy.len()
        );
        say!("{}", table(&header, &legacy));
    }
    Ok(())
}

fn print_saved(ctx: &Context, saved: &Saved, verb: &str, json: bool) {
    for w in &saved.warnings {
        esay!("warning: {w}");
    }
    if let Some(w) =
        crate::cli::webhook_check::unreachable_webhook(&saved.connection, &public_base(ctx))
    {
        esay!("warning: {w}");
    }
    if json {
        print_json(&connection_view(&saved.connection, &public_base(ctx)));
    } else {
        let c = &saved.connection;
        let v = connection_view(c, &public_base(ctx));
        say!("{verb} '{}' ({}).", c.name, v.type_name);
        if let Some(url) = &v.webhook_url {
            say!("Webhook URL: {url}");
        }
        if c.restart_pending() {
            say!("It is running: Stop, then Start it for the changes to take effect.");
        }
    }
}

async fn add(ctx: &Context, args: AddArgs, json: bool) -> Result<(), Failure> {
    let ty = channel_type(&args.type_key)?;
    let mut draft = Draft {
        type_key: ty.key.clone(),
        name: args.name.clone(),
        ..Draft::default()
    };
    apply_form(ty, &args.form, &mut draft)?;
    if args.meta_sign_in {
        super::meta_sign_in::fill_draft(ctx, ty, args.pick, &mut draft).await?;
    }
    // As the console's New connector form does: a field left out takes the catalog's
    // default (IMAP port 993), which serves every account of a multi-account type.
    for spec in ty.fields.iter().filter(|f| !f.secret) {
        if let Some(default) = &spec.default {
            draft
                .fields
                .entry(spec.key.clone())
                .or_insert_with(|| default.clone());
        }
    }
    let saved = ctx.channels.add(&draft).await?;
    print_saved(ctx, &saved, "Added", json);
    Ok(())
}

async fn edit(ctx: &Context, args: EditArgs, json: bool) -> Result<(), Failure> {
    let existing = ctx.channels.find(&args.name).await?;
    let ty = channel_type(&existing.type_key)?;
    let mut draft = Draft::from_connection(&existing);
    if let Some(n) = &args.new_name {
        draft.name = n.clone();
    }
    apply_form(ty, &args.form, &mut draft)?;
    for name in &args.unset_env {
        let before = draft.env.len();
        draft.env.retain(|e| &e.name != name);
        if draft.env.len() == before {
            return Err(Failure::invalid(format!(
                "'{}' has no environment variable {name} to unset",
                existing.name
            )));
        }
    }
    draft
        .clear_secrets
        .extend(args.clear_secret.iter().cloned());
    let saved = ctx.channels.edit(&existing, &draft).await?;
    let verb = if saved.connection.version == existing.version {
        "Nothing changed: nothing saved for"
    } else {
        "Saved"
    };
    print_saved(ctx, &saved, verb, json);
    Ok(())
}

async fn migrate(ctx: &Context, args: MigrateArgs, json: bool) -> Result<(), Failure> {
    let old = ctx.channels.find(&args.name).await?;
    let mut draft = ctx.channels.migration_draft(&old)?;
    if let Some(n) = &args.new_name {
        draft.name = n.clone();
    }
    let ty = channel_type(&draft.type_key)?;
    apply_form(ty, &args.form, &mut draft)?;
    let done = ctx.channels.migrate(&old, &draft).await?;
    print_saved(ctx, &done.saved, "Added", json);
    if !json {
        if done.agents.is_empty() {
            say!("'{}' was attached to no agent.", old.name);
        } else {
            say!(
                "Moved to it from '{}': agent(s) {} (restart them to apply).",
                old.name,
                done.agents.join(", ")
            );
        }
        say!(
            "'{}' is stopped and stays in Deprecated Channels; delete it once the new one works.",
            old.name
        );
    }
    Ok(())
}

async fn delete(ctx: &Context, name: &str, yes: bool, json: bool) -> Result<(), Failure> {
    let existing = ctx.channels.find(name).await?;
    ctx.channels
        .operator()
        .require_editor(&format!("delete connection '{}'", existing.name))
        .map_err(|e| Failure::from(crate::channels::ServiceError::Denied(e)))?;
    if !yes
        && !confirm(&format!(
            "Delete the integration '{}'? [y/N] ",
            existing.name
        ))?
    {
        return Err(Failure::invalid(format!(
            "'{}' was not deleted: confirm with y, or pass --yes in scripts",
            existing.name
        )));
    }
    ctx.channels.delete(&existing).await?;
    if json {
        print_json(&serde_json::json!({"deleted": existing.name, "id": existing.id}));
    } else {
        say!("Deleted '{}'.", existing.name);
    }
    Ok(())
}

/// Asks on the terminal; without one there is nobody to ask, so the answer is no.
fn confirm(question: &str) -> Result<bool, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::invalid(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
