//! Watching one account's folder: new mail by UID after the stored cursor, recorded
//! before it is flagged or deleted on the server; IDLE when the server has it, polling
//! otherwise; a changed UIDVALIDITY answered by a bounded rescan.

use super::account::Account;
use super::imap::{self, ImapSession};
use super::message::{self, Incoming};
use super::tls::Trust;
use crate::connectors::retry::{self, Outcome, Policy};
use crate::connectors::{ConnConfig, ConnectorError, Event, Receiver};
use futures::TryStreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Servers end an IDLE after 30 minutes at the least (RFC 2177); re-issue it before.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// How many of the newest mails are read again after the server renumbered them.
const RESCAN: u32 = 200;
/// Mails fetched and recorded per batch.
const BATCH: usize = 50;

pub struct Settings {
    pub folder: String,
    pub use_idle: bool,
    pub poll: Duration,
    pub mark_read: bool,
    pub delete: bool,
    pub max_bytes: u64,
    pub sent_folder: Option<String>,
    /// The connection's own addresses: mail from them is never answered.
    pub own: Vec<String>,
}

impl Settings {
    pub fn from_config(cfg: &ConnConfig, accounts: &[Account]) -> Result<Settings, ConnectorError> {
        let number = |name: &str, default: u64| -> Result<u64, ConnectorError> {
            match cfg.env(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| {
                    ConnectorError::Permanent(format!("{name} is '{v}': give a whole number"))
                }),
            }
        };
        let folder = cfg
            .env("EMAIL_IMAP_FOLDER")
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "INBOX".into());
        let mut own: Vec<String> = Vec::new();
        for a in accounts {
            for addr in [&a.login, &a.from] {
                if addr.contains('@') && !own.iter().any(|o| o.eq_ignore_ascii_case(addr)) {
                    own.push(addr.clone());
                }
            }
        }
        Ok(Settings {
            folder,
            use_idle: cfg.flag("EMAIL_USE_IDLE")?,
            poll: Duration::from_secs(number("EMAIL_POLL_INTERVAL", 60)?.max(1)),
            mark_read: cfg.flag("EMAIL_MARK_AS_READ")?,
            delete: cfg.flag("EMAIL_DELETE_AFTER_READ")?,
            max_bytes: number("EMAIL_MAX_ATTACHMENT_MB", 10)?.saturating_mul(1024 * 1024),
            sent_folder: cfg
                .env("EMAIL_SENT_FOLDER")
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty()),
            own,
        })
    }
}

/// Where an account stands in its folder: mail up to `uid` under `validity` is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    #[serde(rename = "v")]
    validity: u32,
    #[serde(rename = "u")]
    uid: u32,
}

/// What the accounts of one connection share: the connection's single cursor (every
/// account's position, as JSON) and which accounts are up.
pub struct Shared<'r> {
    rx: &'r Receiver,
    positions: tokio::sync::Mutex<BTreeMap<String, Position>>,
    /// When the cursor was last stored: the rescan after a renumbering reads only mail
    /// that arrived since (older mail was handled, or predates the first start).
    stored_at: crate::model::Millis,
    up: Mutex<BTreeSet<usize>>,
    accounts: usize,
}

