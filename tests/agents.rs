//! Agents: the CLI, the one-inbound-agent rule, restart-pending semantics, and inbound
//! routing end to end through the Telegram sandbox with both responders.

mod common;

use common::Cli;
use flametree::agents::responder::OpenAi;
use flametree::agents::service::AgentEdit;
use flametree::agents::{ResponderConfig, Rule, Rules};
use flametree::channels::{Channels, Draft};
use flametree::model::{Agent, Connection, DesiredState, Status};
use flametree::runtime::Runtime;
use flametree::sandbox::openai::OpenAiSandbox;
use flametree::sandbox::telegram::TelegramSandbox;
use flametree::secrets::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::KEY_B64;
const TOKEN: &str = "5000000001:AAEagentsTestTokenValue0000000000001";
const MODEL_KEY: &str = "sk-test-plantedModelApiKey0123456789";

struct Env {
    dir: tempfile::TempDir,
    ch: Arc<Channels>,
}

async fn env() -> Env {
    let e = common::channels_env().await;
    Env {
        dir: e.dir,
        ch: e.channels,
    }
}

async fn bot(env: &Env, name: &str, api: &str) -> Connection {
    let d = common::telegram_draft(name, TOKEN, api);
    env.ch.add(&d).await.unwrap().connection
}

fn shop_rules() -> ResponderConfig {
    ResponderConfig::Rules(Rules {
        greeting: "Welcome to the shop!".into(),
        rules: vec![Rule {
            keyword: "refund".into(),
            reply: "Refunds take 5 days.".into(),
        }],
        fallback: "Noted: {text}".into(),
    })
}

async fn agent(env: &Env, name: &str, responder: ResponderConfig, api_key: Option<&str>) -> Agent {
    let edit = AgentEdit {
        responder: Some(responder),
        api_key: api_key.map(SecretString::new),
        ..AgentEdit::default()
    };
    env.ch.create_agent(name, edit).await.unwrap()
}

