//! `flametree serve` and `flametree channels start|stop|status|logs`.

use super::view::{print_json, table};
use super::{ChannelsCmd, Failure};
use crate::channels::ServiceError;
use crate::context::Context;
use crate::model::{DesiredState, format_millis, rfc3339};
use crate::runtime::RunChannels;
use crate::runtime::host::Host;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(ctx: Context, all_tenants: bool) -> Result<(), Failure> {
    let cfg = ctx.loaded.config.clone();
    let ctx_url = ctx.loaded.database_url.clone();
    let channels = Arc::new(ctx.channels);
    esay!(
        "flametree serve: tenant '{}' on {} — running every connection whose desired state is RUNNING; \
         SIGTERM or Ctrl-C stops them cleanly",
        channels.tenant().name,
        channels.store().describe()
    );
    let mode = match RunChannels::parse(&cfg.runtime.run_channels) {
        Ok(RunChannels::Never) => RunChannels::Never,
        Ok(_) => RunChannels::Always,
        Err(e) => return Err(Failure::invalid(e)),
    };
    let feed = crate::store::feed::ChangeFeed::start(&ctx_url).await;
    let host = Host::start(channels, &cfg, "serve", mode, feed).await;
    if mode == RunChannels::Never {
        esay!("flametree serve: runtime.run_channels = never: receiving webhooks only");
    }
    match (&host.ingress, &host.ingress_problem) {
        (Some(i), _) => esay!(
            "flametree serve: webhooks on {} (public address {})",
            i.addr,
            i.public_base
        ),
        (None, Some(p)) => esay!("flametree serve: {p}"),
        (None, None) => {}
    }
    let mut others: Vec<(i64, crate::runtime::Runtime)> = Vec::new();
    if all_tenants && mode != RunChannels::Never {
        let signal = wait_for_signal();
        tokio::pin!(signal);
        loop {
            start_other_tenants(&host, &cfg, &mut others).await;
            tokio::select! {
                _ = &mut signal => break,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    } else {
        wait_for_signal().await;
    }
    let running =
        host.runtime.running_here() + others.iter().map(|(_, r)| r.running_here()).sum::<usize>();
    esay!("flametree serve: stopping {running} running channel(s)…");
    futures::future::join_all(others.iter().map(|(_, r)| r.shutdown())).await;
    host.shutdown().await;
    esay!("flametree serve: stopped");
    Ok(())
}

/// `serve --all-tenants`: a supervisor for every tenant besides the first one's, on
/// the same pipeline and ingress.
async fn start_other_tenants(
    host: &Host,
    cfg: &crate::config::Config,
    others: &mut Vec<(i64, crate::runtime::Runtime)>,
) {
    let base = host.pipe.channels.clone();
    let tenants = match base.store().tenants().await {
        Ok(t) => t,
        Err(e) => {
            esay!("flametree serve: cannot list the tenants: {e}");
            return;
        }
    };
    for t in tenants {
        if t.id == base.tenant().id || others.iter().any(|(id, _)| *id == t.id) {
            continue;
        }
        esay!("flametree serve: running tenant '{}' too", t.name);
        let id = t.id;
        let channels = Arc::new(base.for_tenant(t));
        let options = crate::runtime::Options {
            feed: host.feed.clone(),
            ..crate::runtime::Options::from_config(
                cfg,
                host.ingress.as_ref().map(|i| i.addr),
                "serve",
                RunChannels::Always,
            )
        };
        others.push((
            id,
            crate::runtime::Runtime::start_for(host.pipe.clone(), channels, options),
        ));
    }
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The console's terminal hung up (an SSH session dropped). Without a handler the
/// process would die on the spot, leaving its channels' statuses and its last log lines
/// unwritten; with one it ends as after `q`. Only the console listens: `serve` under
/// `nohup` must keep ignoring it.
pub async fn wait_for_hangup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            hup.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

pub async fn channels(ctx: &Context, cmd: ChannelsCmd, json: bool) -> Result<(), Failure> {
    match cmd {
        ChannelsCmd::Start { name } => desire(ctx, &name, DesiredState::Running, json).await,
        ChannelsCmd::Stop { name } => desire(ctx, &name, DesiredState::Stopped, json).await,
        ChannelsCmd::Status { name } => status(ctx, name.as_deref(), json).await,
        ChannelsCmd::Logs {
            name,
            follow,
            lines,
        } => logs(ctx, &name, follow, lines, json).await,
        _ => Ok(()),
    }
}

async fn desire(
    ctx: &Context,
    name: &str,
    desired: DesiredState,
    json: bool,
) -> Result<(), Failure> {
    let c = ctx.channels.find(name).await?;
    let ty = crate::channels::channel_type(&c.type_key)?;
    if !ty.has_start_stop() {
        return Err(Failure::invalid(format!(
            "{} connections have no Start/Stop: they start and stop with the agents they are attached to",
            ty.name
        )));
    }
    ctx.channels.set_desired(&c, desired).await?;
    let verb = if desired == DesiredState::Running {
        "Start"
    } else {
        "Stop"
    };
    if json {
        print_json(
            &json!({"name": c.name, "desired_state": desired.as_str(), "status": c.status.as_str()}),
        );
    } else {
        say!(
            "{verb} requested for '{}' (now {}). A running console or `flametree serve` acts on it within a second or two.",
            c.name,
            c.status
        );
    }
    Ok(())
}

async fn status(ctx: &Context, name: Option<&str>, json: bool) -> Result<(), Failure> {
    let list = match name {
        Some(n) => vec![ctx.channels.find(n).await?],
        None => ctx.channels.list().await?,
    };
    let store = ctx.channels.store();
    let leases = store
        .leases(ctx.channels.tenant().id)
        .await
        .map_err(ServiceError::from)?
        .into_iter()
        .map(|l| (l.connection_id, l))
        .collect();
    let db_now = store.db_now().await.map_err(ServiceError::from)?;
    let gone =
        |c: &crate::model::Connection| crate::runtime::presence::owner_gone(c, &leases, db_now);
    if json {
        let out: Vec<_> = list
            .iter()
            .map(|c| {
                let owner_gone = gone(c);
                json!({
                    "name": c.name, "status": c.status.as_str(), "status_message": c.status_message,
                    "status_since": rfc3339(c.status_since), "desired_state": c.desired.as_str(),
                    "restart_pending": c.restart_pending(),
                    "owner_gone_since": owner_gone.map(rfc3339),
                })
            })
            .collect();
        // One connection asked for: one object, as `show NAME --json` gives.
        match (name, out.as_slice()) {
            (Some(_), [one]) => print_json(one),
            _ => print_json(&out),
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let mut message = match gone(c) {
                Some(since) => crate::runtime::presence::owner_gone_message(since),
                None => c.status_message.clone(),
            };
            if c.restart_pending() {
                message = format!("restart pending. {message}");
            }
            vec![
                c.name.clone(),
                crate::tui::view::list_status_word(c.status, c.desired),
                format_millis(c.status_since),
                message,
            ]
        })
        .collect();
    say!("{}", table(&["NAME", "STATUS", "SINCE", "MESSAGE"], &rows));
    Ok(())
}

async fn logs(
    ctx: &Context,
    name: &str,
    follow: bool,
    lines: u32,
    json: bool,
) -> Result<(), Failure> {
    let c = ctx.channels.find(name).await?;
    let store = ctx.channels.store();
    let all = store
        .logs_after(c.id, 0, u32::MAX)
        .await
        .map_err(ServiceError::from)?;
    let skip = all.len().saturating_sub(lines as usize);
    let mut last = all.last().map(|(id, _)| *id).unwrap_or(0);
    for (_, line) in &all[skip..] {
        print_line(line, &c.name, json);
    }
    if !follow {
        return Ok(());
    }
    // PostgreSQL announces new lines; elsewhere (or if the feed is gone) look every
    // 500 ms.
    let feed = crate::store::feed::ChangeFeed::start(&ctx.loaded.database_url).await;
    let mut changes = feed.as_ref().map(|f| f.subscribe());
    loop {
        let wait = match changes.as_mut() {
            Some(rx) => Duration::from_secs(30).min(loop {
                tokio::select! {
                    change = rx.recv() => match change {
                        Ok(crate::store::feed::Change::Log { connection_id }) if connection_id == c.id => break Duration::ZERO,
                        Ok(crate::store::feed::Change::Log { .. }) | Ok(crate::store::feed::Change::Connection { .. }) | Ok(crate::store::feed::Change::Agents { .. }) | Ok(crate::store::feed::Change::CallRequested { .. }) => continue,
                        Ok(crate::store::feed::Change::Resync) | Err(_) => break Duration::ZERO,
                    },
                    _ = tokio::time::sleep(Duration::from_secs(30)) => break Duration::ZERO,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }),
            None => Duration::from_millis(500),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let more = store
            .logs_after(c.id, last, 1000)
            .await
            .map_err(ServiceError::from)?;
        for (id, line) in &more {
            print_line(line, &c.name, json);
            last = *id;
        }
    }
}

/// One line; with `--json`, one JSON object per line (times in RFC 3339 UTC, as every
/// other `--json` output gives them).
fn print_line(l: &crate::model::LogLine, connection: &str, json: bool) {
    if json {
        let v = json!({
            "connection": connection, "connection_id": l.connection_id,
            "at": rfc3339(l.at), "level": l.level, "message": l.message,
        });
        say!("{v}");
    } else {
        say!("{} {:<5} {}", format_millis(l.at), l.level, l.message);
    }
}