impl<'r> Shared<'r> {
    pub async fn load(rx: &'r Receiver, accounts: usize) -> Shared<'r> {
        let (positions, stored_at) = match rx.inbox.cursor().await {
            Some((c, at)) => (serde_json::from_str(&c).unwrap_or_default(), at),
            None => (BTreeMap::new(), 0),
        };
        Shared {
            rx,
            positions: tokio::sync::Mutex::new(positions),
            stored_at,
            up: Mutex::default(),
            accounts,
        }
    }

    async fn position(&self, login: &str) -> Option<Position> {
        self.positions.lock().await.get(login).copied()
    }

    /// Records the events and the account's new position in one durable write; the
    /// lock keeps two accounts from storing each other's older positions.
    async fn submit(
        &self,
        login: &str,
        at: Position,
        events: Vec<Event>,
    ) -> Result<(), ConnectorError> {
        let mut positions = self.positions.lock().await;
        let mut next = positions.clone();
        next.insert(login.to_string(), at);
        let cursor = serde_json::to_string(&next).unwrap_or_default();
        self.rx.inbox.submit(events, Some(cursor)).await?;
        *positions = next;
        Ok(())
    }

    async fn account_up(&self, number: usize) {
        let all = {
            let mut up = self.up.lock().expect("up lock");
            up.insert(number);
            up.len() == self.accounts
        };
        if all {
            self.rx.inbox.running("").await;
        }
    }

    fn account_down(&self, number: usize) {
        self.up.lock().expect("up lock").remove(&number);
    }
}

/// Watches one account until Stop; transient failures are retried here, so one
/// account's blip does not restart the others.
pub async fn watch(
    account: &Account,
    trust: &Trust,
    settings: &Settings,
    rx: &Receiver,
    shared: &Shared<'_>,
) -> Result<(), ConnectorError> {
    let outcome = retry::retry(
        &rx.stop,
        Policy::FOREVER,
        |w| {
            warn!("{w}");
            shared.account_down(account.number);
            let inbox = rx.inbox.clone();
            let msg = w.to_string();
            tokio::spawn(async move { inbox.degraded(&msg).await });
        },
        || session(account, trust, settings, rx, shared),
    )
    .await;
    match outcome {
        Outcome::Done(()) | Outcome::Stopped => Ok(()),
        Outcome::Failed(e) => Err(e),
    }
}

/// One IMAP session: Ok only when stopped; a dropped connection is a transient error.
async fn session(
    account: &Account,
    trust: &Trust,
    settings: &Settings,
    rx: &Receiver,
    shared: &Shared<'_>,
) -> Result<(), ConnectorError> {
    let label = account.label();
    let lost = |e: async_imap::error::Error| imap::lost(&label, &account.imap, &e);
    let mut s = imap::login(account, &trust.client).await?;
    let folder = &settings.folder;
    let mb = match s.select(folder).await {
        Ok(mb) => mb,
        Err(async_imap::error::Error::No(text)) => {
            return Err(ConnectorError::Permanent(format!(
                "{label}: the folder '{folder}' cannot be opened ({}): set EMAIL_IMAP_FOLDER to \
                 an existing folder (INBOX always is), Save, then Start",
                text.trim()
            )));
        }
        Err(e) => return Err(lost(e)),
    };
    let validity = mb.uid_validity.unwrap_or(0);
    let uid_next = mb.uid_next.unwrap_or(1);
    let idle = settings.use_idle && s.capabilities().await.map_err(lost)?.has_str("IDLE");
    let mut rescan_since = None;
    let mut last = match shared.position(&account.login).await {
        None => {
            let last = uid_next.saturating_sub(1);
            info!(
                "{label}: first start: only mail arriving in {folder} from now on is answered \
                 ({} message(s) already there are left alone)",
                mb.exists
            );
            shared
                .submit(
                    &account.login,
                    Position {
                        validity,
                        uid: last,
                    },
                    Vec::new(),
                )
                .await?;
            last
        }
        Some(p) if p.validity != validity => {
            warn!(
                "{label}: {folder} was renumbered by the server (UIDVALIDITY {} → {validity}): \
                 reading its newest {RESCAN} mails again; those answered before are recognised \
                 by their Message-ID and not answered twice",
                p.validity
            );
            rescan_since = Some(shared.stored_at);
            uid_next.saturating_sub(RESCAN + 1)
        }
        Some(p) => p.uid,
    };
    let mode = if idle {
        "IDLE".to_string()
    } else if settings.use_idle {
        format!(
            "the server has no IDLE; checking every {} s",
            settings.poll.as_secs()
        )
    } else {
        format!("checking every {} s", settings.poll.as_secs())
    };
    let mut announced = false;
    loop {
        last = fetch_new(
            &mut s,
            account,
            settings,
            validity,
            last,
            rescan_since,
            shared,
        )
        .await?;
        rescan_since = None;
        if !announced {
            info!("{label}: {mode} on {folder}");
            shared.account_up(account.number).await;
            announced = true;
        }
        if idle {
            let mut handle = s.idle();
            handle.init().await.map_err(lost)?;
            let woke = {
                let (wait, _interrupt) = handle.wait_with_timeout(IDLE_RENEW);
                tokio::select! {
                    r = wait => Some(r),
                    _ = rx.stop.cancelled() => None,
                }
            };
            match woke {
                None => return Ok(()),
                Some(Err(e)) => return Err(lost(e)),
                Some(Ok(r)) => debug!("{label}: IDLE ended: {r:?}"),
            }
            s = handle.done().await.map_err(lost)?;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll) => {}
                _ = rx.stop.cancelled() => {
                    let _ = s.logout().await;
                    return Ok(());
                }
            }
        }
    }
}

