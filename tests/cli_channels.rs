//! `flametree channels …` driven as a script would, on SQLite and on PostgreSQL.

mod common;

use common::{Cli, PgDb, TG_TOKEN};
use flametree::secrets::MASK;

const OTHER_TOKEN: &str = "987654321:AAEsecondPlantedTokenValue987654321";

fn add_bot(cli: &Cli, name: &str) {
    cli.add_telegram_bot(name);
}

/// The whole lifecycle a script relies on; run against either backend.
fn lifecycle(cli: &Cli) {
    add_bot(cli, "Sales bot");
    // An edit that changes nothing saves nothing: no new version, no audit row.
    let same = cli.ok(
        &["channels", "edit", "Sales bot", "--description", ""],
        None,
    );
    assert!(same.contains("Nothing changed"), "{same}");
    assert_eq!(cli.json(&["channels", "show", "Sales bot"])["version"], 1);
    let shown = cli.json(&["channels", "show", "sales bot"]);
    assert_eq!(shown["name"], "Sales bot");
    assert_eq!(shown["type"], "telegram");
    assert_eq!(shown["fields"]["bot_token"], MASK);
    assert_eq!(shown["status"], "STOPPED");
    assert_eq!(shown["version"], 1);

    // Edit a non-secret part; the secret stays set without being given again.
    let edited = cli.ok(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--description",
            "EU customers",
            "--env",
            "TELEGRAM_POLL_TIMEOUT=5",
        ],
        None,
    );
    assert!(edited.contains("Saved 'Sales bot'"), "{edited}");
    let shown = cli.json(&["channels", "show", "Sales bot"]);
    assert_eq!(shown["description"], "EU customers");
    assert_eq!(shown["fields"]["bot_token"], MASK);
    assert_eq!(shown["env"][0]["name"], "TELEGRAM_POLL_TIMEOUT");
    assert_eq!(shown["version"], 2);

    // Rename, unset the variable, replace the secret.
    cli.ok(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--name",
            "EU bot",
            "--unset-env",
            "TELEGRAM_POLL_TIMEOUT",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={OTHER_TOKEN}\n")),
    );
    let list = cli.json(&["channels", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "EU bot");
    assert!(list[0]["env"].as_array().unwrap().is_empty());

    // Delete needs confirmation; without a terminal, --yes gives it.
    let refused = cli.run(&["channels", "delete", "EU bot"], None);
    assert_eq!(refused.code(), 2, "{}", refused.all());
    assert!(
        refused.stderr().contains("was not deleted"),
        "{}",
        refused.all()
    );
    cli.ok(&["channels", "delete", "EU bot", "--yes"], None);
    let gone = cli.run(&["channels", "show", "EU bot"], None);
    assert_eq!(gone.code(), 4);
    assert!(
        gone.stderr().contains("no connection named 'EU bot'"),
        "{}",
        gone.all()
    );

    let trail = cli.json(&["audit"]);
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "update", "update", "create"]);
    assert_eq!(trail[0]["actor"], "tester");
    assert!(
        trail[1]["details"]
            .as_str()
            .unwrap()
            .contains("bot_token (secret replaced)")
    );
}

#[test]
fn lifecycle_on_sqlite_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(&Cli::new(dir.path()));
    assert!(dir.path().join("flametree.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_on_postgres_by_setting_the_url() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path()).with_database(&db.url);
    tokio::task::spawn_blocking(move || {
        lifecycle(&cli);
        let info = cli.json(&["info"]);
        assert_eq!(info["backend"], "PostgreSQL");
    })
    .await
    .unwrap();
    assert!(
        !dir.path().join("flametree.db").exists(),
        "nothing went to SQLite"
    );
}

#[test]
fn show_gives_the_webhook_url_of_a_webhook_bot_and_null_for_a_polling_one() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path()).env("FLAMETREE_HTTP_PUBLIC_URL", "https://hooks.example.com/");
    add_bot(&cli, "Polling bot");
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Hooks bot",
            "--env",
            "TELEGRAM_MODE=webhook",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={OTHER_TOKEN}\n")),
    );

    let polling = cli.json(&["channels", "show", "Polling bot"]);
    assert!(
        polling.as_object().unwrap().contains_key("webhook_url"),
        "always present: {polling}"
    );
    assert_eq!(polling["webhook_url"], serde_json::Value::Null);
    let text = cli.ok(&["channels", "show", "Polling bot"], None);
    assert!(!text.contains("Webhook URL"), "{text}");

    let hooked = cli.json(&["channels", "show", "Hooks bot"]);
    let url = hooked["webhook_url"].as_str().expect("a URL").to_string();
    let id = url
        .strip_prefix("https://hooks.example.com/hooks/")
        .unwrap_or_else(|| panic!("under the configured public URL: {url}"));
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "an unguessable id: {url}"
    );
    let text = cli.ok(&["channels", "show", "Hooks bot"], None);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Webhook URL:") && l.ends_with(&url)),
        "{text}"
    );

    // The URL is stable, and the list gives it too.
    let list = cli.json(&["channels", "list"]);
    let row = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("Hooks bot")["webhook_url"], url.as_str());
    assert_eq!(row("Polling bot")["webhook_url"], serde_json::Value::Null);
}

