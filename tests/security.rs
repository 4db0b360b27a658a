//! The standing security test (issue 16): holes found by an attack campaign stay
//! closed. Each scenario drives the real binary the way an editor with bad intent, or
//! a careless one, would; the store-touching ones run on SQLite and on PostgreSQL.

mod common;

use common::{Be, Cli, KEY_B64, PgDb, TG_TOKEN};
use serde_json::Value;

/// A CLI on a fresh database of the backend, with the test key.
async fn cli_on(be: Be, dir: &std::path::Path) -> (Cli, Option<PgDb>) {
    let cli = Cli::new(dir).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    match be {
        Be::Sqlite => (cli, None),
        Be::Postgres => {
            let pg = PgDb::create().await;
            (cli.with_database(&pg.url), Some(pg))
        }
    }
}

/// A Telegram bot with the planted token, added as a script would.
fn add_bot(cli: &Cli, name: &str) {
    cli.add_telegram_bot(name);
}

/// The agent "Support" on an OpenAI-compatible model, its API key planted.
fn add_agent_with_key(cli: &Cli) {
    cli.ok(
        &[
            "agents",
            "create",
            "--name",
            "Support",
            "--openai-base-url",
            "https://api.openai.example/v1",
            "--model",
            "m",
            "--api-key-stdin",
        ],
        Some("sk-plantedAgentKey0123456789\n"),
    );
}

fn audit_details(cli: &Cli) -> Vec<String> {
    cli.json(&["audit"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["action"], e["details"]))
        .collect()
}

async fn pointing_a_stored_token_elsewhere_needs_the_token_again(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (cli, _pg) = cli_on(be, dir.path()).await;
    add_bot(&cli, "Sales bot");

    // The editor who was never told the token cannot send it to their own server.
    let r = cli.run(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--env",
            "TELEGRAM_API_URL=https://collector.example",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains("TELEGRAM_API_URL changed")
            && r.stderr().contains("Enter the Bot token again"),
        "{}",
        r.all()
    );
    let shown = cli.json(&["channels", "show", "Sales bot"]);
    assert!(shown["env"].as_array().unwrap().is_empty(), "nothing saved");

    // Harmless variables still need nothing; the audit names what changed.
    cli.ok(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--env",
            "TELEGRAM_POLL_TIMEOUT=5",
        ],
        None,
    );
    // With the token typed again, the new address is accepted.
    cli.ok(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--env",
            "TELEGRAM_API_URL=https://proxy.example",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}\n")),
    );
    let audit = audit_details(&cli);
    assert!(
        audit
            .iter()
            .any(|a| a.contains("TELEGRAM_POLL_TIMEOUT (variable)")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.contains("TELEGRAM_API_URL (variable)") && a.contains("bot_token")),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|a| a.contains("proxy.example")),
        "values never reach the audit: {audit:?}"
    );

    // An agent's model URL is the same: its API key is not sent to a new URL unasked.
    add_agent_with_key(&cli);
    let r = cli.run(
        &[
            "agents",
            "edit",
            "Support",
            "--openai-base-url",
            "https://collector.example/v1",
            "--model",
            "m",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains("Enter the API key again"),
        "{}",
        r.all()
    );
    for bad in ["javascript:alert(1)", "file:///etc/passwd"] {
        let r = cli.run(
            &[
                "agents",
                "edit",
                "Support",
                "--openai-base-url",
                bad,
                "--model",
                "m",
                "--api-key-stdin",
            ],
            Some("sk-plantedAgentKey0123456789\n"),
        );
        assert_eq!(r.code(), 2, "{bad}: {}", r.all());
        assert!(r.stderr().contains("not an http(s) URL"), "{}", r.all());
    }
    // Replacing the responder by rules says that the key goes with it.
    let r = cli.run(&["agents", "edit", "Support", "--rule", "hi=Hello"], None);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr()
            .contains("OpenAI-compatible → rules (its stored API key is dropped)"),
        "{}",
        r.all()
    );
    assert!(
        audit_details(&cli)
            .iter()
            .any(|a| a.contains("responder replaced: OpenAI-compatible → rules")),
    );
}

