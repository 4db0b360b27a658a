//! One story about the store, told against SQLite and against a fresh PostgreSQL database.

mod common;

use flametree::model::{Attachment, DesiredState, EnvVar, LogLine, NewConnection, Status};
use flametree::secrets::{KeySource, MasterKey, SecretString};
use flametree::store::{self, AuditNote, Backend, StoreError};
use std::collections::BTreeMap;

fn note(actor: &str, action: &str) -> AuditNote {
    AuditNote::new(actor, action, "")
}

fn new_connection(tenant_id: i64, type_key: &str, name: &str) -> NewConnection {
    let key = MasterKey::from_bytes([5; 32], KeySource::Config);
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "bot_token".to_string(),
        key.seal("bot_token", &SecretString::new(common::TG_TOKEN), 1),
    );
    NewConnection {
        tenant_id,
        type_key: type_key.into(),
        name: name.into(),
        description: "first".into(),
        fields: BTreeMap::new(),
        secrets,
        env: vec![EnvVar {
            name: "TELEGRAM_POLL_TIMEOUT".into(),
            value: "5".into(),
        }],
    }
}

async fn story(url: &str, expected: Backend) {
    let s = store::open(url, 5, 4).await.expect("store opens");
    assert_eq!(s.backend(), expected);

    // Tenants are created on first use and isolate names.
    let acme = s.tenant("acme").await.unwrap();
    assert_eq!(s.tenant("acme").await.unwrap(), acme);
    let other = s.tenant("other").await.unwrap();
    assert_ne!(acme.id, other.id);

    // Create, then find by name case-insensitively; the row keeps everything given.
    let sales = s
        .insert_connection(
            &new_connection(acme.id, "telegram", "Sales bot"),
            &note("ann", "create"),
        )
        .await
        .unwrap();
    assert_eq!(sales.version, 1);
    assert_eq!(sales.status, Status::Stopped);
    assert_eq!(sales.desired, DesiredState::Stopped);
    assert_eq!(sales.updated_by, "ann");
    assert_eq!(sales.env[0].name, "TELEGRAM_POLL_TIMEOUT");
    let found = s
        .connection_by_name(acme.id, "SALES BOT")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, sales.id);
    assert_eq!(found.secrets["bot_token"].count, 1);

    // Names are unique per tenant, case-insensitively; another tenant may reuse one.
    let dup = s
        .insert_connection(
            &new_connection(acme.id, "telegram", "sales BOT"),
            &note("ann", "create"),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate { .. }), "{dup:?}");
    s.insert_connection(
        &new_connection(other.id, "telegram", "Sales bot"),
        &note("bo", "create"),
    )
    .await
    .unwrap();
    let alpha = s
        .insert_connection(
            &new_connection(acme.id, "email", "alpha mail"),
            &note("ann", "create"),
        )
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_connections(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["alpha mail", "Sales bot"]);

    // Optimistic concurrency: two operators open version 1; the second save is refused.
    let mut ann_copy = found.clone();
    ann_copy.description = "ann's".into();
    let saved = s
        .update_connection(&ann_copy, &note("ann", "update"))
        .await
        .unwrap();
    assert_eq!(saved.version, 2);
    assert_eq!(saved.description, "ann's");
    let mut bo_copy = found.clone();
    bo_copy.description = "bo's".into();
    let conflict = s
        .update_connection(&bo_copy, &note("bo", "update"))
        .await
        .unwrap_err();
    match &conflict {
        StoreError::Conflict { by, .. } => assert_eq!(by, "ann"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(conflict.to_string().contains("your changes were not saved"));
    let current = s.connection(sales.id).await.unwrap().unwrap();
    assert_eq!(
        current.description, "ann's",
        "nothing was silently overwritten"
    );

    // Renaming onto an existing name is a duplicate, not a crash.
    let mut rename = current.clone();
    rename.name = "Alpha Mail".into();
    assert!(matches!(
        s.update_connection(&rename, &note("ann", "update")).await,
        Err(StoreError::Duplicate { .. })
    ));

    // Every kind of write moves the change marker a watcher polls.
    let mut marker = s.change_marker(acme.id).await.unwrap();
    let elsewhere = s.change_marker(other.id).await.unwrap();
    let mut moved = |m: (i64, i64, i64)| {
        let changed = m != marker;
        marker = m;
        changed
    };
    s.set_desired_state(sales.id, DesiredState::Stopped, &note("ann", "stop"))
        .await
        .unwrap();
    assert!(
        moved(s.change_marker(acme.id).await.unwrap()),
        "desired state"
    );
    s.set_status(sales.id, Status::Stopped, "checked")
        .await
        .unwrap();
    assert!(moved(s.change_marker(acme.id).await.unwrap()), "status");
    assert!(!moved(s.change_marker(acme.id).await.unwrap()), "idle");
    assert_eq!(
        s.change_marker(other.id).await.unwrap(),
        elsewhere,
        "another tenant's writes do not move it"
    );

    // Desired state and status transitions with their time.
    s.set_desired_state(sales.id, DesiredState::Running, &note("ann", "start"))
        .await
        .unwrap();
    s.set_status(sales.id, Status::Starting, "").await.unwrap();
    let starting = s.connection(sales.id).await.unwrap().unwrap();
    assert_eq!(starting.desired, DesiredState::Running);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.set_status(sales.id, Status::Error, "Telegram rejected the bot token")
        .await
        .unwrap();
    let errored = s.connection(sales.id).await.unwrap().unwrap();
    assert_eq!(errored.status, Status::Error);
    assert_eq!(errored.status_message, "Telegram rejected the bot token");
    assert!(errored.status_since > starting.status_since);
    s.set_status(sales.id, Status::Error, "still failing")
        .await
        .unwrap();
    let same = s.connection(sales.id).await.unwrap().unwrap();
    assert_eq!(
        same.status_since, errored.status_since,
        "since moves only on a change"
    );

    // Restart pending: the running task uses an older version than the saved one.
    s.set_status(sales.id, Status::Running, "").await.unwrap();
    s.set_running_version(sales.id, Some(1)).await.unwrap();
    assert!(
        s.connection(sales.id)
            .await
            .unwrap()
            .unwrap()
            .restart_pending()
    );
    s.set_running_version(sales.id, Some(2)).await.unwrap();
    assert!(
        !s.connection(sales.id)
            .await
            .unwrap()
            .unwrap()
            .restart_pending()
    );

    // Logs: capped per connection, newest kept, returned oldest first.
    let lines: Vec<LogLine> = (0..30)
        .map(|i| LogLine {
            connection_id: sales.id,
            at: i,
            level: "INFO".into(),
            message: format!("line {i}"),
        })
        .collect();
    s.append_logs(&lines[..20], 25).await.unwrap();
    s.append_logs(&lines[20..], 25).await.unwrap();
    let kept = s.recent_logs(sales.id, 100).await.unwrap();
    assert_eq!(kept.len(), 25);
    assert_eq!(kept.first().unwrap().message, "line 5");
    assert_eq!(kept.last().unwrap().message, "line 29");
    assert_eq!(
        s.recent_logs(sales.id, 3).await.unwrap()[0].message,
        "line 27"
    );

    // Settings.
    assert_eq!(s.setting("secrets.key_id").await.unwrap(), None);
    s.put_setting("secrets.key_id", "abcd").await.unwrap();
    s.put_setting("secrets.key_id", "ef01").await.unwrap();
    assert_eq!(
        s.setting("secrets.key_id").await.unwrap().as_deref(),
        Some("ef01")
    );
    assert_eq!(s.count_sealed_secrets().await.unwrap(), 3);

    // Agents and attachments: the database allows one inbound agent per Telegram bot.
    let support = s
        .create_agent(acme.id, "Support", &note("ann", "create"))
        .await
        .unwrap();
    let sales_agent = s
        .create_agent(acme.id, "Sales", &note("ann", "create"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_agent(acme.id, "support", &note("ann", "create"))
            .await,
        Err(StoreError::Duplicate { .. })
    ));
    let inbound = |agent_id| Attachment {
        agent_id,
        connection_id: sales.id,
        inbound: true,
    };
    s.attach(&inbound(support.id), true, &note("ann", "attach"))
        .await
        .unwrap();
    let taken = s
        .attach(&inbound(sales_agent.id), true, &note("bo", "attach"))
        .await
        .unwrap_err();
    match &taken {
        StoreError::InboundTaken {
            agent, connection, ..
        } => {
            assert_eq!(agent, "Support");
            assert_eq!(connection, "Sales bot");
        }
        other => panic!("expected InboundTaken, got {other:?}"),
    }
    // Outbound-only attachments are not limited.
    s.attach(
        &Attachment {
            inbound: false,
            ..inbound(sales_agent.id)
        },
        true,
        &note("bo", "attach"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.attachments_of_connection(sales.id).await.unwrap().len(),
        2
    );
    s.detach(support.id, sales.id, &note("ann", "detach"))
        .await
        .unwrap();
    s.attach(&inbound(sales_agent.id), true, &note("bo", "attach"))
        .await
        .unwrap();

    // Delete: a stale copy is refused; the current one goes, with its logs and attachments.
    assert!(matches!(
        s.delete_connection(alpha.id, alpha.version + 1, &note("ann", "delete"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let latest = s.connection(sales.id).await.unwrap().unwrap();
    let before_delete = s.change_marker(acme.id).await.unwrap();
    s.delete_connection(sales.id, latest.version, &note("ann", "delete"))
        .await
        .unwrap();
    assert!(s.connection(sales.id).await.unwrap().is_none());
    assert_ne!(
        s.change_marker(acme.id).await.unwrap(),
        before_delete,
        "a delete moves the change marker"
    );
    assert!(s.recent_logs(sales.id, 10).await.unwrap().is_empty());
    assert!(
        s.attachments_of_connection(sales.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.delete_connection(sales.id, latest.version, &note("ann", "delete"))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // The audit trail names who did what, newest first, and survives the delete.
    let trail = s.audit_trail(acme.id, 100).await.unwrap();
    assert_eq!(trail[0].action, "delete");
    assert_eq!(trail[0].target_name, "Sales bot");
    let actions: Vec<&str> = trail.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..4], ["create", "create", "update", "stop"]);
    assert!(trail.iter().all(|e| !e.details.contains(common::TG_TOKEN)));

    // Reopening runs migrations again without harm and sees the same data.
    drop(s);
    let again = store::open(url, 5, 2).await.unwrap();
    assert_eq!(again.list_connections(acme.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/flametree.db", dir.path().display());
    story(&url, Backend::Sqlite).await;
}

#[tokio::test]
async fn story_on_postgres() {
    let db = common::PgDb::create().await;
    story(&db.url, Backend::Postgres).await;
}

#[tokio::test]
async fn two_operators_racing_for_the_inbound_slot_one_wins() {
    let db = common::PgDb::create().await;
    let s = store::open(&db.url, 5, 8).await.unwrap();
    let t = s.tenant("default").await.unwrap();
    let c = s
        .insert_connection(
            &new_connection(t.id, "telegram", "Bot"),
            &note("ann", "create"),
        )
        .await
        .unwrap();
    let mut agents = Vec::new();
    for i in 0..6 {
        agents.push(
            s.create_agent(t.id, &format!("Agent {i}"), &note("ann", "create"))
                .await
                .unwrap(),
        );
    }
    let attempts = agents.iter().map(|a| {
        let s = s.clone();
        let att = Attachment {
            agent_id: a.id,
            connection_id: c.id,
            inbound: true,
        };
        tokio::spawn(async move { s.attach(&att, true, &note("x", "attach")).await })
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(wins, 1, "{results:?}");
}

#[tokio::test]
async fn unknown_scheme_and_unreachable_server_are_explained() {
    let err = store::open("mysql://localhost/x", 1, 1)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("use postgres://"), "{err}");
    let err = store::open("postgres://nobody:pw@127.0.0.1:1/x", 1, 1)
        .await
        .err()
        .unwrap();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

/// A stop marks STOPPING only over a live status: the ERROR a failing task has just
/// written (with its desired state set to STOPPED, which makes the runtime stop it)
/// stays, instead of a STOPPING that nothing would ever end.
async fn a_stop_never_hides_an_error(url: &str) {
    let s = store::open(url, 5, 2).await.unwrap();
    let t = s.tenant("default").await.unwrap();
    let c = s
        .insert_connection(
            &new_connection(t.id, "telegram", "Bot"),
            &note("ann", "create"),
        )
        .await
        .unwrap();
    let live = [Status::Starting, Status::Running];
    s.set_status(c.id, Status::Error, "Admin ID '999' is not an admin")
        .await
        .unwrap();
    assert!(
        !s.set_status_from(c.id, &live, Status::Stopping, "")
            .await
            .unwrap()
    );
    let now = s.connection(c.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::Error);
    assert_eq!(now.status_message, "Admin ID '999' is not an admin");
    s.set_status(c.id, Status::Running, "").await.unwrap();
    assert!(
        s.set_status_from(c.id, &live, Status::Stopping, "")
            .await
            .unwrap()
    );
    assert_eq!(
        s.connection(c.id).await.unwrap().unwrap().status,
        Status::Stopping
    );
}

#[tokio::test]
async fn a_stop_never_hides_an_error_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_stop_never_hides_an_error(&format!("sqlite://{}/f.db", dir.path().display())).await;
}

#[tokio::test]
async fn a_stop_never_hides_an_error_on_postgres() {
    let db = common::PgDb::create().await;
    a_stop_never_hides_an_error(&db.url).await;
}

/// Outbound call requests: queued by `flametree call`, claimed once by the process
/// holding the connection's lease, moved along, read back by the command.
async fn call_requests_are_claimed_once_and_read_back(url: &str) {
    use flametree::model::{CallProgress, CallState};
    let s = store::open(url, 5, 8).await.unwrap();
    let t = s.tenant("default").await.unwrap();
    let c = s
        .insert_connection(
            &new_connection(t.id, "sip", "Desk phone"),
            &note("ann", "create"),
        )
        .await
        .unwrap();
    const MINUTE: i64 = 60_000;
    let id = s
        .request_call(c.id, "+31612345678", Some("Your cake is ready"), "ann")
        .await
        .unwrap();
    let queued = s.call_request(id).await.unwrap().unwrap();
    assert_eq!(queued.state, CallState::Queued);
    assert_eq!(queued.callee, "+31612345678");
    assert_eq!(queued.opening.as_deref(), Some("Your cake is ready"));
    assert_eq!(queued.requested_by, "ann");
    assert_eq!(queued.claimed_by, None);
    assert!(queued.requested_at > 0 && queued.answered_at.is_none());
    assert_eq!(s.queued_call_connections().await.unwrap(), vec![c.id]);

    // Only the lease holder claims, and only once, however many try at the same time.
    assert!(s.claim_call(c.id, "p1", MINUTE).await.unwrap().is_none());
    s.acquire_lease(c.id, "p1", 15_000).await.unwrap().unwrap();
    assert!(s.claim_call(c.id, "p2", MINUTE).await.unwrap().is_none());
    let tries = (0..6).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.claim_call(c.id, "p1", MINUTE).await.unwrap() })
    });
    let claimed: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].state, CallState::Dialing);
    assert_eq!(claimed[0].claimed_by.as_deref(), Some("p1"));
    assert!(s.queued_call_connections().await.unwrap().is_empty());
    assert!(
        !s.cancel_queued_call(id, "gave up").await.unwrap(),
        "claimed"
    );

    // Progress: the Call-ID and reason stay once given; the end is final.
    let dialing = CallProgress {
        call_id: "a84b4c76e66710@flametree".into(),
        ..CallProgress::to(CallState::Dialing)
    };
    s.update_call(id, &dialing).await.unwrap();
    s.update_call(
        id,
        &CallProgress::to(CallState::Ringing).because("180 Ringing"),
    )
    .await
    .unwrap();
    s.update_call(id, &CallProgress::to(CallState::Answered))
        .await
        .unwrap();
    let done = CallProgress {
        duration_secs: Some(12),
        ..CallProgress::to(CallState::Completed).because("ended by the callee")
    };
    s.update_call(id, &done).await.unwrap();
    s.update_call(id, &CallProgress::to(CallState::Failed).because("late"))
        .await
        .unwrap();
    let ended = s.call_request(id).await.unwrap().unwrap();
    assert_eq!(ended.state, CallState::Completed);
    assert_eq!(ended.call_id, "a84b4c76e66710@flametree");
    assert_eq!(ended.reason, "ended by the callee");
    assert_eq!(ended.duration_secs, Some(12));
    assert!(ended.answered_at.is_some() && ended.ended_at.is_some());

    // A request nobody picked up: the command cancels it; one too old is not dialed.
    let unclaimed = s
        .request_call(c.id, "+31612345679", None, "bo")
        .await
        .unwrap();
    assert!(s.cancel_queued_call(unclaimed, "nobody").await.unwrap());
    let r = s.call_request(unclaimed).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.reason.as_str()),
        (CallState::Canceled, "nobody")
    );
    let stale = s
        .request_call(c.id, "+31612345670", None, "bo")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(s.claim_call(c.id, "p1", 5).await.unwrap().is_none());
    let r = s.call_request(stale).await.unwrap().unwrap();
    assert_eq!(r.state, CallState::Canceled);
    assert!(
        r.reason.contains("no process ran the connection"),
        "{}",
        r.reason
    );
    assert!(s.call_request(9_999_999).await.unwrap().is_none());
}

#[tokio::test]
async fn call_requests_are_claimed_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    call_requests_are_claimed_once_and_read_back(&format!(
        "sqlite://{}/f.db",
        dir.path().display()
    ))
    .await;
}

#[tokio::test]
async fn call_requests_are_claimed_once_on_postgres() {
    let db = common::PgDb::create().await;
    call_requests_are_claimed_once_and_read_back(&db.url).await;
}
