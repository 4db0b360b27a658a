//! Intercom, Bird and Infobip through the ingress against their sandboxes, on SQLite
//! and PostgreSQL.

mod common;

use common::Be;
use common::hooks::{add_running, draft, host, wait_status};
use flametree::model::Status;
use flametree::sandbox::intercom::{self, IntercomSandbox};
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

on_both!(
    intercom_answers_customers_as_the_admin,
    intercom_names_a_wrong_token_or_admin,
);
