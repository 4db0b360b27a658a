//! Intercom, Bird and Infobip through the ingress against their sandboxes, on SQLite
//! and PostgreSQL.

mod common;

use common::Be;
use common::hooks::{add_running, draft, host, wait_status};
use flametree::model::Status;
use flametree::sandbox::bird::{self, BirdSandbox};
use flametree::sandbox::infobip::{self, InfobipSandbox};
use flametree::sandbox::intercom::{self, IntercomSandbox};
use flametree::sandbox::legacy::{self, LegacySandbox};
use std::time::Duration;

const IC_TOKEN: &str = "dG9rOmludGVyY29tU2FuZGJveFRva2VuMDAx";
const IC_SECRET: &str = "intercom-client-secret-0001";
const ADMIN: (&str, &str) = ("814860", "Support Bot");

fn intercom_draft(
    sandbox: &IntercomSandbox,
    name: &str,
    token: &str,
    admin: &str,
) -> flametree::channels::Draft {
    draft(
        "intercom",
        name,
        &[("admin_id", admin)],
        &[("access_token", token), ("client_secret", IC_SECRET)],
        &[
            ("INTERCOM_API_URL", sandbox.url()),
            ("INTERCOM_API_VERSION", "2.11".into()),
        ],
    )
}

async fn intercom_answers_customers_as_the_admin(be: Be) {
    let sandbox = IntercomSandbox::start(IC_TOKEN, "Sandbox Shop", ADMIN)
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(
        &env,
        &intercom_draft(&sandbox, "Helpdesk", IC_TOKEN, ADMIN.0),
    )
    .await;
    let c = wait_status(&env, "Helpdesk", Status::Running).await;
    assert!(
        c.status_message
            .contains("Sandbox Shop, replying as Support Bot"),
        "{}",
        c.status_message
    );
    let url = host.url(&c);

    let created = intercom::user_created(
        "1001",
        "5001",
        "Ann",
        "<p>Hello, is my <b>order</b> late?</p>",
    );
    assert_eq!(sandbox.deliver(&url, IC_SECRET, &created).await, 200);
    assert_eq!(
        sandbox.deliver(&url, IC_SECRET, &created).await,
        200,
        "a redelivery"
    );
    let replied = intercom::user_replied("1001", "5002", "<p>Any news?</p>");
    assert_eq!(sandbox.deliver(&url, IC_SECRET, &replied).await, 200);
    // Our own reply comes back as an admin notification: never answered.
    assert_eq!(
        sandbox
            .deliver(&url, IC_SECRET, &intercom::admin_replied("1001", "9001"))
            .await,
        200
    );
    let replies = sandbox.wait_replies(2, Duration::from_secs(10)).await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].conversation, "1001");
    assert_eq!(replies[0].admin_id, ADMIN.0);
    assert_eq!(replies[0].body, "You said: Hello, is my order late?");
    assert_eq!(replies[1].body, "You said: Any news?");

    // Signatures: missing or wrong is 401 and a WARN.
    assert_eq!(sandbox.post(&url, None, created.to_string()).await, 401);
    assert_eq!(
        sandbox
            .post(&url, Some("sha1=0000"), created.to_string())
            .await,
        401
    );
    // Intercom throttles, then answers: the reply goes out.
    sandbox.fail_replies(429, 1);
    let again = intercom::user_replied("1002", "5003", "<p>Still there?</p>");
    assert_eq!(sandbox.deliver(&url, IC_SECRET, &again).await, 200);
    let replies = sandbox.wait_replies(3, Duration::from_secs(15)).await;
    assert_eq!(replies.len(), 3, "answered after the 429");
    let logs = common::runtime::log_text(&env, "Helpdesk", "Intercom asks to slow down").await;
    assert!(logs.contains("without X-Hub-Signature"), "{logs}");
    assert!(logs.contains("X-Hub-Signature does not match"), "{logs}");
    assert!(logs.contains("conversation.admin.replied"), "{logs}");
    assert!(logs.contains("Intercom asks to slow down (429"), "{logs}");
    for s in [IC_TOKEN, IC_SECRET] {
        assert!(!logs.contains(s), "a secret reached the log");
    }
    host.shutdown().await;
}

