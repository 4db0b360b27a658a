//! `flametree demo`: local Telegram and Meta sandboxes, a few connections on them —
//! healthy Telegram bots, a WhatsApp connection with two numbers and a Messenger page
//! (webhooks through the console's ingress), one bot with a wrong token that goes to
//! ERROR, SMS lines on Infobip and Bird, a deprecated MessageBird one still running —
//! simulated customers, and the console on top, so a newcomer
//! sees channels RUNNING and logs flowing at once.
//! Everything lives in `<data_dir>/demo/`, apart from the operator's own data.

use crate::channels::Draft;
use crate::config::Loaded;
use crate::context::{Context, Overrides};
use crate::model::{DesiredState, EnvVar};
use crate::sandbox::meta::{self, MetaSandbox};

mod sms;
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

const META_TOKEN: &str = "EAAGdemoWhatsAppSystemUserTokenOnTheSandbox";
const META_APP_SECRET: &str = "de30de30de30de30de30de30de30de30";
const WABA: &str = "102290129340398";
/// The demo Meta app (app id, client token) and the user who signs in with it.
const DEMO_APP: (&str, &str) = ("1234567890123", "demo-client-token");
const DEMO_USER: &str = "EAAdemoUserTokenOnTheSandbox";
const WA_NUMBERS: [(&str, &str); 2] = [
    ("106540352242922", "+351 21 000 0001"),
    ("106540352242923", "+351 21 000 0002"),
];
/// (page id, name, page token)
const META_PAGE: (&str, &str, &str) = (
    "109876543210987",
    "Demo Shop",
    "EAAGdemoPageTokenOnTheSandbox",
);

