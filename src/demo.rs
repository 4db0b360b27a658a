//! `flametree demo`: a local Telegram sandbox, a few connections on it — healthy ones,
//! one with a wrong token that goes to ERROR, a deprecated one — a simulated customer,
//! and the console on top, so a newcomer sees channels RUNNING and logs flowing at once.
//! Everything lives in `<data_dir>/demo/`, apart from the operator's own data.

use crate::channels::Draft;
use crate::config::Loaded;
use crate::context::{Context, Overrides};
use crate::model::{DesiredState, EnvVar};
use crate::sandbox::telegram::TelegramSandbox;
use crate::secrets::SecretString;
use std::time::Duration;

const BOTS: [(&str, &str, &str); 2] = [
    (
        "Sales bot",
        "sales_demo_bot",
        "7000000001:AAEdemoSalesBotTokenOnTheLocalSandbox1",
    ),
    (
        "Support bot",
        "support_demo_bot",
        "7000000002:AAEdemoSupportBotTokenOnTheLocalSandbx",
    ),
];
/// Not registered with the sandbox: Telegram answers 401, the connection goes to ERROR.
const REVOKED: (&str, &str) = (
    "Old promo bot",
    "7000000003:AAEdemoRevokedTokenNobodyKnowsAnyMore0",
);

pub async fn run(mut loaded: Loaded, overrides: &Overrides) -> anyhow::Result<()> {
    let dir = loaded.data_dir.join("demo");
    crate::fsutil::create_private_dir(&dir)?;
    for f in ["flametree.db", "flametree.db-wal", "flametree.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    loaded.data_dir = dir.clone();
    loaded.database_url = format!("sqlite://{}", dir.join("flametree.db").display());
    loaded.key_file = dir.join("master.key");
    loaded.config.secrets.master_key.clear();
    let overrides = Overrides {
        database_url: None,
        ..overrides.clone()
    };

    let sandbox = TelegramSandbox::start().await?;
    for (_, username, token) in BOTS {
        sandbox.add_bot(token, username);
    }
    let ctx = Context::open(loaded.clone(), &overrides).await?;
    let env = vec![
        EnvVar {
            name: "TELEGRAM_API_URL".into(),
            value: sandbox.url(),
        },
        EnvVar {
            name: "TELEGRAM_POLL_TIMEOUT".into(),
            value: "5".into(),
        },
    ];
    let agent = ctx
        .channels
        .create_agent(
            "Support",
            crate::agents::service::AgentEdit {
                description: Some("Demo agent answering both demo bots with built-in rules".into()),
                responder: Some(crate::agents::ResponderConfig::Rules(
                    crate::agents::Rules {
                        greeting:
                            "Hi! I'm the demo support agent. Ask me about an order or shipping."
                                .into(),
                        rules: vec![
                            crate::agents::Rule {
                                keyword: "order".into(),
                                reply:
                                    "Your order is on its way; you'll get a tracking link by email."
                                        .into(),
                            },
                            crate::agents::Rule {
                                keyword: "ship".into(),
                                reply: "We ship to all EU countries within 3 working days.".into(),
                            },
                        ],
                        fallback: "Thanks! A colleague will follow up on: \"{text}\"".into(),
                    },
                )),
                ..Default::default()
            },
        )
        .await?;
    let chat = dir.join("CHAT.txt");
    let mut how_to_chat = String::from(
        "Chat with the demo bots as a customer (the sandbox speaks the Telegram Bot API):\n\n",
    );
    for (name, username, token) in BOTS.iter().copied().chain([(REVOKED.0, "", REVOKED.1)]) {
        let mut draft = Draft {
            type_key: "telegram".into(),
            name: name.into(),
            description: format!(
                "Demo bot on the local Telegram sandbox. How to chat with it: {}",
                chat.display()
            ),
            env: env.clone(),
            ..Draft::default()
        };
        draft
            .secrets
            .insert("bot_token".into(), SecretString::new(token));
        let saved = ctx.channels.add(&draft).await?;
        ctx.channels
            .attach_connection(&agent, &saved.connection, true)
            .await?;
        ctx.channels
            .set_desired(&saved.connection, DesiredState::Running)
            .await?;
        if !username.is_empty() {
            how_to_chat.push_str(&format!(
                "{name} (@{username}):\n  curl -s -X POST {url}/sandbox/bot{token}/inject \\\n    -H 'content-type: application/json' -d '{{\"chat_id\": 42, \"first_name\": \"Ann\", \"text\": \"Hello!\"}}'\n  curl -s {url}/sandbox/bot{token}/sent\n\n",
                url = sandbox.url()
            ));
        }
    }
    ctx.channels.run_agent(&agent, true).await?;
    let mut legacy = Draft {
        type_key: "messagebird".into(),
        name: "Legacy SMS".into(),
        description: "A deprecated MessageBird connection: plan its migration to Bird".into(),
        ..Draft::default()
    };
    legacy.fields.insert(
        "channel_id".into(),
        "0123456789abcdef0123456789abcdef".into(),
    );
    legacy.secrets.insert(
        "access_key".into(),
        SecretString::new("live_demoAccessKeyForTheLegacyType"),
    );
    ctx.channels.add(&legacy).await?;
    crate::fsutil::create_private_file(&chat)
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&chat)
        })
        .and_then(|mut f| std::io::Write::write_all(&mut f, how_to_chat.as_bytes()))?;

    // A customer who keeps writing to the sales bot, so the logs have something to show.
    let customer = sandbox.clone();
    let talk = tokio::spawn(async move {
        let lines = [
            "Hi! Is my order #1042 shipped yet?",
            "Can I change the delivery address?",
            "Thanks, that helps.",
            "Do you ship to Lisbon?",
        ];
        for n in 0usize.. {
            tokio::time::sleep(Duration::from_secs(6)).await;
            customer.inject_message(BOTS[0].2, 4242, "Ann", lines[n % lines.len()]);
        }
    });
    drop(ctx);
    let result = crate::tui::run(loaded, &overrides).await;
    talk.abort();
    sandbox.shutdown().await;
    result
}