async fn intercom_names_a_wrong_token_or_admin(be: Be) {
    let sandbox = IntercomSandbox::start(IC_TOKEN, "Sandbox Shop", ADMIN)
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(
        &env,
        &intercom_draft(&sandbox, "Bad token", "dG9rOndyb25n", ADMIN.0),
    )
    .await;
    add_running(
        &env,
        &intercom_draft(&sandbox, "Bad admin", IC_TOKEN, "999"),
    )
    .await;
    let t = wait_status(&env, "Bad token", Status::Error).await;
    assert!(
        t.status_message
            .starts_with("Intercom rejected the Access token (401"),
        "{}",
        t.status_message
    );
    let a = wait_status(&env, "Bad admin", Status::Error).await;
    assert!(
        a.status_message
            .starts_with("Admin ID '999' is not an admin of Sandbox Shop"),
        "{}",
        a.status_message
    );
    host.shutdown().await;
}

const BIRD_KEY: &str = "birdAccessKeySandbox0001";
const BIRD_SIGNING: &str = "bird-signing-key-0001";
const WS: &str = "2b8f2b7a-0000-4000-8000-000000000001";
const CH: &str = "614208aa-b153-4d5d-9989-2fddfc0ce4c3";

fn bird_draft(
    sandbox: &BirdSandbox,
    name: &str,
    channel: &str,
    org: Option<&str>,
) -> flametree::channels::Draft {
    let mut env = vec![
        ("BIRD_API_URL", sandbox.url()),
        ("BIRD_WEBHOOK_MAX_AGE", "300".into()),
    ];
    if let Some(o) = org {
        env.push(("BIRD_ORGANIZATION_ID", o.to_string()));
    }
    draft(
        "bird",
        name,
        &[("workspace_id", WS), ("channel_id", channel)],
        &[("access_key", BIRD_KEY), ("signing_key", BIRD_SIGNING)],
        &env,
    )
}

async fn bird_answers_signed_sms_and_refuses_stale_ones(be: Be) {
    let sandbox = BirdSandbox::start(BIRD_KEY, WS, &[(CH, "Sandbox SMS")])
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(&env, &bird_draft(&sandbox, "Bird SMS", CH, Some("org-1"))).await;
    let c = wait_status(&env, "Bird SMS", Status::Running).await;
    assert!(
        c.status_message.contains("Bird channel Sandbox SMS"),
        "{}",
        c.status_message
    );
    let url = host.url(&c);
    let subs = sandbox.subscriptions();
    assert_eq!(subs.len(), 1, "Start registered the subscription");
    assert_eq!(subs[0]["url"], url.as_str());
    assert_eq!(subs[0]["event"], "sms.inbound");
    assert_eq!(subs[0]["eventFilters"][0]["value"], CH);

    let m = bird::sms_inbound(
        CH,
        "+31612345678",
        "hello bird",
        "96a0b5fa-0000-4000-8000-000000000001",
    );
    assert_eq!(sandbox.deliver(&url, BIRD_SIGNING, &m).await, 200);
    assert_eq!(
        sandbox.deliver(&url, BIRD_SIGNING, &m).await,
        200,
        "a redelivery"
    );
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].text.as_str()),
        ("+31612345678", "You said: hello bird")
    );

    // A replay of a signed delivery from ten minutes ago, a wrong key, a status report.
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let m2 = bird::sms_inbound(
        CH,
        "+31612345679",
        "old news",
        "96a0b5fa-0000-4000-8000-000000000002",
    );
    assert_eq!(sandbox.deliver_at(&url, BIRD_SIGNING, &m2, &old).await, 401);
    assert_eq!(sandbox.deliver(&url, "not-the-key", &m2).await, 401);
    common::runtime::log_text(&env, "Bird SMS", "replied to +31612345678").await;
    let failed = bird::sms_status(CH, &sent[0].id, "failed");
    assert_eq!(sandbox.deliver(&url, BIRD_SIGNING, &failed).await, 200);
    // Bird is busy, then answers: the reply goes out.
    sandbox.fail_sends(429, 1);
    let m3 = bird::sms_inbound(
        CH,
        "+31612345670",
        "busy?",
        "96a0b5fa-0000-4000-8000-000000000003",
    );
    assert_eq!(sandbox.deliver(&url, BIRD_SIGNING, &m3).await, 200);
    assert_eq!(sandbox.wait_sent(2, Duration::from_secs(10)).await.len(), 2);
    let logs = common::runtime::log_text(&env, "Bird SMS", "was not delivered").await;
    assert!(
        logs.contains("older than BIRD_WEBHOOK_MAX_AGE (300 s)"),
        "{logs}"
    );
    assert!(
        logs.contains("MessageBird-Signature does not match"),
        "{logs}"
    );
    assert!(logs.contains("the reply to +31612345678"), "{logs}");
    assert!(
        logs.contains("registered Bird's webhook subscription"),
        "{logs}"
    );
    assert_eq!(sandbox.sent().len(), 2, "nothing else answered");

    // Started again: the subscription is there, not registered twice.
    let c = env.channels.find("Bird SMS").await.unwrap();
    env.channels
        .set_desired(&c, flametree::model::DesiredState::Stopped)
        .await
        .unwrap();
    wait_status(&env, "Bird SMS", Status::Stopped).await;
    env.channels
        .set_desired(&c, flametree::model::DesiredState::Running)
        .await
        .unwrap();
    wait_status(&env, "Bird SMS", Status::Running).await;
    assert_eq!(sandbox.subscriptions().len(), 1);
    // Deleting the connection removes what Start registered at Bird.
    let c = env.channels.find("Bird SMS").await.unwrap();
    env.channels.delete(&c).await.unwrap();
    assert!(
        sandbox.subscriptions().is_empty(),
        "the subscription went with the connection"
    );
    host.shutdown().await;
}

