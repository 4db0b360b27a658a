//! SIP registration against a real peer: SIPp (Debian's `sip-tester`) as a registrar
//! with digest authentication (`tests/fixtures/sipp/registrar.xml`), on SQLite and
//! PostgreSQL; and SIPp as a caller (`tests/fixtures/sipp/caller.xml`) whose audio and
//! RFC 4733 digits are played from a pcap the test writes, with the line's RTP sent to
//! the test's own socket so its pacing and numbering can be checked.

mod common;
#[path = "voice_sip/media.rs"]
mod sip_media;
#[path = "voice_sip/tls.rs"]
mod sip_tls;

use common::Be;
use common::hooks::{Host, draft, host, wait_status};
use common::runtime::{log_text, speech_engines};
use flametree::model::Status;
use sip_media::free_udp_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "flametree-bot";
const RIGHT: &str = "right-password";

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
        let scenario = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sipp/registrar.xml"
        );
        Sipp::run(dir, transport, scenario, &[])
    }

    /// SIPp running `scenario` on `transport` with the scenario's `-key`s.
    fn run(
        dir: &std::path::Path,
        transport: &str,
        scenario: &str,
        keys: &[(&str, String)],
    ) -> Sipp {
        let port = if transport == "t1" {
            sip_media::free_tcp_port()
        } else {
            free_udp_port()
        };
        let messages = dir.join(format!("sipp-{port}-messages.log"));
        let child = Command::new("sipp")
            .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", transport])
            .args(keys.iter().flat_map(|(k, v)| ["-key", k, v.as_str()]))
            // How long a scenario's <pause/> holds (a call before its BYE).
            .args(["-d", "2000"])
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

/// The echo agent with speech engines set (SIP lines do not start without them), at an
/// address where nobody listens: these tests look at signalling and media, not speech.
async fn speaking_agent(env: &common::ChannelsEnv) -> flametree::model::Agent {
    let agent = common::runtime::echo_agent(env).await;
    if !agent.speech.contains("stt_url") {
        let edit = flametree::agents::service::AgentEdit {
            speech: Some(speech_engines("http://127.0.0.1:9/v1")),
            ..Default::default()
        };
        return env.channels.edit_agent(&agent, edit).await.unwrap();
    }
    agent
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
    sip_line_env(be, fields, password, &[]).await
}

/// `sip_line_with`, with settings (`env_vars`) besides its own SIP_LOCAL_PORT.
async fn sip_line_env(
    be: Be,
    fields: &[(&str, &str)],
    password: &str,
    env_vars: &[(&str, String)],
) -> (common::ChannelsEnv, Host, u16) {
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let local = free_udp_port();
    let mut all = vec![("username", USER)];
    all.extend(fields.iter().cloned());
    let mut vars = vec![("SIP_LOCAL_PORT", local.to_string())];
    vars.extend(env_vars.iter().cloned());
    let d = draft("sip", "Desk phone", &all, &[("password", password)], &vars);
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = speaking_agent(&env).await;
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
    assert_eq!(
        c.status_message,
        "the registrar refused username/password (403 Forbidden): check Username and \
         Password, Save, then start the agent again"
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

/// A line registering over TLS through the terminator in front of `sipp` (on TCP),
/// trusting the terminator's CA when `trusting`.
async fn tls_line(
    be: Be,
    dir: &std::path::Path,
    sipp: &Sipp,
    trusting: bool,
) -> (sip_tls::Relay, String, common::ChannelsEnv, Host) {
    let relay = sip_tls::Relay::start(dir, sipp.port).await;
    let registrar = format!("127.0.0.1:{}", relay.port);
    let mut vars = Vec::new();
    if trusting {
        vars.push(("SIP_TLS_CA_FILE", relay.ca_file.display().to_string()));
    }
    let fields = [("registrar", registrar.as_str()), ("transport", "tls")];
    let (env, host, _) = sip_line_env(be, &fields, RIGHT, &vars).await;
    (relay, registrar, env, host)
}

async fn registers_over_tls_trusting_sip_tls_ca_file(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar_on(dir.path(), "t1");
    let (relay, registrar, env, host) = tls_line(be, dir.path(), &sipp, true).await;
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert_eq!(
        c.status_message,
        format!("registered as {USER}@{registrar}")
    );
    // Renewed (the registrar grants 2 s) on the same flow: one handshake in all.
    let m = sipp
        .wait_messages(15, |m| authorized_registers(m) >= 3)
        .await;
    assert!(authorized_registers(&m) >= 3, "{m}");
    assert!(
        m.contains(&format!("REGISTER sip:{registrar};transport=TLS SIP/2.0")),
        "{m}"
    );
    assert!(m.contains("Via: SIP/2.0/TLS 127.0.0.1:"), "{m}");
    assert!(
        m.contains(";transport=TLS>"),
        "the Contact is the flow: {m}"
    );
    assert!(!m.contains(RIGHT), "{m}");
    assert_eq!((relay.handshakes(), relay.refused()), (1, 0));
    // The server closes the flow: the next renewal opens another and goes on it.
    let before = authorized_registers(&sipp.messages());
    relay.cut();
    let m = sipp
        .wait_messages(15, |m| authorized_registers(m) > before + 1)
        .await;
    assert!(authorized_registers(&m) > before + 1, "{m}");
    assert_eq!((relay.handshakes(), relay.refused()), (2, 0));
    let log = log_text(&env, "Desk phone", "verified").await;
    assert!(
        log.contains(&format!(
            "TLS to the registrar 127.0.0.1 ({registrar}) verified"
        )),
        "{log}"
    );

    let agent = env.channels.find_agent("Echo").await.unwrap();
    env.channels.run_agent(&agent, false).await.unwrap();
    wait_status(&env, "Desk phone", Status::Stopped).await;
    let m = sipp.wait_messages(10, |m| m.contains("Expires: 0")).await;
    assert!(m.contains("Expires: 0"), "unregistered on stop: {m}");
    assert_eq!(relay.handshakes(), 2, "unregistered on the same flow");
    host.shutdown().await;
}

async fn an_untrusted_registrar_certificate_is_an_error_naming_sip_tls_ca_file(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar_on(dir.path(), "t1");
    let (relay, registrar, env, host) = tls_line(be, dir.path(), &sipp, false).await;
    let c = wait_status(&env, "Desk phone", Status::Error).await;
    assert!(
        c.status_message
            .starts_with("the registrar's certificate is not trusted (127.0.0.1: "),
        "{}",
        c.status_message
    );
    assert!(
        c.status_message.contains(
            "if it is signed by a private CA, set SIP_TLS_CA_FILE to that CA's certificate \
             (a PEM file)"
        ),
        "{}",
        c.status_message
    );
    assert!(relay.refused() >= 1, "the line broke the handshake off");
    assert_eq!(relay.handshakes(), 0);
    assert!(!sipp.messages().contains("REGISTER"), "{}", sipp.messages());
    host.shutdown().await;

    // A CA file that is not there is said so before anything is dialled.
    let (env, host, _) = sip_line_env(
        be,
        &[("registrar", &registrar), ("transport", "tls")],
        RIGHT,
        &[("SIP_TLS_CA_FILE", "/nonexistent/pbx-ca.pem".into())],
    )
    .await;
    let c = wait_status(&env, "Desk phone", Status::Error).await;
    assert!(
        c.status_message.starts_with(
            "SIP_TLS_CA_FILE names the file '/nonexistent/pbx-ca.pem', which cannot be read"
        ),
        "{}",
        c.status_message
    );
    host.shutdown().await;
}

/// An inbound call over TLS: the registrar calls the line back on the flow it
/// registered on (the line has no TLS port of its own to be called at).
async fn a_call_comes_in_on_the_registered_tls_flow(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/voice_sip/registrar_calls_back.xml"
    );
    let keys = [("audio_port", ear.local_addr().unwrap().port().to_string())];
    let sipp = Sipp::run(dir.path(), "t1", scenario, &keys);
    let (relay, _, env, host) = tls_line(be, dir.path(), &sipp, true).await;
    wait_status(&env, "Desk phone", Status::Running).await;
    // The line answers and speaks: its audio reaches the caller's socket.
    let heard = sip_media::listen(&ear, 5).await;
    assert_eq!(heard.len(), 5, "{}", sipp.messages());
    let m = sipp
        .wait_messages(20, |m| {
            m.contains("SIP/2.0 200 OK") && m.contains("BYE sip:")
        })
        .await;
    let answer = m
        .split("SIP/2.0 200 OK")
        .find(|a| a.contains("CSeq: 1 INVITE"))
        .unwrap_or_else(|| panic!("the line's 200 OK to the INVITE: {m}"));
    assert!(
        answer.contains(";transport=TLS>") || answer.contains(";transport=tls>"),
        "the answer's Contact is the flow: {answer}"
    );
    let log = log_text(&env, "Desk phone", "ended by the caller").await;
    assert!(
        log.contains("call from sip:ada@127.0.0.1") && log.contains("answered (PCMU"),
        "{log}"
    );
    assert_eq!(
        (relay.handshakes(), relay.refused()),
        (1, 0),
        "the call came on the line's own flow"
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
    let agent = speaking_agent(&env).await;
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

async fn an_agent_without_speech_engines_takes_no_calls(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::registrar(dir.path());
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
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
        &[("SIP_LOCAL_PORT", free_udp_port().to_string())],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = common::runtime::echo_agent(&env).await;
    env.channels
        .attach_connection(&agent, &c, true)
        .await
        .unwrap();
    let agent = env.channels.run_agent(&agent, true).await.unwrap();
    let c = wait_status(&env, "Desk phone", Status::Error).await;
    assert!(
        c.status_message.starts_with(
            "the agent 'Echo' has no speech engines: a voice call needs speech-to-text and \
             text-to-speech. Set them with `flametree agents edit \"Echo\" --stt-url URL"
        ),
        "{}",
        c.status_message
    );
    assert!(
        c.status_message.contains("or on the agents screen (v)"),
        "{}",
        c.status_message
    );
    assert!(
        !sipp.messages().contains("REGISTER"),
        "it did not register: {}",
        sipp.messages()
    );

    // Half set is still not enough, and says what is missing.
    let agent = env.channels.run_agent(&agent, false).await.unwrap();
    let half = flametree::agents::speech::SpeechEdit {
        tts_url: None,
        tts_model: None,
        tts_voice: None,
        ..speech_engines("http://127.0.0.1:9/v1")
    };
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(half),
        ..Default::default()
    };
    let agent = env.channels.edit_agent(&agent, edit).await.unwrap();
    let agent = env.channels.run_agent(&agent, true).await.unwrap();
    // The first start's ERROR is still shown until this start fails in its own words.
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        let c = env.channels.find("Desk phone").await.unwrap();
        if c.status_message.contains("incomplete") || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(c.status, Status::Error);
    assert!(
        c.status_message.starts_with(
            "the agent 'Echo' has incomplete speech engines (--tts-url, --tts-model, \
             --tts-voice not set)"
        ),
        "{}",
        c.status_message
    );

    // Set, with a key that cannot be opened (damaged at rest): said now, not mid-call.
    let agent = env.channels.run_agent(&agent, false).await.unwrap();
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            key: Some(flametree::secrets::SecretString::new("sk-speech-key-0123")),
            ..speech_engines("http://127.0.0.1:9/v1")
        }),
        ..Default::default()
    };
    let agent = env.channels.edit_agent(&agent, edit).await.unwrap();
    let mut damaged = agent.clone();
    let mut doc: serde_json::Value = serde_json::from_str(&agent.speech).unwrap();
    doc["api_key"]["ciphertext"] = "AAAA".into();
    damaged.speech = doc.to_string();
    let note = flametree::store::AuditNote::new("test", "update", "damage the key");
    let damaged = env
        .channels
        .store()
        .update_agent(&damaged, &note)
        .await
        .unwrap();
    env.channels.run_agent(&damaged, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        let c = env.channels.find("Desk phone").await.unwrap();
        if c.status_message.contains("speech key") || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(c.status, Status::Error);
    assert!(
        c.status_message
            .starts_with("cannot decrypt speech key of agent 'Echo': the stored value is damaged"),
        "{}",
        c.status_message
    );

    // Set properly: the same line registers.
    let agent = env.channels.find_agent("Echo").await.unwrap();
    let agent = env.channels.run_agent(&agent, false).await.unwrap();
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            key: Some(flametree::secrets::SecretString::new("sk-speech-key-0123")),
            ..speech_engines("http://127.0.0.1:9/v1")
        }),
        ..Default::default()
    };
    let agent = env.channels.edit_agent(&agent, edit).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    let c = wait_status(&env, "Desk phone", Status::Running).await;
    assert!(
        c.status_message.starts_with("registered as"),
        "{}",
        c.status_message
    );
    host.shutdown().await;
}

