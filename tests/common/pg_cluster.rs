//! A private, throwaway PostgreSQL cluster started from the installed server binaries.
//!
//! The tests use the machine's PostgreSQL when one answers at the test URL; otherwise each
//! test binary starts one of these (see `super::postgres_admin_url`). A cluster lives in a
//! temp dir, listens on 127.0.0.1 on a free port with trust auth and no durability (it is
//! thrown away), and is stopped and removed when its owner drops it, when the process
//! exits (atexit, for the shared one), or — should the process be killed — by a watchdog
//! that sees the process go.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// Where to look for `initdb` and `pg_ctl` instead of /usr/lib/postgresql/*/bin and PATH.
pub const BINDIR_ENV: &str = "FLAMETREE_TEST_POSTGRES_BINDIR";

/// What `PgCluster::start` needs besides the defaults.
#[derive(Default)]
pub struct ClusterOptions {
    /// PEM certificate (chain) and key: the server then offers TLS (`ssl=on`).
    pub tls: Option<(String, String)>,
}

/// A running private cluster; dropping it stops it and removes its files.
pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    /// e.g. "PostgreSQL 15", from the bin dir.
    pub version: String,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    /// The server settings it was started with (`pg_ctl -o`), to start it again.
    settings: Mutex<String>,
}

impl PgCluster {
    /// Superuser `postgres`, database `postgres`, over TCP on 127.0.0.1.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Initialises and starts a cluster. The error is one line saying what went wrong,
    /// or what to install when no server binaries are there.
    pub fn start(options: ClusterOptions) -> Result<PgCluster, String> {
        let bindir = find_bindir()?;
        let runner = Runner::for_this_process()?;
        // /usr/lib/postgresql/<version>/bin
        let version = match bindir.parent() {
            Some(v) if v.parent().and_then(Path::file_name) == Some("postgresql".as_ref()) => {
                format!("PostgreSQL {}", v.file_name().unwrap_or_default().display())
            }
            _ => "PostgreSQL".into(),
        };
        let dir = private_dir(&runner)?;
        // From here on the watchdog removes `dir` however this ends.
        let mut cluster = PgCluster {
            watchdog: Mutex::new(Some(watchdog(&dir, &bindir.join("pg_ctl"), &runner)?)),
            dir,
            port: 0,
            version,
            settings: Mutex::default(),
        };
        match cluster.init_and_start(&bindir, &runner, &options) {
            Ok(port) => {
                cluster.port = port;
                cluster.tell_watchdog("up");
                Ok(cluster)
            }
            Err(e) => {
                cluster.tell_watchdog("down");
                Err(e)
            }
        }
    }

