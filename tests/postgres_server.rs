//! The PostgreSQL under the tests and under flametree: the harness's private cluster when
//! no server answers at the test URL, and connections over TLS by sslmode.

mod common;

use common::pg_cluster::{self, ClusterOptions, PgCluster};
use common::{Cli, PgDb};
use sqlx::Connection;
use std::path::{Path, PathBuf};
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

/// A private CA, and a server certificate it signed for localhost and 127.0.0.1.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flametree test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

/// A private cluster offering TLS with a certificate from `pki`, and the CA in a file.
struct TlsServer {
    cluster: PgCluster,
    ca_file: PathBuf,
    _files: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let pki = pki();
        let cluster = PgCluster::start(ClusterOptions {
            tls: Some((pki.server_pem, pki.server_key_pem)),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let files = tempfile::tempdir().unwrap();
        let ca_file = files.path().join("ca.pem");
        std::fs::write(&ca_file, pki.ca_pem).unwrap();
        TlsServer {
            cluster,
            ca_file,
            _files: files,
        }
    }

    fn url(&self, query: &str) -> String {
        format!("{}?{query}", self.cluster.admin_url())
    }

    fn ca(&self) -> &Path {
        &self.ca_file
    }
}

/// Whether this connection's session is encrypted, as the server sees it.
async fn encrypted(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    sqlx::PgConnection::connect(url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_by_sslmode() {
    let server = TlsServer::start();
    let ca = server.ca().display().to_string();

    // require: encrypted, the certificate is not checked.
    let mut c = connect(&server.url("sslmode=require")).await.unwrap();
    assert!(encrypted(&mut c).await, "require encrypts");

    // verify-full with the private CA: encrypted, certificate and host name checked.
    let mut c = connect(&server.url(&format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .unwrap();
    assert!(encrypted(&mut c).await);
    let mut c = connect(&format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        server.cluster.port
    ))
    .await
    .unwrap();
    assert!(encrypted(&mut c).await);

    // verify-ca with the private CA: the certificate is checked, not the host name.
    let mut c = connect(&server.url(&format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .unwrap();
    assert!(encrypted(&mut c).await);

    // prefer (also what a URL without sslmode means): encrypted when the server offers
    // TLS, the certificate not checked.
    let mut c = connect(&server.url("sslmode=prefer")).await.unwrap();
    assert!(
        encrypted(&mut c).await,
        "prefer encrypts when the server offers TLS"
    );
    let mut c = connect(&server.cluster.admin_url()).await.unwrap();
    assert!(encrypted(&mut c).await, "no sslmode is prefer");

    // disable: plain text.
    let mut c = connect(&server.url("sslmode=disable")).await.unwrap();
    assert!(!encrypted(&mut c).await);

    // verify-full without the CA: Mozilla's roots do not know it, and it says so.
    let err = connect(&server.url("sslmode=verify-full"))
        .await
        .expect_err("an unknown CA is refused")
        .to_string();
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let err = connect(&server.url("sslmode=verify-ca"))
        .await
        .expect_err("an unknown CA is refused")
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_the_binary_connect_over_tls_and_refuse_an_unknown_ca() {
    let server = TlsServer::start();
    let ca = server.ca().display().to_string();
    let verify_full = server.url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let store = flametree::store::open(&verify_full, 5, 4).await.unwrap();
    let tenant = store.tenant("default").await.unwrap();
    assert!(store.list_connections(tenant.id).await.unwrap().is_empty());
    drop(store);

    let Err(err) = flametree::store::open(&server.url("sslmode=verify-full"), 5, 4).await else {
        panic!("an unknown CA is refused");
    };
    let err = err.to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // The binary, on verify-ca (whose verifier takes rustls's process-wide crypto
    // provider) and on require.
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let verify_ca = server.url(&format!("sslmode=verify-ca&sslrootcert={ca}"));
    let require = server.url("sslmode=require");
    let unknown = server.url("sslmode=verify-full");
    let missing_ca = server.url("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    tokio::task::spawn_blocking(move || {
        for url in [&verify_ca, &require] {
            let cli = Cli::new(&dir_path).with_database(url);
            let info = cli.json(&["info"]);
            assert_eq!(info["backend"], "PostgreSQL", "{url}");
        }
        // An unknown CA, and a CA file that is not there: each says what to do.
        let run = Cli::new(&dir_path)
            .with_database(&unknown)
            .run(&["channels", "list"], None);
        assert_ne!(run.code(), 0);
        let said = run.stderr();
        assert!(
            said.contains("the server's TLS certificate was refused")
                && said.contains("UnknownIssuer")
                && said.contains("add sslrootcert=/path/to/ca.pem to the database URL")
                && !said.contains("check that it is running"),
            "{}",
            run.all()
        );
        let run = Cli::new(&dir_path)
            .with_database(&missing_ca)
            .run(&["channels", "list"], None);
        assert_ne!(run.code(), 0);
        assert!(
            run.stderr()
                .contains("cannot read sslrootcert /nonexistent/ca.pem: No such file"),
            "{}",
            run.all()
        );
    })
    .await
    .unwrap();
}

/// `options` in `database.url` apply to every session flametree opens, the group-commit
/// writer's included: the README's way to make commits asynchronous on a disk whose
/// flushes stall (`options=-c synchronous_commit=off`). application_name rides along
/// because, unlike synchronous_commit, another session can see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_in_the_database_url_reach_every_session_the_writer_s_too() {
    use flametree::store::WriteOp;
    let db = PgDb::create().await;
    let url = format!(
        "{}?options=-c%20synchronous_commit%3Doff%20-c%20application_name%3Dft-options-probe",
        db.url
    );
    let store = flametree::store::open(&url, 5, 2).await.unwrap();
    store.tenant("default").await.unwrap();
    store
        .write_batch(&[WriteOp::Logs(Vec::new())], 100)
        .await
        .unwrap();
    let name = db.url.rsplit_once('/').unwrap().1.to_string();
    let mut admin = connect(&common::postgres_admin_url()).await.unwrap();
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE datname = $1 \
         AND backend_type = 'client backend'",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(sessions.len() >= 2, "the pool and the writer: {sessions:?}");
    assert!(
        sessions.iter().all(|a| a == "ft-options-probe"),
        "every session carries the URL's options: {sessions:?}"
    );
    drop(store);
}
