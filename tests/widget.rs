//! The Web Widget over its wire: the script served with the agent's settings, visitors'
//! messages through the ledger and the agent, other sites refused, the limits and the
//! offline state said in words the widget shows — on SQLite and PostgreSQL.

mod common;
mod widget_support;

use common::Be;
use flametree::agents::ResponderConfig;
use flametree::agents::responder::OpenAi;
use flametree::agents::service::AgentEdit;
use flametree::model::Status;
use flametree::sandbox::openai::OpenAiSandbox;
use flametree::store::LedgerState;
use flametree::widget::{self, Limits};
use widget_support::*;

const SHOP: &str = "http://shop.example.test";
const VISITOR: &str = "0123456789abcdef0123456789abcdef";

async fn a_visitor_is_answered_through_the_ledger_once(be: Be) {
    let env = common::channels_env_on(be).await;
    let h = host(&env, Limits::default()).await;
    let agent = widget_agent(&env, "Shop", SHOP).await;
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = running_widget(&env, &agent).await;
    let base = &h.ingress.public_base;

    let script = reqwest::get(widget::script_url(base, &c.hook_id))
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = script.text().await.unwrap();
    for expected in [
        "\"title\":\"Ask Flametree\"",
        "#1F6FEB",
        "Hello! How can we help?",
        "textContent",
    ] {
        assert!(js.contains(expected), "the script lacks {expected}");
    }
    assert!(!js.contains("__FLAMETREE_WIDGET_CONFIG__"));

    let chat = widget::chat_url(base, &c.hook_id);
    let mut ws = open_chat(&chat, SHOP, VISITOR).await.unwrap();
    let status = next_frame(&mut ws).await;
    assert_eq!(status["t"], "status");
    assert_eq!(status["online"], true);

    say(&mut ws, "m1", "hello there").await;
    assert_eq!(frame_of(&mut ws, "ack").await["id"], "m1");
    let reply = frame_of(&mut ws, "reply").await;
    assert_eq!(reply["text"], "You said: hello there");
    assert_eq!(reply["re"], "m1");
    // The same id however often it is sent: the script shows it once.
    assert_eq!(reply["id"], "re-m1");

    // The same message again (a reconnect resends what it has no ack for): recorded
    // once, answered once — the next reply is the next message's.
    say(&mut ws, "m1", "hello there").await;
    assert_eq!(frame_of(&mut ws, "ack").await["id"], "m1");
    say(&mut ws, "m2", "<script>alert(1)</script>").await;
    let reply = frame_of(&mut ws, "reply").await;
    assert_eq!(reply["re"], "m2");
    assert_eq!(reply["text"], "You said: <script>alert(1)</script>");
    let store = env.channels.store();
    assert_eq!(
        store
            .ledger_state(c.id, &format!("{VISITOR}:m1"))
            .await
            .unwrap(),
        Some(LedgerState::Answered)
    );
    let log = common::runtime::log_text(&env, &c.name, "agent 'Shop' replied").await;
    assert!(
        log.contains(&format!("message {VISITOR}:m1 from {VISITOR}")),
        "{log}"
    );
    assert_eq!(
        log.matches(&format!("message {VISITOR}:m1 from")).count(),
        1,
        "{log}"
    );
    h.shutdown().await;
}