async fn names_and_values_are_refused_when_they_could_deceive_or_flood(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (cli, _pg) = cli_on(be, dir.path()).await;
    add_bot(&cli, "Caf\u{e9}");
    // The same name typed with a combining accent is the same name.
    let r = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Cafe\u{301}",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}\n")),
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("already exists"), "{}", r.all());

    for (name, why) in [
        ("Sales\u{200B}bot", "invisible character"),
        ("Sales\u{202E}tob", "invisible character"),
    ] {
        let r = cli.run(
            &[
                "channels",
                "add",
                "--type",
                "telegram",
                "--name",
                name,
                "--secrets-stdin",
            ],
            Some(&format!("bot_token={TG_TOKEN}\n")),
        );
        assert_eq!(r.code(), 2, "{}", r.all());
        assert!(r.stderr().contains(why), "{}", r.all());
        let r = cli.run(&["agents", "create", "--name", name], None);
        assert_eq!(r.code(), 2, "{}", r.all());
        assert!(r.stderr().contains(why), "{}", r.all());
    }
    let r = cli.run(
        &[
            "channels",
            "edit",
            "Café",
            "--description",
            "line\u{1b}[2Jcleared",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("control character"), "{}", r.all());
    let r = cli.run(
        &[
            "agents",
            "create",
            "--name",
            "Support",
            "--description",
            "a\u{7}b",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());

    let huge = format!("bot_token={}\n", "A".repeat(20 * 1024));
    let r = cli.run(
        &["channels", "edit", "Café", "--secrets-stdin"],
        Some(&huge),
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("at most 16 KiB"), "{}", r.all());
    let r = cli.run(
        &[
            "agents",
            "create",
            "--name",
            "Wordy",
            "--greeting",
            &"hi ".repeat(30_000),
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("at most 64 KiB"), "{}", r.all());
    let big = format!("TELEGRAM_POLL_TIMEOUT={}", "9".repeat(70 * 1024));
    let r = cli.run(&["channels", "edit", "Café", "--env", &big], None);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("at most 64 KiB"), "{}", r.all());
}

on_both!(
    pointing_a_stored_token_elsewhere_needs_the_token_again,
    names_and_values_are_refused_when_they_could_deceive_or_flood,
);

#[cfg(unix)]
#[test]
fn the_sqlite_database_is_private_and_exposed_files_are_named_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    add_bot(&cli, "Sales bot");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = dir.path().join("flametree.db");
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("flametree.db{suffix}"));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = cli.run(&["channels", "list"], None);
    assert_eq!(r.code(), 0, "{}", r.all());
    let expected = format!("run `chmod 700 {}`", dir.path().display());
    assert!(r.stderr().contains(&expected), "{}", r.all());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = cli.run(&["channels", "list"], None);
    assert!(!r.stderr().contains("chmod"), "{}", r.all());

    // A key file others can read, and a config file holding a secret.
    let dir = tempfile::tempdir().unwrap();
    let keyed = Cli::new(dir.path());
    add_bot(&keyed, "Keyed bot");
    let key = dir.path().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[meta]\napp_secret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = keyed
        .env("FLAMETREE_CONFIG", config.to_str().unwrap())
        .run(&["channels", "list"], None);
    assert!(
        r.stderr()
            .contains(&format!("run `chmod 600 {}`", key.display())),
        "{}",
        r.all()
    );
    assert!(
        r.stderr()
            .contains(&format!("run `chmod 600 {}`", config.display())),
        "{}",
        r.all()
    );
}

/// Nothing an operator typed as a secret is ever printed, whatever the command.
#[test]
fn secrets_never_reach_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    add_bot(&cli, "Sales bot");
    add_agent_with_key(&cli);
    let mut outputs = String::new();
    for args in [
        &["channels", "list"][..],
        &["channels", "show", "Sales bot"],
        &["channels", "logs", "Sales bot"],
        &["agents", "list"],
        &["agents", "show", "Support"],
        &["audit"],
        &["info"],
    ] {
        for json in [false, true] {
            let mut a = args.to_vec();
            if json {
                a.push("--json");
            }
            outputs.push_str(&cli.run(&a, None).all());
        }
    }
    for planted in [TG_TOKEN, "AAEplantedSecretTokenValue", "sk-plantedAgentKey"] {
        assert!(!outputs.contains(planted), "{planted} leaked");
    }
    let parsed: Value = cli.json(&["agents", "show", "Support"]);
    assert_eq!(parsed["responder"]["api_key"], flametree::secrets::MASK);
}

const OTHER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Only an agent's API key is sealed: it counts as a secret like a connection's.
#[test]
fn an_agents_key_alone_keeps_a_lost_key_file_from_being_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    add_agent_with_key(&cli);
    let key_file = dir.path().join("master.key");
    assert!(key_file.exists());
    std::fs::remove_file(&key_file).unwrap();
    let r = cli.run(&["info"], None);
    assert!(
        r.all().contains("does not exist") && r.all().contains("agent(s)"),
        "{}",
        r.all()
    );
    assert!(
        !key_file.exists(),
        "no new key was made over the sealed API key"
    );
}