async fn bird_names_a_channel_that_is_not_in_the_workspace(be: Be) {
    let sandbox = BirdSandbox::start(BIRD_KEY, WS, &[(CH, "Sandbox SMS")])
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(
        &env,
        &bird_draft(
            &sandbox,
            "Wrong channel",
            "00000000-1111-4000-8000-000000000000",
            None,
        ),
    )
    .await;
    let c = wait_status(&env, "Wrong channel", Status::Error).await;
    assert!(
        c.status_message.starts_with(
            "Channel ID '00000000-1111-4000-8000-000000000000' is not a channel of workspace"
        ) && c.status_message.contains(CH),
        "{}",
        c.status_message
    );
    let mut bad_key = bird_draft(&sandbox, "Wrong key", CH, None);
    bad_key.secrets.insert(
        "access_key".into(),
        flametree::secrets::SecretString::new("not-a-key"),
    );
    add_running(&env, &bad_key).await;
    let k = wait_status(&env, "Wrong key", Status::Error).await;
    assert!(
        k.status_message
            .starts_with("Bird refused the credentials (401")
            && k.status_message.contains("check the Access key"),
        "{}",
        k.status_message
    );
    host.shutdown().await;
}

const IB_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-sandbox";

fn infobip_draft(
    sandbox: &InfobipSandbox,
    name: &str,
    key: &str,
    env: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> flametree::channels::Draft {
    let mut all: Vec<(&str, String)> = vec![("INFOBIP_PULL_INTERVAL", "1".into())];
    all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let mut s = vec![("api_key", key)];
    s.extend_from_slice(secrets);
    draft(
        "infobip",
        name,
        &[("base_url", &sandbox.url()), ("sender", "+447860099299")],
        &s,
        &all,
    )
}

async fn infobip_pulls_the_inbox_and_answers_each_sms_once(be: Be) {
    let sandbox = InfobipSandbox::start(IB_KEY).await.unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(
        &env,
        &infobip_draft(
            &sandbox,
            "SMS line",
            IB_KEY,
            &[("INFOBIP_SMS_API", "v2")],
            &[],
        ),
    )
    .await;
    let c = wait_status(&env, "SMS line", Status::Running).await;
    assert!(
        c.status_message
            .contains("SMS from +447860099299 (pulling, balance 47.79 EUR)"),
        "{}",
        c.status_message
    );
    sandbox.queue_mo("385916242493", "447860099299", "KEYWORD hello");
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "385916242493");
    assert_eq!(sent[0].from, "+447860099299");
    assert_eq!(sent[0].text, "You said: KEYWORD hello");
    assert_eq!(sent[0].api, "v2", "INFOBIP_SMS_API=v2");
    // A 5xx on the reply is retried; the inbox keeps being pulled.
    sandbox.fail_sends(503, 1);
    sandbox.queue_mo("385916242494", "447860099299", "second");
    let sent = sandbox.wait_sent(2, Duration::from_secs(15)).await;
    assert_eq!(sent.len(), 2);
    assert!(sandbox.pulls() >= 2);
    let logs = common::runtime::log_text(&env, "SMS line", "Infobip answered 503").await;
    assert!(
        logs.contains("pulling incoming SMS from Infobip every 1 s"),
        "{logs}"
    );
    assert!(!logs.contains(IB_KEY));
    host.shutdown().await;
}

