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
    let sandbox = TwilioSandbox::start(
        SID,
        TOKEN,
        "Bakery",
        &[(NUMBER, "https://demo.twilio.com/welcome/voice/")],
    )
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
            let out =
                tokio::task::spawn_blocking(move || cli.json(&["channels", "status", "Shop line"]))
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
    assert_eq!(
        m,
        "answering +14155550100 (account 'Bakery') · 1 call in progress"
    );

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

/// The console on the store of a Twilio line attached to agent "Support", and a
/// Telegram bot beside it (whose keys are the usual ones).
mod screen {
    use super::common;
    use crossterm::event::{KeyCode, KeyEvent};
    use flametree::channels::Channels;
    use flametree::model::{DesiredState, LogLine, Status};
    use flametree::permission::{Operator, Role};
    use flametree::secrets::{KeySource, MasterKey};
    use flametree::store;
    use flametree::tui::app::{App, Focus, HeaderInfo};
    use flametree::tui::theme::Theme;
    use flametree::tui::worker::{self, Command};
    use std::collections::VecDeque;
    use std::sync::Arc;

    struct Console {
        app: App,
        channels: Arc<Channels>,
        line: i64,
        _dir: tempfile::TempDir,
    }

    impl Console {
        async fn run(&mut self, commands: Vec<Command>) {
            let mut queue: VecDeque<Command> = commands.into();
            while let Some(cmd) = queue.pop_front() {
                for msg in worker::execute(&self.channels, cmd).await {
                    queue.extend(self.app.on_msg(msg));
                }
            }
        }

        async fn key(&mut self, c: char) {
            let cmds = self.app.on_key(KeyEvent::from(KeyCode::Char(c)));
            self.run(cmds).await;
        }

        /// The runtime (another process) reports a status; the console reads it back.
        async fn reports(&mut self, status: Status, message: &str) {
            let store = self.channels.store();
            store.set_status(self.line, status, message).await.unwrap();
            self.run(vec![Command::ReloadOne { id: self.line }]).await;
        }

        fn flash(&self) -> String {
            self.app
                .flash
                .as_ref()
                .map(|(t, _)| t.clone())
                .unwrap_or_default()
        }

        fn draw(&mut self, w: u16, h: u16) -> String {
            let backend = ratatui::backend::TestBackend::new(w, h);
            let mut term = ratatui::Terminal::new(backend).unwrap();
            term.draw(|f| flametree::tui::view::draw(f, &mut self.app))
                .unwrap();
            term.backend().to_string()
        }
    }

    async fn console() -> Console {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/flametree.db", dir.path().display());
        let s = store::open(&url, 5, 2).await.unwrap();
        let tenant = s.tenant("default").await.unwrap();
        let operator = Operator {
            name: "ann".into(),
            role: Role::Editor,
            role_reason: "test".into(),
        };
        let key = MasterKey::from_bytes([9; 32], KeySource::Config);
        let channels = Arc::new(Channels::new(s, tenant, operator, Ok(Arc::new(key))));
        let d = common::hooks::draft(
            "twilio",
            "Shop line",
            &[("account_sid", super::SID), ("phone_number", super::NUMBER)],
            &[("auth_token", super::TOKEN)],
            &[],
        );
        let line = channels.add(&d).await.unwrap().connection;
        channels
            .add(&common::telegram_draft(
                "Sales bot",
                common::TG_TOKEN,
                "http://127.0.0.1:9",
            ))
            .await
            .unwrap();
        let a = channels
            .create_agent("Support", Default::default())
            .await
            .unwrap();
        channels.attach_connection(&a, &line, true).await.unwrap();
        let header = HeaderInfo {
            tenant: "default".into(),
            database: "SQLite".into(),
            operator: "ann".into(),
            role: Role::Editor,
        };
        let mut c = Console {
            app: App::new(header, Theme::plain(), false, (1000, 1 << 20)),
            channels,
            line: line.id,
            _dir: dir,
        };
        c.run(vec![Command::Reload]).await;
        while c.app.list.selected_connection().map(|s| s.id) != Some(line.id) {
            c.key('j').await;
        }
        c
    }

    fn footer(screen: &str) -> String {
        screen.lines().last().unwrap_or("").to_string()
    }

