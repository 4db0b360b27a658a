//! WhatsApp, Messenger and Instagram through the webhook ingress and the Graph API
//! sandbox, on SQLite and PostgreSQL.

mod common;

use common::Be;
use common::hooks::{add_running, draft, host, wait_status};
use flametree::channels::Draft;
use flametree::model::{DesiredState, Status};
use flametree::sandbox::meta::{self, MetaSandbox};
use std::time::{Duration, Instant};

type Env = common::ChannelsEnv;

const TOKEN: &str = "EAAGsandboxTokenForWhatsAppTests0001";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const VERIFY: &str = "verify-me-please-42";
const N1: &str = "114896151713920";
const N2: &str = "114896151713921";
const WABA: &str = "122951744235903";

fn whatsapp_draft(sandbox: &MetaSandbox, token: &str) -> Draft {
    draft(
        "whatsapp",
        "Shop WhatsApp",
        &[
            ("phone_number_ids", &format!("{N1},{N2}")),
            ("business_account_id", WABA),
        ],
        &[
            ("access_token", token),
            ("app_secret", SECRET),
            ("verify_token", VERIFY),
        ],
        &[("WHATSAPP_GRAPH_API_URL", sandbox.url())],
    )
}

async fn whatsapp_answers_each_number_from_itself(be: Be) {
    let sandbox = MetaSandbox::start().await.unwrap();
    sandbox.add_whatsapp(
        TOKEN,
        SECRET,
        WABA,
        &[(N1, "+1 555-0001"), (N2, "+1 555-0002")],
    );
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(&env, &whatsapp_draft(&sandbox, TOKEN)).await;
    let c = wait_status(&env, "Shop WhatsApp", Status::Running).await;
    assert!(
        c.status_message
            .contains("WhatsApp +1 555-0001, +1 555-0002"),
        "{}",
        c.status_message
    );
    assert!(
        sandbox.subscribed(WABA),
        "WHATSAPP_CHECK_SUBSCRIPTION subscribed the app"
    );
    let url = host.url(&c);

    // Meta's handshake: the challenge echoed for the right verify token only.
    assert_eq!(
        sandbox.handshake(&url, VERIFY, "1158201444").await,
        (200, "1158201444".into())
    );
    assert_eq!(sandbox.handshake(&url, "not-it", "1").await.0, 403);

    let (to_n1, wamid1) = meta::whatsapp_text(N1, "60173526233", "Lee", "hi one", 1);
    let (to_n2, _) = meta::whatsapp_text(N2, "60173526234", "Kim", "hi two", 2);
    assert_eq!(sandbox.deliver(&url, SECRET, &to_n1).await.0, 200);
    assert_eq!(sandbox.deliver(&url, SECRET, &to_n2).await.0, 200);
    // Meta redelivers: answered once all the same.
    assert_eq!(sandbox.deliver(&url, SECRET, &to_n1).await.0, 200);
    let sent = sandbox.wait_sent(2, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let one = sent.iter().find(|s| s.to == "60173526233").unwrap();
    assert_eq!(
        (one.from.as_str(), one.text.as_str()),
        (N1, "You said: hi one")
    );
    let two = sent.iter().find(|s| s.to == "60173526234").unwrap();
    assert_eq!(
        two.from, N2,
        "the reply goes out from the number that received it"
    );
    // Meta reports on a message after answering its send; so does this test.
    common::runtime::log_text(&env, "Shop WhatsApp", "replied to 60173526234").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sandbox.read().contains(&wamid1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sandbox.read().contains(&wamid1), "WHATSAPP_MARK_AS_READ");

    // A number not in the connection, statuses, a failed status matched to our reply.
    let (stray, _) = meta::whatsapp_text("999000999", "60173526235", "Zed", "hello?", 3);
    assert_eq!(sandbox.deliver(&url, SECRET, &stray).await.0, 200);
    let ok = meta::whatsapp_status(N1, &one.id, "delivered", None);
    assert_eq!(sandbox.deliver(&url, SECRET, &ok).await.0, 200);
    let failed = meta::whatsapp_status(
        N2,
        &two.id,
        "failed",
        Some((131047, "Re-engagement message")),
    );
    assert_eq!(sandbox.deliver(&url, SECRET, &failed).await.0, 200);
    let logs = common::runtime::log_text(&env, "Shop WhatsApp", "was not delivered").await;
    assert!(
        logs.contains("for phone number id 999000999, which is not in this connection"),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("the reply to 60173526234 (answering {N2}/wamid."))
            && logs.contains("was not delivered (failed")
            && logs.contains("131047 Re-engagement message")
            && logs.contains("24 hours"),
        "{logs}"
    );
    assert_eq!(sandbox.sent().len(), 2, "nothing else answered");

    // Signatures: missing or wrong is 401, with a WARN.
    let raw = to_n1.to_string();
    assert_eq!(sandbox.post_raw(&url, None, raw.clone()).await.0, 401);
    assert_eq!(
        sandbox.post_raw(&url, Some("sha256=00ff"), raw).await.0,
        401
    );
    let logs = common::runtime::log_text(&env, "Shop WhatsApp", "does not match").await;
    assert!(logs.contains("without X-Hub-Signature-256"), "{logs}");
    assert!(
        logs.contains("X-Hub-Signature-256 does not match"),
        "{logs}"
    );
    assert!(
        !logs.contains("stopped while sending"),
        "a redelivery is not a crash:\n{logs}"
    );
    for secret in [TOKEN, SECRET, VERIFY] {
        assert!(!logs.contains(secret), "a secret reached the log:\n{logs}");
    }
    host.shutdown().await;
}

