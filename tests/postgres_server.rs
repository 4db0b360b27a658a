//! The PostgreSQL under the tests: the harness's private cluster when no server answers
//! at the test URL.

mod common;

use common::PgDb;
use common::pg_cluster::{self, ClusterOptions, PgCluster};
use sqlx::Connection;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Set for the child process that `fallback_child` runs in.
const CHILD: &str = "FLAMETREE_TEST_FALLBACK_CHILD";

/// The harness's part, in a child process whose test URL points where nothing listens
/// (a no-op anywhere else).
#[tokio::test]
#[ignore = "run in a child process by the fallback tests"]
async fn fallback_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let admin = common::postgres_admin_url();
    assert_ne!(
        admin,
        common::configured_postgres_url(),
        "nothing answers there"
    );
    let cluster = pg_cluster::shared().unwrap();
    assert_eq!(admin, cluster.admin_url());
    println!("CLUSTER {} {}", cluster.port, cluster.dir.display());

    let db = PgDb::create().await;
    let store = flametree::store::open(&db.url, 5, 4).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    assert!(store.list_connections(tenant.id).await.unwrap().is_empty());
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let port: String = sqlx::query_scalar("SELECT current_setting('port')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(port, cluster.port.to_string());
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'connections'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables, 1,
        "the store migrated the private cluster's database"
    );
}

/// Runs `fallback_child` in a child test process with the test URL on a closed port.
fn run_child(extra_env: &[(&str, &str)]) -> Output {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    run_child_on(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        extra_env,
    )
}

fn run_child_on(test_url: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["fallback_child", "--exact", "--ignored", "--nocapture"])
        .env("FLAMETREE_TEST_POSTGRES_URL", test_url)
        .env(CHILD, "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn output_text(out: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes whose command line mentions `needle` (what `ps` would show).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Waits up to `limit` for `done`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn with_no_server_at_the_test_url_the_harness_starts_a_private_cluster_and_stops_it() {
    let out = run_child(&[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CLUSTER "))
        .unwrap_or_else(|| panic!("the child names its cluster:\n{}", output_text(&out)));
    let (port, dir) = line.split_once(' ').unwrap();
    let (port, dir): (u16, PathBuf) = (port.parse().unwrap(), dir.into());

    // Gone with the process that started it: files, port and server processes.
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} any more"
    );
    let needle = dir.to_string_lossy().into_owned();
    assert!(
        wait_for(Duration::from_secs(10), || processes_mentioning(&needle)
            .is_empty()),
        "no server process is left: {:?}",
        processes_mentioning(&needle)
    );
}

#[test]
fn with_no_server_and_no_server_binaries_the_tests_say_what_to_install_in_one_line() {
    let out = run_child(&[(pg_cluster::BINDIR_ENV, "/nonexistent")]);
    assert!(!out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("apt-get install postgresql"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", output_text(&out));
    assert!(
        lines[0].starts_with("no usable PostgreSQL at postgres://postgres@127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("are not installed"), "{}", lines[0]);
}

#[test]
fn a_chosen_server_that_refuses_the_tests_fails_them_in_one_line_without_fallback() {
    let cluster = PgCluster::start(ClusterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("postgres://nobody@127.0.0.1:{}/postgres", cluster.port);
    let out = run_child_on(&url, &[]);
    assert!(!out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("answered but the tests cannot use it"))
        .unwrap_or_else(|| panic!("{}", output_text(&out)));
    assert!(
        line.starts_with(&format!(
            "PostgreSQL at {url} (FLAMETREE_TEST_POSTGRES_URL)"
        )) && line.contains("\"nobody\""),
        "{line}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CLUSTER "));
}