#[test]
fn list_groups_deprecated_channels_and_types_lists_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    add_bot(&cli, "Sales bot");
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "messagebird",
            "--name",
            "Old SMS",
            "--set",
            "channel_id=0123456789abcdef0123456789abcdef",
            "--secrets-stdin",
        ],
        Some("access_key=live_abcdefghijklmnopqrstuvwxy\n"),
    );
    let text = cli.ok(&["channels", "list"], None);
    let current = text.find("Channels (1)").expect(&text);
    let legacy = text.find("Deprecated Channels (1)").expect(&text);
    assert!(current < legacy);
    assert!(text[legacy..].contains("MessageBird DEPRECATED"), "{text}");
    assert!(!text[..legacy].contains("Old SMS"), "{text}");

    let types = cli.json(&["channels", "types"]);
    let keys: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"web_widget"));
    let table = cli.ok(&["channels", "types"], None);
    assert!(
        !table.contains("Web Widget"),
        "web widget is not created here:\n{table}"
    );
    assert!(table.contains("Email (IMAP/SMTP)"));
}

#[test]
fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());

    let r = cli.run(&["channels", "add", "--type", "fax", "--name", "X"], None);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("unknown channel type 'fax'"),
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
            "--set",
            &format!("bot_token={TG_TOKEN}"),
        ],
        None,
    );
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("--secrets-stdin"), "{}", r.all());
    assert!(!r.all().contains(TG_TOKEN));

    let r = cli.run(
        &["channels", "add", "--type", "telegram", "--name", "X"],
        None,
    );
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("bot_token: Bot token is required"),
        "{}",
        r.all()
    );

    let r = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "email",
            "--name",
            "Mail",
            "--set",
            "imap_hosts=imap.a.com,imap.b.com",
            "--set",
            "imap_ports=993,993",
            "--set",
            "imap_security=ssl/tls,ssl/tls",
            "--set",
            "logins=a@a.com,b@b.com",
            "--set",
            "smtp_hosts=smtp.a.com,smtp.b.com",
            "--set",
            "smtp_ports=587,587",
            "--set",
            "smtp_security=starttls,starttls",
            "--secrets-stdin",
        ],
        Some("passwords=only-one\n"),
    );
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains(
            "Passwords has 1 value but Logins has 2: give one per account, in the same order"
        ),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("only-one"));

    add_bot(&cli, "Sales bot");
    let r = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "SALES BOT",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}")),
    );
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("already exists"), "{}", r.all());

    let r = cli.run(&["channels", "edit", "Sales bot", "--set", "nope=1"], None);
    assert!(r.stderr().contains("has no field 'nope'"), "{}", r.all());
    let r = cli.run(
        &["channels", "edit", "Sales bot", "--secrets-stdin"],
        Some("garbage line\n"),
    );
    assert!(
        r.stderr().contains("line 1: expected FIELD=VALUE"),
        "{}",
        r.all()
    );
    let r = cli.run(
        &[
            "channels",
            "edit",
            "Sales bot",
            "--env",
            "TELEGRAM_API_URL=ftp://x",
        ],
        None,
    );
    assert!(r.stderr().contains("is not a URL"), "{}", r.all());

    let bad_url = cli.run(&["--database", "mysql://x/y", "channels", "list"], None);
    assert_eq!(bad_url.code(), 1);
    assert!(
        bad_url.stderr().contains("use postgres://"),
        "{}",
        bad_url.all()
    );
}