async fn messenger_and_instagram_answer_and_skip_their_echoes(be: Be) {
    let sandbox = MetaSandbox::start().await.unwrap();
    sandbox.add_page("EAAGpageToken0001", SECRET, "111111", "Sandbox Page");
    sandbox.add_instagram(
        "IGQsandboxToken0001",
        SECRET,
        "17841400000000001",
        "sandbox.shop",
    );
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let fb = draft(
        "facebook",
        "Shop page",
        &[("page_id", "111111")],
        &[
            ("page_access_token", "EAAGpageToken0001"),
            ("app_secret", SECRET),
            ("verify_token", VERIFY),
        ],
        &[("FACEBOOK_GRAPH_API_URL", sandbox.url())],
    );
    let ig = draft(
        "instagram",
        "Shop insta",
        &[
            ("instagram_account_id", "17841400000000001"),
            ("page_id", "111111"),
        ],
        &[
            ("access_token", "IGQsandboxToken0001"),
            ("app_secret", SECRET),
            ("verify_token", VERIFY),
        ],
        &[("INSTAGRAM_GRAPH_API_URL", sandbox.url())],
    );
    add_running(&env, &fb).await;
    add_running(&env, &ig).await;
    let fb = wait_status(&env, "Shop page", Status::Running).await;
    let ig = wait_status(&env, "Shop insta", Status::Running).await;
    assert!(
        fb.status_message.contains("page Sandbox Page"),
        "{}",
        fb.status_message
    );
    assert!(
        ig.status_message.contains("@sandbox.shop"),
        "{}",
        ig.status_message
    );

    let m = meta::messaging_text(
        "page",
        "111111",
        "2400000000000001",
        "hello page",
        "m_in_1",
        false,
    );
    let echo = meta::messaging_text("page", "111111", "111111", "You said: x", "m_echo_1", true);
    assert_eq!(sandbox.deliver(&host.url(&fb), SECRET, &m).await.0, 200);
    assert_eq!(sandbox.deliver(&host.url(&fb), SECRET, &echo).await.0, 200);
    let i = meta::messaging_text(
        "instagram",
        "17841400000000001",
        "6300000000000002",
        "hello insta",
        "aWdf_in_1",
        false,
    );
    let iecho = meta::messaging_text(
        "instagram",
        "17841400000000001",
        "17841400000000001",
        "hi",
        "aWdf_echo",
        true,
    );
    assert_eq!(sandbox.deliver(&host.url(&ig), SECRET, &i).await.0, 200);
    assert_eq!(sandbox.deliver(&host.url(&ig), SECRET, &iecho).await.0, 200);
    let sent = sandbox.wait_sent(2, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().any(|s| s.from == "111111"
        && s.to == "2400000000000001"
        && s.text == "You said: hello page"));
    assert!(
        sent.iter()
            .any(|s| s.from == "17841400000000001" && s.text == "You said: hello insta")
    );
    let logs = common::runtime::log_text(&env, "Shop page", "(echo)").await;
    assert!(
        logs.contains("our own Messenger message m_echo_1 came back (echo); not answered"),
        "{logs}"
    );
    // An Instagram payload is refused by a Messenger connection's signature only if wrong;
    // a signed one for the wrong object is logged, not answered.
    assert_eq!(sandbox.deliver(&host.url(&fb), SECRET, &i).await.0, 200);
    assert_eq!(sandbox.sent().len(), 2);
    host.shutdown().await;
}

