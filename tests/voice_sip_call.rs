//! Outbound calls through a SIP line (`flametree call`), on SQLite and PostgreSQL: the
//! command queues a request, the process running the line (here the test's runtime,
//! with PostgreSQL's change feed where there is one) dials it, and the command reports
//! how it went. SIPp is the callee, with the scenarios in `tests/voice_sip/`: one that
//! answers, plays the callee's words from a pcap the test writes and hangs up; one
//! behind a digest-authenticating proxy that is busy; one that rings until cancelled.

mod common;
// The pcap writer and μ-law decoding; its SIPp-as-caller half is voice_sip.rs's.
#[allow(dead_code)]
#[path = "voice_sip/media.rs"]
mod sip_media;
// The TLS terminator; cutting its flows is voice_sip.rs's.
#[allow(dead_code)]
#[path = "voice_sip/tls.rs"]
mod sip_tls;

use common::Be;
use common::hooks::{Host, draft, wait_status};
use common::runtime::{log_text, speech_engines};
use flametree::model::{CallProgress, CallRequest, CallState, Status};
use sip_media::free_udp_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "flametree-bot";
const PASSWORD: &str = "right-password";
const CALLER_ID: &str = "+31201234567";
const CALLEE: &str = "+31612345678";
const SPEECH_KEY: &str = "sk-sip-speech-0123";

/// SIPp as the callee (a UAS), on its own port; killed (by its pid) when dropped.
struct Callee {
    child: Child,
    port: u16,
    messages: PathBuf,
}

impl Callee {
    /// `scenario` from `tests/voice_sip/`; `keys` are its `-key`s; `hold_ms` its pause.
    fn start(dir: &Path, scenario: &str, keys: &[(&str, String)], hold_ms: u64) -> Callee {
        Callee::start_on(dir, scenario, keys, hold_ms, "u1")
    }

    /// `transport`: SIPp's `-t` (u1 UDP, t1 TCP).
    fn start_on(
        dir: &Path,
        scenario: &str,
        keys: &[(&str, String)],
        hold_ms: u64,
        transport: &str,
    ) -> Callee {
        let port = if transport == "t1" {
            sip_media::free_tcp_port()
        } else {
            free_udp_port()
        };
        let messages = dir.join(format!("callee-{port}-messages.log"));
        let path = format!("{}/tests/voice_sip/{scenario}", env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("sipp");
        cmd.args(["-sf", &path, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", transport])
            .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
            .args(["-m", "1", "-timeout", "60", "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(&messages)
            .args(["-d", &hold_ms.to_string()]);
        for (k, v) in keys {
            cmd.args(["-key", k, v]);
        }
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("callee-{port}.err"))).unwrap())
            .spawn()
            .expect("sipp runs (Debian package sip-tester)");
        Callee {
            child,
            port,
            messages,
        }
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// SIPp's message log once it has exited (it ends with its one call), or as it is
    /// after `secs`.
    async fn finish(&mut self, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.messages()
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process that runs the line: a runtime on the test's database, told of queued
/// calls by PostgreSQL's notifications (SQLite: its once-a-second look).
async fn host(env: &common::ChannelsEnv) -> Host {
    let pipe = flametree::runtime::Pipeline::start(env.channels.clone(), 1000);
    let http = flametree::config::Http {
        listen: "127.0.0.1:0".into(),
        public_url: String::new(),
        max_body_bytes: 1 << 20,
    };
    let ingress = flametree::http::Ingress::start(pipe.clone(), "127.0.0.1:0", &http)
        .await
        .unwrap();
    let runtime = flametree::runtime::Runtime::start(
        pipe,
        flametree::runtime::Options {
            public_base: ingress.public_base.clone(),
            feed: flametree::store::feed::ChangeFeed::start(&env.url).await,
            ..Default::default()
        },
    );
    Host { ingress, runtime }
}

/// The echo agent ("You said: …") with the OpenAI sandbox as its speech engines.
async fn speaking_agent(env: &common::ChannelsEnv, speech_url: &str) {
    let agent = common::runtime::echo_agent(env).await;
    let edit = flametree::agents::service::AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            key: Some(flametree::secrets::SecretString::new(SPEECH_KEY)),
            ..speech_engines(speech_url)
        }),
        ..Default::default()
    };
    env.channels.edit_agent(&agent, edit).await.unwrap();
}

/// A SIP line that does not register, on its agent's card with Inbound off (outbound
/// calls only), the agent started.
async fn outbound_line(
    env: &common::ChannelsEnv,
    fields: &[(&str, &str)],
    env_vars: &[(&str, String)],
) -> flametree::model::Connection {
    let mut vars = vec![
        ("SIP_LOCAL_PORT", free_udp_port().to_string()),
        ("SIP_REGISTER", "false".into()),
    ];
    vars.extend(env_vars.iter().cloned());
    let mut all = vec![("username", USER), ("transport", "udp")];
    all.extend(fields.iter().cloned());
    let d = draft("sip", "Desk phone", &all, &[("password", PASSWORD)], &vars);
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = env.channels.find_agent("Echo").await.unwrap();
    env.channels
        .attach_connection(&agent, &c, false)
        .await
        .unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    c
}

fn cli(env: &common::ChannelsEnv) -> common::Cli {
    common::Cli::new(env.dir.path())
        .with_database(&env.url)
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
}

/// `flametree call --connection "Desk phone" --to TO --wait WAIT`.
fn dial<'a>(to: &'a str, wait: &'a str) -> [&'a str; 7] {
    [
        "call",
        "--connection",
        "Desk phone",
        "--to",
        to,
        "--wait",
        wait,
    ]
}

/// `flametree call` in a thread of its own, so the test can listen meanwhile.
fn call_in_background(
    env: &common::ChannelsEnv,
    args: &[&str],
) -> tokio::task::JoinHandle<common::Run> {
    let cli = cli(env);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.run(&args, None)
    })
}

