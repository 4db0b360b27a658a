//! Several flametree processes on one database: fenced leases on the database's clock,
//! dead owners, consoles that hand channels to `serve`, and connections nobody runs —
//! on SQLite and PostgreSQL.

mod common;

use common::{Be, KEY_B64};
use flametree::model::{Connection, DesiredState, Status};
use flametree::runtime::{Options, Pipeline, RunChannels, Runtime};
use flametree::sandbox::telegram::TelegramSandbox;
use flametree::store::{
    AuditNote, Fence, LeaseRead, LedgerEntry, LedgerState, ProcessInfo, WriteOp, WriteResult,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "7100000001:AAEmanyProcessesTokenValue0000000001";

type Env = common::ChannelsEnv;

async fn add_bot(env: &Env, api: &str) -> Connection {
    let draft = common::telegram_draft("Alpha", TOKEN, api);
    let c = env.channels.add(&draft).await.unwrap().connection;
    let echo = common::runtime::echo_agent(env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    c
}

/// Alpha on the echo agent and Beta (with `token`) on none; their API is nowhere.
async fn two_bots(env: &Env, token: &str) -> (Connection, Connection) {
    let alpha = add_bot(env, "http://127.0.0.1:9").await;
    let draft = common::telegram_draft("Beta", token, "http://127.0.0.1:9");
    (alpha, env.channels.add(&draft).await.unwrap().connection)
}

async fn start(env: &Env) {
    let c = env.channels.find("Alpha").await.unwrap();
    env.channels
        .set_desired(&c, DesiredState::Running)
        .await
        .unwrap();
}

async fn wait_for(
    env: &Env,
    what: &str,
    secs: u64,
    ok: impl Fn(&Connection) -> bool,
) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = env.channels.find("Alpha").await.unwrap();
        if ok(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {} {:?} '{}'",
            c.status,
            c.desired,
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An owner whose leases lapsed or were expired gets none of them back by renewing,
/// and counts none held.
async fn renews_nothing(store: &dyn flametree::store::Store, owner: &str) {
    assert!(
        store.renew_leases(owner, 15_000).await.unwrap().is_empty(),
        "a renewal after the fact gives nothing back"
    );
    assert_eq!(store.renew_leases_counted(owner, 15_000).await.unwrap(), 0);
}

fn entry(key: &str) -> LedgerEntry {
    LedgerEntry {
        key: key.into(),
        account: String::new(),
        customer: "1".into(),
        display_name: String::new(),
        text: "hi".into(),
        raw: String::new(),
    }
}

/// A process's leases end together (one row is renewed for all of them): taking one
/// more never shortens the others, a renewal extends them all, and once its owner is
/// declared dead every one of them is free.
async fn an_owner_s_leases_end_together_and_taking_one_never_shortens_the_others(be: Be) {
    let env = common::channels_env_on(be).await;
    let (a, b) = two_bots(&env, "7100000003:AAEmanyProcessesTokenValue0000000003").await;
    let store = env.channels.store().clone();
    let tenant = env.channels.tenant().id;
    let expires_in = async |id: i64| {
        store
            .leases(tenant)
            .await
            .unwrap()
            .into_iter()
            .find(|l| l.connection_id == id)
            .map(|l| l.expires_in_ms)
            .unwrap()
    };
    assert_eq!(
        store.acquire_lease(a.id, "web1:1:1", 60_000).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.acquire_lease(b.id, "web1:1:1", 1_000).await.unwrap(),
        Some(1)
    );
    assert!(
        expires_in(a.id).await > 50_000,
        "not shortened by taking another"
    );
    assert!(
        expires_in(b.id).await > 50_000,
        "it ends with the owner's others"
    );
    assert_eq!(
        store
            .renew_leases_counted("web1:1:1", 120_000)
            .await
            .unwrap(),
        2
    );
    assert!(expires_in(a.id).await > 110_000);
    assert!(expires_in(b.id).await > 110_000);
    assert_eq!(
        store.acquire_lease(b.id, "web2:2:2", 15_000).await.unwrap(),
        None,
        "held"
    );
    assert_eq!(store.expire_leases_of("web1:1:1").await.unwrap(), 2);
    assert!(store.lease_holders().await.unwrap().is_empty());
    assert_eq!(
        store.acquire_lease(b.id, "web2:2:2", 15_000).await.unwrap(),
        Some(2)
    );
    renews_nothing(&*store, "web1:1:1").await;
    assert_eq!(
        store.acquire_lease(a.id, "web2:2:2", 15_000).await.unwrap(),
        Some(2)
    );
    assert_eq!(store.lease_holders().await.unwrap(), ["web2:2:2"]);
}

async fn a_takeover_bumps_the_generation_and_fences_the_old_owner(be: Be) {
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "http://127.0.0.1:9").await;
    let store = env.channels.store().clone();
    assert_eq!(
        store.acquire_lease(c.id, "web1:1:1", 200).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.acquire_lease(c.id, "web1:1:1", 200).await.unwrap(),
        Some(1),
        "a renewal"
    );
    assert_eq!(
        store.acquire_lease(c.id, "web2:2:2", 15_000).await.unwrap(),
        None,
        "held"
    );
    until(
        "the lease expired on the database's clock",
        10,
        async || store.leases(env.channels.tenant().id).await.unwrap()[0].expires_in_ms < 0,
    )
    .await;
    // When it lapsed is its owner's lapse, which the console shows ("no process is
    // running it since …"), not the far future its own row holds.
    let lapsed = store.leases(env.channels.tenant().id).await.unwrap()[0].expires_at;
    assert!(
        lapsed <= store.db_now().await.unwrap(),
        "lapsed at {lapsed}"
    );
    store.forget_process("web1:1:1").await.unwrap();
    assert_eq!(
        store.leases(env.channels.tenant().id).await.unwrap()[0].expires_at,
        lapsed,
        "a lapsed owner that still names a lease keeps its row"
    );
    renews_nothing(&*store, "web1:1:1").await;
    assert_eq!(
        store.acquire_lease(c.id, "web2:2:2", 15_000).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .renew_leases_counted("web2:2:2", 15_000)
            .await
            .unwrap(),
        1
    );

    let pipe = Pipeline::start(env.channels.clone(), 100);
    let write = |owner: &str, generation: i64, key: &str| WriteOp::Receive {
        connection_id: c.id,
        entries: std::sync::Arc::new(vec![entry(key)]),
        cursor: Some("5".into()),
        fence: Some(Fence {
            owner: owner.into(),
            generation,
        }),
    };
    let late = pipe
        .writer
        .write(write("web1:1:1", 1, "late"))
        .await
        .unwrap();
    assert_eq!(
        late,
        WriteResult::Fenced,
        "the old owner's late write is refused"
    );
    assert_eq!(store.ledger_state(c.id, "late").await.unwrap(), None);
    assert_eq!(store.cursor(c.id).await.unwrap(), None, "nor its cursor");
    let now = pipe
        .writer
        .write(write("web2:2:2", 2, "now"))
        .await
        .unwrap();
    assert!(matches!(now, WriteResult::Received(_)), "{now:?}");
    let claim = WriteOp::Claim {
        connection_id: c.id,
        key: "now".into(),
        fence: Some(Fence {
            owner: "web1:1:1".into(),
            generation: 1,
        }),
    };
    assert_eq!(pipe.writer.write(claim).await.unwrap(), WriteResult::Fenced);
    assert_eq!(
        store.renew_leases("web2:2:2", 15_000).await.unwrap(),
        vec![(c.id, 2)],
        "all of a process's leases in one statement"
    );
}

async fn a_dead_process_on_this_host_gives_its_leases_back_at_once(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, &sandbox.url()).await;
    start(&env).await;
    // A predecessor on this host crashed a moment ago, its lease good for another minute.
    let host = whoami::hostname().unwrap();
    let dead = format!("{host}:4000000:1");
    let store = env.channels.store();
    assert!(
        store
            .acquire_lease(c.id, &dead, 60_000)
            .await
            .unwrap()
            .is_some()
    );
    store
        .set_status(c.id, Status::Running, "polling as @alpha_bot")
        .await
        .unwrap();
    let runtime = Runtime::launch(env.channels.clone(), 100);
    let took = Instant::now();
    wait_for(&env, "taken over", 10, |c| {
        c.status == Status::Running && c.running_version.is_some()
    })
    .await;
    assert!(
        took.elapsed() < Duration::from_secs(10),
        "not the whole minute"
    );
    sandbox.inject_message(TOKEN, 3, "Ann", "anyone there?");
    assert_eq!(
        sandbox
            .wait_sent(TOKEN, 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    let lease = &store.leases(env.channels.tenant().id).await.unwrap()[0];
    assert_eq!(lease.owner, runtime.owner());
    assert_eq!(lease.generation, 2);
    runtime.shutdown().await;
}

fn serve_heartbeat(id: &str) -> ProcessInfo {
    ProcessInfo {
        id: id.into(),
        host: "web9".into(),
        pid: 77,
        role: "serve".into(),
        tenant: "default".into(),
        runs_channels: true,
        started_at: 0,
        seen_ms_ago: 0,
    }
}

fn console(env: &Env) -> Runtime {
    let pipe = Pipeline::start(env.channels.clone(), 100);
    Runtime::start(
        pipe,
        Options {
            role: "console",
            run_channels: RunChannels::Auto,
            ..Options::default()
        },
    )
}

async fn a_console_in_auto_mode_leaves_channels_to_a_live_serve(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, &sandbox.url()).await;
    let store = env.channels.store().clone();
    store
        .heartbeat(&serve_heartbeat("web9:77:1"))
        .await
        .unwrap();
    start(&env).await;
    let runtime = console(&env);
    let mut presence = runtime.presence();
    let seen = tokio::time::timeout(
        Duration::from_secs(10),
        presence.wait_for(|p| p.others.iter().any(|o| o.role == "serve")),
    )
    .await
    .expect("the console sees the serve")
    .unwrap()
    .clone();
    assert!(!seen.runs_here);
    assert_eq!(seen.summary(), "channels run in serve@web9");
    runtime.wake();
    assert_eq!(runtime.running_here(), 0);
    assert_eq!(
        sandbox.calls(TOKEN, "getme"),
        0,
        "the console touched nothing"
    );

    // The serve goes away: the console runs the channel itself.
    store.forget_process("web9:77:1").await.unwrap();
    wait_for(&env, "RUNNING in the console", 15, |c| {
        c.status == Status::Running
    })
    .await;
    assert!(runtime.presence().borrow().runs_here);

    // A serve appears: the console hands over without recording a stop.
    store
        .heartbeat(&serve_heartbeat("web9:78:2"))
        .await
        .unwrap();
    until("handed over", 15, async || runtime.running_here() == 0).await;
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(
        c.status,
        Status::Running,
        "no STOPPED flash while handing over"
    );
    assert_eq!(c.desired, DesiredState::Running);
    let leases = store.leases(env.channels.tenant().id).await.unwrap();
    assert!(
        leases.iter().all(|l| l.owner != runtime.owner()),
        "the lease was given back"
    );
    runtime.shutdown().await;
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(
        c.status,
        Status::Running,
        "quitting a console that runs nothing stops nothing"
    );
}

async fn a_running_connection_nobody_runs_says_so(be: Be) {
    let env = common::channels_env_on(be).await;
    let c = add_bot(&env, "http://127.0.0.1:9").await;
    start(&env).await;
    let store = env.channels.store();
    store.acquire_lease(c.id, "web1:1:1", 1).await.unwrap();
    store
        .set_status(c.id, Status::Running, "polling as @alpha_bot")
        .await
        .unwrap();
    until("the lease expired", 10, async || {
        store.leases(env.channels.tenant().id).await.unwrap()[0].expires_in_ms < 0
    })
    .await;
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    let text = cli.ok(&["channels", "status"], None);
    assert!(
        text.contains("RUNNING wanted · no process is running it since"),
        "{text}"
    );
    assert!(
        text.contains("start `flametree serve` or a console"),
        "{text}"
    );
    let json = cli.json(&["channels", "status"]);
    assert!(json[0]["owner_gone_since"].is_string(), "{json}");
    store
        .set_desired_state(
            c.id,
            DesiredState::Stopped,
            &AuditNote::new("t", "stop", ""),
        )
        .await
        .unwrap();
    let json = cli.json(&["channels", "status"]);
    assert!(
        json[0]["owner_gone_since"].is_null(),
        "not wanted: not missing"
    );
}

fn serve(env: &Env, name: &str) -> Child {
    common::runtime::serve(env, name, false)
}

use common::runtime::signal;

async fn owner_pid(env: &Env) -> Option<u32> {
    let leases = env
        .channels
        .store()
        .leases(env.channels.tenant().id)
        .await
        .unwrap();
    let l = leases.iter().find(|l| l.expires_in_ms >= 0)?;
    l.owner.rsplit(':').nth(1)?.parse().ok()
}

async fn kill_9_of_the_owner_hands_the_bot_to_the_other_serve_losing_nothing(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, &sandbox.url()).await;
    start(&env).await;
    let mut a = serve(&env, "a");
    let mut b = serve(&env, "b");
    wait_for(&env, "RUNNING", 20, |c| c.status == Status::Running).await;
    for i in 0..5 {
        sandbox.inject_message(TOKEN, 8, "Ann", &format!("before {i}"));
    }
    sandbox.wait_sent(TOKEN, 5, Duration::from_secs(10)).await;
    let owner = owner_pid(&env).await.expect("an owner");
    let (victim, survivor) = if owner == a.id() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    signal(victim, "-KILL");
    let _ = victim.wait();
    let killed = Instant::now();
    for i in 0..5 {
        sandbox.inject_message(TOKEN, 8, "Ann", &format!("after {i}"));
    }
    let sent = sandbox.wait_sent(TOKEN, 10, Duration::from_secs(25)).await;
    assert_eq!(sent.len(), 10, "every message answered");
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "taken over within 20 s"
    );
    let mut texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 10, "none answered twice");
    assert_eq!(owner_pid(&env).await, Some(survivor.id()));
    signal(survivor, "-TERM");
    let _ = survivor.wait();
}

