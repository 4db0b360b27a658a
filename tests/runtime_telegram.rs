//! The runtime running Telegram connections against the local Bot API sandbox.

mod common;

use flametree::model::{Connection, DesiredState, Status};
use flametree::runtime::{Options, Pipeline, Runtime};
use flametree::sandbox::telegram::{Faults, TelegramSandbox};
use std::time::{Duration, Instant};

use common::{Be, KEY_B64};
const TOKEN_A: &str = "6000000001:AAEruntimeTestTokenAlphaValue00000001";
const TOKEN_B: &str = "6000000002:AAEruntimeTestTokenBravoValue00000002";

type Env = common::ChannelsEnv;

async fn env(be: Be) -> Env {
    common::channels_env_on(be).await
}

async fn add_bot(env: &Env, name: &str, token: &str, api: &str) -> Connection {
    add_draft(env, common::telegram_draft(name, token, api)).await
}

/// Adds the connection, attached to a running echo agent.
async fn add_draft(env: &Env, draft: flametree::channels::Draft) -> Connection {
    let c = env.channels.add(&draft).await.unwrap().connection;
    let echo = common::runtime::echo_agent(env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    c
}

/// The sandbox with bot "alpha_bot", and connection "Alpha" RUNNING under a runtime.
async fn alpha_running(be: Be) -> (TelegramSandbox, Env, Runtime) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    let runtime = Runtime::launch(env.channels.clone(), 1000);
    set(&env, "Alpha", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    (sandbox, env, runtime)
}

async fn set(env: &Env, name: &str, desired: DesiredState) {
    let c = env.channels.find(name).await.unwrap();
    env.channels.set_desired(&c, desired).await.unwrap();
}

async fn wait_status(env: &Env, name: &str, status: Status) -> Connection {
    common::hooks::wait_status(env, name, status).await
}

async fn start_runs_the_bot_and_answers_a_customer(be: Be) {
    let (sandbox, env, runtime) = alpha_running(be).await;
    let running = env.channels.find("Alpha").await.unwrap();
    assert!(
        running.status_message.contains("@alpha_bot"),
        "{}",
        running.status_message
    );
    assert_eq!(running.running_version, Some(running.version));

    sandbox.inject_message(TOKEN_A, 42, "Ann", "hello there");
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chat_id, 42);
    assert_eq!(sent[0].text, "You said: hello there");

    let logs = common::runtime::log_text(&env, "Alpha", "replied to 42").await;
    assert!(logs.contains("connected as @alpha_bot"), "{logs}");
    assert!(logs.contains("replied to 42"), "{logs}");
    assert!(logs.contains("Start requested by tester"), "{logs}");
    assert!(
        !logs.contains("AAEruntime"),
        "the token never reaches a log line:\n{logs}"
    );

    runtime.shutdown().await;
    let stopped = env.channels.find("Alpha").await.unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(
        stopped.desired,
        DesiredState::Running,
        "a shutdown keeps the operator's wish"
    );
    let logs = common::runtime::log_text(&env, "Alpha", "INFO stopped").await;
    assert!(
        logs.contains("stopping: flametree is shutting down") && logs.contains("stopped"),
        "{logs}"
    );
}

async fn a_wrong_token_goes_to_error_with_a_message_to_act_on(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    let env = env(be).await;
    add_bot(&env, "Wrong", TOKEN_B, &sandbox.url()).await;
    let runtime = Runtime::launch(env.channels.clone(), 1000);
    set(&env, "Wrong", DesiredState::Running).await;
    let failed = wait_status(&env, "Wrong", Status::Error).await;
    assert_eq!(
        failed.status_message,
        "Telegram rejected the bot token (401 Unauthorized): fix the Bot token, Save, then Start"
    );
    assert_eq!(
        failed.desired,
        DesiredState::Stopped,
        "not retried in a loop"
    );
    let logs =
        common::runtime::log_text(&env, "Wrong", "ERROR Telegram rejected the bot token").await;
    assert!(
        logs.contains("ERROR Telegram rejected the bot token"),
        "{logs}"
    );
    assert!(!logs.contains("AAEruntime"), "{logs}");

    // Fixed on the provider's side: Start again works.
    sandbox.add_bot(TOKEN_B, "bravo_bot");
    set(&env, "Wrong", DesiredState::Running).await;
    wait_status(&env, "Wrong", Status::Running).await;
    runtime.shutdown().await;
}

