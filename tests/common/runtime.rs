//! Helpers for tests that run channels: an echo agent, the stored log, `flametree serve`
//! as a child process, signals.

use super::{ChannelsEnv, KEY_B64};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Rules that say back what they were told, prefixed.
pub fn echo_edit(prefix: &str) -> flametree::agents::service::AgentEdit {
    let rules = flametree::agents::Rules {
        greeting: String::new(),
        rules: Vec::new(),
        fallback: format!("{prefix}{{text}}"),
    };
    flametree::agents::service::AgentEdit {
        responder: Some(flametree::agents::ResponderConfig::Rules(rules)),
        ..Default::default()
    }
}

/// The tenant's agent "Echo" ("You said: …"), created on first use (not started).
pub async fn echo_agent(env: &ChannelsEnv) -> flametree::model::Agent {
    if let Ok(a) = env.channels.find_agent("Echo").await {
        return a;
    }
    env.channels
        .create_agent("Echo", echo_edit("You said: "))
        .await
        .unwrap()
}

/// Speech engines at `url` (the OpenAI sandbox's model and voice names), no key.
pub fn speech_engines(url: &str) -> flametree::agents::speech::SpeechEdit {
    flametree::agents::speech::SpeechEdit {
        stt_url: Some(url.into()),
        stt_model: Some("whisper-1".into()),
        tts_url: Some(url.into()),
        tts_model: Some("tts-1".into()),
        tts_voice: Some("alloy".into()),
        ..Default::default()
    }
}

/// The connection's stored log once it holds `until` (lines reach the store in
/// batches), or as it is after 10 s.
pub async fn log_text(env: &ChannelsEnv, name: &str, until: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = env.channels.find(name).await.unwrap();
        let lines = env.channels.store().recent_logs(c.id, 1000).await.unwrap();
        let text: String = lines
            .iter()
            .map(|l| format!("{} {}\n", l.level, l.message))
            .collect();
        if text.contains(until) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `flametree serve` on the test's database, its diagnostics (at trace level when
/// `trace`) appended to `<name>.log` in the test's directory: an unread pipe would fill
/// up and stall the process.
pub fn serve(env: &ChannelsEnv, name: &str, trace: bool) -> Child {
    let dir = env.dir.path();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flametree"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("FLAMETREE_GENERAL_DATA_DIR", dir)
        .env("FLAMETREE_DATABASE_URL", &env.url)
        .env("FLAMETREE_HTTP_LISTEN", "127.0.0.1:0")
        .env("FLAMETREE_SECRETS_MASTER_KEY", KEY_B64)
        .env("FLAMETREE_ACCESS_OPERATOR", "tester");
    if trace {
        cmd.env("FLAMETREE_LOG", "trace");
    }
    cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

/// What a `serve` started with `name` wrote to its diagnostics.
pub fn serve_output(env: &ChannelsEnv, name: &str) -> String {
    std::fs::read_to_string(env.dir.path().join(format!("{name}.log"))).unwrap_or_default()
}

/// Sends a signal (`-TERM`, `-KILL`, `-STOP`, `-CONT`) to a child process.
pub fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}