async fn a_rejected_token_is_error_190_and_throttling_is_waited_out(be: Be) {
    let sandbox = MetaSandbox::start().await.unwrap();
    sandbox.add_whatsapp(
        TOKEN,
        SECRET,
        WABA,
        &[(N1, "+1 555-0001"), (N2, "+1 555-0002")],
    );
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let mut d = whatsapp_draft(&sandbox, "EAAGrevokedToken");
    d.name = "Revoked".into();
    add_running(&env, &d).await;
    let c = wait_status(&env, "Revoked", Status::Error).await;
    assert!(
        c.status_message.starts_with(
            "Meta rejected the access token (190): sign in again or paste a new Access token"
        ),
        "{}",
        c.status_message
    );
    assert!(!c.status_message.contains("EAAGrevoked"));

    // A phone number id the token cannot reach: the field and the value are named.
    let mut d = whatsapp_draft(&sandbox, TOKEN);
    d.name = "Wrong number".into();
    d.fields
        .insert("phone_number_ids".into(), format!("{N1},999000999"));
    add_running(&env, &d).await;
    let c = wait_status(&env, "Wrong number", Status::Error).await;
    assert!(
        c.status_message.starts_with("Phone number IDs value 2 '999000999' is not something this Access token can reach (Meta 100"),
        "{}",
        c.status_message
    );

    add_running(&env, &whatsapp_draft(&sandbox, TOKEN)).await;
    let c = wait_status(&env, "Shop WhatsApp", Status::Running).await;
    sandbox.throttle(130429, 2);
    let (m, _) = meta::whatsapp_text(N1, "60173526233", "Lee", "busy?", 9);
    assert_eq!(sandbox.deliver(&host.url(&c), SECRET, &m).await.0, 200);
    let sent = sandbox.wait_sent(1, Duration::from_secs(20)).await;
    assert_eq!(sent.len(), 1, "answered once Meta stopped throttling");
    let logs = common::runtime::log_text(&env, "Shop WhatsApp", "replied").await;
    assert!(logs.contains("Meta asks to slow down (130429"), "{logs}");
    host.shutdown().await;
}

const APP_ID: &str = "4000000000001";
const APP_SECRET: &str = "fedcba9876543210fedcba9876543210";
const CLIENT_TOKEN: &str = "c1i3nt70k3n00000000000000000000a";