    /// initdb, then pg_ctl start on a free port, which it returns.
    fn init_and_start(
        &self,
        bindir: &Path,
        runner: &Runner,
        options: &ClusterOptions,
    ) -> Result<u16, String> {
        let data = self.dir.join("data");
        let out = runner
            .command(&bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb from {}: {e}", bindir.display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                one_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        let mut settings = vec![
            "-c listen_addresses=127.0.0.1".to_string(),
            "-c unix_socket_directories=''".into(),
            "-c fsync=off".into(),
            "-c synchronous_commit=off".into(),
            "-c full_page_writes=off".into(),
            "-c max_connections=300".into(),
        ];
        if let Some((cert, key)) = &options.tls {
            let cert_path = self.dir.join("server.crt");
            let key_path = self.dir.join("server.key");
            write_private(&cert_path, cert, runner)?;
            write_private(&key_path, key, runner)?;
            settings.push("-c ssl=on".into());
            settings.push(format!("-c ssl_cert_file='{}'", cert_path.display()));
            settings.push(format!("-c ssl_key_file='{}'", key_path.display()));
        }
        // A free port can be taken between finding it and binding it: try a few.
        let log = self.dir.join("postgres.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let line = format!("-c port={port} {}", settings.join(" "));
            *self.settings.lock().unwrap() = line.clone();
            let out = runner
                .command(&bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(line)
                .arg("start")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run pg_ctl from {}: {e}", bindir.display()))?;
            if out.status.success() {
                return Ok(port);
            }
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            last = format!(
                "{} {}",
                one_line(&String::from_utf8_lossy(&out.stderr)),
                one_line(&logged)
            );
            if !logged.contains("already in use") {
                break;
            }
        }
        Err(format!(
            "the private PostgreSQL cluster did not start: {last}"
        ))
    }

    /// "up": the server runs; "down": pg_ctl said it did not start. Told neither, the
    /// watchdog allows for a server still starting when this process went.
    fn tell_watchdog(&self, state: &str) {
        use std::io::Write;
        if let Ok(mut w) = self.watchdog.lock()
            && let Some((_, stdin)) = w.as_mut()
        {
            let _ = writeln!(stdin, "{state}");
        }
    }

    /// Stops the server (fast: clients are disconnected), waits `down`, and starts it
    /// again on the same port with the same data: a database restart as operators see it.
    pub fn restart_after(&self, down: std::time::Duration) -> Result<(), String> {
        let bindir = find_bindir()?;
        let runner = Runner::for_this_process()?;
        let data = self.dir.join("data");
        let ctl = |args: &[&str]| -> Result<(), String> {
            let out = runner
                .command(&bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(self.dir.join("postgres.log"))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(one_line(&String::from_utf8_lossy(&out.stderr)))
            }
        };
        ctl(&["-w", "-m", "fast", "stop"])?;
        std::thread::sleep(down);
        let settings = self.settings.lock().unwrap().clone();
        ctl(&["-w", "-t", "60", "-o", &settings, "start"])
    }

    /// Stops the server at once and removes its files; waits until both are done.
    pub fn stop(&self) {
        let taken = self.watchdog.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some((mut child, stdin)) = taken {
            // The watchdog acts when its standard input closes.
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cluster shared by all tests of this process, started once; stopped at exit.
pub fn shared() -> Result<&'static PgCluster, String> {
    static SHARED: std::sync::OnceLock<Result<PgCluster, String>> = std::sync::OnceLock::new();
    extern "C" fn stop_shared() {
        if let Some(Ok(cluster)) = SHARED.get() {
            cluster.stop();
        }
    }
    SHARED
        .get_or_init(|| {
            let cluster = PgCluster::start(ClusterOptions::default())?;
            // SAFETY: registers a plain function to run at normal process exit.
            unsafe { libc::atexit(stop_shared) };
            Ok(cluster)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The directory holding `initdb` and `pg_ctl`: $FLAMETREE_TEST_POSTGRES_BINDIR, else the
/// newest /usr/lib/postgresql/<version>/bin, else PATH.
pub fn find_bindir() -> Result<PathBuf, String> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let candidates: Vec<PathBuf> = match std::env::var_os(BINDIR_ENV) {
        Some(d) => vec![PathBuf::from(d)],
        None => {
            let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let v = e.file_name().to_string_lossy().into_owned();
                    let key = v.split('.').map(|n| n.parse().unwrap_or(0)).collect();
                    (key, e.path().join("bin"))
                })
                .collect();
            versions.sort();
            let mut dirs: Vec<PathBuf> = versions.into_iter().rev().map(|(_, d)| d).collect();
            dirs.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            dirs
        }
    };
    // Resolve symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) so the
    // version shows and pg_ctl finds its own postgres.
    candidates
        .into_iter()
        .find(|d| has_both(d))
        .map(|d| {
            d.join("initdb")
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .filter(|real| has_both(real))
                .unwrap_or(d)
        })
        .ok_or_else(|| {
            let place = match std::env::var_os(BINDIR_ENV) {
                Some(d) => format!(" in {} (${BINDIR_ENV})", Path::new(&d).display()),
                None => String::new(),
            };
            format!(
                "PostgreSQL server binaries (initdb, pg_ctl) are not installed{place}, so the \
                 PostgreSQL tests cannot start a private server: install them (Debian: \
                 apt-get install postgresql) or point FLAMETREE_TEST_POSTGRES_URL at a server"
            )
        })
}

/// Runs the server's tools as this user, or — initdb refuses root — as `postgres`.
struct Runner {
    /// (name, uid, gid) when running as root.
    as_user: Option<(String, u32, u32)>,
}

impl Runner {
    fn for_this_process() -> Result<Runner, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Runner { as_user: None });
        }
        let name = CString::new("postgres").unwrap();
        // SAFETY: getpwnam reads the user database; the fields are copied out at once.
        let (uid, gid) = unsafe {
            let pw = libc::getpwnam(name.as_ptr());
            if pw.is_null() {
                return Err(
                    "the tests run as root and initdb refuses root, but there is no \
                     'postgres' user to run it as (Debian: apt-get install postgresql creates it)"
                        .into(),
                );
            }
            ((*pw).pw_uid, (*pw).pw_gid)
        };
        Ok(Runner {
            as_user: Some(("postgres".into(), uid, gid)),
        })
    }

    fn command(&self, program: &Path) -> Command {
        match &self.as_user {
            None => Command::new(program),
            Some((name, _, _)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", name, "--"]).arg(program);
                c
            }
        }
    }

    fn give(&self, path: &Path) -> Result<(), String> {
        match &self.as_user {
            None => Ok(()),
            Some((name, uid, gid)) => std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| format!("cannot give {} to {name}: {e}", path.display())),
        }
    }
}

/// A new 0700 directory under the temp dir, owned by whoever runs the server.
fn private_dir(runner: &Runner) -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let mut base = std::env::temp_dir();
    if runner.as_user.is_some() && !world_searchable(&base) {
        // The postgres user must reach it.
        base = PathBuf::from("/tmp");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = base.join(format!(
        "flametree-pg-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    runner.give(&dir)?;
    Ok(dir)
}

fn world_searchable(dir: &Path) -> bool {
    dir.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
}

/// Writes a file only its owner (the server's user) may read, as PostgreSQL wants its key.
fn write_private(path: &Path, text: &str, runner: &Runner) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    runner.give(path)
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// A shell in a process group of its own (Ctrl-C does not reach it) that waits for its
/// standard input to close — when the owner stops the cluster, or when this process ends
/// in any way, since nothing else holds the pipe — then stops the server and removes `dir`.
/// Its input says whether the server came up; told nothing, it gives a server that was
/// still starting a few seconds to write its pid file, so that one is stopped too.
fn watchdog(dir: &Path, pg_ctl: &Path, runner: &Runner) -> Result<(Child, ChildStdin), String> {
    let script = r#"
        state=starting
        while read -r line; do state=$line; done
        pid="$DIR/data/postmaster.pid"
        if [ "$state" = starting ]; then
          tries=0
          while [ ! -f "$pid" ] && [ $tries -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
        fi
        if [ -f "$pid" ]; then
          "$@" stop -D "$DIR/data" -m immediate -w -t 60 >/dev/null 2>&1
        fi
        tries=0
        while [ -e "$DIR" ] && [ $tries -lt 20 ]; do
          rm -rf "$DIR" 2>/dev/null || sleep 0.1
          tries=$((tries + 1))
        done
    "#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("flametree-pg-watchdog")
        .env("DIR", dir);
    if let Some((name, _, _)) = &runner.as_user {
        cmd.args(["runuser", "-u", name, "--"]);
    }
    let mut child = cmd
        .arg(pg_ctl)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let stdin = child.stdin.take().unwrap();
    Ok((child, stdin))
}

/// The last few lines of a tool's output, on one line.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}