/// A second valid key is not used to seal anything next to the first one's secrets,
/// and `info` names every secret the key in use cannot open, agents' keys included.
#[test]
fn a_second_key_seals_nothing_and_info_names_what_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = Cli::new(dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    add_bot(&first, "Sales bot");
    add_agent_with_key(&first);
    let second = Cli::new(dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", OTHER_KEY);
    let r = second.run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Other",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}\n")),
    );
    assert_ne!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr().contains("two keys") && r.stderr().contains("sealed with master key"),
        "{}",
        r.all()
    );
    let r = second.run(
        &["agents", "edit", "Support", "--api-key-stdin"],
        Some("sk-other0123456789\n"),
    );
    assert_ne!(r.code(), 0, "{}", r.all());
    assert!(r.stderr().contains("two keys"), "{}", r.all());
    let info = second.run(&["info"], None).all();
    assert!(info.contains("Bot token of 'Sales bot'"), "{info}");
    assert!(info.contains("API key of agent 'Support'"), "{info}");
}

fn key_status(cli: &Cli) -> Value {
    cli.json(&["secrets", "status"])
}

/// `secrets rotate` re-seals everything under a new key, keeps the old key file as a
/// backup, and finishes an interrupted rotation when run again.
async fn rotation_reseals_everything_and_resumes(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    // The key in a file of the data directory, as on a bare machine.
    let pg = match be {
        Be::Sqlite => None,
        Be::Postgres => Some(PgDb::create().await),
    };
    let on_db = |cli: Cli| match &pg {
        Some(pg) => cli.with_database(&pg.url),
        None => cli,
    };
    let cli = on_db(Cli::new(dir.path()));
    add_bot(&cli, "Sales bot");
    add_agent_with_key(&cli);
    let before = key_status(&cli);
    let old_id = before["key_in_use"].as_str().unwrap().to_string();
    assert_eq!(before["keys"][0]["secrets"], 2, "{before}");

    let out = cli.ok(&["secrets", "rotate"], None);
    assert!(out.contains("Re-sealed 2 secret(s)"), "{out}");
    let after = key_status(&cli);
    let new_id = after["key_in_use"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(after["keys"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["keys"][0]["key_id"], new_id.as_str());
    assert_eq!(after["keys"][0]["secrets"], 2);
    let key_file = dir.path().join("master.key");
    let backup = dir.path().join(format!("master.key.{old_id}.bak"));
    assert!(backup.exists(), "the old key is kept");
    let info = cli.run(&["info"], None).all();
    assert!(!info.contains("cannot decrypt"), "{info}");
    assert!(
        audit_details(&cli)
            .iter()
            .any(|a| a.contains(&format!("from key {old_id} to key {new_id}")))
    );

    // Interrupted after the database was re-sealed, before the key files were swapped:
    // the old file back in place and the new key still waiting. Running again finishes.
    std::fs::rename(&key_file, dir.path().join("master.key.new")).unwrap();
    std::fs::rename(&backup, &key_file).unwrap();
    let out = cli.ok(&["secrets", "rotate"], None);
    assert!(out.contains("Re-sealed 0 secret(s)"), "{out}");
    assert_eq!(key_status(&cli)["key_in_use"], new_id.as_str());
    assert!(!dir.path().join("master.key.new").exists());
    assert!(!cli.run(&["info"], None).all().contains("cannot decrypt"));

    // A key from the environment cannot be rewritten: the new one must be given.
    let env_key = on_db(Cli::new(dir.path()).env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64));
    let r = env_key.run(&["secrets", "rotate"], None);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("--new-key-stdin"), "{}", r.all());
}

on_both!(rotation_reseals_everything_and_resumes);

