//! Voice benchmark: `cargo bench --bench voice`.
//!
//! SIP: a `flametree serve` process (its own CPU time and memory) runs an agent with a
//! SIP line (`SIP_REGISTER=false`, `SIP_MAX_CALLS` = BENCH_CALLS) whose speech engines are
//! the OpenAI sandbox in this process. BENCH_CALLS (20) SIPp callers (Debian's
//! `sip-tester`) dial it at once, each saying a few words from a pcap and hanging up
//! after BENCH_CALL_SECS (10); each call's RTP goes to a socket of this process, read by
//! its own thread, which notes when every packet arrives. Reported: the deviation of
//! the arrival gaps from the packets' 20 ms spacing (p50/p99/max over all calls), the
//! RFC 3550 interarrival jitter of each call (mean/max), packets heard and lost, the
//! CPU time serve used over the calls (% of one core) and its RSS growth per call.
//!
//! Twilio: a Twilio line on the Twilio sandbox, in this process (webhook ingress and
//! runtime as the tests run them), with an agent on the rules responder.
//! BENCH_TWILIO_CONCURRENCY (10) calls at once share BENCH_TURNS (200) turns: each call
//! starts (greeting) and then posts, one after another, signed Gather results
//! (`SpeechResult`) to the action URL; a turn's latency is the POST sent → its TwiML
//! received. BENCH_PARTS (`sip,twilio`) picks the parts.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/voice_sip/media.rs"]
#[allow(dead_code)]
mod sip_media;

