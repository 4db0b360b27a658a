//! Real mail servers for the Email tests, started by the tests on 127.0.0.1: Dovecot
//! (IMAP, from Debian's dovecot-imapd) and aiosmtpd (SMTP, from PyPI) capturing what is
//! sent, with certificates from a throwaway CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A CA and a certificate for `localhost`/127.0.0.1 that it signed, as PEM files.
pub struct Ca {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "flametree test mail CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let out = Ca {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        };
        std::fs::write(&out.ca_pem, ca.pem()).unwrap();
        std::fs::write(&out.cert_pem, cert.pem()).unwrap();
        std::fs::write(&out.key_pem, key.serialize_pem()).unwrap();
        out
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Dovecot serving IMAP (plain/STARTTLS on `imap_port`, TLS on `imaps_port`) for the
/// given users, each with a Maildir under the test's directory.
pub struct Dovecot {
    dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    pub imap_port: u16,
    pub imaps_port: u16,
}

impl Dovecot {
    pub fn start(dir: &Path, ca: &Ca, users: &[(&str, &str)]) -> Dovecot {
        let bin = Path::new("/usr/sbin/dovecot");
        assert!(
            bin.exists(),
            "the Email tests need Dovecot: apt-get install dovecot-imapd"
        );
        let dir = dir.join("dovecot");
        for d in ["run", "state", "home"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        // Dovecot will not deliver mail as root; as root it uses the `mail` user, otherwise
        // everything runs as whoever runs the tests.
        let root = unsafe { libc::geteuid() } == 0;
        let me = whoami::username().unwrap_or_else(|_| "nobody".into());
        let (uid, users_conf) = if root {
            let _ = Command::new("chown")
                .args(["-R", "mail:mail"])
                .arg(dir.join("home"))
                .status();
            ("mail".to_string(), String::new())
        } else {
            (
                unsafe { libc::getuid() }.to_string(),
                format!(
                    "default_internal_user = {me}\ndefault_login_user = {me}\n\
                     default_internal_group = {g}\n",
                    g = unsafe { libc::getgid() }
                ),
            )
        };
        let imap_port = free_port();
        let imaps_port = free_port();
        let d = dir.display();
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\nssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n{users_conf}\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={uid} home={d}/home/%u\n}}\n\
             first_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
             namespace inbox {{\n  inbox = yes\n  mailbox Sent {{\n    auto = create\n    special_use = \\Sent\n  }}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n  \
             inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n",
            cert = ca.cert_pem.display(),
            key = ca.key_pem.display(),
        );
        let conf_path = dir.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut dv = Dovecot {
            dir,
            conf: conf_path,
            child: None,
            imap_port,
            imaps_port,
        };
        dv.launch();
        dv
    }

    fn launch(&mut self) {
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts");
        self.child = Some(child);
        let log = self.dir.join("dovecot.log");
        wait_port(self.imap_port, "Dovecot", &log);
        wait_port(self.imaps_port, "Dovecot", &log);
    }

    /// Stops the server (connected clients see their connection drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.imap_port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn doveadm(&self, args: &[&str]) -> String {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("doveadm runs");
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Gives the folder a new UIDVALIDITY, as a server does after rebuilding it.
    pub fn renumber(&self, user: &str, folder: &str) {
        let now = self.doveadm(&["mailbox", "status", "-u", user, "uidvalidity", folder]);
        let v: u64 = now
            .split('=')
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        self.doveadm(&[
            "mailbox",
            "update",
            "-u",
            user,
            "--uid-validity",
            &(v + 1000).to_string(),
            folder,
        ]);
    }

    /// The flags of every mail in a folder, by the mail's Message-ID.
    pub fn flags(&self, user: &str, folder: &str) -> String {
        self.doveadm(&[
            "fetch",
            "-u",
            user,
            "flags hdr.message-id",
            "mailbox",
            folder,
        ])
    }