/// On PostgreSQL the database, not the client, holds a viewer to reading: claiming the
/// editor role changes nothing, and the audit names the database user of each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_a_viewer_to_reading_and_names_who_changed_what() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let pg = PgDb::create().await;
    let owner = Cli::new(dir.path())
        .with_database(&pg.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    add_bot(&owner, "Sales bot");
    let suffix = std::process::id();
    let (viewer, editor) = (format!("ft_viewer_{suffix}"), format!("ft_editor_{suffix}"));
    owner.ok(&["db", "grant", &viewer, "--role", "viewer"], None);
    owner.ok(&["db", "grant", &editor, "--role", "editor"], None);
    let url_of = |user: &str| pg.url.replacen("postgres@", &format!("{user}@"), 1);
    assert_ne!(url_of(&viewer), pg.url, "the test URL names its user");

    let as_viewer = Cli::new(dir.path())
        .with_database(&url_of(&viewer))
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
        .env("FLAMETREE_ACCESS_DEFAULT_ROLE", "editor");
    let list = as_viewer.run(&["channels", "list"], None);
    assert_eq!(list.code(), 0, "{}", list.all());
    assert!(list.stdout().contains("Sales bot"));
    assert!(list.stderr().contains("may only read"), "{}", list.all());
    let r = as_viewer.run(
        &["channels", "edit", "Sales bot", "--description", "mine now"],
        None,
    );
    assert_ne!(r.code(), 0, "{}", r.all());
    assert!(r.stderr().contains("viewer"), "{}", r.all());
    // Even a client that ignored that is refused by the database.
    let mut direct = sqlx::PgConnection::connect(&url_of(&viewer)).await.unwrap();
    let refused = sqlx::query("UPDATE connections SET description = 'x'")
        .execute(&mut direct)
        .await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("permission denied")),
        "the database refuses a viewer's write"
    );
    let config: String = sqlx::query_scalar("SELECT CAST(config AS TEXT) FROM connections")
        .fetch_one(&mut direct)
        .await
        .unwrap();
    assert!(
        !config.contains("AAEplanted"),
        "a viewer reads only sealed secrets"
    );
    drop(direct);

    let as_editor = Cli::new(dir.path())
        .with_database(&url_of(&editor))
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64);
    as_editor.ok(
        &["channels", "edit", "Sales bot", "--description", "EU"],
        None,
    );
    let audit = as_editor.json(&["audit"]);
    let edit = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "update")
        .expect("the edit is audited");
    assert_eq!(edit["actor"], "tester");
    assert_eq!(edit["db_user"], editor.as_str());
    let text = as_editor.ok(&["audit"], None);
    assert!(text.contains(&format!("tester (db: {editor})")), "{text}");

    // A table a later migration adds (made by the same owner) is readable by the viewer
    // without granting again.
    let mut admin = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE later_migration (x BIGINT); INSERT INTO later_migration VALUES (1)",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let mut direct = sqlx::PgConnection::connect(&url_of(&viewer)).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM later_migration")
        .fetch_one(&mut direct)
        .await
        .expect("the viewer reads a table created after the grant");
    assert_eq!(n, 1);
    drop(direct);

    // Roles belong to the whole server: leave none behind.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {viewer}, {editor}; DROP ROLE {viewer}, {editor}"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[test]
fn sqlite_says_it_cannot_enforce_roles() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let r = cli.run(&["db", "grant", "bob", "--role", "viewer"], None);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains("only be enforced on PostgreSQL"),
        "{}",
        r.all()
    );
}