on_both!(
    an_agent_without_speech_engines_takes_no_calls,
    an_ip_authenticated_trunk_does_not_register,
    registers_over_tcp_and_through_an_outbound_proxy,
    registers_over_tls_trusting_sip_tls_ca_file,
    an_untrusted_registrar_certificate_is_an_error_naming_sip_tls_ca_file,
    a_call_comes_in_on_the_registered_tls_flow,
    registers_renews_and_unregisters,
    a_wrong_password_is_an_error_saying_so,
    an_unreachable_registrar_is_retried,
    a_call_is_answered_with_paced_audio_logs_dtmf_and_ends_on_the_callers_bye,
    callers_beyond_sip_max_calls_hear_busy,
    an_offer_without_g711_is_refused_with_488_and_pcma_is_taken,
    the_agent_greets_hears_the_caller_and_answers_over_rtp,
    a_caller_saying_goodbye_is_hung_up_on,
);

/// A line that does not register (nothing to register with): calls come straight in.
async fn answering_line(be: Be, env_vars: &[(&str, String)]) -> (common::ChannelsEnv, Host, u16) {
    answering_line_in(common::channels_env_on(be).await, env_vars).await
}

async fn answering_line_in(
    env: common::ChannelsEnv,
    env_vars: &[(&str, String)],
) -> (common::ChannelsEnv, Host, u16) {
    let host = host(&env).await;
    let local = free_udp_port();
    let mut vars = vec![
        ("SIP_LOCAL_PORT", local.to_string()),
        ("SIP_REGISTER", "false".into()),
    ];
    vars.extend(env_vars.iter().cloned());
    let d = draft(
        "sip",
        "Desk phone",
        &[
            ("registrar", "127.0.0.1:9"),
            ("username", USER),
            ("transport", "udp"),
        ],
        &[("password", RIGHT)],
        &vars,
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = speaking_agent(&env).await;
    env.channels
        .attach_connection(&agent, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    wait_status(&env, "Desk phone", Status::Running).await;
    (env, host, local)
}

async fn a_call_is_answered_with_paced_audio_logs_dtmf_and_ends_on_the_callers_bye(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (env, host, local) =
        answering_line(be, &[("SIP_RTP_PORT_RANGE", "41000-41999".into())]).await;
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_pcap(&['5', '#'])).unwrap();
    let caller = sip_media::Caller::dial(dir.path(), local, ear.local_addr().unwrap().port())
        .pcap(&pcap)
        .hold_ms(2500)
        .start();

    // What the line sends: 20 ms PCMU frames, numbered and timed one after another.
    let heard = sip_media::listen(&ear, 30).await;
    assert_eq!(
        heard.len(),
        30,
        "the line sends audio: {}\n{}",
        caller.messages(),
        log_text(&env, "Desk phone", "").await
    );
    for w in heard.windows(2) {
        let (a, b) = (&w[0].1, &w[1].1);
        assert_eq!(b.payload_type, 0, "PCMU");
        assert_eq!(b.payload.len(), 160, "20 ms frames");
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(160));
        assert_eq!(b.ssrc, heard[0].1.ssrc);
    }
    let took = heard[29].0 - heard[0].0;
    assert!(
        took >= Duration::from_millis(450),
        "paced by a clock, not sent in a burst: 30 frames in {took:?}"
    );

    let messages = caller.finish(20).await;
    assert!(messages.contains("SIP/2.0 180 Ringing"), "{messages}");
    assert!(messages.contains("RTP/AVP 0 101"), "{messages}");
    let port: u16 = messages
        .split("m=audio ")
        .nth(2)
        .and_then(|m| m.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the answer's audio port: {messages}"));
    assert!(
        (41000..=41999).contains(&port),
        "{port} from SIP_RTP_PORT_RANGE"
    );

    let log = log_text(&env, "Desk phone", "ended by the caller").await;
    assert!(
        log.contains("call from sip:ada@127.0.0.1") && log.contains("answered (PCMU"),
        "{log}"
    );
    assert_eq!(log.matches("the caller pressed 5").count(), 1, "{log}");
    assert_eq!(log.matches("the caller pressed #").count(), 1, "{log}");
    let ended = log
        .lines()
        .find(|l| l.contains("ended by the caller after"))
        .unwrap();
    let secs: f32 = ended
        .rsplit("after ")
        .next()
        .and_then(|t| t.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("a duration: {ended}"));
    assert!((2.0..15.0).contains(&secs), "{ended}");
    host.shutdown().await;
}

async fn callers_beyond_sip_max_calls_hear_busy(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (env, host, local) = answering_line(be, &[("SIP_MAX_CALLS", "1".into())]).await;
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_pcap(&[])).unwrap();
    let first = sip_media::Caller::dial(dir.path(), local, ear.local_addr().unwrap().port())
        .pcap(&pcap)
        .hold_ms(6000)
        .start();
    log_text(&env, "Desk phone", "answered").await;
    // The answered call shows in the connection's status, where every console reads it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = env.channels.find("Desk phone").await.unwrap();
        if c.status_message.ends_with("1 call in progress") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no call in progress: {}",
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let second = sip_media::Caller::dial(dir.path(), local, free_udp_port())
        .pcap(&pcap)
        .start();
    let refused = second.finish(20).await;
    assert!(refused.contains("SIP/2.0 486 Busy Here"), "{refused}");
    let log = log_text(&env, "Desk phone", "busy (486)").await;
    assert!(
        log.contains(
            "was turned away: busy (486), SIP_MAX_CALLS is 1 and the line has 1 call in progress"
        ),
        "{log}"
    );
    let answered = first.finish(20).await;
    assert!(answered.contains("SIP/2.0 200 OK"), "{answered}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = env.channels.find("Desk phone").await.unwrap();
        if !c.status_message.contains("in progress") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call stays counted: {}",
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    host.shutdown().await;
}

async fn an_offer_without_g711_is_refused_with_488_and_pcma_is_taken(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let (env, host, local) = answering_line(be, &[]).await;
    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_pcap(&[])).unwrap();
    let refused = sip_media::Caller::dial(dir.path(), local, free_udp_port())
        .pcap(&pcap)
        .formats("18 9")
        .start()
        .finish(20)
        .await;
    assert!(
        refused.contains("SIP/2.0 488 Not Acceptable Here"),
        "{refused}"
    );
    let log = log_text(&env, "Desk phone", "(488").await;
    assert!(
        log.contains("was refused (488 Not Acceptable Here): the offer has neither PCMU nor PCMA"),
        "{log}"
    );

    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = sip_media::Caller::dial(dir.path(), local, ear.local_addr().unwrap().port())
        .pcap(&pcap)
        .formats("18 8 0")
        .hold_ms(1000)
        .start();
    let heard = sip_media::listen(&ear, 5).await;
    assert!(heard.iter().all(|(_, p)| p.payload_type == 8), "PCMA");
    let answered = caller.finish(20).await;
    assert!(
        answered
            .lines()
            .any(|l| l.trim_end().ends_with("RTP/AVP 8")),
        "PCMA alone, no telephone-event (not offered): {answered}"
    );
    let log = log_text(&env, "Desk phone", "answered (PCMA").await;
    assert!(log.contains("answered (PCMA"), "{log}");
    host.shutdown().await;
}