    /// How many mails a folder holds.
    pub fn count(&self, user: &str, folder: &str) -> usize {
        let out = self.doveadm(&["mailbox", "status", "-u", user, "messages", folder]);
        out.split('=')
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Delivers a mail into a user's folder, as the server's delivery agent would.
    pub fn deliver(&self, user: &str, folder: &str, mail: &str) {
        let path = self.dir.join(format!("deliver-{}.eml", rand_id()));
        std::fs::write(&path, mail.replace('\n', "\r\n").replace("\r\r\n", "\r\n")).unwrap();
        self.doveadm(&["save", "-u", user, "-m", folder, path.to_str().unwrap()]);
    }
}

impl Dovecot {
    /// Drops a mail straight into a user's Maildir, as a local delivery agent does
    /// (no process per mail: for the benchmark). The Maildir exists once the user has
    /// logged in.
    pub fn drop_in(&self, user: &str, mail: &str) {
        let maildir = self.dir.join("home").join(user).join("Maildir");
        let name = format!("{}.{}.bench", std::process::id(), rand_id());
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, mail.replace('\n', "\r\n").replace("\r\r\n", "\r\n")).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A mail the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub login: Option<String>,
    pub raw: String,
}

impl Sent {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn body(&self) -> String {
        self.raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .unwrap_or_default()
    }
}

/// aiosmtpd requiring AUTH, capturing every accepted mail.
pub struct Smtp {
    child: Child,
    out: PathBuf,
    pub port: u16,
}

impl Smtp {
    /// `mode`: "none", "starttls" or "ssl/tls".
    pub fn start(dir: &Path, ca: &Ca, mode: &str, users: &[(&str, &str)]) -> Smtp {
        Smtp::start_slow(dir, ca, mode, users, 0)
    }

    /// The same, accepting each mail only `delay_ms` after its data arrived.
    pub fn start_slow(
        dir: &Path,
        ca: &Ca,
        mode: &str,
        users: &[(&str, &str)],
        delay_ms: u64,
    ) -> Smtp {
        let out = dir.join(format!("smtp-{}", rand_id()));
        std::fs::create_dir_all(&out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_capture.py");
        let users: Vec<String> = users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
        let mut child = Command::new(python_with_aiosmtpd())
            .arg(script)
            .args(["--mode", mode, "--out"])
            .arg(&out)
            .arg("--cert")
            .arg(&ca.cert_pem)
            .arg("--key")
            .arg(&ca.key_pem)
            .args(["--users", &users.join(",")])
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(out.with_extension("stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("python3 runs");
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP test server did not start (pip install aiosmtpd): {line:?}")
            });
        Smtp { child, out, port }
    }

    pub fn sent(&self) -> Vec<Sent> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|eml| {
                let env: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(eml.with_extension("json")).unwrap(),
                )
                .unwrap();
                Sent {
                    mail_from: env["mail_from"].as_str().unwrap_or("").to_string(),
                    rcpt_tos: env["rcpt_tos"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    login: env["login"].as_str().map(String::from),
                    raw: String::from_utf8_lossy(&std::fs::read(eml).unwrap()).into_owned(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` mails were accepted (or 40 s: a reconnect after a server
    /// restart waits for the retry helper's backoff), then returns them all.
    pub async fn wait_sent(&self, n: usize) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let sent = self.sent();
            if sent.len() >= n || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// python3 when it has aiosmtpd; else a virtualenv under the build's temp directory with
/// aiosmtpd installed from PyPI (once), so `cargo test` needs no set-up for it.
fn python_with_aiosmtpd() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let has = |py: &Path| {
                Command::new(py)
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let system = PathBuf::from("python3");
            if has(&system) {
                return system;
            }
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aiosmtpd-venv");
            let py = venv.join("bin/python3");
            if !has(&py) {
                let made = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(&py)
                        .args(["-m", "pip", "install", "-q", "aiosmtpd"])
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(
                    made && has(&py),
                    "the Email tests need aiosmtpd: pip install aiosmtpd (python3 with venv and \
                     pip, and PyPI reachable)"
                );
            }
            py
        })
        .clone()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