/// A type, its plain fields, its secrets, and the variable naming its provider's URL.
type TypeForm<'a> = (
    &'a str,
    Vec<(&'a str, String)>,
    Vec<(&'a str, String)>,
    Option<&'a str>,
);

/// Marks every planted value, so one search finds any of them.
const MARK: &str = "Zq9PLANT";
/// Secrets that must be hexadecimal carry this instead.
const HEX_MARK: &str = "d1a5e7c0ffee";

fn hex_secret(n: u8) -> String {
    format!("{HEX_MARK}0123456789abcdef00{n:02x}")
}

fn planted(what: &str) -> String {
    format!("{MARK}{what}0123456789")
}

/// A connection of every type an operator can add, each secret a planted value, each
/// provider address `provider`: a listener that keeps what it is sent and hangs up, so
/// the connectors send their credentials and then take their error paths.
fn every_type(provider: &str) -> Vec<flametree::channels::Draft> {
    use flametree::model::EnvVar;
    let closed = format!("http://{provider}");
    let port = provider.rsplit(':').next().unwrap().to_string();
    let uuid = "2b8f2b7a-0000-4000-8000-00000000de30";
    let table: Vec<TypeForm> = vec![
        (
            "whatsapp",
            vec![
                ("phone_number_ids", "106540352242922".into()),
                ("business_account_id", "102290129340398".into()),
            ],
            vec![
                ("access_token", planted("waAccess")),
                ("app_secret", hex_secret(1)),
                ("verify_token", planted("waVerify")),
            ],
            Some("WHATSAPP_GRAPH_API_URL"),
        ),
        (
            "telegram",
            vec![],
            vec![("bot_token", TG_TOKEN.to_string())],
            Some("TELEGRAM_API_URL"),
        ),
        (
            "email",
            vec![
                ("imap_hosts", "127.0.0.1".into()),
                ("imap_ports", port.clone()),
                ("imap_security", "none".into()),
                ("logins", "bot@example.com".into()),
                ("smtp_hosts", "127.0.0.1".into()),
                ("smtp_ports", port.clone()),
                ("smtp_security", "none".into()),
            ],
            vec![("passwords", planted("mailPass"))],
            None,
        ),
        (
            "instagram",
            vec![
                ("instagram_account_id", "17841400000000001".into()),
                ("page_id", "100000000000001".into()),
            ],
            vec![
                ("access_token", planted("igAccess")),
                ("app_secret", hex_secret(2)),
                ("verify_token", planted("igVerify")),
            ],
            Some("INSTAGRAM_GRAPH_API_URL"),
        ),
        (
            "facebook",
            vec![("page_id", "100000000000002".into())],
            vec![
                ("page_access_token", planted("fbPage")),
                ("app_secret", hex_secret(3)),
                ("verify_token", planted("fbVerify")),
            ],
            Some("FACEBOOK_GRAPH_API_URL"),
        ),
        (
            "infobip",
            vec![("base_url", closed.clone()), ("sender", "InfoSMS".into())],
            vec![
                ("api_key", planted("infobipKey")),
                ("webhook_password", planted("infobipHook")),
            ],
            None,
        ),
        (
            "bird",
            vec![("workspace_id", uuid.into()), ("channel_id", uuid.into())],
            vec![
                ("access_key", planted("birdAccess")),
                ("signing_key", planted("birdSigning")),
            ],
            Some("BIRD_API_URL"),
        ),
        (
            "intercom",
            vec![("admin_id", "1234567".into())],
            vec![
                ("access_token", planted("intercomToken")),
                ("client_secret", planted("intercomSecret")),
            ],
            Some("INTERCOM_API_URL"),
        ),
        (
            "sip",
            vec![
                ("registrar", provider.to_string()),
                ("username", "bot".into()),
                ("transport", "udp".into()),
            ],
            vec![("password", planted("sipPass"))],
            None,
        ),
        (
            "twilio",
            vec![
                ("account_sid", format!("AC{}", "0123456789abcdef".repeat(2))),
                ("phone_number", "+15551234567".into()),
            ],
            vec![("auth_token", hex_secret(4))],
            Some("TWILIO_API_URL"),
        ),
        (
            "whatsapp_on_premises",
            vec![
                ("base_url", closed.clone()),
                ("username", "admin".into()),
                ("phone_number", "+15551234568".into()),
            ],
            vec![("password", planted("onpremPass"))],
            None,
        ),
        (
            "messagebird",
            vec![("channel_id", "0123456789abcdef0123456789abcdef".into())],
            vec![
                ("access_key", planted("mbAccess")),
                ("signing_key", planted("mbSigning")),
            ],
            Some("MESSAGEBIRD_API_URL"),
        ),
    ];
    table
        .into_iter()
        .map(|(ty, fields, secrets, url_var)| {
            let mut d = flametree::channels::Draft {
                type_key: ty.into(),
                name: format!("Secret {ty}"),
                ..Default::default()
            };
            d.fields = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            for (k, v) in secrets {
                d.secrets
                    .insert(k.into(), flametree::secrets::SecretString::new(v));
            }
            if let Some(var) = url_var {
                d.env.push(EnvVar {
                    name: var.into(),
                    value: closed.clone(),
                });
            }
            d
        })
        .collect()
}

/// A provider that reads what each client sends for a moment, keeps it, and hangs up.
fn hang_up_provider() -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, received)
}

fn assert_nothing_planted(what: &str, text: &str) {
    for mark in [MARK, HEX_MARK, "AAEplanted"] {
        assert!(
            !text.contains(mark),
            "a planted secret ({mark}…) is in {what}"
        );
    }
}