/// The PCMU arriving on `ear` as 8 kHz samples, from the first packet (within 30 s)
/// until the line has sent nothing for a second (it sends silence while a call lasts).
async fn hear(ear: &tokio::net::UdpSocket) -> Vec<i16> {
    let mut pcm = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut until = deadline;
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(until, ear.recv(&mut buf)).await else {
            return pcm;
        };
        until = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        if n > 12 && buf[1] & 0x7F == 0 {
            pcm.extend(buf[12..n].iter().map(|&b| sip_media::ulaw_decode(b)));
        }
    }
}

/// The sandbox's tone-code utterances in `pcm`, in order: each loud stretch that
/// 100 ms of quiet ends, decoded.
fn utterances(pcm: &[i16]) -> Vec<String> {
    let loud = |s: &i16| s.unsigned_abs() > 2_000;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = pcm[at..].iter().position(loud).map(|p| p + at) {
        let mut end = start;
        let mut quiet = 0;
        for (i, s) in pcm.iter().enumerate().skip(start) {
            if loud(s) {
                end = i + 1;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet > 800 {
                    break;
                }
            }
        }
        let stretch = &pcm[start.saturating_sub(80)..(end + 80).min(pcm.len())];
        out.push(
            flametree::sandbox::speech::decode(stretch, 8_000)
                .unwrap_or_else(|| format!("(not the tone code: {} samples)", stretch.len())),
        );
        at = end;
    }
    out
}

/// Fails unless the line's log comes to hold `line`.
async fn logged(env: &common::ChannelsEnv, line: &str) {
    let log = log_text(env, "Desk phone", line).await;
    assert!(log.contains(line), "{line}\n{log}");
}

/// The number in "(request N)".
fn request_id(stdout: &str) -> i64 {
    stdout
        .split("(request ")
        .nth(1)
        .and_then(|r| r.split(')').next()?.parse().ok())
        .unwrap_or_else(|| panic!("a request id: {stdout}"))
}