async fn stop_and_start_again_lose_nothing_and_answer_nothing_twice(be: Be) {
    let (sandbox, env, runtime) = alpha_running(be).await;
    for i in 0..5 {
        sandbox.inject_message(TOKEN_A, 100 + i, "Ann", &format!("first {i}"));
    }
    assert_eq!(
        sandbox
            .wait_sent(TOKEN_A, 5, Duration::from_secs(10))
            .await
            .len(),
        5
    );

    set(&env, "Alpha", DesiredState::Stopped).await;
    wait_status(&env, "Alpha", Status::Stopped).await;
    for i in 0..3 {
        sandbox.inject_message(TOKEN_A, 200 + i, "Bob", &format!("while stopped {i}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sandbox.sent(TOKEN_A).len(),
        5,
        "a stopped channel answers nobody"
    );

    set(&env, "Alpha", DesiredState::Running).await;
    let sent = sandbox.wait_sent(TOKEN_A, 8, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_after = sandbox.sent(TOKEN_A);
    assert_eq!(
        sent_after.len(),
        8,
        "exactly one reply per message: {sent:?}"
    );
    let mut texts: Vec<String> = sent_after.iter().map(|m| m.text.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 8);
    runtime.shutdown().await;
}

async fn transient_faults_are_retried_without_going_to_error(be: Be) {
    let (sandbox, env, runtime) = alpha_running(be).await;
    sandbox.set_faults(
        TOKEN_A,
        Faults {
            fail_next_429: 2,
            retry_after_secs: 1,
            ..Faults::default()
        },
    );
    sandbox.inject_message(TOKEN_A, 7, "Ann", "are you there?");
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(15)).await;
    assert_eq!(sent.len(), 1, "answered once the rate limit passed");
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(c.status, Status::Running, "{}", c.status_message);
    let logs = common::runtime::log_text(
        &env,
        "Alpha",
        "Telegram asked to slow down (429, retry after 1 s)",
    )
    .await;
    assert!(
        logs.contains("Telegram asked to slow down (429, retry after 1 s)"),
        "{logs}"
    );
    runtime.shutdown().await;
}

async fn another_program_polling_the_bot_is_named(be: Be) {
    let (sandbox, env, runtime) = alpha_running(be).await;
    // A second program polling the same token for good: Telegram ends the older request
    // with 409. One or two 409s are forgiven (a previous owner letting go); a rival is not.
    let thief =
        teloxide::Bot::new(TOKEN_A).set_api_url(reqwest::Url::parse(&sandbox.url()).unwrap());
    let steal = tokio::spawn(async move {
        use teloxide::payloads::GetUpdatesSetters;
        use teloxide::prelude::Requester;
        loop {
            let _ = thief.get_updates().timeout(1).await;
        }
    });
    let failed = wait_status(&env, "Alpha", Status::Error).await;
    assert!(
        failed
            .status_message
            .contains("another program is polling this bot"),
        "{}",
        failed.status_message
    );
    steal.abort();
    runtime.shutdown().await;
}

async fn a_kill_in_the_middle_of_a_batch_loses_and_repeats_nothing(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    set(&env, "Alpha", DesiredState::Running).await;
    let mut first = common::runtime::serve(&env, "serve", true);
    wait_status(&env, "Alpha", Status::Running).await;

    // Ten messages arrive as one batch; each reply is slow, so the kill lands mid-batch.
    sandbox.set_faults(
        TOKEN_A,
        Faults {
            send_delay: Duration::from_millis(300),
            ..Faults::default()
        },
    );
    for i in 0..10 {
        sandbox.inject_message(TOKEN_A, 300 + i, "Ann", &format!("batch {i}"));
    }
    sandbox.wait_sent(TOKEN_A, 4, Duration::from_secs(15)).await;
    first.kill().unwrap();
    let _ = first.wait();
    let before = sandbox.sent(TOKEN_A).len();
    assert!(before < 10, "the kill landed mid-batch ({before} answered)");

    sandbox.set_faults(TOKEN_A, Faults::default());
    let second = common::runtime::serve(&env, "serve", true);
    // The lease of the killed process runs out before the new one may take over.
    sandbox
        .wait_sent(TOKEN_A, 10, Duration::from_secs(40))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = sandbox.sent(TOKEN_A);
    common::runtime::signal(&second, "-TERM");
    let out = second.wait_with_output().unwrap();
    let mut texts: Vec<String> = sent.iter().map(|m| m.text.clone()).collect();
    texts.sort();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..10).map(|i| format!("You said: batch {i}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        texts, expected,
        "every message answered exactly once across the kill"
    );
    assert!(out.status.success(), "serve stops cleanly on SIGTERM");
    let stderr = common::runtime::serve_output(&env, "serve");
    assert!(
        !stderr.contains("AAEruntime"),
        "no token in serve's trace output"
    );
    assert!(stderr.contains("stopping 1 running channel"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in diagnostics written to a file"
    );
    assert_eq!(
        env.channels.find("Alpha").await.unwrap().status,
        Status::Stopped
    );
}

async fn serve_picks_up_start_and_stop_from_the_cli(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    let child = common::runtime::serve(&env, "serve", true);
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    let out = cli.ok(&["channels", "start", "Alpha"], None);
    assert!(out.contains("Start requested for 'Alpha'"), "{out}");
    wait_status(&env, "Alpha", Status::Running).await;
    let status = cli.ok(&["channels", "status", "Alpha"], None);
    assert!(
        status.contains("RUNNING") && status.contains("polling as @alpha_bot"),
        "{status}"
    );
    cli.ok(&["channels", "stop", "Alpha"], None);
    wait_status(&env, "Alpha", Status::Stopped).await;
    // serve writes its log lines in batches: give the last one a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logs = cli.ok(&["channels", "logs", "Alpha"], None);
    while !logs.contains("INFO  stopped") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        logs = cli.ok(&["channels", "logs", "Alpha"], None);
    }
    assert!(
        logs.contains("Stop requested by tester") && logs.contains("INFO  stopped"),
        "{logs}"
    );
    common::runtime::signal(&child, "-TERM");
    assert!(child.wait_with_output().unwrap().status.success());
}

async fn telegram_unreachable_keeps_running_and_says_so_then_recovers(be: Be) {
    let (sandbox, env, runtime) = alpha_running(be).await;

    let addr: std::net::SocketAddr = sandbox.url().trim_start_matches("http://").parse().unwrap();
    sandbox.shutdown().await;
    drop(sandbox);
    let deadline = Instant::now() + Duration::from_secs(20);
    let degraded = loop {
        let c = env.channels.find("Alpha").await.unwrap();
        if c.status_message.contains("cannot reach Telegram") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "never reported the outage: {} {}",
            c.status,
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        degraded.status,
        Status::Running,
        "a network error is not an ERROR"
    );
    assert!(
        degraded.status_message.contains("; retry "),
        "{}",
        degraded.status_message
    );
    assert!(
        !degraded.status_message.contains("AAEruntime"),
        "{}",
        degraded.status_message
    );

    let back = TelegramSandbox::start_on(addr).await.unwrap();
    back.add_bot(TOKEN_A, "alpha_bot");
    back.inject_message(TOKEN_A, 9, "Ann", "still there?");
    let sent = back.wait_sent(TOKEN_A, 1, Duration::from_secs(20)).await;
    assert_eq!(sent.len(), 1, "recovered by itself");
    let c = env.channels.find("Alpha").await.unwrap();
    assert_eq!(c.status_message, "polling as @alpha_bot");
    runtime.shutdown().await;
}

async fn a_webhook_left_on_the_bot_is_removed_before_polling(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    sandbox.set_webhook_url(TOKEN_A, "https://old.example.com/hook");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    let runtime = Runtime::launch(env.channels.clone(), 1000);
    set(&env, "Alpha", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    sandbox.inject_message(TOKEN_A, 5, "Ann", "hi");
    assert_eq!(
        sandbox
            .wait_sent(TOKEN_A, 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    assert_eq!(sandbox.webhook_url(TOKEN_A), "");
    assert_eq!(sandbox.calls(TOKEN_A, "deletewebhook"), 1);
    let logs =
        common::runtime::log_text(&env, "Alpha", "a webhook was set for this bot; removing it")
            .await;
    assert!(
        logs.contains("a webhook was set for this bot; removing it"),
        "{logs}"
    );
    runtime.shutdown().await;
}

async fn a_wrong_master_key_goes_to_error_naming_what_cannot_be_decrypted(be: Be) {
    use flametree::permission::{Operator, Role};
    use flametree::secrets::{KeySource, MasterKey};
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    // Another process on the same database with another master key.
    let other_key = MasterKey::from_bytes([42; 32], KeySource::Config);
    let other = std::sync::Arc::new(flametree::channels::Channels::new(
        env.channels.store().clone(),
        env.channels.tenant().clone(),
        Operator {
            name: "tester".into(),
            role: Role::Editor,
            role_reason: "test".into(),
        },
        Ok(std::sync::Arc::new(other_key)),
    ));
    let runtime = Runtime::launch(other.clone(), 1000);
    set(&env, "Alpha", DesiredState::Running).await;
    let failed = wait_status(&env, "Alpha", Status::Error).await;
    assert!(
        failed
            .status_message
            .starts_with("cannot decrypt Bot token of 'Alpha': it was sealed with master key"),
        "{}",
        failed.status_message
    );
    assert_eq!(
        sandbox.calls(TOKEN_A, "getme"),
        0,
        "nothing was sent with a garbled token"
    );
    runtime.shutdown().await;
}

/// `TELEGRAM_POLL_TIMEOUT=0` (short polling) answers every poll at once: the bot asks
/// again on the next beat (forty a second), not in a loop as fast as the API answers,
/// and a message still gets its reply.
async fn short_polling_asks_at_most_forty_times_a_second_and_still_answers(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    let mut draft = common::telegram_draft("Alpha", TOKEN_A, &sandbox.url());
    for var in &mut draft.env {
        if var.name == "TELEGRAM_POLL_TIMEOUT" {
            var.value = "0".into();
        }
    }
    add_draft(&env, draft).await;
    let runtime = Runtime::launch(env.channels.clone(), 1000);
    set(&env, "Alpha", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;

    let before = sandbox.calls(TOKEN_A, "getUpdates");
    let from = Instant::now();
    let deadline = from + Duration::from_secs(20);
    while sandbox.calls(TOKEN_A, "getUpdates") < before + 11 {
        assert!(Instant::now() < deadline, "the bot stopped polling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = from.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "ten empty short polls took {took:?}: the bot polled faster than forty a second"
    );

    sandbox.inject_message(TOKEN_A, 42, "Ann", "still there?");
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].text, "You said: still there?");
    runtime.shutdown().await;
}

/// The portal's promise: an agent's change applies to the channels it answers, without
/// restarting them. Routes are kept until the process is told of an agent change (the
/// change feed on PostgreSQL, as `serve` runs; the pulse's counter on SQLite), so within
/// a few seconds of the edit being applied a new message is answered by the new rules.
async fn an_edited_agent_answers_the_next_messages_without_a_restart(be: Be) {
    let sandbox = TelegramSandbox::start().await.unwrap();
    sandbox.add_bot(TOKEN_A, "alpha_bot");
    let env = env(be).await;
    add_bot(&env, "Alpha", TOKEN_A, &sandbox.url()).await;
    let options = Options {
        feed: flametree::store::feed::ChangeFeed::start(&env.url).await,
        ..Options::default()
    };
    assert_eq!(options.feed.is_some(), be == Be::Postgres);
    let runtime = Runtime::start(Pipeline::start(env.channels.clone(), 1000), options);
    set(&env, "Alpha", DesiredState::Running).await;
    wait_status(&env, "Alpha", Status::Running).await;
    sandbox.inject_message(TOKEN_A, 42, "Ann", "before");
    let sent = sandbox.wait_sent(TOKEN_A, 1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].text, "You said: before");

    let echo = env.channels.find_agent("Echo").await.unwrap();
    let echo = env
        .channels
        .edit_agent(&echo, common::runtime::echo_edit("Now: "))
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    let applied = Instant::now();
    let mut n = 1;
    loop {
        let text = format!("probe {n}");
        sandbox.inject_message(TOKEN_A, 42, "Ann", &text);
        let sent = sandbox
            .wait_sent(TOKEN_A, n + 1, Duration::from_secs(10))
            .await;
        assert_eq!(sent.len(), n + 1, "each probe answered once: {sent:?}");
        let reply = &sent[n].text;
        if reply.starts_with("Now: ") {
            assert_eq!(reply, &format!("Now: {text}"));
            break;
        }
        assert_eq!(reply, &format!("You said: {text}"));
        assert!(
            applied.elapsed() < Duration::from_secs(5),
            "five seconds after the edit was applied the old rules still answer"
        );
        n += 1;
        // Pacing the probes, not waiting for anything.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.shutdown().await;
}

on_both!(
    start_runs_the_bot_and_answers_a_customer,
    a_wrong_token_goes_to_error_with_a_message_to_act_on,
    stop_and_start_again_lose_nothing_and_answer_nothing_twice,
    transient_faults_are_retried_without_going_to_error,
    another_program_polling_the_bot_is_named,
    a_kill_in_the_middle_of_a_batch_loses_and_repeats_nothing,
    serve_picks_up_start_and_stop_from_the_cli,
    telegram_unreachable_keeps_running_and_says_so_then_recovers,
    a_webhook_left_on_the_bot_is_removed_before_polling,
    a_wrong_master_key_goes_to_error_naming_what_cannot_be_decrypted,
    short_polling_asks_at_most_forty_times_a_second_and_still_answers,
    an_edited_agent_answers_the_next_messages_without_a_restart,
);
