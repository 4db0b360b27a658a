//! `channels add --meta-sign-in`: Facebook Login for Devices from the command line.

use super::{Failure, exit};
use crate::catalog::ChannelType;
use crate::channels::Draft;
use crate::connectors::meta::signin::{self, App};
use crate::context::Context;
use std::io::{BufRead, IsTerminal, Write};

pub async fn fill_draft(
    ctx: &Context,
    ty: &ChannelType,
    pick: Option<usize>,
    draft: &mut Draft,
) -> Result<(), Failure> {
    if !ty.meta_advanced_mode {
        return Err(Failure::invalid(format!(
            "--meta-sign-in is for WhatsApp, Instagram and Facebook, not {}",
            ty.name
        )));
    }
    let meta = &ctx.loaded.config.meta;
    if !meta.configured() {
        return Err(Failure::invalid(
            "Meta App ID and App Secret are not configured on the server: set meta.app_id, \
             meta.app_secret and meta.client_token in the config, or give the credentials with \
             --set and --secrets-stdin (Advanced mode)",
        ));
    }
    let fail = |message: String| Failure {
        code: exit::FAILURE,
        message,
    };
    let app = App::from_config(meta);
    let http = crate::connectors::http_client();
    let code = signin::start(&app, &http, &ty.key).await.map_err(fail)?;
    esay!(
        "Sign in with Meta: open {} and enter the code {} (it expires in {} minutes).\n\
         Waiting for you to approve… (Ctrl-C cancels)",
        code.verification_uri,
        code.user_code,
        code.expires_in.as_secs().div_ceil(60)
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            s.cancel();
        }
    });
    let user_token = signin::wait(&app, &http, &code, &stop).await;
    ctrl_c.abort();
    let user_token = user_token.map_err(fail)?;
    let (choices, _) = signin::discover(&app, &http, &user_token, &ty.key)
        .await
        .map_err(fail)?;
    if choices.is_empty() {
        return Err(fail(format!(
            "the Meta account you approved with reaches nothing this {} connection can use: check \
             that it manages the page or WhatsApp Business Account, and that the app asked for \
             the permissions ({})",
            ty.name,
            signin::scopes(&ty.key)
        )));
    }
    esay!("The account reaches:");
    for (i, c) in choices.iter().enumerate() {
        esay!("  {}) {c}", i + 1);
    }
    let n = match pick {
        Some(n) => n,
        None if choices.len() == 1 => 1,
        None if std::io::stdin().is_terminal() => ask(choices.len())?,
        None => {
            return Err(Failure::invalid(format!(
                "{} choices: pass --pick N to take one",
                choices.len()
            )));
        }
    };
    let choice = choices.get(n.wrapping_sub(1)).ok_or_else(|| {
        Failure::invalid(format!(
            "--pick {n}: there are {} choices (1–{})",
            choices.len(),
            choices.len()
        ))
    })?;
    let (fields, secrets) = signin::fill(&app, choice);
    draft.fields.extend(fields);
    draft.secrets.extend(secrets);
    esay!("Using {choice}.");
    Ok(())
}

fn ask(n: usize) -> Result<usize, Failure> {
    loop {
        eprint!("Pick one [1-{n}]: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Failure::invalid("no choice made"));
        }
        match line.trim().parse::<usize>() {
            Ok(k) if (1..=n).contains(&k) => return Ok(k),
            _ => esay!("Type a number from 1 to {n}."),
        }
    }
}