#[test]
fn viewers_read_everything_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let editor = Cli::new(dir.path());
    add_bot(&editor, "Sales bot");

    for viewer in [
        Cli::new(dir.path()).env("FLAMETREE_ACCESS_DEFAULT_ROLE", "viewer"),
        Cli::new(dir.path()),
    ] {
        let read_only = viewer.extra_env.is_empty();
        let with = |args: &[&'static str]| -> Vec<&'static str> {
            let mut v = args.to_vec();
            if read_only {
                v.insert(0, "--read-only");
            }
            v
        };
        let shown = viewer.json(&with(&["channels", "show", "Sales bot"]));
        assert_eq!(shown["fields"]["bot_token"], MASK);
        for args in [
            with(&["channels", "edit", "Sales bot", "--description", "x"]),
            with(&["channels", "delete", "Sales bot", "--yes"]),
            with(&["channels", "add", "--type", "telegram", "--name", "B2"]),
        ] {
            let r = viewer.run(&args, None);
            assert_eq!(r.code(), 3, "{args:?}: {}", r.all());
            assert!(r.stderr().contains("tester is a viewer"), "{}", r.all());
            assert!(r.stderr().contains("needs the editor role"), "{}", r.all());
        }
    }
    assert_eq!(
        editor.json(&["channels", "show", "Sales bot"])["version"],
        1
    );
}

#[test]
fn info_names_the_files_in_use_and_a_wrong_key_names_what_cannot_be_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    add_bot(&cli, "Sales bot");
    let info = cli.json(&["info"]);
    assert_eq!(info["backend"], "SQLite");
    assert_eq!(info["operator"], "tester");
    assert!(info["database"].as_str().unwrap().contains("flametree.db"));
    assert!(info["key_file"].as_str().unwrap().ends_with("master.key"));
    assert!(info["undecryptable_secrets"].as_array().unwrap().is_empty());

    // Another key in the environment: reading still works, decryption is refused by name.
    let wrong = Cli::new(dir.path()).env(
        "FLAMETREE_SECRETS_MASTER_KEY",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    assert_eq!(
        wrong.json(&["channels", "show", "Sales bot"])["fields"]["bot_token"],
        MASK
    );
    let text = wrong.ok(&["info"], None);
    assert!(text.contains("1 cannot be decrypted"), "{text}");
    assert!(text.contains("Bot token of 'Sales bot'"), "{text}");
    assert!(!text.contains(TG_TOKEN));

    // The key file gone: no new key is invented over sealed secrets.
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let text = cli.ok(&["info"], None);
    assert!(text.contains("does not exist"), "{text}");
    assert!(!dir.path().join("master.key").exists());
    let r = cli.run(
        &["channels", "edit", "Sales bot", "--secrets-stdin"],
        Some(&format!("bot_token={OTHER_TOKEN}")),
    );
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("restore that key file"), "{}", r.all());
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    for i in 0..40 {
        add_bot(&cli, &format!("Bot {i:02}"));
    }
    // `flametree channels list | head -1`: the reader goes away after one line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flametree"))
        .args(["channels", "list"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("FLAMETREE_GENERAL_DATA_DIR", dir.path())
        .env("FLAMETREE_ACCESS_OPERATOR", "tester")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_ne!(out.status.code(), Some(101), "no panic exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_shows_control_characters_instead_of_sending_them() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let evil = "EU line\u{1b}]0;owned\u{7}\u{1b}[2J";
    // Descriptions refuse control characters outright (issue 16)…
    let refused = cli.run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Evil",
            "--description",
            evil,
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}\n")),
    );
    assert_eq!(refused.code(), 2, "{}", refused.all());
    assert!(
        !refused.all().contains('\u{1b}'),
        "the error echoes no raw bytes"
    );
    add_bot(&cli, "Evil");
    // …but a customer's message or a provider's error reaches the log as it came.
    let url = format!("sqlite://{}/flametree.db", dir.path().display());
    let store = flametree::store::open(&url, 5, 2).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let c = store
        .connection_by_name(tenant.id, "Evil")
        .await
        .unwrap()
        .unwrap();
    let line = flametree::model::LogLine {
        connection_id: c.id,
        at: flametree::model::now_millis(),
        level: "INFO".into(),
        message: format!("message from 42: {evil}"),
    };
    store.append_logs(&[line], 100).await.unwrap();
    for args in [
        vec!["channels", "show", "Evil"],
        vec!["channels", "list"],
        vec!["channels", "logs", "Evil"],
        vec!["audit"],
    ] {
        let out = cli.ok(&args, None);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?} sent a control character"
        );
    }
    let shown = cli.ok(&["channels", "logs", "Evil"], None);
    assert!(shown.contains("EU line^[]0;owned^G^[[2J"), "{shown}");
}

