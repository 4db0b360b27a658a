//! Migrating a deprecated connection: what carries over, the agents' attachments moved
//! with their Inbound switches, the old one stopped and kept; a migration that is not
//! saved changes nothing. On SQLite and PostgreSQL, through the service and the CLI.

mod common;

use common::{Be, KEY_B64};
use flametree::channels::Draft;
use flametree::model::{DesiredState, EnvVar};
use flametree::secrets::SecretString;

const WS: &str = "2b8f2b7a-0000-4000-8000-000000000001";
const CH: &str = "614208aa-b153-4d5d-9989-2fddfc0ce4c3";

async fn legacy(env: &common::ChannelsEnv) -> flametree::model::Connection {
    let mut d = Draft {
        type_key: "messagebird".into(),
        name: "Legacy SMS".into(),
        description: "Shop's SMS line".into(),
        env: vec![EnvVar {
            name: "MESSAGEBIRD_API_URL".into(),
            value: "http://127.0.0.1:9/v1".into(),
        }],
        ..Default::default()
    };
    d.fields.insert(
        "channel_id".into(),
        "0123456789abcdef0123456789abcdef".into(),
    );
    d.secrets.insert(
        "access_key".into(),
        SecretString::new("live_legacyKeyForTheMigrationTest"),
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let echo = common::runtime::echo_agent(env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    let other = env
        .channels
        .create_agent("Night shift", common::runtime::echo_edit("Night: "))
        .await
        .unwrap();
    env.channels
        .attach_connection(&other, &c, false)
        .await
        .unwrap();
    env.channels
        .set_desired(&c, DesiredState::Running)
        .await
        .unwrap();
    env.channels.find("Legacy SMS").await.unwrap()
}

fn bird_credentials(d: &mut Draft) {
    d.fields.insert("workspace_id".into(), WS.into());
    d.fields.insert("channel_id".into(), CH.into());
    d.secrets.insert(
        "access_key".into(),
        SecretString::new("birdAccessKeyAfterMigration"),
    );
    d.secrets.insert(
        "signing_key".into(),
        SecretString::new("bird-signing-key-after"),
    );
}

async fn migrating_moves_the_agents_and_stops_the_old_one(be: Be) {
    let env = common::channels_env_on(be).await;
    let old = legacy(&env).await;
    let mut draft = env.channels.migration_draft(&old).unwrap();
    assert_eq!(draft.type_key, "bird");
    assert_eq!(draft.name, "Legacy SMS (Bird)");
    assert_eq!(draft.description, "Shop's SMS line");
    assert!(
        draft.secrets.is_empty(),
        "credentials of the old platform are not carried"
    );

    // Not valid yet (Bird needs its own ids and keys): refused, and nothing changed.
    let refused = env.channels.migrate(&old, &draft).await;
    assert!(refused.is_err());
    let still = env.channels.find("Legacy SMS").await.unwrap();
    assert_eq!(still.desired, DesiredState::Running);
    assert_eq!(
        env.channels
            .store()
            .connection_agents(old.id)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(env.channels.find("Legacy SMS (Bird)").await.is_err());

    bird_credentials(&mut draft);
    let done = env.channels.migrate(&old, &draft).await.unwrap();
    let new = done.saved.connection;
    let mut agents = done.agents.clone();
    agents.sort();
    assert_eq!(agents, ["Echo", "Night shift"]);
    let moved = env
        .channels
        .store()
        .connection_agents(new.id)
        .await
        .unwrap();
    let inbound: Vec<(String, bool)> = {
        let mut v: Vec<_> = moved
            .iter()
            .map(|(a, ch)| (a.name.clone(), ch.inbound))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        inbound,
        [
            ("Echo".to_string(), true),
            ("Night shift".to_string(), false)
        ],
        "Inbound switches kept"
    );
    let left: Vec<_> = env
        .channels
        .store()
        .connection_agents(old.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, ch)| !ch.detached)
        .collect();
    assert!(left.is_empty(), "the old connection is on no agent's card");
    let old_now = env.channels.find("Legacy SMS").await.unwrap();
    assert_eq!(
        old_now.desired,
        DesiredState::Stopped,
        "stopped, not deleted"
    );
    let logs = common::runtime::log_text(&env, "Legacy SMS", "Migrated to").await;
    assert!(
        logs.contains("Migrated to 'Legacy SMS (Bird)' by tester"),
        "{logs}"
    );
    // A connection that is not deprecated has nothing to migrate to.
    assert!(env.channels.migration_draft(&new).is_err());
}

async fn the_cli_migrates_with_new_credentials(be: Be) {
    let env = common::channels_env_on(be).await;
    legacy(&env).await;
    let cli = common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    let r = cli.run(&["channels", "migrate", "Legacy SMS"], None);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains("Workspace ID is required"),
        "{}",
        r.all()
    );
    let r = cli.run(
        &[
            "channels",
            "migrate",
            "Legacy SMS",
            "--name",
            "SMS on Bird",
            "--set",
            &format!("workspace_id={WS}"),
            "--set",
            &format!("channel_id={CH}"),
            "--secrets-stdin",
        ],
        Some("access_key=birdAccessKeyAfterMigration\nsigning_key=bird-signing-key-after\n"),
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stdout().contains("Added 'SMS on Bird' (Bird)"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout()
            .contains("Moved to it from 'Legacy SMS': agent(s) "),
        "{}",
        r.all()
    );
    assert!(
        r.stdout()
            .contains("'Legacy SMS' is stopped and stays in Deprecated Channels"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("birdAccessKey"));
    let r = cli.run(&["channels", "migrate", "SMS on Bird"], None);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("not deprecated: there is nothing to migrate to"),
        "{}",
        r.all()
    );
}

on_both!(
    migrating_moves_the_agents_and_stops_the_old_one,
    the_cli_migrates_with_new_credentials,
);