async fn other_sites_are_refused(be: Be) {
    let env = common::channels_env_on(be).await;
    let h = host(&env, Limits::default()).await;
    let agent = widget_agent(&env, "Shop", &format!("{SHOP}, https://www.example.com")).await;
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = running_widget(&env, &agent).await;
    let chat = widget::chat_url(&h.ingress.public_base, &c.hook_id);

    assert_eq!(
        open_chat(&chat, "https://evil.example.net", VISITOR)
            .await
            .err(),
        Some(403)
    );
    assert!(
        open_chat(&chat, "https://www.example.com", VISITOR)
            .await
            .is_ok()
    );
    let log = common::runtime::log_text(&env, &c.name, "evil.example.net").await;
    assert!(
        log.contains("WARN refused a page on https://evil.example.net (403)"),
        "{log}"
    );

    // The plain GET (what a page may fetch) has CORS for the allowed origins only.
    let http_chat = format!("{}/widget/{}/chat", h.ingress.public_base, c.hook_id);
    let client = reqwest::Client::new();
    let ok = client
        .get(&http_chat)
        .header("Origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], SHOP);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["online"], true);
    let evil = client
        .get(&http_chat)
        .header("Origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A site retrying in a loop gets its 403s, but one WARN a minute, not one each.
    for _ in 0..20 {
        let again = client
            .get(&http_chat)
            .header("Origin", "https://evil.example.net")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 403);
    }
    let none = client.get(&http_chat).send().await.unwrap();
    assert_eq!(none.status(), 403, "no Origin: not a web page of the site");
    // Lines reach the log in order: once the later refusal is there, so are the others.
    let log = common::runtime::log_text(&env, &c.name, "without an Origin header").await;
    assert!(log.contains("without an Origin header"), "{log}");
    assert_eq!(
        log.matches("refused a page on https://evil.example.net")
            .count(),
        1,
        "{log}"
    );
    let pre = client
        .request(reqwest::Method::OPTIONS, &http_chat)
        .header("Origin", SHOP)
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], SHOP);
    let unknown = reqwest::get(widget::script_url(&h.ingress.public_base, "0000"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    h.shutdown().await;
}

async fn limits_and_a_stopped_agent_are_said_in_the_widget(be: Be) {
    let env = common::channels_env_on(be).await;
    let limits = Limits {
        messages_per_visitor_per_minute: 3,
        messages_per_ip_per_minute: 100,
        connections_per_ip: 2,
        max_message_chars: 40,
    };
    let h = host(&env, limits).await;
    let agent = widget_agent(&env, "Shop", SHOP).await;
    let agent = env.channels.run_agent(&agent, true).await.unwrap();
    let c = running_widget(&env, &agent).await;
    let chat = widget::chat_url(&h.ingress.public_base, &c.hook_id);
    let mut ws = open_chat(&chat, SHOP, VISITOR).await.unwrap();
    frame_of(&mut ws, "status").await;

    say(&mut ws, "long", &"x".repeat(41)).await;
    let e = frame_of(&mut ws, "error").await;
    assert_eq!(e["code"], "size");
    assert!(
        e["text"]
            .as_str()
            .unwrap()
            .contains("too long (41 characters; at most 40)")
    );

    for i in 0..3 {
        say(&mut ws, &format!("ok{i}"), "hi").await;
        assert_eq!(frame_of(&mut ws, "ack").await["id"], format!("ok{i}"));
    }
    say(&mut ws, "fast", "hi").await;
    let e = frame_of(&mut ws, "error").await;
    assert_eq!(
        (e["id"].as_str(), e["code"].as_str()),
        (Some("fast"), Some("rate"))
    );
    assert!(
        e["text"]
            .as_str()
            .unwrap()
            .starts_with("You are sending messages too quickly. Please wait"),
        "{e}"
    );
    let log = common::runtime::log_text(&env, &c.name, "more than 3 messages a minute").await;
    assert!(
        log.contains(&format!("WARN visitor {VISITOR} sends more than 3")),
        "{log}"
    );

    let mut second = open_chat(&chat, SHOP, "another-visitor-1").await.unwrap();
    assert_eq!(
        open_chat(&chat, SHOP, "another-visitor-2").await.err(),
        Some(429)
    );

    // Stopping the agent stops its widget: open chats hear it at once.
    env.channels.run_agent(&agent, false).await.unwrap();
    loop {
        let f = frame_of(&mut second, "status").await;
        if f["online"] == false {
            break;
        }
    }
    wait_status(&env, &c.name, Status::Stopped).await;
    ws.close(None).await.unwrap();
    second.close(None).await.unwrap();
    // The slots are given back once the server has seen the sockets close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut fresh = loop {
        match open_chat(&chat, SHOP, "fresh-visitor-1").await {
            Ok(s) => break s,
            Err(429) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("refused with {e}"),
        }
    };
    assert_eq!(frame_of(&mut fresh, "status").await["online"], false);
    say(&mut fresh, "q", "anyone there?").await;
    let e = frame_of(&mut fresh, "error").await;
    assert_eq!(e["code"], "offline");
    assert_eq!(
        e["text"],
        "Ask Flametree is offline right now, so your message was not sent. Please try again later."
    );
    h.shutdown().await;
}

