//! Email over IMAP and SMTP: every mail account of the connection watched by a task of
//! its own (IDLE, or polling), each new mail recorded with the account's cursor
//! (UIDVALIDITY and last UID) before it is flagged on the server, and replies sent over
//! SMTP from the account that received the mail, threaded as a mail client threads them.

mod account;
mod imap;
mod mailbox;
mod message;
mod smtp;
mod tls;

use super::{ConnConfig, Connector, ConnectorError, Outbound, Receiver};
use account::Account;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub use message::Thread;

pub struct Email {
    accounts: Vec<Account>,
    transports: Vec<smtp::Transport>,
    trust: tls::Trust,
    settings: mailbox::Settings,
}

pub fn open(cfg: ConnConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    let accounts = account::accounts(&cfg)?;
    let trust = tls::trust(cfg.env("EMAIL_CA_CERT").as_deref())?;
    let transports = accounts
        .iter()
        .map(|a| smtp::transport(a, &trust))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = mailbox::Settings::from_config(&cfg, &accounts)?;
    Ok(Arc::new(Email {
        accounts,
        transports,
        trust,
        settings,
    }))
}

#[async_trait]
impl Connector for Email {
    async fn verify(&self) -> Result<String, ConnectorError> {
        let checks = self
            .accounts
            .iter()
            .zip(&self.transports)
            .map(|(a, t)| async move {
                let mut session = imap::login(a, &self.trust.client).await?;
                let _ = session.logout().await;
                smtp::check(a, t).await?;
                info!("{}: IMAP login and SMTP authentication work", a.label());
                Ok::<(), ConnectorError>(())
            });
        let results = futures::future::join_all(checks).await;
        // A permanent failure is what the operator must fix; report it before a blip.
        let mut transient = None;
        for r in results {
            match r {
                Ok(()) => {}
                Err(e @ ConnectorError::Transient { .. }) => transient = transient.or(Some(e)),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = transient {
            return Err(e);
        }
        let logins: Vec<&str> = self.accounts.iter().map(|a| a.login.as_str()).collect();
        Ok(match logins.as_slice() {
            [one] => format!("mailbox {one}"),
            many => format!("{} mailboxes: {}", many.len(), many.join(", ")),
        })
    }

    async fn receive(&self, rx: &Receiver) -> Result<(), ConnectorError> {
        let shared = mailbox::Shared::load(rx, self.accounts.len()).await;
        let watchers = self
            .accounts
            .iter()
            .map(|a| mailbox::watch(a, &self.trust, &self.settings, rx, &shared));
        // One account failing for good ends them all: the connection goes to ERROR
        // naming that account.
        let mut all = futures::stream::FuturesUnordered::from_iter(watchers);
        use futures::StreamExt;
        while let Some(r) = all.next().await {
            r?;
        }
        Ok(())
    }

    /// A reply's Message-ID is derived from the mail it answers: sent again after a
    /// crash, mail servers and clients take it for the same message.
    fn idempotent_replies(&self) -> bool {
        true
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        to.trim()
            .parse::<lettre::Address>()
            .map(|_| ())
            .map_err(|_| format!("'{to}' is not a mail address (name@example.com)"))
    }

    async fn send(&self, out: &Outbound<'_>) -> Result<String, ConnectorError> {
        let i = self.account_index(out.account)?;
        let account = &self.accounts[i];
        let thread: Option<Thread> = out.context.and_then(|c| serde_json::from_str(c).ok());
        let (message, id) = smtp::compose(
            account,
            out.to.trim(),
            out.text,
            thread.as_ref(),
            out.in_reply_to,
        )?;
        let copy = self
            .settings
            .sent_folder
            .as_ref()
            .map(|_| message.formatted());
        smtp::send(account, &self.transports[i], message).await?;
        if let (Some(folder), Some(bytes)) = (&self.settings.sent_folder, copy)
            && let Err(e) = self.save_copy(account, folder, &bytes).await
        {
            warn!(
                "{}: the reply was sent but not saved in '{folder}': {e}",
                account.label()
            );
        }
        Ok(id)
    }
}

impl Email {
    fn account_index(&self, account: &str) -> Result<usize, ConnectorError> {
        let account = account.trim();
        if account.is_empty() {
            return Ok(0);
        }
        self.accounts
            .iter()
            .position(|a| {
                a.login.eq_ignore_ascii_case(account) || a.from.eq_ignore_ascii_case(account)
            })
            .ok_or_else(|| {
                let known: Vec<&str> = self.accounts.iter().map(|a| a.login.as_str()).collect();
                ConnectorError::Permanent(format!(
                    "this connection has no mail account '{account}': its accounts are {}",
                    known.join(", ")
                ))
            })
    }

    async fn save_copy(
        &self,
        account: &Account,
        folder: &str,
        bytes: &[u8],
    ) -> Result<(), ConnectorError> {
        let mut session = imap::login(account, &self.trust.client).await?;
        let saved = tokio::time::timeout(
            Duration::from_secs(30),
            session.append(folder, Some("(\\Seen)"), None, bytes),
        )
        .await;
        let _ = session.logout().await;
        match saved {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConnectorError::Permanent(format!(
                "the server refused ({e}); check EMAIL_SENT_FOLDER names an existing folder"
            ))),
            Err(_) => Err(ConnectorError::transient(
                "the server did not answer within 30 s",
            )),
        }
    }
}