async fn a_paused_owner_stops_instead_of_polling_alongside_the_new_one(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, &sandbox.url()).await;
    start(&env).await;
    let mut a = serve(&env, "a");
    wait_for(&env, "RUNNING", 20, |c| c.status == Status::Running).await;
    let mut b = serve(&env, "b");
    signal(&a, "-STOP");
    // b takes over once a's lease expires (15 s on the database's clock).
    until("b owns the bot", 30, async || {
        owner_pid(&env).await == Some(b.id())
    })
    .await;
    sandbox.inject_message(TOKEN, 9, "Ann", "who answers?");
    sandbox.wait_sent(TOKEN, 1, Duration::from_secs(10)).await;
    signal(&a, "-CONT");
    // a notices it lost the lease and stops its task; b keeps the bot.
    let a_log = env.dir.path().join("a.log");
    for i in 0..3 {
        sandbox.inject_message(TOKEN, 9, "Ann", &format!("after {i}"));
    }
    let sent = sandbox.wait_sent(TOKEN, 4, Duration::from_secs(20)).await;
    assert_eq!(sent.len(), 4, "each answered once");
    let c = env.channels.find("Alpha").await.unwrap();
    let store = env.channels.store().clone();
    let said = async || {
        let lines = store.recent_logs(c.id, 500).await.unwrap();
        lines.iter().any(|l| {
            l.message.contains("lost the lease")
                || l.message
                    .contains("another process took this connection over")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !said().await {
        assert!(
            Instant::now() < deadline,
            "the paused owner never said why it stopped:\n{}",
            std::fs::read_to_string(&a_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(owner_pid(&env).await, Some(b.id()));
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(c.status, Status::Running);
    assert_eq!(c.desired, DesiredState::Running, "nobody stopped the bot");
    for p in [&mut a, &mut b] {
        signal(p, "-TERM");
        let _ = p.wait();
    }
}

/// A process died while running a connection (killed, or its terminal hung up) and the
/// operator then stopped the connection: the next process that runs channels records
/// STOPPED instead of leaving the dead process's RUNNING on screen forever, and says why
/// in its log. A connection whose live owner is still stopping it is left to that owner.
async fn a_connection_stopped_after_its_process_died_is_recorded_stopped(be: Be) {
    let env = common::channels_env_on(be).await;
    let alpha = add_bot(&env, "http://127.0.0.1:9").await;
    let draft = common::telegram_draft("Bravo", TOKEN, "http://127.0.0.1:9");
    let bravo = env.channels.add(&draft).await.unwrap().connection;
    let store = env.channels.store();
    let note = AuditNote::new("t", "stop", "");
    // Alpha: its owner on another machine died; its lease has run out.
    store.acquire_lease(alpha.id, "web1:1:1", 1).await.unwrap();
    store
        .set_status(alpha.id, Status::Running, "polling as @alpha_bot")
        .await
        .unwrap();
    // Bravo: a live owner is stopping it right now and holds its lease.
    store
        .acquire_lease(bravo.id, "web2:2:2", 600_000)
        .await
        .unwrap();
    store
        .set_status(bravo.id, Status::Stopping, "")
        .await
        .unwrap();
    for id in [alpha.id, bravo.id] {
        store
            .set_desired_state(id, DesiredState::Stopped, &note)
            .await
            .unwrap();
    }
    until("Alpha's lease ran out", 10, async || {
        let leases = store.leases(env.channels.tenant().id).await.unwrap();
        leases
            .iter()
            .any(|l| l.connection_id == alpha.id && l.expires_in_ms < 0)
    })
    .await;

    let runtime = Runtime::launch(env.channels.clone(), 100);
    let c = wait_for(&env, "recorded STOPPED", 10, |c| {
        c.status == Status::Stopped
    })
    .await;
    assert_eq!(c.status_message, "");
    assert_eq!(c.desired, DesiredState::Stopped);
    let log = common::runtime::log_text(&env, "Alpha", "ended without stopping it").await;
    assert!(
        log.contains(
            "stopped: the process that ran it ended without stopping it (RUNNING until then)"
        ),
        "{log}"
    );
    let me = runtime.owner().to_string();
    runtime.shutdown().await;
    let b = env.channels.find("Bravo").await.unwrap();
    assert_eq!(
        b.status,
        Status::Stopping,
        "its live owner records the stop"
    );
    let leases = store.leases(env.channels.tenant().id).await.unwrap();
    let owner = |id| {
        leases
            .iter()
            .find(|l| l.connection_id == id)
            .map(|l| l.owner.clone())
    };
    assert_eq!(owner(bravo.id).as_deref(), Some("web2:2:2"));
    assert_ne!(owner(alpha.id).as_deref(), Some(me.as_str()), "given back");
}

/// The same, with the dead process's lease still running when the runtime first looks:
/// the connection is settled as soon as the lease lapses, not at the next full pass
/// (30 s on SQLite, 5 minutes on PostgreSQL).
async fn an_abandoned_connection_is_settled_once_its_lease_lapses(be: Be) {
    let env = common::channels_env_on(be).await;
    let alpha = add_bot(&env, "http://127.0.0.1:9").await;
    let store = env.channels.store();
    store
        .acquire_lease(alpha.id, "web1:1:1", 3_000)
        .await
        .unwrap();
    store
        .set_status(alpha.id, Status::Running, "polling as @alpha_bot")
        .await
        .unwrap();
    store
        .set_desired_state(
            alpha.id,
            DesiredState::Stopped,
            &AuditNote::new("t", "stop", ""),
        )
        .await
        .unwrap();
    let runtime = Runtime::launch(env.channels.clone(), 100);
    wait_for(&env, "recorded STOPPED after the lease lapsed", 15, |c| {
        c.status == Status::Stopped
    })
    .await;
    runtime.shutdown().await;
}

/// What the runtime reads every few seconds instead of whole rows and every lease: each
/// connection's wanted and actual state, and the owners still holding a lease.
/// Takes the connection's lease for `owner` for a minute, as another process would.
async fn take_lease(env: &Env, connection_id: i64, owner: &str) {
    let taken = env
        .channels
        .store()
        .acquire_lease(connection_id, owner, 60_000);
    assert!(taken.await.unwrap().is_some(), "{owner} got the lease");
}

async fn the_runtime_reads_states_and_lease_holders_not_whole_rows(be: Be) {
    let env = common::channels_env_on(be).await;
    let (alpha, beta) = two_bots(&env, "7100000002:AAEmanyProcessesTokenValue0000000002").await;
    start(&env).await;
    let store = env.channels.store();
    let mut states = store
        .connection_states(env.channels.tenant().id)
        .await
        .unwrap();
    states.sort_by_key(|s| s.id);
    let seen: Vec<_> = states.iter().map(|s| (s.id, s.desired, s.status)).collect();
    assert_eq!(
        seen,
        [
            (alpha.id, DesiredState::Running, Status::Stopped),
            (beta.id, DesiredState::Stopped, Status::Stopped),
        ]
    );

    assert!(store.lease_holders().await.unwrap().is_empty());
    take_lease(&env, alpha.id, "web1:1:1").await;
    take_lease(&env, beta.id, "web2:2:2").await;
    let mut holders = store.lease_holders().await.unwrap();
    holders.sort();
    assert_eq!(holders, ["web1:1:1", "web2:2:2"]);
    // A dead owner's expired leases stay in the table, but it holds nothing any more.
    assert_eq!(store.expire_leases_of("web2:2:2").await.unwrap(), 1);
    assert_eq!(store.lease_holders().await.unwrap(), ["web1:1:1"]);
    store.release_lease(alpha.id, "web1:1:1").await.unwrap();
    assert!(store.lease_holders().await.unwrap().is_empty());
}

async fn a_look_around_renews_the_leases_and_a_pulse_sees_changes_and_waiting_messages(be: Be) {
    let env = common::channels_env_on(be).await;
    let alpha = add_bot(&env, "http://127.0.0.1:9").await;
    start(&env).await;
    let store = env.channels.store();
    let tenant = env.channels.tenant().id;
    take_lease(&env, alpha.id, "web1:1:1").await;
    let expires_in = |leases: Vec<flametree::store::LeaseInfo>| {
        leases
            .iter()
            .find(|l| l.connection_id == alpha.id)
            .unwrap()
            .expires_in_ms
    };

    // The heartbeat and the renewal in one round; a round without it renews nothing.
    let round = store
        .presence_round(
            &serve_heartbeat("web1:1:1"),
            tenant,
            LeaseRead::All,
            Some(600_000),
        )
        .await
        .unwrap();
    assert_eq!(round.renewed, Some(1));
    assert!(expires_in(round.leases) > 500_000, "renewed to 10 minutes");
    assert!(round.processes.iter().any(|p| p.id == "web1:1:1"));
    let other = store
        .presence_round(&serve_heartbeat("web2:2:2"), tenant, LeaseRead::All, None)
        .await
        .unwrap();
    assert_eq!(other.renewed, None);
    assert!(
        expires_in(other.leases) > 500_000,
        "not shortened by another's round"
    );
    let none = store
        .presence_round(
            &serve_heartbeat("web2:2:2"),
            tenant,
            LeaseRead::Nothing,
            Some(600_000),
        )
        .await
        .unwrap();
    assert_eq!(none.renewed, Some(0), "it holds no lease");

    // The pulse: the change marker moves with a write, and says when a message waits.
    let first = store.pulse(tenant, true).await.unwrap();
    assert!(!first.inbound_waiting);
    assert_eq!(
        first.marker,
        Some(store.change_marker(tenant).await.unwrap())
    );
    assert_eq!(
        store.pulse(tenant, true).await.unwrap(),
        first,
        "nothing changed"
    );
    store
        .set_status(alpha.id, Status::Error, "cannot reach Telegram")
        .await
        .unwrap();
    let moved = store.pulse(tenant, true).await.unwrap();
    assert_ne!(moved.marker, first.marker, "a write moves the marker");
    assert_eq!(store.pulse(tenant, false).await.unwrap().marker, None);
    store.ledger_receive(alpha.id, "update-1").await.unwrap();
    assert!(store.pulse(tenant, false).await.unwrap().inbound_waiting);
    store
        .ledger_mark(alpha.id, "update-1", LedgerState::Answered)
        .await
        .unwrap();
    assert!(!store.pulse(tenant, true).await.unwrap().inbound_waiting);

    // SQLite's pulse also says when the agents changed (the runtime then looks their
    // routes up again); PostgreSQL announces that instead.
    let before = store.pulse(tenant, false).await.unwrap().agent_changes;
    let agent = env
        .channels
        .create_agent("Support", Default::default())
        .await
        .unwrap();
    let created = store.pulse(tenant, false).await.unwrap().agent_changes;
    env.channels
        .attach_connection(&agent, &alpha, false)
        .await
        .unwrap();
    let attached = store.pulse(tenant, true).await.unwrap().agent_changes;
    match be {
        Be::Sqlite => {
            assert_ne!(created, before, "creating an agent moves the counter");
            assert_ne!(attached, created, "attaching a channel moves the counter");
            assert_eq!(
                store.pulse(tenant, true).await.unwrap().agent_changes,
                attached,
                "nothing changed"
            );
        }
        Be::Postgres => assert_eq!((before, created, attached), (None, None, None)),
    }
}

/// Starting thousands of connections is one supervisor pass longer than a lease (10,000
/// took 30 s): leases taken at its start lapsed before it ended, and half the tasks
/// stopped as if another process had taken them over. Here each lease is made slow to
/// take (0.4 s, a trigger in the database) so that 50 connections take 20 s to start.
/// PostgreSQL only: SQLite cannot wait inside a statement; the pass is the same code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_longer_than_a_lease_renews_the_leases_as_it_goes() {
    use sqlx::Connection as _;
    const BOTS: usize = 50;
    let env = common::channels_env_on(Be::Postgres).await;
    let mut db = sqlx::PgConnection::connect(&env.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_lease() RETURNS trigger AS $$ \
         BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_lease BEFORE INSERT ON connection_leases \
         FOR EACH ROW EXECUTE FUNCTION slow_lease();",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..BOTS {
        let token = format!("71{i:08}:AAEmanyProcessesTokenValue{i:010}");
        let draft = common::telegram_draft(&format!("Bot {i}"), &token, "http://127.0.0.1:9");
        let c = env.channels.add(&draft).await.unwrap().connection;
        env.channels
            .set_desired(&c, DesiredState::Running)
            .await
            .unwrap();
        ids.push(c.id);
    }
    let store = env.channels.store();
    let tenant = env.channels.tenant().id;
    let began = Instant::now();
    let runtime = Runtime::launch(env.channels.clone(), 100);
    until("every connection leased", 60, async || {
        store.leases(tenant).await.unwrap().len() == BOTS
    })
    .await;
    let took = began.elapsed();
    assert!(
        took > Duration::from_secs(15),
        "the start must outlast a lease (15 s) to show anything; it took {took:?}"
    );
    // The first renewal after the pass is when lapsed leases were found lost.
    let newest = store
        .leases(tenant)
        .await
        .unwrap()
        .iter()
        .map(|l| l.expires_at)
        .max()
        .unwrap();
    until("a renewal after the start", 20, async || {
        let leases = store.leases(tenant).await.unwrap();
        leases.iter().any(|l| l.expires_at > newest)
    })
    .await;
    let leases = store.leases(tenant).await.unwrap();
    let owners: std::collections::HashSet<_> = leases.iter().map(|l| l.owner.clone()).collect();
    assert_eq!(owners.len(), 1, "one process holds them all: {owners:?}");
    assert!(
        leases
            .iter()
            .all(|l| l.expires_in_ms > 0 && l.generation == 1),
        "every lease unexpired and never taken again: {leases:?}"
    );
    for id in &ids {
        let lines = store.recent_logs(*id, 100).await.unwrap();
        assert!(
            !lines.iter().any(|l| l.message.contains("lost the lease")),
            "connection {id}: {:?}",
            lines.iter().map(|l| &l.message).collect::<Vec<_>>()
        );
    }
    runtime.shutdown().await;
}

on_both!(
    the_runtime_reads_states_and_lease_holders_not_whole_rows,
    a_look_around_renews_the_leases_and_a_pulse_sees_changes_and_waiting_messages,
    an_abandoned_connection_is_settled_once_its_lease_lapses,
    a_connection_stopped_after_its_process_died_is_recorded_stopped,
    a_takeover_bumps_the_generation_and_fences_the_old_owner,
    an_owner_s_leases_end_together_and_taking_one_never_shortens_the_others,
    a_dead_process_on_this_host_gives_its_leases_back_at_once,
    a_console_in_auto_mode_leaves_channels_to_a_live_serve,
    a_running_connection_nobody_runs_says_so,
    kill_9_of_the_owner_hands_the_bot_to_the_other_serve_losing_nothing,
    a_paused_owner_stops_instead_of_polling_alongside_the_new_one,
);

async fn a_mistyped_tenant_is_an_error_and_serve_can_run_every_tenant(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    let second = "7100000002:AAEmanyProcessesTokenValue0000000002";
    sandbox.add_bot(second, "beta_bot");
    let env = common::channels_env_on(be).await;
    add_bot(&env, &sandbox.url()).await;
    start(&env).await;
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    // Another tenant with a bot of its own, made the way an operator would.
    let draft = common::telegram_draft("Beta", second, &sandbox.url());
    let beta_env = env
        .channels
        .for_tenant(env.channels.store().tenant("emea").await.unwrap());
    let beta = beta_env.add(&draft).await.unwrap().connection;
    let agent = beta_env
        .create_agent("Nordic", common::runtime::echo_edit("Hej: "))
        .await
        .unwrap();
    beta_env
        .attach_connection(&agent, &beta, true)
        .await
        .unwrap();
    beta_env.run_agent(&agent, true).await.unwrap();
    let beta = beta_env.find("Beta").await.unwrap();
    beta_env
        .set_desired(&beta, DesiredState::Running)
        .await
        .unwrap();

    let r = cli.run(&["channels", "list", "--tenant", "emae"], None);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr().contains("there is no tenant 'emae'"),
        "{}",
        r.all()
    );
    assert!(r.stderr().contains("'default', 'emea'"), "{}", r.all());
    let tenants = env.channels.store().tenants().await.unwrap();
    assert_eq!(tenants.len(), 2, "nothing was created");

    let mut child = Command::new(env!("CARGO_BIN_EXE_flametree"))
        .args(["serve", "--all-tenants"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("FLAMETREE_GENERAL_DATA_DIR", env.dir.path())
        .env("FLAMETREE_DATABASE_URL", &env.url)
        .env("FLAMETREE_HTTP_LISTEN", "127.0.0.1:0")
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&env, "RUNNING", 20, |c| c.status == Status::Running).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while beta_env.find("Beta").await.unwrap().status != Status::Running {
        assert!(
            Instant::now() < deadline,
            "the second tenant's bot never ran"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    sandbox.inject_message(second, 4, "Bo", "hej");
    let sent = sandbox.wait_sent(second, 1, Duration::from_secs(10)).await;
    assert_eq!(
        sent[0].text, "Hej: hej",
        "answered by its own tenant's agent"
    );
    signal(&child, "-TERM");
    let _ = child.wait();
}

on_both!(a_mistyped_tenant_is_an_error_and_serve_can_run_every_tenant);

async fn fifty_bots_two_serves_and_a_console_each_message_answered_once_by_one_poller(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    let env = common::channels_env_on(be).await;
    let echo = common::runtime::echo_agent(&env).await;
    let tokens: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{}:AAEfiftyBotsTestTokenValue0000{i:06}",
                7_200_000_000u64 + i
            )
        })
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        sandbox.add_bot(t, &format!("bot{i}"));
        let draft = common::telegram_draft(&format!("Bot {i:02}"), t, &sandbox.url());
        let c = env.channels.add(&draft).await.unwrap().connection;
        env.channels
            .attach_connection(&echo, &c, true)
            .await
            .unwrap();
        env.channels
            .set_desired(&c, DesiredState::Running)
            .await
            .unwrap();
    }
    env.channels.run_agent(&echo, true).await.unwrap();
    let mut a = serve(&env, "a");
    let mut b = serve(&env, "b");
    let store = env.channels.store().clone();
    until("both serves announced themselves", 20, async || {
        let all = store.processes().await.unwrap();
        all.iter()
            .filter(|p| p.role == "serve" && p.runs_channels)
            .count()
            == 2
    })
    .await;
    let console = console(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = env.channels.list().await.unwrap();
        if all.iter().all(|c| c.status == Status::Running) {
            break;
        }
        assert!(Instant::now() < deadline, "not all bots started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for round in 0..3 {
        for (i, t) in tokens.iter().enumerate() {
            sandbox.inject_message(t, 1000 + i as i64, "Ann", &format!("m{round}"));
        }
    }
    for t in &tokens {
        let sent = sandbox.wait_sent(t, 3, Duration::from_secs(30)).await;
        let mut texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
        texts.sort();
        assert_eq!(
            texts,
            ["You said: m0", "You said: m1", "You said: m2"],
            "{t}"
        );
    }
    let overlaps: usize = tokens.iter().map(|t| sandbox.overlapping_polls(t)).sum();
    assert_eq!(overlaps, 0, "no bot was polled by two processes at once");
    assert_eq!(
        console.running_here(),
        0,
        "the console left the bots to serve"
    );
    let leases = env
        .channels
        .store()
        .leases(env.channels.tenant().id)
        .await
        .unwrap();
    let owners: std::collections::HashSet<&str> = leases.iter().map(|l| l.owner.as_str()).collect();
    assert!(
        owners.len() <= 2 && !owners.contains(console.owner()),
        "{owners:?}"
    );
    console.shutdown().await;
    for p in [&mut a, &mut b] {
        signal(p, "-TERM");
        let _ = p.wait();
    }
}

on_both!(fifty_bots_two_serves_and_a_console_each_message_answered_once_by_one_poller);

/// A private cluster of this test's own, restarted while messages keep coming: `serve`
/// and a console recover by themselves, and every message is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_traffic_is_survived_without_an_operator() {
    use sqlx::Connection as _;
    let cluster = common::pg_cluster::PgCluster::start(Default::default()).unwrap();
    let mut admin = sqlx::PgConnection::connect(&cluster.admin_url())
        .await
        .unwrap();
    sqlx::raw_sql("CREATE DATABASE flametree")
        .execute(&mut admin)
        .await
        .unwrap();
    drop(admin);
    let url = format!("postgres://postgres@127.0.0.1:{}/flametree", cluster.port);
    let env = common::channels_env_at(tempfile::tempdir().unwrap(), url, None).await;
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN, "alpha_bot");
    add_bot(&env, &sandbox.url()).await;
    start(&env).await;
    let mut serve = serve(&env, "a");
    wait_for(&env, "RUNNING", 20, |c| c.status == Status::Running).await;
    for i in 0..5 {
        sandbox.inject_message(TOKEN, 5, "Ann", &format!("before {i}"));
    }
    sandbox.wait_sent(TOKEN, 5, Duration::from_secs(10)).await;

    // A 17 s outage: longer than the lease, the case that once stopped a bot for good.
    let restart = {
        let cluster = &cluster;
        let sandbox = &sandbox;
        async move {
            let down =
                tokio::task::block_in_place(|| cluster.restart_after(Duration::from_secs(17)));
            down.unwrap();
            let _ = sandbox;
        }
    };
    let traffic = async {
        for i in 0..10 {
            sandbox.inject_message(TOKEN, 5, "Ann", &format!("during {i}"));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::join!(restart, traffic);
    for i in 0..5 {
        sandbox.inject_message(TOKEN, 5, "Ann", &format!("after {i}"));
    }
    let sent = sandbox.wait_sent(TOKEN, 20, Duration::from_secs(60)).await;
    let mut texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    texts.sort();
    let total = texts.len();
    texts.dedup();
    assert_eq!(total, 20, "every message answered: {texts:?}");
    assert_eq!(texts.len(), 20, "none twice");
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(
        c.desired,
        DesiredState::Running,
        "nobody had to press Start"
    );
    wait_for(&env, "RUNNING again", 20, |c| c.status == Status::Running).await;
    signal(&serve, "-TERM");
    let _ = serve.wait();
}