/// Records every mail after `last` (in batches) and returns the new last UID.
async fn fetch_new(
    s: &mut ImapSession,
    account: &Account,
    settings: &Settings,
    validity: u32,
    last: u32,
    rescan_since: Option<crate::model::Millis>,
    shared: &Shared<'_>,
) -> Result<u32, ConnectorError> {
    let label = account.label();
    let lost = |e: async_imap::error::Error| imap::lost(&label, &account.imap, &e);
    let heads: Vec<_> = s
        .uid_fetch(format!("{}:*", last + 1), "(UID RFC822.SIZE INTERNALDATE)")
        .await
        .map_err(lost)?
        .try_collect()
        .await
        .map_err(lost)?;
    // "n:*" also names the newest mail when nothing is newer than n.
    let mut new: Vec<(u32, u64, Option<i64>)> = heads
        .iter()
        .filter_map(|f| {
            let uid = f.uid.filter(|u| *u > last)?;
            let date = f.internal_date().map(|d| d.timestamp_millis());
            Some((uid, f.size.unwrap_or(0) as u64, date))
        })
        .collect();
    new.sort_unstable_by_key(|(uid, _, _)| *uid);
    let mut last = last;
    for chunk in new.chunks(BATCH) {
        let mut events = Vec::new();
        let mut fetch = Vec::new();
        for &(uid, size, date) in chunk {
            let older =
                rescan_since.is_some_and(|since| date.is_some_and(|d| d < since - 3_600_000));
            if older {
                continue;
            }
            if size > settings.max_bytes {
                let head = one_part(s, uid, "BODY.PEEK[HEADER]", &label, account).await?;
                events.push(Event::Ignored {
                    note: format!(
                        "{label}: mail {} is {:.1} MB, over EMAIL_MAX_ATTACHMENT_MB ({} MB); \
                         skipped, not answered",
                        message::summary(&head),
                        size as f64 / 1048576.0,
                        settings.max_bytes / 1048576
                    ),
                });
            } else {
                fetch.push(uid);
            }
        }
        if !fetch.is_empty() {
            let set = uid_set(&fetch);
            let bodies: Vec<_> = s
                .uid_fetch(&set, "(UID BODY.PEEK[])")
                .await
                .map_err(lost)?
                .try_collect()
                .await
                .map_err(lost)?;
            let mut bodies: Vec<_> = bodies
                .iter()
                .filter_map(|f| Some((f.uid?, f.body()?)))
                .collect();
            bodies.sort_unstable_by_key(|(uid, _)| *uid);
            for (uid, bytes) in bodies {
                for (name, size) in message::attachments(bytes) {
                    info!(
                        "{label}: mail UID {uid} has an attachment '{name}' ({} KB); attachments \
                         are not given to the agent",
                        size.div_ceil(1024)
                    );
                }
                let mail = Incoming {
                    account: &account.login,
                    uidvalidity: validity,
                    uid,
                    bytes,
                };
                events.push(message::event(&mail, &settings.own, &label));
            }
        }
        let newest = chunk.last().map(|(uid, _, _)| *uid).unwrap_or(last);
        shared
            .submit(
                &account.login,
                Position {
                    validity,
                    uid: newest,
                },
                events,
            )
            .await?;
        last = newest;
        // Recorded: now the server may be told.
        let set = uid_set(&chunk.iter().map(|(u, _, _)| *u).collect::<Vec<_>>());
        if settings.mark_read {
            store_flags(s, &set, "+FLAGS.SILENT (\\Seen)", &label).await;
        }
        if settings.delete {
            store_flags(s, &set, "+FLAGS.SILENT (\\Deleted)", &label).await;
            match s.expunge().await {
                Ok(stream) => {
                    let _ = stream.try_collect::<Vec<_>>().await;
                }
                Err(e) => warn!("{label}: could not delete read mail: {e}"),
            }
        }
    }
    Ok(last)
}

async fn one_part(
    s: &mut ImapSession,
    uid: u32,
    what: &str,
    label: &str,
    account: &Account,
) -> Result<Vec<u8>, ConnectorError> {
    let lost = |e: async_imap::error::Error| imap::lost(label, &account.imap, &e);
    let got: Vec<_> = s
        .uid_fetch(uid.to_string(), format!("(UID {what})"))
        .await
        .map_err(lost)?
        .try_collect()
        .await
        .map_err(lost)?;
    Ok(got
        .iter()
        .find_map(|f| f.header().or(f.body()).map(<[u8]>::to_vec))
        .unwrap_or_default())
}

async fn store_flags(s: &mut ImapSession, set: &str, what: &str, label: &str) {
    match s.uid_store(set, what).await {
        Ok(stream) => {
            if let Err(e) = stream.try_collect::<Vec<_>>().await {
                warn!("{label}: could not set flags on mail {set}: {e}");
            }
        }
        Err(e) => warn!("{label}: could not set flags on mail {set}: {e}"),
    }
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