async fn an_answered_call_is_held_by_the_agent_with_inbound_off(be: Be) {
    let sandbox = flametree::sandbox::openai::OpenAiSandbox::start(Some(SPEECH_KEY))
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, &sandbox.url()).await;
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pcap = env.dir.path().join("callee.pcap");
    std::fs::write(&pcap, sip_media::caller_saying("opening hours")).unwrap();
    let keys = [
        ("audio_port", ear.local_addr().unwrap().port().to_string()),
        ("pcap", pcap.display().to_string()),
    ];
    let mut callee = Callee::start(env.dir.path(), "callee_answers.xml", &keys, 9_000);
    let host = host(&env).await;
    let registrar = format!("127.0.0.1:{}", callee.port);
    let c = outbound_line(
        &env,
        &[("registrar", &registrar), ("caller_id", CALLER_ID)],
        &[("SIP_RTP_PORT_RANGE", "42000-42999".into())],
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;

    let opening = "Your cake is ready.";
    let call = call_in_background(
        &env,
        &[
            "call",
            "--connection",
            "Desk phone",
            "--to",
            CALLEE,
            "--text",
            opening,
            "--wait",
            "60",
        ],
    );
    // What the callee heard: the opening, then the agent's answer to what it said.
    let pcm = hear(&ear).await;
    let r = call.await.unwrap();
    assert_eq!(r.code(), 0, "{}", r.all());
    let out = r.stdout();
    assert!(
        out.contains(&format!("Calling {CALLEE} through 'Desk phone' (request ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("The call to {CALLEE} ended after ")),
        "{out}"
    );
    let said = utterances(&pcm);
    assert_eq!(
        said,
        vec![opening, "You said: opening hours"],
        "what the callee heard\n{}",
        log_text(&env, "Desk phone", "").await
    );

    let messages = callee.finish(20).await;
    assert!(
        messages.contains(&format!("INVITE sip:{CALLEE}@{registrar} SIP/2.0")),
        "{messages}"
    );
    assert!(
        messages.contains(&format!("From: <sip:{CALLER_ID}@{registrar}>")),
        "the caller ID is the From: {messages}"
    );
    assert!(messages.contains("m=audio 42"), "{messages}");
    assert!(messages.contains("RTP/AVP 0 8 101"), "{messages}");
    assert!(messages.contains("ACK sip:callee@"), "{messages}");
    assert!(!messages.contains(PASSWORD));

    let request = env
        .channels
        .store()
        .call_request(request_id(&out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.state, CallState::Completed);
    assert_eq!(request.reason, "ended by the callee");
    assert_eq!(request.opening.as_deref(), Some(opening));
    assert!(request.duration_secs.unwrap() >= 5, "{request:?}");
    assert!(request.call_id.ends_with("@flametree"), "{request:?}");
    // The callee's turn went through the ledger, once, and was answered.
    let turn = format!("{}:1", request.call_id);
    assert_eq!(
        env.channels
            .store()
            .ledger_state(c.id, &turn)
            .await
            .unwrap(),
        Some(flametree::store::LedgerState::Answered)
    );

    let log = log_text(&env, "Desk phone", "completed after").await;
    for line in [
        format!(
            "outbound call to {CALLEE} (request {}, by tester): dialing",
            request.id
        ),
        format!("call to {CALLEE}: ringing (180 Ringing)"),
        format!("call to {CALLEE} answered (PCMU"),
        format!("call to {CALLEE}: opening with \"{opening}\""),
        format!("call to {CALLEE}, turn 1: the callee said \"opening hours\""),
        "turn 1: the agent says \"You said: opening hours\"".to_string(),
        format!("call to {CALLEE} ended by the callee after"),
        format!(
            "outbound call to {CALLEE} (request {}, by tester): completed after",
            request.id
        ),
    ] {
        assert!(log.contains(&line), "{line}\n{log}");
    }
    assert_eq!(log.matches("the agent says").count(), 1, "{log}");
    assert!(
        !log.contains(SPEECH_KEY) && !log.contains(PASSWORD),
        "{log}"
    );

    // Audited like `send`: who called whom, never the words.
    let trail = env
        .channels
        .store()
        .audit_trail(env.channels.tenant().id, 50)
        .await
        .unwrap();
    let calls: Vec<&str> = trail
        .iter()
        .filter(|e| e.action == "call")
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(calls, vec![format!("to {CALLEE} (request {})", request.id)]);
    assert!(trail.iter().all(|e| !e.details.contains("cake")));
    host.shutdown().await;
}

async fn a_busy_callee_behind_an_authenticating_proxy_is_reported_busy(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let mut proxy = Callee::start(env.dir.path(), "callee_busy.xml", &[], 0);
    let host = host(&env).await;
    let address = format!("127.0.0.1:{}", proxy.port);
    // The registrar's domain need not resolve here: requests go to the proxy.
    outbound_line(
        &env,
        &[
            ("registrar", "pbx.flametree.invalid"),
            ("outbound_proxy", &address),
            ("caller_id", CALLER_ID),
        ],
        &[],
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let r = cli(&env).run(
        &[
            "call",
            "--connection",
            "Desk phone",
            "--to",
            CALLEE,
            "--json",
        ],
        None,
    );
    assert_eq!(r.code(), 1, "{}\n{}", r.all(), proxy.messages());
    assert!(
        r.stderr().contains(&format!(
            "the call to {CALLEE} did not connect (busy): the line was busy (486 Busy Here)"
        )),
        "{}\n{}",
        r.all(),
        proxy.messages()
    );
    let out: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(out["status"], "busy", "{out}");
    assert_eq!(out["reason"], "486 Busy Here", "{out}");
    assert_eq!(out["to"], CALLEE, "{out}");
    assert!(
        out["call_sid"].as_str().unwrap().ends_with("@flametree"),
        "the SIP Call-ID: {out}"
    );

    let messages = proxy.finish(20).await;
    assert!(
        messages.contains(&format!(
            "INVITE sip:{CALLEE}@pbx.flametree.invalid SIP/2.0"
        )),
        "{messages}"
    );
    assert!(
        messages.contains(&format!("From: <sip:{CALLER_ID}@pbx.flametree.invalid>")),
        "{messages}"
    );
    assert!(
        messages.contains("Authorization: Digest")
            && messages.contains("username=\"flametree-bot\""),
        "the challenge was answered: {messages}"
    );
    assert!(!messages.contains("SIP/2.0 403"), "{messages}");
    assert!(!messages.contains(PASSWORD));
    logged(
        &env,
        &format!("outbound call to {CALLEE} (request 1, by tester): busy (486 Busy Here)"),
    )
    .await;
    host.shutdown().await;
}

async fn an_unanswered_call_is_cancelled_at_the_ring_timeout(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let mut callee = Callee::start(env.dir.path(), "callee_rings.xml", &[], 0);
    let host = host(&env).await;
    let registrar = format!("127.0.0.1:{}", callee.port);
    // No Caller ID: the username is the From.
    outbound_line(
        &env,
        &[("registrar", &registrar)],
        &[("SIP_RING_TIMEOUT", "2".into())],
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let began = Instant::now();
    let r = cli(&env).run(
        &["call", "--connection", "Desk phone", "--to", "2001"],
        None,
    );
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains(
            "the call to 2001 did not connect (no-answer): nobody answered (no answer within \
             SIP_RING_TIMEOUT, 2 s; CANCEL sent, 487 Request Terminated)"
        ),
        "{}",
        r.all()
    );
    assert!(began.elapsed() >= Duration::from_secs(2), "it rang first");
    let messages = callee.finish(20).await;
    assert!(messages.contains("CANCEL sip:2001@"), "{messages}");
    assert!(
        messages.contains(&format!("From: <sip:{USER}@{registrar}>")),
        "{messages}"
    );
    let log = log_text(&env, "Desk phone", "no-answer").await;
    assert!(log.contains("call to 2001: ringing (180 Ringing)"), "{log}");
    assert!(
        log.contains("call to 2001: no answer within 2 s (SIP_RING_TIMEOUT); cancelling"),
        "{log}"
    );
    host.shutdown().await;
}

async fn a_call_nobody_can_place_is_withdrawn_and_said_so(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    // Its agent runs, but no process runs the line (no console, no serve).
    outbound_line(&env, &[("registrar", "127.0.0.1:9")], &[]).await;
    let cli = cli(&env);
    let r = cli.run(
        &[
            "call",
            "--connection",
            "Desk phone",
            "--to",
            "ann@example.com",
        ],
        None,
    );
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains(
            "--to: 'ann@example.com' is neither a phone number (+31612345678) nor a SIP user"
        ),
        "{}",
        r.all()
    );
    let began = Instant::now();
    let r = cli.run(&dial(CALLEE, "2"), None);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains(
            "the call was not placed: nobody picked it up within 2 s, so no flametree process \
             runs 'Desk phone'"
        ),
        "{}",
        r.all()
    );
    assert!(began.elapsed() >= Duration::from_secs(2));
    let request = env
        .channels
        .store()
        .call_request(request_id(&r.stdout()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.state, CallState::Canceled, "{request:?}");

    // Withdrawn: once a process runs the line, the next request is dialed, not this
    // one (requests are claimed oldest first).
    let host = host(&env).await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let out = cli.ok(&dial("2002", "0"), None);
    let next = request_id(&out);
    let log = log_text(
        &env,
        "Desk phone",
        &format!("(request {next}, by tester): dialing"),
    )
    .await;
    assert!(
        log.contains(&format!(
            "outbound call to 2002 (request {next}, by tester): dialing"
        )),
        "{log}"
    );
    assert!(
        !log.contains(&format!("(request {}, by", request.id)),
        "{log}"
    );
    host.shutdown().await;
}

/// The request once `done` says so; fails after `secs`.
async fn wait_request(
    env: &common::ChannelsEnv,
    id: i64,
    secs: u64,
    done: impl Fn(&CallRequest) -> bool,
) -> CallRequest {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = env.channels.store().call_request(id).await.unwrap();
        match r {
            Some(r) if done(&r) => return r,
            r => assert!(Instant::now() < deadline, "request {id}: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIPp answering and then holding the call `hold_ms` before its BYE; what it says
/// is not listened to (these tests look at how calls end).
fn holding_callee(env: &common::ChannelsEnv, hold_ms: u64) -> Callee {
    holding_callee_on(env, hold_ms, "u1")
}

/// `holding_callee` on SIPp's transport `transport` (u1 UDP, t1 TCP).
fn holding_callee_on(env: &common::ChannelsEnv, hold_ms: u64, transport: &str) -> Callee {
    let pcap = env.dir.path().join("callee.pcap");
    std::fs::write(&pcap, sip_media::caller_saying("hello")).unwrap();
    let keys = [
        ("audio_port", free_udp_port().to_string()),
        ("pcap", pcap.display().to_string()),
    ];
    Callee::start_on(
        env.dir.path(),
        "callee_answers.xml",
        &keys,
        hold_ms,
        transport,
    )
}

/// The line speaks TLS to a TLS-offloading SBC (the relay) in front of SIPp on TCP.
async fn a_call_over_tls_is_answered_and_completed(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let mut callee = holding_callee_on(&env, 2_000, "t1");
    let relay = sip_tls::Relay::start(env.dir.path(), callee.port).await;
    let host = host(&env).await;
    let registrar = format!("127.0.0.1:{}", relay.port);
    outbound_line(
        &env,
        &[("registrar", &registrar), ("transport", "tls")],
        &[("SIP_TLS_CA_FILE", relay.ca_file.display().to_string())],
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let r = cli(&env).run(&dial(CALLEE, "60"), None);
    let messages = callee.finish(20).await;
    assert_eq!(r.code(), 0, "{}\n{messages}", r.all());
    assert!(
        r.stdout()
            .contains(&format!("The call to {CALLEE} ended after ")),
        "{}",
        r.all()
    );
    let request = env.channels.store().call_request(1).await.unwrap().unwrap();
    assert_eq!(
        (request.state, request.reason.as_str()),
        (CallState::Completed, "ended by the callee"),
        "{request:?}"
    );
    assert!(
        messages.contains(&format!(
            "INVITE sip:{CALLEE}@{registrar};transport=TLS SIP/2.0"
        )),
        "{messages}"
    );
    assert!(messages.contains("Via: SIP/2.0/TLS "), "{messages}");
    assert!(messages.contains("ACK sip:callee@"), "{messages}");
    assert!(messages.contains("BYE sip:"), "{messages}");
    assert!(!messages.contains(PASSWORD));
    // Not registering, the line still opened its flow at start; the call rode it.
    assert_eq!((relay.handshakes(), relay.refused()), (1, 0));
    logged(
        &env,
        &format!("outbound call to {CALLEE} (request 1, by tester): completed after"),
    )
    .await;
    host.shutdown().await;
}

async fn a_call_whose_process_was_killed_ends_failed_and_the_command_says_so(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let callee = holding_callee(&env, 60_000);
    let registrar = format!("127.0.0.1:{}", callee.port);
    outbound_line(&env, &[("registrar", &registrar)], &[]).await;
    let mut serve = common::runtime::serve(&env, "serve", false);
    wait_status(&env, "Desk phone", Status::Running).await;
    let call = call_in_background(&env, &dial(CALLEE, "60"));
    let answered = wait_request(&env, 1, 30, |r| r.state == CallState::Answered).await;
    let owner = answered.claimed_by.clone().unwrap();
    serve.kill().unwrap();
    serve.wait().unwrap();
    let killed = Instant::now();

    let r = call.await.unwrap();
    let why = format!("the process that placed the call ({owner}) stopped during the call");
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr()
            .contains(&format!("the call to {CALLEE} was cut off (failed): {why}")),
        "{}",
        r.all()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "said so at once, not at the end of --wait"
    );
    let request = env.channels.store().call_request(1).await.unwrap().unwrap();
    assert_eq!(
        (request.state, request.reason.as_str()),
        (CallState::Failed, why.as_str())
    );
    assert!(request.ended_at.is_some(), "{request:?}");
}

async fn a_call_left_in_progress_is_ended_when_another_process_runs_the_line(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let c = outbound_line(&env, &[("registrar", "127.0.0.1:9")], &[]).await;
    let store = env.channels.store();
    // A process on another host claimed the call and was answered, then died: the
    // processes there expired its lease.
    let gone = "elsewhere:4242:1";
    let id = store
        .request_call(c.id, CALLEE, None, "tester")
        .await
        .unwrap();
    assert!(
        store
            .acquire_lease(c.id, gone, 15_000)
            .await
            .unwrap()
            .is_some()
    );
    let claimed = store
        .claim_call(c.id, gone, 300_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id);
    store
        .update_call(id, &CallProgress::to(CallState::Answered))
        .await
        .unwrap();
    store.expire_leases_of(gone).await.unwrap();
    // Another of the line's calls that ended already stays as it ended.
    let ended = store
        .request_call(c.id, "2001", None, "tester")
        .await
        .unwrap();
    assert!(
        store
            .acquire_lease(c.id, gone, 15_000)
            .await
            .unwrap()
            .is_some()
    );
    store
        .claim_call(c.id, gone, 300_000)
        .await
        .unwrap()
        .unwrap();
    let busy = CallProgress::to(CallState::Busy).because("486 Busy Here");
    store.update_call(ended, &busy).await.unwrap();
    store.expire_leases_of(gone).await.unwrap();

    let host = host(&env).await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let request = wait_request(&env, id, 20, |r| r.state.ended()).await;
    let why = "the process that placed the call (elsewhere:4242:1) stopped during the call";
    assert_eq!(
        (request.state, request.reason.as_str()),
        (CallState::Failed, why)
    );
    let other = store.call_request(ended).await.unwrap().unwrap();
    assert_eq!(
        (other.state, other.reason.as_str()),
        (CallState::Busy, "486 Busy Here")
    );
    logged(
        &env,
        &format!("WARN outbound call to {CALLEE} (request {id}, by tester): failed ({why})"),
    )
    .await;
    host.shutdown().await;
}

async fn an_answered_call_takes_a_place_in_sip_max_calls_and_is_hung_up_on_shutdown(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let mut callee = holding_callee(&env, 60_000);
    let host = host(&env).await;
    let registrar = format!("127.0.0.1:{}", callee.port);
    outbound_line(
        &env,
        &[("registrar", &registrar)],
        &[("SIP_MAX_CALLS", "1".into())],
    )
    .await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let first = call_in_background(&env, &dial(CALLEE, "60"));
    wait_request(&env, 1, 30, |r| r.state == CallState::Answered).await;

    // The outbound call holds the line's one place: the next is not dialed.
    let r = cli(&env).run(&dial("2001", "20"), None);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains(
            "the call to 2001 did not connect (failed): the call could not be placed \
             (SIP_MAX_CALLS is 1 and the line has 1 call in progress)"
        ),
        "{}",
        r.all()
    );

    // Shut down mid-call: the callee is hung up on, and the request says so by the time
    // the process could exit.
    host.shutdown().await;
    let request = env.channels.store().call_request(1).await.unwrap().unwrap();
    let why = "flametree hung up: the connection stopped during the call";
    assert_eq!(
        (request.state, request.reason.as_str()),
        (CallState::Completed, why),
        "{request:?}"
    );
    let messages = callee.finish(20).await;
    assert!(messages.contains("BYE sip:callee@"), "{messages}");
    let r = first.await.unwrap();
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(r.stdout().contains(&format!("s ({why}).")), "{}", r.all());
    let log = log_text(&env, "Desk phone", "hung up").await;
    assert!(
        log.contains(&format!("call to {CALLEE} ended by flametree after"))
            && log.contains("s: the connection stopped"),
        "{log}"
    );
}

async fn stopping_the_line_while_the_call_rings_cancels_it(be: Be) {
    let env = common::channels_env_on(be).await;
    speaking_agent(&env, "http://127.0.0.1:9/v1").await;
    let mut callee = Callee::start(env.dir.path(), "callee_rings.xml", &[], 0);
    let host = host(&env).await;
    let registrar = format!("127.0.0.1:{}", callee.port);
    outbound_line(&env, &[("registrar", &registrar)], &[]).await;
    wait_status(&env, "Desk phone", Status::Running).await;
    let call = call_in_background(&env, &dial("2001", "60"));
    wait_request(&env, 1, 30, |r| r.state == CallState::Ringing).await;
    let agent = env.channels.find_agent("Echo").await.unwrap();
    env.channels.run_agent(&agent, false).await.unwrap();

    let r = call.await.unwrap();
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains(
            "the call to 2001 did not connect (canceled): the call was canceled before it was \
             answered (the connection stopped while it rang; CANCEL sent)"
        ),
        "{}",
        r.all()
    );
    let messages = callee.finish(20).await;
    assert!(messages.contains("CANCEL sip:2001@"), "{messages}");
    assert!(
        messages.contains("SIP/2.0 487 Request Terminated"),
        "{messages}"
    );
    wait_status(&env, "Desk phone", Status::Stopped).await;
    logged(&env, "call to 2001: the connection is stopping; cancelling").await;
    host.shutdown().await;
}

on_both!(
    a_call_over_tls_is_answered_and_completed,
    an_answered_call_is_held_by_the_agent_with_inbound_off,
    a_busy_callee_behind_an_authenticating_proxy_is_reported_busy,
    an_unanswered_call_is_cancelled_at_the_ring_timeout,
    a_call_nobody_can_place_is_withdrawn_and_said_so,
    a_call_whose_process_was_killed_ends_failed_and_the_command_says_so,
    a_call_left_in_progress_is_ended_when_another_process_runs_the_line,
    an_answered_call_takes_a_place_in_sip_max_calls_and_is_hung_up_on_shutdown,
    stopping_the_line_while_the_call_rings_cancels_it,
);