    #[tokio::test]
    async fn a_voice_line_shows_its_agent_and_calls_and_has_no_start_stop() {
        let mut c = console().await;
        let screen = c.draw(80, 24);
        assert!(screen.contains("Runs with agent Support"), "{screen}");
        assert!(
            screen.contains("starts when its agent starts"),
            "stopped: what starts it\n{screen}"
        );
        let keys = footer(&screen);
        assert!(!keys.contains("start/stop"), "{keys}");
        assert!(keys.contains("logs"), "{keys}");

        // The agent starts (which wants the line running); the runtime reports calls.
        let a = c.channels.find_agent("Support").await.unwrap();
        c.channels.run_agent(&a, true).await.unwrap();
        c.reports(
            Status::Running,
            "answering +14155550100 (account 'Bakery') · 2 calls in progress",
        )
        .await;
        let screen = c.draw(80, 24);
        assert!(
            screen
                .lines()
                .any(|l| l.contains("Shop line") && l.contains("RUNNING 2 calls")),
            "the row\n{screen}"
        );
        let wide = c.draw(160, 30);
        let row = wide
            .lines()
            .find(|l| l.contains("Shop line") && l.contains("RUNNING"))
            .unwrap_or_default();
        assert!(
            row.contains("Twilio · Support") && row.contains("RUNNING · 2 calls"),
            "wide: the row names the agent and says the calls roomily\n{wide}"
        );
        let screen = c.draw(80, 24);
        assert!(
            screen.contains("Runs with agent Support · answering +14155550100"),
            "{screen}"
        );
        let keys = footer(&screen);
        assert!(
            !keys.contains("start/stop") && !keys.contains("restart"),
            "running, still nothing to start or stop: {keys}"
        );

        // s and r say whose it is instead, and change nothing.
        c.key('s').await;
        let said = c.flash();
        assert!(
            said.contains("no Start/Stop") && said.contains("runs with agent Support"),
            "{said}"
        );
        c.key('r').await;
        assert!(
            c.flash().contains("runs with agent Support"),
            "{}",
            c.flash()
        );
        let stored = c
            .channels
            .store()
            .connection(c.line)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.desired, DesiredState::Running, "s asked for nothing");

        // The call ends: the count goes.
        c.reports(Status::Running, "answering +14155550100 (account 'Bakery')")
            .await;
        let screen = c.draw(80, 24);
        assert!(
            !screen.contains("calls in progress") && !screen.contains("2 calls"),
            "{screen}"
        );
        assert!(screen.contains("RUNNING since"), "{screen}");

        // The Telegram bot beside it keeps its Start/Stop.
        c.key('k').await;
        let keys = footer(&c.draw(80, 24));
        assert!(keys.contains("start/stop"), "{keys}");
    }

    #[tokio::test]
    async fn l_opens_the_voice_line_s_log_under_its_agent() {
        let mut c = console().await;
        c.reports(Status::Running, "answering +14155550100 (account 'Bakery')")
            .await;
        let id = c.line;
        let line = |message: &str| LogLine {
            connection_id: id,
            at: flametree::model::now_millis(),
            level: "INFO".into(),
            message: message.into(),
        };
        let lines = [
            line("the voice URL of +14155550100 now points at this connection"),
            line("call CA01 from +14155550199 to +14155550100"),
        ];
        c.channels.store().append_logs(&lines, 100).await.unwrap();
        c.key('l').await;
        assert_eq!(c.app.logs.for_id, Some(c.line));
        assert_eq!(c.app.focus, Focus::Logs);
        let screen = c.draw(100, 30);
        assert!(
            screen.contains("Logs · Shop line · agent Support"),
            "{screen}"
        );
        assert!(screen.contains("call CA01 from +14155550199"), "{screen}");
        // Live: a line the runtime writes later appears.
        let later = [line("call CA01 ended after 12 s")];
        c.channels.store().append_logs(&later, 100).await.unwrap();
        let more = c.app.logs.more_request(c.line).into_iter().collect();
        c.run(more).await;
        let screen = c.draw(100, 30);
        assert!(screen.contains("ended after 12 s"), "{screen}");
    }
}