const SPEECH_KEY: &str = "sk-sip-speech-0123";

async fn the_agent_greets_hears_the_caller_and_answers_over_rtp(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = flametree::sandbox::openai::OpenAiSandbox::start(Some(SPEECH_KEY))
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let agent = common::runtime::echo_agent(&env).await;
    let url = sandbox.url();
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            key: Some(flametree::secrets::SecretString::new(SPEECH_KEY)),
            ..speech_engines(&url)
        }),
        ..Default::default()
    };
    env.channels.edit_agent(&agent, edit).await.unwrap();
    let (env, host, local) = answering_line_in(env, &[]).await;
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_saying("opening hours")).unwrap();
    let caller = sip_media::Caller::dial(dir.path(), local, ear.local_addr().unwrap().port())
        .pcap(&pcap)
        .hold_ms(9000)
        .start();

    // The greeting, as the caller hears it: 8 kHz μ-law carrying the sandbox's tune.
    let heard = sip_media::listen(&ear, 150).await;
    let pcm: Vec<i16> = heard
        .iter()
        .flat_map(|(_, p)| p.payload.iter().map(|&b| sip_media::ulaw_decode(b)))
        .collect();
    let greeting = "You said: Hello";
    let start = pcm.iter().position(|s| s.unsigned_abs() > 2_000);
    let said = start.and_then(|at| {
        let end = (at + greeting.len() * 800 + 400).min(pcm.len());
        flametree::sandbox::speech::decode(&pcm[at..end], 8_000)
    });
    assert_eq!(said.as_deref(), Some(greeting), "what the caller heard");

    let log = log_text(&env, "Desk phone", "turn 1: the agent says").await;
    assert!(
        log.contains("turn 0: the agent says \"You said: Hello\""),
        "{log}"
    );
    assert!(
        log.contains("turn 1: the caller said \"opening hours\""),
        "{log}"
    );
    assert!(
        log.contains("turn 1: the agent says \"You said: opening hours\""),
        "{log}"
    );
    assert!(!log.contains(SPEECH_KEY));
    let messages = caller.finish(20).await;
    assert!(messages.contains("BYE sip:"), "{messages}");
    assert_eq!(log.matches("turn 1: the agent says").count(), 1, "{log}");
    host.shutdown().await;
}