/// The WhatsApp connection and the Messenger page; returns their webhook URLs.
async fn add_meta(
    ctx: &Context,
    agent: &crate::model::Agent,
    sandbox: &MetaSandbox,
    ingress: &str,
) -> anyhow::Result<(String, String)> {
    let numbers: Vec<(&str, &str)> = WA_NUMBERS.to_vec();
    sandbox.add_whatsapp(META_TOKEN, META_APP_SECRET, WABA, &numbers);
    sandbox.add_page(META_PAGE.2, META_APP_SECRET, META_PAGE.0, META_PAGE.1);
    let env = |name: &str| {
        vec![EnvVar {
            name: name.into(),
            value: sandbox.url(),
        }]
    };
    let mut wa = Draft {
        type_key: "whatsapp".into(),
        name: "Shop WhatsApp".into(),
        description: "Demo WhatsApp connection with two numbers on the local Meta sandbox".into(),
        env: env("WHATSAPP_GRAPH_API_URL"),
        ..Draft::default()
    };
    let ids: Vec<&str> = WA_NUMBERS.iter().map(|(i, _)| *i).collect();
    wa.fields.insert("phone_number_ids".into(), ids.join(","));
    wa.fields.insert("business_account_id".into(), WABA.into());
    let mut page = Draft {
        type_key: "facebook".into(),
        name: "Shop page".into(),
        description: "Demo Messenger page on the local Meta sandbox".into(),
        env: env("FACEBOOK_GRAPH_API_URL"),
        ..Draft::default()
    };
    page.fields.insert("page_id".into(), META_PAGE.0.into());
    let secrets = [
        ("access_token", META_TOKEN),
        ("page_access_token", META_PAGE.2),
        ("app_secret", META_APP_SECRET),
        ("verify_token", "demo-verify-token"),
    ];
    let mut hooks = Vec::new();
    for mut d in [wa, page] {
        let ty = crate::channels::channel_type(&d.type_key)?;
        for (k, v) in secrets {
            if ty.field(k).is_some() {
                d.secrets.insert(k.into(), SecretString::new(v));
            }
        }
        let saved = ctx.channels.add(&d).await?;
        ctx.channels
            .attach_connection(agent, &saved.connection, true)
            .await?;
        ctx.channels
            .set_desired(&saved.connection, DesiredState::Running)
            .await?;
        hooks.push(crate::runtime::webhook_url(
            ingress,
            &saved.connection.hook_id,
        ));
    }
    Ok((hooks[0].clone(), hooks[1].clone()))
}

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
    // Meta delivers to the ingress: the demo needs to know its address before it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    loaded.config.http.listen = format!("127.0.0.1:{port}");
    loaded.config.http.public_url = String::new();
    let ingress = format!("http://127.0.0.1:{port}");

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
    let meta_sandbox = std::sync::Arc::new(MetaSandbox::start().await?);
    let meta_hooks = add_meta(&ctx, &agent, &meta_sandbox, &ingress).await?;
    // Signing in with Meta works too, against the sandbox's app and user.
    meta_sandbox.set_app(DEMO_APP.0, META_APP_SECRET, DEMO_APP.1, 2);
    meta_sandbox.add_user(DEMO_USER, DEMO_USER, &[(META_PAGE.0, META_PAGE.2)], &[WABA]);
    meta_sandbox.add_instagram(
        META_PAGE.2,
        META_APP_SECRET,
        "17841400000000042",
        "demo.shop",
    );
    meta_sandbox.link_instagram(META_PAGE.0, "17841400000000042");
    loaded.config.meta.app_id = DEMO_APP.0.into();
    loaded.config.meta.app_secret = META_APP_SECRET.into();
    loaded.config.meta.client_token = DEMO_APP.1.into();
    loaded.config.meta.graph_api_url = meta_sandbox.url();
    how_to_chat.push_str(&format!(
        "Shop WhatsApp (two numbers) and Shop page (Messenger) get signed webhooks from the \
         local Meta sandbox: a simulated customer writes to each every few seconds.\n\n\
         Sign in with Meta (add a WhatsApp, Instagram or Facebook connection, Enter on \
         \"Advanced mode\" while it is off) shows a code; approve it as the operator would on \
         facebook.com/device:\n  curl -s -X POST '{}/sandbox/device/approve?user_code=CODE&user_token={DEMO_USER}'\n",
        meta_sandbox.url()
    ));
    let sms = std::sync::Arc::new(sms::add(&ctx, &agent, &ingress).await?);
    how_to_chat.push_str(
        "\nSMS line (Infobip), Bird SMS and Legacy SMS (deprecated MessageBird) get a customer's \
         message every few seconds from their local sandboxes.\n",
    );
    let shop = crate::widget::demo::start(&ctx.channels, &agent, &ingress).await?;
    how_to_chat.push_str(&format!(
        "\nWeb Widget: open {shop} in a browser and chat with agent 'Support' there.\n"
    ));
    ctx.channels.run_agent(&agent, true).await?;
    crate::fsutil::create_private_file(&chat)
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&chat)
        })
        .and_then(|mut f| std::io::Write::write_all(&mut f, how_to_chat.as_bytes()))?;

    // Customers who keep writing, so the logs have something to show.
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
            sms.customers_write(n, lines[(n + 2) % lines.len()]).await;
            let text = lines[(n + 1) % lines.len()];
            let (number, from) = if n % 2 == 0 {
                (WA_NUMBERS[0].0, "351912345678")
            } else {
                (WA_NUMBERS[1].0, "351934567890")
            };
            let (m, _) = meta::whatsapp_text(number, from, "Rui", text, n as u64);
            let _ = meta_sandbox
                .deliver(&meta_hooks.0, META_APP_SECRET, &m)
                .await;
            let m = meta::messaging_text(
                "page",
                META_PAGE.0,
                "24000000000042",
                text,
                &format!("m_demo_{n}"),
                false,
            );
            let _ = meta_sandbox
                .deliver(&meta_hooks.1, META_APP_SECRET, &m)
                .await;
        }
    });
    drop(ctx);
    let result = crate::tui::run(loaded, &overrides).await;
    talk.abort();
    sandbox.shutdown().await;
    result
}