async fn each_visitor_has_their_own_history(be: Be) {
    let env = common::channels_env_on(be).await;
    let llm = OpenAiSandbox::start(None).await.unwrap();
    let h = host(&env, Limits::default()).await;
    let responder = ResponderConfig::OpenAi(OpenAi {
        base_url: llm.url(),
        model: "test-model".into(),
        api_key: None,
        system_prompt: String::new(),
        history: 10,
        timeout_secs: 5,
        fallback: String::new(),
    });
    let edit = AgentEdit {
        responder: Some(responder),
        widget: Some(serde_json::json!({ "allowed_origins": SHOP })),
        ..AgentEdit::default()
    };
    let agent = env.channels.create_agent("AI", edit).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = running_widget(&env, &agent).await;
    let chat = widget::chat_url(&h.ingress.public_base, &c.hook_id);

    let mut ann = open_chat(&chat, SHOP, "ann-visitor-0001").await.unwrap();
    say(&mut ann, "a1", "first question").await;
    assert_eq!(
        frame_of(&mut ann, "reply").await["text"],
        "[test-model] You asked: first question. Earlier messages from you: 0."
    );
    // A reload: a new socket, the same visitor id — the conversation goes on.
    drop(ann);
    let mut ann = open_chat(&chat, SHOP, "ann-visitor-0001").await.unwrap();
    say(&mut ann, "a2", "second question").await;
    assert_eq!(
        frame_of(&mut ann, "reply").await["text"],
        "[test-model] You asked: second question. Earlier messages from you: 1."
    );
    let mut bob = open_chat(&chat, SHOP, "bob-visitor-0001").await.unwrap();
    say(&mut bob, "b1", "other visitor").await;
    assert_eq!(
        frame_of(&mut bob, "reply").await["text"],
        "[test-model] You asked: other visitor. Earlier messages from you: 0."
    );
    h.shutdown().await;
}

/// `agents show` gives the snippet to paste; the widget's connection stays out of
/// Settings › Channels; a bad setting says what is expected.
async fn the_cli_prints_the_snippet(be: Be) {
    let env = common::channels_env_on(be).await;
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
        .env("FLAMETREE_HTTP_PUBLIC_URL", "https://chat.example.com");
    cli.ok(&["agents", "create", "--name", "Shop"], None);
    let off = cli.ok(&["agents", "show", "Shop"], None);
    assert!(off.contains("Web Widget:  off"), "{off}");
    cli.ok(
        &[
            "agents",
            "edit",
            "Shop",
            "--widget",
            &format!("allowed_origins={SHOP}"),
        ],
        None,
    );
    cli.ok(
        &["agents", "edit", "Shop", "--widget", "title=Ask us"],
        None,
    );
    let shown = cli.json(&["agents", "show", "Shop"]);
    let w = &shown["widget"];
    assert_eq!(
        w["allowed_origins"], SHOP,
        "an edit of one setting keeps the others"
    );
    assert_eq!(w["title"], "Ask us");
    let script = w["script_url"].as_str().unwrap();
    assert!(
        script.starts_with("https://chat.example.com/widget/") && script.ends_with(".js"),
        "{script}"
    );
    let id = script
        .trim_start_matches("https://chat.example.com/widget/")
        .trim_end_matches(".js");
    assert_eq!(
        w["chat_url"],
        format!("wss://chat.example.com/widget/{id}/chat")
    );
    let text = cli.ok(&["agents", "show", "Shop"], None);
    assert!(
        text.contains(&format!(
            "<script src=\"https://chat.example.com/widget/{id}.js\" async></script>"
        )),
        "{text}"
    );
    assert!(
        text.contains("offline until the agent is started"),
        "{text}"
    );
    assert!(
        text.contains("Its log: flametree channels logs \"Web Widget · Shop\""),
        "{text}"
    );
    let log = cli.ok(&["channels", "logs", "Web Widget · Shop"], None);
    assert!(
        log.contains("Web Widget turned on for agent 'Shop' by tester"),
        "{log}"
    );
    // Renaming keeps the public id: the snippet on the site keeps working.
    cli.ok(&["agents", "edit", "Shop", "--name", "Store"], None);
    assert_eq!(
        cli.json(&["agents", "show", "Store"])["widget"]["script_url"],
        script
    );
    let r = cli.run(&["agents", "edit", "Store", "--widget", "colour=red"], None);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr()
            .contains("Web Widget Colour 'red' does not look right: expected a hex colour"),
        "{}",
        r.all()
    );
    // Visitors are answered by their agent only: `send` has no socket to reach them.
    let r = cli.run(
        &[
            "send",
            "--connection",
            "Web Widget · Store",
            "--to",
            VISITOR,
            "--text",
            "hi",
        ],
        None,
    );
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr()
            .contains("a Web Widget visitor is answered only by their agent"),
        "{}",
        r.all()
    );
    let list = cli.ok(&["channels", "list"], None);
    assert!(!list.contains("Web Widget"), "{list}");
    cli.ok(&["agents", "delete", "Store", "--yes"], None);
    assert!(
        env.channels
            .store()
            .list_connections(env.channels.tenant().id)
            .await
            .unwrap()
            .is_empty(),
        "the widget's connection goes with its agent"
    );
}

on_both!(
    a_visitor_is_answered_through_the_ledger_once,
    other_sites_are_refused,
    limits_and_a_stopped_agent_are_said_in_the_widget,
    each_visitor_has_their_own_history,
    the_cli_prints_the_snippet,
);