async fn running(env: &Env, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = env.ch.find(name).await.unwrap();
        if c.status == Status::Running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {} {}",
            c.status,
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn log_text(env: &Env, c: &Connection) -> String {
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lines = env.ch.store().recent_logs(c.id, 1000).await.unwrap();
    lines
        .iter()
        .map(|l| format!("{} {}\n", l.level, l.message))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_responder_answers_through_telegram() {
    let tg = TelegramSandbox::start().await.unwrap();
    tg.add_bot(TOKEN, "shop_bot");
    let env = env().await;
    let c = bot(&env, "Shop bot", &tg.url()).await;
    let shop = agent(&env, "Shop", shop_rules(), None).await;
    env.ch.attach_connection(&shop, &c, true).await.unwrap();
    env.ch.run_agent(&shop, true).await.unwrap();
    let rt = Runtime::launch(env.ch.clone(), 1000);
    env.ch.set_desired(&c, DesiredState::Running).await.unwrap();
    running(&env, "Shop bot").await;
    tg.inject_message(TOKEN, 11, "Ann", "hello");
    tg.inject_message(TOKEN, 11, "Ann", "I want a REFUND please");
    tg.inject_message(TOKEN, 12, "Bob", "where is my parcel");
    let sent = tg.wait_sent(TOKEN, 3, Duration::from_secs(10)).await;
    let texts: Vec<(i64, String)> = sent.iter().map(|m| (m.chat_id, m.text.clone())).collect();
    assert_eq!(
        texts,
        [
            (11, "Welcome to the shop!".to_string()),
            (11, "Refunds take 5 days.".to_string()),
            (12, "Noted: where is my parcel".to_string())
        ]
    );
    assert_eq!(
        env.ch.reply_diagnosis(c.id).await.unwrap(),
        "answered by agent 'Shop'"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_responder_keeps_each_customers_history_and_falls_back_on_failure() {
    let tg = TelegramSandbox::start().await.unwrap();
    tg.add_bot(TOKEN, "shop_bot");
    let llm = OpenAiSandbox::start(Some(MODEL_KEY)).await.unwrap();
    let env = env().await;
    let c = bot(&env, "Shop bot", &tg.url()).await;
    let responder = ResponderConfig::OpenAi(OpenAi {
        base_url: llm.url(),
        model: "test-model".into(),
        api_key: None,
        system_prompt: "You are the shop's assistant.".into(),
        history: 10,
        timeout_secs: 5,
        fallback: "Sorry, I can't answer right now; a colleague will.".into(),
    });
    let ai = agent(&env, "AI", responder, Some(MODEL_KEY)).await;
    env.ch.attach_connection(&ai, &c, true).await.unwrap();
    env.ch.run_agent(&ai, true).await.unwrap();
    let rt = Runtime::launch(env.ch.clone(), 1000);
    env.ch.set_desired(&c, DesiredState::Running).await.unwrap();
    running(&env, "Shop bot").await;

    tg.inject_message(TOKEN, 21, "Ann", "first question");
    tg.wait_sent(TOKEN, 1, Duration::from_secs(10)).await;
    tg.inject_message(TOKEN, 21, "Ann", "second question");
    tg.inject_message(TOKEN, 22, "Bob", "other customer");
    let sent = tg.wait_sent(TOKEN, 3, Duration::from_secs(10)).await;
    assert_eq!(
        sent[0].text,
        "[test-model] You asked: first question. Earlier messages from you: 0."
    );
    assert_eq!(
        sent[1].text,
        "[test-model] You asked: second question. Earlier messages from you: 1."
    );
    assert_eq!(
        sent[2].text,
        "[test-model] You asked: other customer. Earlier messages from you: 0."
    );
    let first = &llm.requests()[0];
    assert_eq!(first["messages"][0]["role"], "system");
    assert_eq!(
        first["messages"][0]["content"],
        "You are the shop's assistant."
    );

    llm.fail_next(1);
    tg.inject_message(TOKEN, 21, "Ann", "third question");
    let sent = tg.wait_sent(TOKEN, 4, Duration::from_secs(10)).await;
    assert_eq!(
        sent[3].text,
        "Sorry, I can't answer right now; a colleague will."
    );
    let logs = log_text(&env, &c).await;
    assert!(logs.contains("the model API answered 500"), "{logs}");
    assert!(
        !logs.contains("plantedModelApiKey"),
        "the API key never reaches a log:\n{logs}"
    );
    let stored = env.ch.find_agent("AI").await.unwrap();
    assert!(
        !stored.responder.contains("plantedModelApiKey"),
        "the key is sealed at rest"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_apply_when_the_agent_restarts_and_unanswered_messages_are_kept() {
    let tg = TelegramSandbox::start().await.unwrap();
    tg.add_bot(TOKEN, "shop_bot");
    let env = env().await;
    let c = bot(&env, "Shop bot", &tg.url()).await;
    let shop = agent(&env, "Shop", shop_rules(), None).await;
    let shop = env.ch.run_agent(&shop, true).await.unwrap();
    let rt = Runtime::launch(env.ch.clone(), 1000);
    env.ch.set_desired(&c, DesiredState::Running).await.unwrap();
    running(&env, "Shop bot").await;

    // Nothing attached: recorded, not answered, and the log says why.
    tg.inject_message(TOKEN, 31, "Ann", "anyone?");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(tg.sent(TOKEN).is_empty());
    let kept = env.ch.store().unanswered(c.id, 10).await.unwrap();
    assert_eq!(kept[0].2, "anyone?");
    assert!(
        kept[0].3.starts_with("attached to no agent"),
        "{}",
        kept[0].3
    );

    // Attached while running: restart pending, still not answering.
    env.ch.attach_connection(&shop, &c, true).await.unwrap();
    let pending = env.ch.find_agent("Shop").await.unwrap();
    assert!(pending.restart_pending());
    assert!(
        env.ch
            .reply_diagnosis(c.id)
            .await
            .unwrap()
            .contains("was not restarted since this channel was attached")
    );
    tg.inject_message(TOKEN, 31, "Ann", "still nobody?");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(tg.sent(TOKEN).is_empty());

    // Stop agent, Start agent: now it answers.
    let stopped = env.ch.run_agent(&pending, false).await.unwrap();
    assert!(
        env.ch
            .reply_diagnosis(c.id)
            .await
            .unwrap()
            .contains("is stopped: Start agent")
    );
    let restarted = env.ch.run_agent(&stopped, true).await.unwrap();
    assert!(!restarted.restart_pending());
    tg.inject_message(TOKEN, 31, "Ann", "hello");
    let sent = tg.wait_sent(TOKEN, 1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].text, "Welcome to the shop!");
    let logs = log_text(&env, &c).await;
    assert!(
        logs.contains("not answered: attached to no agent"),
        "{logs}"
    );

    // Detached while running: it keeps answering until its restart.
    env.ch.detach_connection(&restarted, &c).await.unwrap();
    tg.inject_message(TOKEN, 31, "Ann", "refund?");
    assert_eq!(
        tg.wait_sent(TOKEN, 2, Duration::from_secs(10)).await.len(),
        2
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_off_means_outbound_only_through_send() {
    let tg = TelegramSandbox::start().await.unwrap();
    tg.add_bot(TOKEN, "shop_bot");
    let env = env().await;
    let c = bot(&env, "Shop bot", &tg.url()).await;
    let campaigns = agent(&env, "Campaigns", shop_rules(), None).await;
    env.ch
        .attach_connection(&campaigns, &c, false)
        .await
        .unwrap();
    env.ch.run_agent(&campaigns, true).await.unwrap();
    assert!(
        env.ch
            .reply_diagnosis(c.id)
            .await
            .unwrap()
            .starts_with("Inbound is off for agent 'Campaigns'")
    );

    // Full tracing on: the HTTP client's own debug lines carry the request URL, which
    // holds the bot token; the output must not.
    let cli = Cli::new(env.dir.path())
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
        .env("FLAMETREE_LOG", "trace");
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Shop bot",
            "--to",
            "77",
            "--text",
            "Spring sale!",
        ],
        None,
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(r.stdout().contains("Sent to 77"), "{}", r.all());
    assert!(
        r.stderr().contains("TRACE") || r.stderr().contains("DEBUG"),
        "tracing was on"
    );
    assert!(
        !r.all().contains("AAEagentsTest"),
        "the token leaked:\n{}",
        r.all()
    );
    let sent = tg.sent(TOKEN);
    assert_eq!(
        (sent[0].chat_id, sent[0].text.as_str()),
        (77, "Spring sale!")
    );
    // Audited: who, through which connection, to whom; never the text.
    let audit = cli.json(&["audit"]);
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "send")
        .expect("the send is in the audit trail");
    assert_eq!(entry["target_name"], "Shop bot");
    assert!(
        entry["details"]
            .as_str()
            .unwrap()
            .starts_with("to 77 (message "),
        "{entry}"
    );
    assert!(!audit.to_string().contains("Spring sale"), "{audit}");
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Shop bot",
            "--to",
            "ann",
            "--text",
            "x",
        ],
        None,
    );
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("is not a Telegram chat id"),
        "{}",
        r.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_agents_and_refuses_a_second_inbound_agent_by_name() {
    let env = env().await;
    let cli = Cli::new(env.dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Sales bot",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TOKEN}\n")),
    );
    cli.ok(
        &["channels", "add", "--type", "instagram", "--name", "Insta", "--set", "instagram_account_id=17841400000000000",
          "--set", "page_id=100000000000001", "--secrets-stdin"],
        Some("access_token=EAAGplanted\napp_secret=0123456789abcdef0123456789abcdef\nverify_token=verify-me\n"),
    );
    let out = cli.ok(
        &[
            "agents",
            "create",
            "--name",
            "Support",
            "--greeting",
            "Hi!",
            "--rule",
            "price=See our site",
        ],
        None,
    );
    assert!(out.contains("Created agent 'Support'"), "{out}");
    cli.ok(&["agents", "create", "--name", "Sales"], None);
    cli.ok(
        &[
            "agents",
            "attach",
            "Support",
            "--connection",
            "Sales bot",
            "--inbound",
        ],
        None,
    );
    let r = cli.run(
        &[
            "agents",
            "attach",
            "Sales",
            "--connection",
            "Sales bot",
            "--inbound",
        ],
        None,
    );
    assert_eq!(r.code(), 5, "{}", r.all());
    assert!(
        r.stderr()
            .contains("already answers inbound messages for agent 'Support'"),
        "{}",
        r.all()
    );
    // Outbound-only is fine, and a type that allows several inbound agents only warns.
    cli.ok(
        &["agents", "attach", "Sales", "--connection", "Sales bot"],
        None,
    );
    cli.ok(
        &[
            "agents",
            "attach",
            "Support",
            "--connection",
            "Insta",
            "--inbound",
        ],
        None,
    );
    let r = cli.run(
        &[
            "agents",
            "attach",
            "Sales",
            "--connection",
            "Insta",
            "--inbound",
        ],
        None,
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr()
            .contains("several agents would each answer the same customer"),
        "{}",
        r.all()
    );

    cli.ok(&["agents", "start", "Support"], None);
    let shown = cli.json(&["agents", "show", "Support"]);
    assert_eq!(shown["status"], "RUNNING");
    assert_eq!(shown["restart_pending"], false);
    assert_eq!(shown["channels"][0]["connection"], "Sales bot");
    assert_eq!(shown["channels"][0]["applied_inbound"], true);
    cli.ok(
        &["agents", "detach", "Support", "--connection", "Insta"],
        None,
    );
    let shown = cli.json(&["agents", "show", "Support"]);
    assert_eq!(
        shown["restart_pending"], true,
        "detaching waits for a restart"
    );
    let text = cli.ok(&["agents", "show", "Support"], None);
    assert!(text.contains("restart pending"), "{text}");
    let list = cli.ok(&["agents", "list"], None);
    assert!(list.contains("Support") && list.contains("Sales"), "{list}");

    let r = cli.run(&["--read-only", "agents", "start", "Sales"], None);
    assert_eq!(r.code(), 3);
    let r = cli.run(&["agents", "delete", "Sales"], None);
    assert_eq!(r.code(), 2, "delete wants --yes");
    cli.ok(&["agents", "delete", "Sales", "--yes"], None);
    assert_eq!(cli.json(&["agents", "list"]).as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_connections_start_and_stop_with_their_agent_and_the_widget_lives_on_the_agent() {
    let env = env().await;
    let mut d = Draft {
        type_key: "twilio".into(),
        name: "Phone line".into(),
        ..Draft::default()
    };
    d.fields.insert(
        "account_sid".into(),
        "AC0123456789abcdef0123456789abcdef".into(),
    );
    d.fields
        .insert("phone_number".into(), "+14155550123".into());
    d.secrets.insert(
        "auth_token".into(),
        SecretString::new("0123456789abcdef0123456789abcdef"),
    );
    let phone = env.ch.add(&d).await.unwrap().connection;
    let voice = agent(&env, "Voice", shop_rules(), None).await;
    env.ch
        .attach_connection(&voice, &phone, true)
        .await
        .unwrap();
    let voice = env.ch.run_agent(&voice, true).await.unwrap();
    assert_eq!(
        env.ch.find("Phone line").await.unwrap().desired,
        DesiredState::Running
    );
    env.ch.run_agent(&voice, false).await.unwrap();
    assert_eq!(
        env.ch.find("Phone line").await.unwrap().desired,
        DesiredState::Stopped
    );

    let cli = Cli::new(env.dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    cli.ok(
        &[
            "agents",
            "edit",
            "Voice",
            "--widget",
            "title=Ask us",
            "--widget",
            "greeting=Hi there",
        ],
        None,
    );
    let shown = cli.json(&["agents", "show", "Voice"]);
    assert_eq!(shown["widget"]["title"], "Ask us");
    let r = cli.run(&["agents", "edit", "Voice", "--widget", "nonsense=1"], None);
    assert!(
        r.stderr()
            .contains("the Web Widget has no setting 'nonsense'"),
        "{}",
        r.all()
    );
    let types = cli.ok(&["channels", "list"], None);
    assert!(
        !types.contains("Web Widget"),
        "the widget never appears in Settings › Channels"
    );
}