#[test]
fn variables_are_checked_against_their_range_named_and_a_webhook_nobody_can_reach_is_warned_about()
{
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let add = |env: &str| {
        cli.run(
            &[
                "channels",
                "add",
                "--type",
                "telegram",
                "--name",
                "Sales bot",
                "--env",
                env,
                "--secrets-stdin",
            ],
            Some(&format!("bot_token={TG_TOKEN}\n")),
        )
    };
    let refused = add("TELEGRAM_POLL_TIMEOUT=99");
    assert_eq!(refused.code(), 2, "{}", refused.all());
    assert!(
        refused
            .stderr()
            .contains("TELEGRAM_POLL_TIMEOUT value '99' must be from 0 to 50"),
        "{}",
        refused.all()
    );
    assert!(!refused.stderr().contains("env."), "{}", refused.all());

    // Webhook mode on a server whose webhook URL is loopback plain HTTP: saved, warned.
    let added = add("TELEGRAM_MODE=webhook");
    assert_eq!(added.code(), 0, "{}", added.all());
    assert!(
        added
            .stderr()
            .contains("warning: 'Sales bot' receives webhooks at http://")
            && added
                .stderr()
                .contains("set http.public_url in the config, or TELEGRAM_WEBHOOK_URL"),
        "{}",
        added.all()
    );
}

#[test]
fn every_per_account_field_that_disagrees_with_the_logins_is_reported_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let add = |sets: &[&str], passwords: &str| {
        let mut args = vec![
            "channels",
            "add",
            "--type",
            "email",
            "--name",
            "Support mail",
            "--secrets-stdin",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        cli.run(&args, Some(&format!("passwords={passwords}\n")))
    };
    let refused = add(
        &[
            "imap_hosts=imap.a.com,imap.b.com",
            "logins=a@a.com",
            "smtp_hosts=smtp.a.com",
            "smtp_ports=587,587",
        ],
        "pw-a",
    );
    assert_eq!(refused.code(), 2, "{}", refused.all());
    let err = refused.stderr();
    assert!(
        err.contains("imap_hosts: IMAP hosts has 2 values but Logins has 1"),
        "{err}"
    );
    assert!(
        err.contains("smtp_ports: SMTP ports has 2 values but Logins has 1"),
        "{err}"
    );
    // Two logins, one value each elsewhere (the ports and security modes their
    // defaults): saved.
    let added = add(
        &[
            "imap_hosts=imap.a.com",
            "logins=a@a.com,b@a.com",
            "smtp_hosts=smtp.a.com",
        ],
        "pw-a,pw-b",
    );
    assert_eq!(added.code(), 0, "{}", added.all());
}

#[test]
fn json_output_uses_rfc3339_times_and_status_of_one_is_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    add_bot(&cli, "Sales bot");
    let rfc3339 = |v: &serde_json::Value| {
        let s = v.as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z')
    };
    let one = cli.json(&["channels", "status", "Sales bot"]);
    assert_eq!(one["name"], "Sales bot", "an object, as show gives: {one}");
    assert!(rfc3339(&one["status_since"]), "{one}");
    let shown = cli.json(&["channels", "show", "Sales bot"]);
    assert_eq!(one["status_since"], shown["status_since"]);
    let all = cli.json(&["channels", "status"]);
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "every connection: an array"
    );

    let trail = cli.json(&["audit"]);
    assert!(rfc3339(&trail[0]["at"]), "{trail}");

    let out = cli.ok(&["channels", "logs", "Sales bot", "--json"], None);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("the creation is logged")).unwrap();
    assert!(rfc3339(&first["at"]), "{first}");
    assert_eq!(first["connection"], "Sales bot");
}
