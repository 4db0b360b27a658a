//! Signing in with Meta from the console: the code to approve on facebook.com/device,
//! then a pick of what the account reaches, which fills the open form.

use crate::connectors::meta::signin::{self, App as MetaApp};
use crate::secrets::SecretString;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Something the account reaches, and what picking it fills in.
#[derive(Debug, Clone)]
pub struct Pick {
    pub label: String,
    pub fields: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretString>,
}

#[derive(Debug)]
pub enum Update {
    Code {
        user_code: String,
        uri: String,
        minutes: u64,
    },
    Picks(Vec<Pick>),
    Failed(String),
}

pub enum Stage {
    Starting,
    Waiting {
        user_code: String,
        uri: String,
        minutes: u64,
    },
    Choose {
        picks: Vec<Pick>,
        selected: usize,
    },
    Failed(String),
}

/// The overlay's state; dropping it (Esc) cancels the polling.
pub struct SignIn {
    pub type_name: String,
    pub stage: Stage,
    pub stop: CancellationToken,
}

impl SignIn {
    pub fn apply(&mut self, update: Update) {
        self.stage = match update {
            Update::Code {
                user_code,
                uri,
                minutes,
            } => Stage::Waiting {
                user_code,
                uri,
                minutes,
            },
            Update::Picks(picks) if picks.is_empty() => Stage::Failed(format!(
                "The Meta account you approved with reaches nothing this {} connection can use: \
                 check that it manages the page or WhatsApp Business Account and granted the \
                 permissions.",
                self.type_name
            )),
            Update::Picks(picks) => Stage::Choose { picks, selected: 0 },
            Update::Failed(why) => Stage::Failed(why),
        };
    }
}

/// Runs the whole flow, reporting each step; ends early when `stop` is cancelled.
pub async fn run(
    app: MetaApp,
    type_key: String,
    stop: CancellationToken,
    out: mpsc::UnboundedSender<super::worker::Msg>,
) {
    let send = |u: Update| {
        let _ = out.send(super::worker::Msg::SignIn(u));
    };
    let http = crate::connectors::http_client();
    let code = match signin::start(&app, &http, &type_key).await {
        Ok(c) => c,
        Err(e) => return send(Update::Failed(e)),
    };
    send(Update::Code {
        user_code: code.user_code.clone(),
        uri: code.verification_uri.clone(),
        minutes: code.expires_in.as_secs().div_ceil(60),
    });
    let token = match signin::wait(&app, &http, &code, &stop).await {
        Ok(t) => t,
        Err(_) if stop.is_cancelled() => return,
        Err(e) => return send(Update::Failed(e)),
    };
    match signin::discover(&app, &http, &token, &type_key).await {
        Ok((choices, _)) => send(Update::Picks(
            choices
                .iter()
                .map(|c| {
                    let (fields, secrets) = signin::fill(&app, c);
                    Pick {
                        label: c.to_string(),
                        fields,
                        secrets,
                    }
                })
                .collect(),
        )),
        Err(e) => send(Update::Failed(e)),
    }
}