async fn infobip_webhook_mode_with_basic_auth(be: Be) {
    let sandbox = InfobipSandbox::start(IB_KEY).await.unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let d = infobip_draft(
        &sandbox,
        "SMS hook",
        IB_KEY,
        &[
            ("INFOBIP_INBOUND_MODE", "webhook"),
            ("INFOBIP_WEBHOOK_USER", "ib"),
        ],
        &[("webhook_password", "hook-pass-123")],
    );
    add_running(&env, &d).await;
    let c = wait_status(&env, "SMS hook", Status::Running).await;
    let url = host.url(&c);
    let m = infobip::mo_forward("mo-1", "385916242493", "447860099299", "via webhook");
    assert_eq!(
        sandbox
            .forward(&url, &m, Some(("ib", "hook-pass-123")))
            .await,
        200
    );
    assert_eq!(
        sandbox
            .forward(&url, &m, Some(("ib", "hook-pass-123")))
            .await,
        200,
        "redelivery"
    );
    assert_eq!(sandbox.forward(&url, &m, None).await, 401);
    assert_eq!(sandbox.forward(&url, &m, Some(("ib", "wrong"))).await, 401);
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].api, "v3");
    // Infobip reports on a message after answering its send; so does this test.
    common::runtime::log_text(&env, "SMS hook", "replied to 385916242493").await;
    let dlr = infobip::delivery_report(&sent[0].id, "385916242493", "UNDELIVERABLE");
    assert_eq!(
        sandbox
            .forward(&url, &dlr, Some(("ib", "hook-pass-123")))
            .await,
        200
    );
    let logs = common::runtime::log_text(&env, "SMS hook", "was not delivered").await;
    assert!(
        logs.contains("without the right Basic-auth credentials"),
        "{logs}"
    );
    assert!(logs.contains("the reply to 385916242493"), "{logs}");
    assert_eq!(sandbox.sent().len(), 1, "the report is not answered");
    assert!(!logs.contains("hook-pass-123"));
    host.shutdown().await;
}

async fn infobip_names_a_rejected_key(be: Be) {
    let sandbox = InfobipSandbox::start(IB_KEY).await.unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    add_running(
        &env,
        &infobip_draft(&sandbox, "Bad key", "wrong-key", &[], &[]),
    )
    .await;
    let c = wait_status(&env, "Bad key", Status::Error).await;
    assert!(
        c.status_message
            .starts_with("Infobip refused the credentials (401 UNAUTHORIZED: Invalid login details): copy the API key again"),
        "{}",
        c.status_message
    );
    host.shutdown().await;
}

const MB_KEY: &str = "live_sandboxMessageBirdKey0001";
const MB_SIGNING: &str = "mb-signing-key-0001";
const MB_CHANNEL: &str = "0123456789abcdef0123456789abcdef";

