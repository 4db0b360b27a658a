//! SIP registration against a real peer: SIPp (Debian's `sip-tester`) as a registrar
//! with digest authentication (`tests/fixtures/sipp/registrar.xml`), on SQLite and
//! PostgreSQL. Calls are not answered in this build: an INVITE is turned away.

mod common;

use common::Be;
use common::hooks::{Host, draft, host, wait_status};
use common::runtime::log_text;
use flametree::model::Status;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "flametree-bot";
const RIGHT: &str = "right-password";

/// A free UDP port on 127.0.0.1 (free when asked; SIPp and flametree bind it next).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIPp running a scenario; killed (by its pid) when dropped.
struct Sipp {
    child: Child,
    port: u16,
    messages: std::path::PathBuf,
}

impl Sipp {
    fn registrar(dir: &std::path::Path) -> Sipp {
        Sipp::registrar_on(dir, "u1")
    }

    /// `transport`: SIPp's `-t` (u1 UDP, t1 TCP).
    fn registrar_on(dir: &std::path::Path, transport: &str) -> Sipp {
        let port = if transport == "t1" {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            free_udp_port()
        };
        let messages = dir.join(format!("sipp-{port}-messages.log"));
        let scenario = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sipp/registrar.xml"
        );
        let child = Command::new("sipp")
            .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", transport])
            .args(["-nostdin", "-trace_msg", "-message_file"])
            .arg(&messages)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp runs (Debian package sip-tester)");
        Sipp {
            child,
            port,
            messages,
        }
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// What SIPp saw once `done` says so, or as it is after `secs`.
    async fn wait_messages(&self, secs: u64, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if done(&m) || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Authorized REGISTERs SIPp received (each answer to a challenge).
fn authorized_registers(messages: &str) -> usize {
    messages
        .split("REGISTER sip:")
        .skip(1)
        .filter(|m| {
            let head = m.split("\r\n\r\n").next().unwrap_or("");
            head.contains("Authorization: Digest")
        })
        .count()
}

/// A SIP connection registering with `registrar`, attached to a started agent.
async fn sip_line(be: Be, registrar: &str, password: &str) -> (common::ChannelsEnv, Host, u16) {
    sip_line_with(
        be,
        &[("registrar", registrar), ("transport", "udp")],
        password,
    )
    .await
}

async fn sip_line_with(
    be: Be,
    fields: &[(&str, &str)],
    password: &str,
) -> (common::ChannelsEnv, Host, u16) {
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let local = free_udp_port();
    let mut all = vec![("username", USER)];
    all.extend(fields.iter().cloned());
    let d = draft(
        "sip",
        "Desk phone",
        &all,
        &[("password", password)],
        &[("SIP_LOCAL_PORT", local.to_string())],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = common::runtime::echo_agent(&env).await;
    env.channels
        .attach_connection(&agent, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    (env, host, local)
}

async fn registers_renews_and_unregisters(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar(dir.path());
    let (env, host, _) = sip_line(be, &format!("127.0.0.1:{}", sipp.port), RIGHT).await;
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert_eq!(
        c.status_message,
        format!("registered as {USER}@127.0.0.1:{}", sipp.port)
    );
    // The registrar grants 2 s: renewed before it runs out, each time with the digest.
    let m = sipp
        .wait_messages(15, |m| authorized_registers(m) >= 3)
        .await;
    assert!(authorized_registers(&m) >= 3, "{m}");
    assert!(m.contains("username=\"flametree-bot\""), "{m}");
    assert!(!m.contains(RIGHT), "the password never travels: {m}");
    let log = log_text(&env, "Desk phone", "registration renewed").await;
    assert!(log.contains("registration renewed for 2 s"), "{log}");

    let agent = env.channels.find_agent("Echo").await.unwrap();
    env.channels.run_agent(&agent, false).await.unwrap();
    wait_status(&env, "Desk phone", Status::Stopped).await;
    let m = sipp.wait_messages(10, |m| m.contains("Expires: 0")).await;
    assert!(m.contains("Expires: 0"), "unregistered on stop: {m}");
    let log = log_text(&env, "Desk phone", "unregistered from").await;
    assert!(log.contains("unregistered from 127.0.0.1"), "{log}");
    host.shutdown().await;
}

async fn a_wrong_password_is_an_error_saying_so(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar(dir.path());
    let (env, host, _) = sip_line(be, &format!("127.0.0.1:{}", sipp.port), "wrong-password").await;
    let c = wait_status(&env, "Desk phone", Status::Error).await;
    assert!(
        c.status_message
            .starts_with("the registrar refused username/password (403"),
        "{}",
        c.status_message
    );
    assert!(!c.status_message.contains("wrong-password"));
    // Fixed and started again: the failed start let go of its port.
    let mut fixed = flametree::channels::Draft::from_connection(&c);
    fixed.secrets.insert(
        "password".into(),
        flametree::secrets::SecretString::new(RIGHT),
    );
    env.channels.edit(&c, &fixed).await.unwrap();
    let agent = env.channels.find_agent("Echo").await.unwrap();
    let agent = env.channels.run_agent(&agent, false).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert!(
        c.status_message.starts_with("registered as"),
        "{}",
        c.status_message
    );
    host.shutdown().await;
}

async fn an_unreachable_registrar_is_retried(be: Be) {
    // Nobody listens there: no answer, and the connection keeps trying.
    let port = free_udp_port();
    let (env, host, _) = sip_line(be, &format!("127.0.0.1:{port}"), RIGHT).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        let c = env.channels.find("Desk phone").await.unwrap();
        if c.status_message.contains("registrar") || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(c.status, Status::Starting, "{}", c.status_message);
    assert!(
        c.status_message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        c.status_message
    );
    assert_eq!(
        c.desired,
        flametree::model::DesiredState::Running,
        "still trying"
    );
    host.shutdown().await;
}

async fn an_incoming_call_is_turned_away_with_a_log_line(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar(dir.path());
    let (env, host, local) = sip_line(be, &format!("127.0.0.1:{}", sipp.port), RIGHT).await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let caller = Command::new("sipp")
        .args(["-sn", "uac", "-s", USER, &format!("127.0.0.1:{local}")])
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-m", "1", "-timeout", "10", "-nostdin"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp runs");
    assert!(!caller.success(), "the call did not go through");
    let log = log_text(&env, "Desk phone", "was turned away").await;
    assert!(
        log.contains("was turned away (480): answering SIP calls is not in this build yet"),
        "{log}"
    );
    host.shutdown().await;
}

async fn registers_over_tcp_and_through_an_outbound_proxy(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar_on(dir.path(), "t1");
    let registrar = format!("127.0.0.1:{}", sipp.port);
    let (env, host, _) = sip_line_with(
        be,
        &[("registrar", &registrar), ("transport", "tcp")],
        RIGHT,
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let m = sipp.messages();
    assert!(m.contains("TCP message received"), "{m}");
    assert!(m.contains("Via: SIP/2.0/TCP"), "{m}");
    host.shutdown().await;
    drop(sipp);

    // The registrar's domain need not resolve here: packets go to the proxy.
    let sipp = Sipp::registrar(dir.path());
    let proxy = format!("127.0.0.1:{}", sipp.port);
    let (env, host, _) = sip_line_with(
        be,
        &[
            ("registrar", "pbx.flametree.invalid"),
            ("transport", "udp"),
            ("outbound_proxy", &proxy),
        ],
        RIGHT,
    )
    .await;
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert_eq!(
        c.status_message,
        format!("registered as {USER}@pbx.flametree.invalid")
    );
    assert!(
        sipp.messages()
            .contains("REGISTER sip:pbx.flametree.invalid SIP/2.0"),
        "{}",
        sipp.messages()
    );
    host.shutdown().await;
}

async fn an_ip_authenticated_trunk_does_not_register(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar(dir.path());
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let local = free_udp_port();
    let registrar = format!("127.0.0.1:{}", sipp.port);
    let d = draft(
        "sip",
        "Desk phone",
        &[
            ("registrar", &registrar),
            ("username", USER),
            ("transport", "udp"),
        ],
        &[("password", RIGHT)],
        &[
            ("SIP_LOCAL_PORT", local.to_string()),
            ("SIP_REGISTER", "false".into()),
        ],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = common::runtime::echo_agent(&env).await;
    env.channels
        .attach_connection(&agent, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert_eq!(
        c.status_message,
        format!("not registering (SIP_REGISTER=false); listening on port {local}")
    );
    assert!(!sipp.messages().contains("REGISTER"), "{}", sipp.messages());
    host.shutdown().await;
}

on_both!(
    an_ip_authenticated_trunk_does_not_register,
    registers_over_tcp_and_through_an_outbound_proxy,
    registers_renews_and_unregisters,
    a_wrong_password_is_an_error_saying_so,
    an_unreachable_registrar_is_retried,
    an_incoming_call_is_turned_away_with_a_log_line,
);
