//! What the console and `flametree channels status` show of a voice line: its calls in
//! progress, counted from Twilio's webhooks and read from the store by another process,
//! on SQLite and PostgreSQL.

mod common;

use common::Be;
use common::hooks::{Host, draft, host, wait_status};
use flametree::agents::service::AgentEdit;
use flametree::agents::{ResponderConfig, Rules};
use flametree::model::{Connection, Status};
use flametree::sandbox::twilio::TwilioSandbox;
use std::time::{Duration, Instant};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550199";

struct Line {
    env: common::ChannelsEnv,
    host: Host,
    sandbox: TwilioSandbox,
    c: Connection,
}

/// A Twilio line on the sandbox, running with its agent "Support".
async fn line(be: Be) -> Line {
    let sandbox = TwilioSandbox::start(SID, TOKEN, "Bakery", &[(NUMBER, "https://demo.twilio.com/welcome/voice/")])
        .await
        .unwrap();
    let env = common::channels_env_on(be).await;
    let host = host(&env).await;
    let d = draft(
        "twilio",
        "Shop line",
        &[("account_sid", SID), ("phone_number", NUMBER)],
        &[("auth_token", TOKEN)],
        &[("TWILIO_API_URL", sandbox.url())],
    );
    let c = env.channels.add(&d).await.unwrap().connection;
    let agent = AgentEdit {
        responder: Some(ResponderConfig::Rules(Rules {
            greeting: "Hello, Support here.".into(),
            rules: Vec::new(),
            fallback: "You said: {text}".into(),
        })),
        ..AgentEdit::default()
    };
    let a = env.channels.create_agent("Support", agent).await.unwrap();
    env.channels.attach_connection(&a, &c, true).await.unwrap();
    env.channels.run_agent(&a, true).await.unwrap();
    let c = wait_status(&env, "Shop line", Status::Running).await;
    Line {
        env,
        host,
        sandbox,
        c,
    }
}

impl Line {
    /// Posts a signed Twilio webhook for `call` (query as Twilio's follow-ups carry it).
    async fn hook(&self, query: &str, call: &str, extra: &[(&str, &str)]) {
        let mut url = self.host.url(&self.c);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut params = vec![
            ("AccountSid", SID),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call),
            ("Direction", "inbound"),
            ("From", CALLER),
            ("To", NUMBER),
        ];
        params.extend_from_slice(extra);
        let (status, body) = self.sandbox.post_form(&url, &params, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// `flametree channels status "Shop line" --json`'s status message once `done`
    /// says it is what is wanted (another process, reading the store), or after 15 s.
    async fn status_until(&self, done: impl Fn(&str) -> bool) -> String {
        let (dir, url) = (self.env.dir.path().to_path_buf(), self.env.url.clone());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let cli = common::Cli::new(&dir).with_database(&url);
            let out = tokio::task::spawn_blocking(move || {
                cli.json(&["channels", "status", "Shop line"])
            })
            .await
            .unwrap();
            assert_eq!(out["status"], "RUNNING", "{out}");
            let message = out["status_message"].as_str().unwrap_or("").to_string();
            if done(&message) || Instant::now() > deadline {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn a_call_in_progress_is_counted_until_it_ends(be: Be) {
    let l = line(be).await;
    assert!(
        !l.c.status_message.contains("call"),
        "{}",
        l.c.status_message
    );
    l.hook("", "CA01", &[("CallStatus", "ringing")]).await;
    let m = l.status_until(|m| m.contains("1 call in progress")).await;
    assert_eq!(m, "answering +14155550100 (account 'Bakery') · 1 call in progress");

    // A retried first webhook is the same call.
    l.hook("", "CA01", &[("CallStatus", "ringing")]).await;
    l.hook("", "CA02", &[("CallStatus", "ringing")]).await;
    let m = l.status_until(|m| m.contains("2 calls")).await;
    assert!(m.ends_with("· 2 calls in progress"), "{m}");

    // One caller says goodbye (flametree hangs up), the other hangs up themselves.
    l.hook(
        "t=1",
        "CA01",
        &[("CallStatus", "in-progress"), ("SpeechResult", "Goodbye!")],
    )
    .await;
    let m = l.status_until(|m| m.contains("· 1 call in")).await;
    assert!(m.ends_with("· 1 call in progress"), "{m}");
    l.hook(
        "event=status",
        "CA02",
        &[("CallStatus", "completed"), ("CallDuration", "12")],
    )
    .await;
    let m = l.status_until(|m| !m.contains("call")).await;
    assert_eq!(m, "answering +14155550100 (account 'Bakery')");
    l.host.shutdown().await;
}

on_both!(a_call_in_progress_is_counted_until_it_ends);