/// `flametree channels add --meta-sign-in` against the sandbox: the test approves the
/// code the CLI shows, as the operator would on facebook.com/device.
async fn sign_in_from_the_cli(env: &Env, sandbox: &MetaSandbox, args: Vec<String>) -> common::Run {
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
        .env("FLAMETREE_META_APP_ID", APP_ID)
        .env("FLAMETREE_META_APP_SECRET", APP_SECRET)
        .env("FLAMETREE_META_CLIENT_TOKEN", CLIENT_TOKEN)
        .env("FLAMETREE_META_GRAPH_API_URL", &sandbox.url());
    let before = sandbox.user_codes().len();
    let run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.run(&args, None)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let codes = sandbox.user_codes();
        if codes.len() > before {
            break codes.into_iter().max().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the CLI never asked Meta for a code"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(sandbox.approve(&code, "EAAshortLivedUserToken01"));
    run.await.unwrap()
}

async fn signing_in_with_meta_fills_a_whatsapp_connection(be: Be) {
    let sandbox = MetaSandbox::start().await.unwrap();
    sandbox.set_app(APP_ID, APP_SECRET, CLIENT_TOKEN, 1);
    sandbox.add_whatsapp(
        TOKEN,
        SECRET,
        WABA,
        &[(N1, "+1 555-0001"), (N2, "+1 555-0002")],
    );
    sandbox.add_page("EAAGpageToken0001", APP_SECRET, "111111", "Sandbox Page");
    sandbox.add_user(
        "EAAshortLivedUserToken01",
        "EAAlongLivedUserToken001",
        &[("111111", "EAAGpageToken0001")],
        &[WABA],
    );
    let env = common::channels_env_on(be).await;
    let args: Vec<String> = [
        "channels",
        "add",
        "--type",
        "whatsapp",
        "--name",
        "Signed in",
        "--meta-sign-in",
        "--pick",
        "1",
        "--env",
        &format!("WHATSAPP_GRAPH_API_URL={}", sandbox.url()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = sign_in_from_the_cli(&env, &sandbox, args).await;
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr()
            .contains("open https://www.facebook.com/device and enter the code SB"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr().contains(&format!(
            "1) WhatsApp Business Account {WABA}: +1 555-0001, +1 555-0002"
        )),
        "{}",
        r.all()
    );
    for secret in [APP_SECRET, CLIENT_TOKEN, "EAAshortLived", "EAAlongLived"] {
        assert!(!r.all().contains(secret), "{secret} printed:\n{}", r.all());
    }
    let c = env.channels.find("Signed in").await.unwrap();
    assert_eq!(
        c.fields.get("phone_number_ids").map(String::as_str),
        Some(&*format!("{N1},{N2}"))
    );
    assert_eq!(
        c.fields.get("business_account_id").map(String::as_str),
        Some(WABA)
    );
    for s in ["access_token", "app_secret", "verify_token"] {
        assert!(
            c.secrets.contains_key(s),
            "{s} filled: {:?}",
            c.secrets.keys().collect::<Vec<_>>()
        );
    }
    // The long-lived token and the server's app secret run it for real.
    let host = host(&env).await;
    let echo = common::runtime::echo_agent(&env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    env.channels
        .set_desired(&c, DesiredState::Running)
        .await
        .unwrap();
    let c = wait_status(&env, "Signed in", Status::Running).await;
    let (m, _) = meta::whatsapp_text(N2, "60173526299", "Ola", "signed in?", 7);
    assert_eq!(sandbox.deliver(&host.url(&c), APP_SECRET, &m).await.0, 200);
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].from, N2);
    host.shutdown().await;
}

async fn signing_in_for_a_page_and_refusals(be: Be) {
    let sandbox = MetaSandbox::start().await.unwrap();
    sandbox.set_app(APP_ID, APP_SECRET, CLIENT_TOKEN, 1);
    sandbox.add_page("EAAGpageToken0001", APP_SECRET, "111111", "Sandbox Page");
    sandbox.add_page("EAAGpageToken0002", APP_SECRET, "222222", "Second Page");
    sandbox.add_user(
        "EAAshortLivedUserToken01",
        "EAAlongLivedUserToken001",
        &[
            ("111111", "EAAGpageToken0001"),
            ("222222", "EAAGpageToken0002"),
        ],
        &[],
    );
    let env = common::channels_env_on(be).await;
    let args: Vec<String> = [
        "channels",
        "add",
        "--type",
        "facebook",
        "--name",
        "Page two",
        "--meta-sign-in",
        "--pick",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = sign_in_from_the_cli(&env, &sandbox, args).await;
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr()
            .contains("1) Facebook page Sandbox Page (111111)"),
        "{}",
        r.all()
    );
    let c = env.channels.find("Page two").await.unwrap();
    assert_eq!(c.fields.get("page_id").map(String::as_str), Some("222222"));
    assert!(c.secrets.contains_key("page_access_token"));

    // Without the app configured: the spec's words, and what to do instead.
    let cli = common::Cli::new(env.dir.path()).with_database(&env.url);
    let r = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "facebook",
            "--name",
            "X",
            "--meta-sign-in",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("Meta App ID and App Secret are not configured on the server"),
        "{}",
        r.all()
    );
    let r = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "X",
            "--meta-sign-in",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("--meta-sign-in is for WhatsApp, Instagram and Facebook"),
        "{}",
        r.all()
    );
}

on_both!(
    whatsapp_answers_each_number_from_itself,
    messenger_and_instagram_answer_and_skip_their_echoes,
    a_rejected_token_is_error_190_and_throttling_is_waited_out,
    signing_in_with_meta_fills_a_whatsapp_connection,
    signing_in_for_a_page_and_refusals,
);