async fn deprecated_messagebird_keeps_running(be: Be) {
    let sandbox = LegacySandbox::start(MB_KEY, ("admin", "op-pass"))
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let d = draft(
        "messagebird",
        "Legacy SMS",
        &[("channel_id", MB_CHANNEL)],
        &[("access_key", MB_KEY), ("signing_key", MB_SIGNING)],
        &[("MESSAGEBIRD_API_URL", sandbox.messagebird_url())],
    );
    add_running(&env, &d).await;
    let c = wait_status(&env, "Legacy SMS", Status::Running).await;
    assert!(
        c.status_message.contains("(deprecated)"),
        "{}",
        c.status_message
    );
    let url = host.url(&c);
    let m = legacy::messagebird_text(MB_CHANNEL, "31612345678", "still there?", "mbin0001");
    assert_eq!(
        sandbox
            .messagebird_deliver(&url, Some(MB_SIGNING), &m)
            .await,
        200
    );
    assert_eq!(
        sandbox
            .messagebird_deliver(&url, Some(MB_SIGNING), &m)
            .await,
        200,
        "redelivery"
    );
    assert_eq!(
        sandbox.messagebird_deliver(&url, Some("wrong"), &m).await,
        401
    );
    assert_eq!(sandbox.messagebird_deliver(&url, None, &m).await, 401);
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0.as_str(), sent[0].1.as_str()),
        ("+31612345678", "You said: still there?")
    );
    let mut bad = d.clone();
    bad.name = "Legacy bad key".into();
    bad.secrets.insert(
        "access_key".into(),
        flametree::secrets::SecretString::new("live_wrong"),
    );
    add_running(&env, &bad).await;
    let e = wait_status(&env, "Legacy bad key", Status::Error).await;
    assert!(
        e.status_message
            .starts_with("MessageBird refused the credentials (401"),
        "{}",
        e.status_message
    );
    let logs =
        common::runtime::log_text(&env, "Legacy SMS", "MessageBird-Signature does not match").await;
    assert!(logs.contains("MessageBird is a deprecated channel type: it keeps running, but plan its migration to Bird"), "{logs}");
    assert_eq!(
        logs.matches("deprecated channel type").count(),
        1,
        "said once per start"
    );
    host.shutdown().await;
}

async fn deprecated_whatsapp_on_premises_keeps_running(be: Be) {
    let sandbox = LegacySandbox::start(MB_KEY, ("admin", "op-pass"))
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let d = draft(
        "whatsapp_on_premises",
        "Old WhatsApp",
        &[
            ("base_url", &sandbox.onprem_url()),
            ("username", "admin"),
            ("phone_number", "+16315551234"),
        ],
        &[("password", "op-pass")],
        &[],
    );
    add_running(&env, &d).await;
    let c = wait_status(&env, "Old WhatsApp", Status::Running).await;
    assert_eq!(
        sandbox.onprem_webhook(),
        host.url(&c),
        "Start pointed the client's webhook here"
    );
    let m = legacy::onprem_text(
        "16315551234",
        "hello on-prem",
        "ABGGFlA5FpafAgo6EhgH-9CMLJ5N",
    );
    assert_eq!(sandbox.onprem_deliver(&m).await, 200);
    let sent = sandbox.wait_sent(1, Duration::from_secs(10)).await;
    assert_eq!(
        (sent[0].0.as_str(), sent[0].1.as_str()),
        ("16315551234", "You said: hello on-prem")
    );
    // The client's token lapses: the next reply logs in again and goes out.
    sandbox.expire_tokens();
    let m = legacy::onprem_text("16315551234", "again", "ABGGFlA5FpafAgo6EhgH-9CMLJ5O");
    assert_eq!(sandbox.onprem_deliver(&m).await, 200);
    assert_eq!(sandbox.wait_sent(2, Duration::from_secs(10)).await.len(), 2);
    assert!(sandbox.onprem_logins() >= 2);
    let logs = common::runtime::log_text(&env, "Old WhatsApp", "deprecated").await;
    assert!(
        logs.contains("WhatsApp On-Premises API is a deprecated channel type"),
        "{logs}"
    );
    assert!(!logs.contains("op-pass"));
    let mut bad = d.clone();
    bad.name = "Bad password".into();
    bad.secrets.insert(
        "password".into(),
        flametree::secrets::SecretString::new("nope"),
    );
    add_running(&env, &bad).await;
    let e = wait_status(&env, "Bad password", Status::Error).await;
    assert!(
        e.status_message
            .contains("refused Username and Password (401 1005 Access denied"),
        "{}",
        e.status_message
    );
    host.shutdown().await;
}

on_both!(
    intercom_answers_customers_as_the_admin,
    intercom_names_a_wrong_token_or_admin,
    bird_answers_signed_sms_and_refuses_stale_ones,
    bird_names_a_channel_that_is_not_in_the_workspace,
    infobip_pulls_the_inbox_and_answers_each_sms_once,
    infobip_webhook_mode_with_basic_auth,
    infobip_names_a_rejected_key,
    deprecated_messagebird_keeps_running,
    deprecated_whatsapp_on_premises_keeps_running,
);