async fn a_caller_saying_goodbye_is_hung_up_on(be: Be) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = flametree::sandbox::openai::OpenAiSandbox::start(Some(SPEECH_KEY))
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let agent = common::runtime::echo_agent(&env).await;
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            key: Some(flametree::secrets::SecretString::new(SPEECH_KEY)),
            ..speech_engines(&sandbox.url())
        }),
        ..Default::default()
    };
    env.channels.edit_agent(&agent, edit).await.unwrap();
    let (env, host, local) = answering_line_in(env, &[]).await;
    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_saying("ok goodbye")).unwrap();
    let caller = sip_media::Caller::dial(dir.path(), local, free_udp_port())
        .pcap(&pcap)
        .until_hung_up()
        .start();
    let messages = caller.finish(30).await;
    assert!(
        messages.contains("UDP message received") && messages.contains("BYE sip:"),
        "the line sent BYE: {messages}"
    );
    let log = log_text(&env, "Desk phone", "ended by flametree").await;
    assert!(
        log.contains("the caller said \"ok goodbye\"; saying goodbye and hanging up"),
        "{log}\n{messages}"
    );
    assert!(log.contains("ended by flametree after"), "{log}");
    assert!(!log.contains("agent says \"You said: ok goodbye"), "{log}");
    host.shutdown().await;
}