/// Every type's secrets, every connector's failing start at trace level: nothing planted
/// reaches serve's diagnostics, any connection's log, any CLI output (text and JSON, at
/// trace level), any database row or any file in the data directory.
async fn no_connector_leaks_a_planted_secret_anywhere(be: Be) {
    use common::runtime::{serve, serve_output, signal};
    let env = common::channels_env_on(be).await;
    let ch = &env.channels;
    let (provider, received) = hang_up_provider();
    let drafts = every_type(&provider);
    // A connector added later is covered only once it is in the table.
    for ty in &flametree::catalog::Catalog::get().types {
        assert!(
            !ty.listed || drafts.iter().any(|d| d.type_key == ty.key),
            "{} has no planted form in every_type()",
            ty.key
        );
    }
    // An agent's API key is planted too.
    let responder: flametree::agents::ResponderConfig = serde_json::from_value(serde_json::json!({
        "kind": "open_ai", "base_url": format!("http://{provider}/v1"), "model": "m",
    }))
    .unwrap();
    ch.create_agent(
        "Support",
        flametree::agents::service::AgentEdit {
            responder: Some(responder),
            api_key: Some(flametree::secrets::SecretString::new(planted("agentKey"))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut names = Vec::new();
    for d in &drafts {
        let saved = ch
            .add(d)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", d.type_key));
        names.push(saved.connection.name.clone());
        let ty = flametree::channels::channel_type(&d.type_key).unwrap();
        if ty.lifecycle == flametree::catalog::Lifecycle::StartStop {
            ch.set_desired(&saved.connection, flametree::model::DesiredState::Running)
                .await
                .unwrap();
        } else {
            // Voice types run with their agent.
            let support = ch.find_agent("Support").await.unwrap();
            ch.attach_connection(&support, &saved.connection, true)
                .await
                .unwrap();
        }
    }
    let support = ch.find_agent("Support").await.unwrap();
    ch.run_agent(&support, true).await.unwrap();
    let mut child = serve(&env, "serve", true);
    // Every started connector has tried its provider and said what went wrong.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let list = ch.list().await.unwrap();
        let waiting: Vec<&str> = list
            .iter()
            .filter(|c| c.desired == flametree::model::DesiredState::Running)
            .filter(|c| c.status_message.is_empty())
            .map(|c| c.name.as_str())
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no word from {waiting:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    signal(&child, "-TERM");
    let _ = child.wait();
    // The secrets were live: the connectors sent them to the provider.
    let sent = String::from_utf8_lossy(&received.lock().unwrap()).to_string();
    assert!(
        sent.contains("AAEplanted"),
        "the bot token went out: {sent}"
    );
    assert!(sent.contains(MARK), "bearer tokens went out: {sent}");
    let diagnostics = serve_output(&env, "serve");

    assert!(diagnostics.contains("TRACE") || diagnostics.contains("DEBUG"));
    assert_nothing_planted("serve's diagnostics", &diagnostics);

    for c in ch.list().await.unwrap() {
        let lines = ch.store().recent_logs(c.id, 1000).await.unwrap();
        let text: String = lines.iter().map(|l| l.message.clone() + "\n").collect();
        assert_nothing_planted(&format!("the log of {}", c.name), &text);
        assert_nothing_planted(&format!("the status of {}", c.name), &c.status_message);
    }

    let cli = Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
        .env("FLAMETREE_LOG", "trace");
    let mut outputs = String::new();
    let mut commands: Vec<Vec<String>> = [
        "channels list",
        "channels status",
        "agents list",
        "audit",
        "info",
        "secrets status",
    ]
    .iter()
    .map(|c| c.split(' ').map(String::from).collect())
    .collect();
    for n in &names {
        commands.push(vec!["channels".into(), "show".into(), n.clone()]);
        commands.push(vec!["channels".into(), "logs".into(), n.clone()]);
    }
    for args in &commands {
        for json in [false, true] {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            if json {
                a.push("--json");
            }
            outputs.push_str(&cli.run(&a, None).all());
        }
    }
    assert!(
        outputs.contains("Secret whatsapp_on_premises"),
        "the CLI ran"
    );
    assert_nothing_planted("the CLI's output", &outputs);

    match be {
        Be::Sqlite => {}
        Be::Postgres => {
            use sqlx::{Connection as _, Row};
            let mut conn = sqlx::PgConnection::connect(&env.url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for table in tables {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text AS row FROM {table} t"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for row in rows {
                    assert_nothing_planted(&format!("table {table}"), &row.get::<String, _>("row"));
                }
            }
        }
    }
    // The SQLite database and its WAL, exported logs, serve's log: nothing in any file.
    let mut dirs = vec![env.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().unwrap() != "master.key" {
                let bytes = std::fs::read(&path).unwrap();
                assert_nothing_planted(
                    &path.display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                );
            }
        }
    }
}

on_both!(no_connector_leaks_a_planted_secret_anywhere);
