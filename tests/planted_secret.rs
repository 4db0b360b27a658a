//! Plant a token, use every command with full tracing on, then search the database,
//! every output and every log line for it.

mod common;

use common::{Cli, PgDb, TG_TOKEN};
use sqlx::{Connection as _, Row};

/// Runs every command that touches the connection and returns all they printed.
fn exercise(cli: &Cli) -> String {
    let mut seen = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let r = cli.run(args, stdin);
        seen.push_str(&r.all());
    };
    let secret_line = format!("bot_token={TG_TOKEN}\n");
    run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Planted",
            "--secrets-stdin",
        ],
        Some(&secret_line),
    );
    // A failing add whose secret is invalid must not echo it.
    run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Broken",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN} with spaces\n")),
    );
    run(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "planted",
            "--secrets-stdin",
        ],
        Some(&secret_line),
    );
    for json in [false, true] {
        let j = |mut v: Vec<&'static str>| {
            if json {
                v.push("--json");
            }
            v
        };
        run(&j(vec!["channels", "list"]), None);
        run(&j(vec!["channels", "show", "Planted"]), None);
        run(&j(vec!["info"]), None);
        run(&j(vec!["audit"]), None);
    }
    run(
        &[
            "channels",
            "edit",
            "Planted",
            "--description",
            "x",
            "--secrets-stdin",
        ],
        Some(&secret_line),
    );
    run(
        &[
            "channels",
            "edit",
            "Planted",
            "--set",
            &format!("bot_token={TG_TOKEN}"),
        ],
        None,
    );
    run(
        &[
            "--read-only",
            "channels",
            "edit",
            "Planted",
            "--secrets-stdin",
        ],
        Some(&secret_line),
    );
    seen
}

fn traced(cli: Cli) -> Cli {
    cli.env("FLAMETREE_LOG", "trace")
}

#[test]
fn sqlite_file_outputs_and_logs_never_hold_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let cli = traced(Cli::new(dir.path()));
    let seen = exercise(&cli);
    assert!(
        seen.contains("TRACE") || seen.contains("DEBUG"),
        "tracing was on: {seen}"
    );
    assert!(
        seen.contains("Added 'Planted'"),
        "the token was really planted: {seen}"
    );
    assert!(
        !seen.contains(TG_TOKEN),
        "token leaked into output:\n{seen}"
    );
    assert!(
        !seen.contains("AAEplanted"),
        "part of the token leaked:\n{seen}"
    );

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap() != "master.key" {
            let bytes = std::fs::read(&path).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains("AAEplanted"),
                "token found in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_rows_outputs_and_logs_never_hold_the_token() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = traced(Cli::new(dir.path()).with_database(&db.url));
    let seen = tokio::task::spawn_blocking(move || exercise(&cli))
        .await
        .unwrap();
    assert!(seen.contains("Added 'Planted'"), "{seen}");
    assert!(
        !seen.contains("AAEplanted"),
        "token leaked into output:\n{seen}"
    );

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(tables.contains(&"connections".to_string()));
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT t::text AS row FROM {table} t"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for row in rows {
            let text: String = row.get("row");
            assert!(
                !text.contains("AAEplanted"),
                "token found in table {table}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn debug_output_of_a_loaded_connection_hides_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Planted",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={TG_TOKEN}\n")),
    );
    let url = format!("sqlite://{}/flametree.db", dir.path().display());
    let store = flametree::store::open(&url, 5, 1).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    let c = store
        .connection_by_name(tenant.id, "Planted")
        .await
        .unwrap()
        .unwrap();
    let key =
        flametree::secrets::MasterKey::load_or_create_file(&dir.path().join("master.key"), false)
            .unwrap();
    let opened = key
        .open("bot_token", &c.secrets["bot_token"], "Bot token")
        .unwrap();
    assert_eq!(
        opened.expose(),
        TG_TOKEN,
        "the token really is stored, sealed"
    );
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{opened:?}"),
        format!("{opened}"),
        format!("{key:?}"),
    ] {
        assert!(!shown.contains("AAEplanted"), "{shown}");
    }
}
