//! The demo's SMS lines: Infobip (pulling its inbox), a Bird channel (signed webhooks
//! through the console's ingress) and the deprecated MessageBird connection, all on
//! local sandboxes, with customers who write to each.

use crate::channels::Draft;
use crate::context::Context;
use crate::model::{Agent, DesiredState, EnvVar};
use crate::sandbox::bird::{self, BirdSandbox};
use crate::sandbox::infobip::InfobipSandbox;
use crate::sandbox::legacy::{self, LegacySandbox};
use crate::secrets::SecretString;

const INFOBIP_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-demo";
const BIRD_KEY: &str = "birdDemoAccessKeyOnTheSandbox";
const BIRD_SIGNING: &str = "bird-demo-signing-key";
const BIRD_WS: &str = "2b8f2b7a-0000-4000-8000-00000000de30";
const BIRD_CH: &str = "614208aa-b153-4d5d-9989-2fddfc0cde30";
const MB_KEY: &str = "live_demoAccessKeyForTheLegacyType";
const MB_SIGNING: &str = "mb-demo-signing-key";
const MB_CHANNEL: &str = "0123456789abcdef0123456789abcdef";

pub struct SmsDemo {
    infobip: InfobipSandbox,
    bird: BirdSandbox,
    legacy: LegacySandbox,
    bird_hook: String,
    legacy_hook: String,
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value,
    }
}

async fn add_one(ctx: &Context, agent: &Agent, d: Draft, running: bool) -> anyhow::Result<String> {
    let saved = ctx.channels.add(&d).await?;
    ctx.channels
        .attach_connection(agent, &saved.connection, true)
        .await?;
    if running {
        ctx.channels
            .set_desired(&saved.connection, DesiredState::Running)
            .await?;
    }
    Ok(saved.connection.hook_id.clone())
}

pub async fn add(ctx: &Context, agent: &Agent, ingress: &str) -> anyhow::Result<SmsDemo> {
    let infobip = InfobipSandbox::start(INFOBIP_KEY).await?;
    let bird = BirdSandbox::start(BIRD_KEY, BIRD_WS, &[(BIRD_CH, "Demo SMS")]).await?;
    let legacy = LegacySandbox::start(MB_KEY, ("demo", "demo")).await?;

    let mut ib = Draft {
        type_key: "infobip".into(),
        name: "SMS line".into(),
        description: "Demo Infobip SMS number, pulling its inbox from the local sandbox".into(),
        env: vec![env("INFOBIP_PULL_INTERVAL", "2".into())],
        ..Draft::default()
    };
    ib.fields.insert("base_url".into(), infobip.url());
    ib.fields.insert("sender".into(), "+447860099299".into());
    ib.secrets
        .insert("api_key".into(), SecretString::new(INFOBIP_KEY));
    add_one(ctx, agent, ib, true).await?;

    let mut b = Draft {
        type_key: "bird".into(),
        name: "Bird SMS".into(),
        description: "Demo Bird channel on the local sandbox (signed webhooks)".into(),
        env: vec![env("BIRD_API_URL", bird.url())],
        ..Draft::default()
    };
    b.fields.insert("workspace_id".into(), BIRD_WS.into());
    b.fields.insert("channel_id".into(), BIRD_CH.into());
    b.secrets
        .insert("access_key".into(), SecretString::new(BIRD_KEY));
    b.secrets
        .insert("signing_key".into(), SecretString::new(BIRD_SIGNING));
    let bird_hook = add_one(ctx, agent, b, true).await?;

    let mut mb = Draft {
        type_key: "messagebird".into(),
        name: "Legacy SMS".into(),
        description: "A deprecated MessageBird connection, still running: M migrates it to Bird"
            .into(),
        env: vec![env("MESSAGEBIRD_API_URL", legacy.messagebird_url())],
        ..Draft::default()
    };
    mb.fields.insert("channel_id".into(), MB_CHANNEL.into());
    mb.secrets
        .insert("access_key".into(), SecretString::new(MB_KEY));
    mb.secrets
        .insert("signing_key".into(), SecretString::new(MB_SIGNING));
    let legacy_hook = add_one(ctx, agent, mb, true).await?;

    Ok(SmsDemo {
        infobip,
        bird,
        legacy,
        bird_hook: crate::runtime::webhook_url(ingress, &bird_hook),
        legacy_hook: crate::runtime::webhook_url(ingress, &legacy_hook),
    })
}

impl SmsDemo {
    /// Customer `n`'s next message on each SMS line.
    pub async fn customers_write(&self, n: usize, text: &str) {
        self.infobip.queue_mo("447700900123", "447860099299", text);
        let m = bird::sms_inbound(BIRD_CH, "+31612345678", text, &format!("demo-bird-{n}"));
        let _ = self.bird.deliver(&self.bird_hook, BIRD_SIGNING, &m).await;
        let m = legacy::messagebird_text(MB_CHANNEL, "31687654321", text, &format!("demo-mb-{n}"));
        let _ = self
            .legacy
            .messagebird_deliver(&self.legacy_hook, Some(MB_SIGNING), &m)
            .await;
    }
}