use common::Be;
use flametree::agents::service::AgentEdit;
use flametree::agents::{ResponderConfig, Rule, Rules};
use flametree::model::Status;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SPEECH_KEY: &str = "sk-bench-speech-0123";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550199";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let n = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(11) + n(12)
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn pct_f(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn serve(env: &common::ChannelsEnv, port: u16) -> Child {
    let dir = env.dir.path();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_flametree"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("FLAMETREE_GENERAL_DATA_DIR", dir)
        .env("FLAMETREE_DATABASE_URL", &env.url)
        .env("FLAMETREE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLAMETREE_SECRETS_MASTER_KEY", common::KEY_B64)
        .env("FLAMETREE_ACCESS_OPERATOR", "bench")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("flametree serve starts")
}

/// One RTP packet as the caller's socket got it: when, sequence number, timestamp.
type Heard = (Instant, u16, u32);

/// Every RTP packet arriving on `sock` until `until` (a thread of its own, blocking
/// reads: the arrival time is not delayed by an async scheduler).
fn ear(sock: std::net::UdpSocket, until: Instant) -> std::thread::JoinHandle<Vec<Heard>> {
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(1024);
        let mut buf = [0u8; 2048];
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while Instant::now() < until {
            let Ok(len) = sock.recv(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            let b = &buf[..len];
            if len < 12 || b[0] >> 6 != 2 {
                continue;
            }
            got.push((
                at,
                u16::from_be_bytes([b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ));
        }
        got
    })
}

struct CallFigures {
    /// |arrival gap − 20 ms × sequence gap| for each consecutive pair, in ms.
    deviations: Vec<f64>,
    /// RFC 3550 §6.4.1 interarrival jitter at the end of the call, in ms.
    rfc3550: f64,
    heard: usize,
    lost: usize,
}

fn figures(heard: &[Heard]) -> CallFigures {
    let mut deviations = Vec::with_capacity(heard.len());
    let mut j = 0.0f64;
    let mut lost = 0usize;
    for w in heard.windows(2) {
        let ((a_at, a_seq, a_ts), (b_at, b_seq, b_ts)) = (w[0], w[1]);
        let dseq = b_seq.wrapping_sub(a_seq);
        if dseq == 0 || dseq > 1000 {
            continue; // duplicate or reordered
        }
        lost += usize::from(dseq) - 1;
        let arrival = (b_at - a_at).as_secs_f64() * 1000.0;
        deviations.push((arrival - 20.0 * f64::from(dseq)).abs());
        // D(i-1, i) with the RTP clock at 8 kHz.
        let transit = arrival - f64::from(b_ts.wrapping_sub(a_ts)) / 8.0;
        j += (transit.abs() - j) / 16.0;
    }
    CallFigures {
        deviations,
        rfc3550: j,
        heard: heard.len(),
        lost,
    }
}

async fn sip(calls: usize, secs: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = flametree::sandbox::openai::OpenAiSandbox::start(Some(SPEECH_KEY))
        .await
        .unwrap();
    let env = common::channels_env_on(Be::Sqlite).await;
    let url = sandbox.url();
    let agent = common::runtime::echo_agent(&env).await;
    let edit = AgentEdit {
        speech: Some(flametree::agents::speech::SpeechEdit {
            stt_url: Some(url.clone()),
            stt_model: Some("whisper-1".into()),
            tts_url: Some(url.clone()),
            tts_model: Some("tts-1".into()),
            tts_voice: Some("alloy".into()),
            key: Some(flametree::secrets::SecretString::new(SPEECH_KEY)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let agent = env.channels.edit_agent(&agent, edit).await.unwrap();
    let local = free_udp_port();
    let d = common::hooks::draft(
        "sip",
        "Desk phone",
        &[
            ("registrar", "127.0.0.1:9"),
            ("username", "flametree-bot"),
            ("transport", "udp"),
        ],
        &[("password", "right-password")],
        &[
            ("SIP_LOCAL_PORT", local.to_string()),
            ("SIP_REGISTER", "false".into()),
            ("SIP_MAX_CALLS", calls.max(20).to_string()),
        ],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    env.channels
        .attach_connection(&agent, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();

    let mut child = serve(&env, free_tcp_port());
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = env.channels.find(&c.name).await.unwrap();
        if c.status == Status::Running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the SIP line did not start: {} {}",
            c.status,
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Settled: serve's first seconds allocate what it keeps anyway.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(pid);

    let pcap = dir.path().join("caller.pcap");
    std::fs::write(&pcap, sip_media::caller_saying("opening hours")).unwrap();
    let until = Instant::now() + Duration::from_secs(secs + 8);
    let cpu_before = cpu_ticks(pid);
    let t0 = Instant::now();
    let mut ears = Vec::with_capacity(calls);
    let mut callers = Vec::with_capacity(calls);
    for _ in 0..calls {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        ears.push(ear(sock, until));
        callers.push(
            sip_media::Caller::dial(dir.path(), local, port)
                .pcap(&pcap)
                .hold_ms(secs * 1000)
                .start(),
        );
    }
    // Memory with every call up, shortly before the first hangs up.
    tokio::time::sleep(Duration::from_secs(secs.saturating_sub(1).max(1))).await;
    let rss_during = rss_kib(pid);
    let mut ended = 0usize;
    for caller in callers {
        let m = caller.finish(secs + 20).await;
        if m.contains("SIP/2.0 200 OK") && m.contains("BYE sip:") {
            ended += 1;
        }
    }
    let window = t0.elapsed();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    let mut all = Vec::new();
    let mut rfc = Vec::new();
    let (mut heard, mut lost) = (0, 0);
    for e in ears {
        let f = figures(&e.join().unwrap());
        all.extend(f.deviations);
        if f.heard > 1 {
            rfc.push(f.rfc3550);
        }
        heard += f.heard;
        lost += f.lost;
    }
    // Each call's first answer (the caller's words, heard, transcribed, answered and
    // spoken), as the line's log has it once its lines reach the store.
    let deadline = Instant::now() + Duration::from_secs(10);
    let turns = loop {
        let n = common::runtime::log_text(&env, "Desk phone", "")
            .await
            .matches("turn 1: the agent says")
            .count();
        if n >= calls || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    all.sort_by(f64::total_cmp);
    rfc.sort_by(f64::total_cmp);
    let rfc_mean = rfc.iter().sum::<f64>() / rfc.len().max(1) as f64;
    let per_call = rss_during.saturating_sub(rss_before) as f64 / calls as f64;
    format!(
        "| {calls} × {secs} s | {ended} of {calls} | {turns} | {heard} ({lost} lost) | {:.2} ms | {:.2} ms | {:.2} ms | {rfc_mean:.2} / {:.2} ms | {cpu:.2} s in {:.1} s = {:.1} % | {} → {} MiB, {per_call:.0} KiB/call |",
        pct_f(&all, 0.5),
        pct_f(&all, 0.99),
        pct_f(&all, 1.0),
        rfc.last().copied().unwrap_or(f64::NAN),
        window.as_secs_f64(),
        cpu / window.as_secs_f64() * 100.0,
        rss_before / 1024,
        rss_during / 1024,
    )
}

fn bakery() -> AgentEdit {
    AgentEdit {
        responder: Some(ResponderConfig::Rules(Rules {
            greeting: "Hello, this is the bakery. How can I help?".into(),
            rules: vec![
                Rule {
                    keyword: "opening hours".into(),
                    reply: "We are open from 8 to 6.".into(),
                },
                Rule {
                    keyword: "cake".into(),
                    reply: "Our cakes start at 20 euros.".into(),
                },
            ],
            fallback: "You said: {text}".into(),
        })),
        ..AgentEdit::default()
    }
}

fn borrowed<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// What the callers say, and what the rules answer.
const SAYINGS: [(&str, &str); 3] = [
    ("What are your opening hours?", "We are open from 8 to 6."),
    (
        "Do you have a cake for Sunday?",
        "Our cakes start at 20 euros.",
    ),
    ("Can I pay by card?", "You said: Can I pay by card?"),
];

/// One call: its start, then `turns` Gather results one after another; the latency
/// of each turn.
async fn twilio_call(
    sandbox: std::sync::Arc<flametree::sandbox::twilio::TwilioSandbox>,
    url: String,
    call: usize,
    turns: usize,
) -> Vec<f64> {
    let sid = format!("CA{call:032x}");
    let mut params = vec![
        ("AccountSid", SID.to_string()),
        ("ApiVersion", "2010-04-01".into()),
        ("CallSid", sid.clone()),
        ("CallStatus", "in-progress".into()),
        ("Direction", "inbound".into()),
        ("From", CALLER.into()),
        ("To", NUMBER.into()),
    ];
    let start = params.clone();
    let (status, body) = sandbox
        .post_form(&url, &borrowed(&start), Some(TOKEN))
        .await;
    assert!(
        status == 200 && body.contains("<Gather"),
        "call start: {status} {body}"
    );
    params.push(("SpeechResult", String::new()));
    params.push(("Confidence", "0.92".into()));
    let mut took = Vec::with_capacity(turns);
    for t in 1..=turns {
        let (saying, reply) = SAYINGS[(call + t) % SAYINGS.len()];
        let n = params.len();
        params[n - 2].1 = saying.into();
        let action = format!("{url}?t={t}");
        let at = Instant::now();
        let (status, body) = sandbox
            .post_form(&action, &borrowed(&params), Some(TOKEN))
            .await;
        took.push(at.elapsed().as_secs_f64() * 1000.0);
        assert!(
            status == 200 && body.contains(reply),
            "turn {t}: {status} {body}"
        );
    }
    took
}

async fn twilio(turns: usize, concurrency: usize) -> String {
    let sandbox = flametree::sandbox::twilio::TwilioSandbox::start(
        SID,
        TOKEN,
        "Bakery",
        &[(NUMBER, "https://demo.twilio.com/welcome/voice/")],
    )
    .await
    .unwrap();
    let env = common::channels_env_on(Be::Sqlite).await;
    let host = common::hooks::host(&env).await;
    let d = common::hooks::draft(
        "twilio",
        "Shop line",
        &[("account_sid", SID), ("phone_number", NUMBER)],
        &[("auth_token", TOKEN)],
        &[("TWILIO_API_URL", sandbox.url())],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let a = env.channels.create_agent("Bakery", bakery()).await.unwrap();
    env.channels.attach_connection(&a, &c, true).await.unwrap();
    env.channels.run_agent(&a, true).await.unwrap();
    let c = common::hooks::wait_status(&env, "Shop line", Status::Running).await;
    let url = host.url(&c);
    let sandbox = std::sync::Arc::new(sandbox);
    let concurrency = concurrency.max(1);
    let cpu_before = cpu_ticks(std::process::id());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|call| {
            let share = turns / concurrency + usize::from(call < turns % concurrency);
            tokio::spawn(twilio_call(sandbox.clone(), url.clone(), call, share))
        })
        .collect();
    let mut all = Vec::with_capacity(turns);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = t0.elapsed();
    let cpu = (cpu_ticks(std::process::id()) - cpu_before) as f64 / 100.0;
    host.shutdown().await;
    all.sort_by(f64::total_cmp);
    format!(
        "| {} turns, {concurrency} calls at once | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {cpu:.2} s |",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct_f(&all, 0.5),
        pct_f(&all, 0.99),
        pct_f(&all, 1.0),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env_num("BENCH_CALLS", 20);
    let secs = env_num("BENCH_CALL_SECS", 10) as u64;
    let turns = env_num("BENCH_TURNS", 200);
    let concurrency = env_num("BENCH_TWILIO_CONCURRENCY", 10);
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "sip,twilio".into());
    println!("load average before: {}", loadavg());
    if parts.contains("sip") {
        let row = sip(calls, secs).await;
        println!();
        println!(
            "| SIP calls at once × length | calls completed | turns answered | RTP packets heard | gap deviation p50 | p99 | max | RFC 3550 jitter mean / max | serve's CPU | serve's RSS (before → all calls up) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!("{row}");
    }
    if parts.contains("twilio") {
        let row = twilio(turns, concurrency).await;
        println!();
        println!(
            "| Twilio webhook turns | turns/s | p50 | p99 | max | CPU (bench process: ingress + runtime + client) |"
        );
        println!("|---|---|---|---|---|---|");
        println!("{row}");
    }
    println!();
    println!("load average after: {}", loadavg());
}
