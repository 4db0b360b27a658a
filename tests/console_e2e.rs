//! The real binary in a real terminal (tmux): add a connection, find it by search,
//! open it, see its secret masked, change it, delete it, quit.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    fn start(data_dir: &Path, width: u16, height: u16) -> Tmux {
        Tmux::start_with(data_dir, width, height, &[])
    }

    /// With extra `NAME=value` settings in the console's environment.
    fn start_with(data_dir: &Path, width: u16, height: u16, env: &[(&str, &str)]) -> Tmux {
        let socket = format!(
            "flametree-e2e-{}-{}",
            std::process::id(),
            data_dir.file_name().unwrap().to_string_lossy()
        );
        let bin = env!("CARGO_BIN_EXE_flametree");
        let extra: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let cmd = format!(
            "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME={dir} XDG_CONFIG_HOME={dir}/config \
             FLAMETREE_GENERAL_DATA_DIR={dir} FLAMETREE_ACCESS_OPERATOR=tester FLAMETREE_HTTP_LISTEN=127.0.0.1:0 {extra}{bin}; sleep 5",
            dir = data_dir.display()
        );
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-s", "ft"])
            .args(["-x", &width.to_string(), "-y", &height.to_string(), &cmd])
            .status()
            .expect("tmux is installed (apt-get install tmux; .ci/run does it)");
        assert!(status.success());
        Tmux {
            socket,
            session: "ft",
        }
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", self.session])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(80));
    }

    fn type_text(&self, text: &str) {
        let status = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "send-keys",
                "-t",
                self.session,
                "-l",
                text,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(80));
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text` (the console works asynchronously).
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {text:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// A Telegram bot whose Bot API address does not answer, added and started with the
/// CLI: a console that runs it keeps retrying with "cannot reach Telegram".
fn started_unreachable_bot(dir: &Path, name: &str) -> common::Cli {
    let cli = common::Cli::new(dir);
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            name,
            "--env",
            "TELEGRAM_API_URL=http://127.0.0.1:9",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={}\n", common::TG_TOKEN)),
    );
    cli.ok(&["channels", "start", name], None);
    cli
}

const NEW_TOKEN: &str = "222222222:AAEsecondTokenTypedInTheConsole2222";

fn stored_token(dir: &Path) -> Option<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}/flametree.db", dir.display());
        let s = flametree::store::open(&url, 5, 1).await.unwrap();
        let t = s.tenant("default").await.unwrap();
        let c = s.connection_by_name(t.id, "Sales bot").await.unwrap()?;
        let key =
            flametree::secrets::MasterKey::load_or_create_file(&dir.join("master.key"), false)
                .unwrap();
        Some(
            key.open("bot_token", &c.secrets["bot_token"], "t")
                .unwrap()
                .expose()
                .to_string(),
        )
    })
}

#[test]
fn add_find_open_change_delete_in_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    t.wait_for("No connections yet.");

    t.keys(&["a"]);
    t.wait_for("Add a channel");
    t.keys(&["Down", "Enter"]);
    t.wait_for("New connector · Telegram");
    t.type_text("Sales bot");
    t.keys(&["Tab", "Tab"]);
    t.type_text(common::TG_TOKEN);
    let typing = t.screen();
    assert!(
        !typing.contains("AAEplanted"),
        "a secret is masked while typed:\n{typing}"
    );
    t.keys(&["C-s"]);
    t.wait_for("Saved 'Sales bot'");
    assert_eq!(stored_token(dir.path()).as_deref(), Some(common::TG_TOKEN));

    // Back to the list, search for it, open it.
    t.keys(&["Escape"]);
    t.keys(&["/"]);
    t.type_text("SALES");
    t.keys(&["Enter"]);
    let found = t.wait_for("/SALES");
    assert!(found.contains("Sales bot"), "{found}");
    t.keys(&["Enter"]);
    let opened = t.wait_for("•••••••• saved · type to replace");
    assert!(!opened.contains("AAEplanted"), "{opened}");

    // Change the token: Name, Description, Bot token.
    t.keys(&["Tab", "Tab", "Tab"]);
    t.type_text(NEW_TOKEN);
    t.keys(&["C-s"]);
    t.wait_for("Saved 'Sales bot'");
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_token(dir.path()).as_deref() != Some(NEW_TOKEN) {
        assert!(Instant::now() < deadline, "the new token was not stored");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!t.screen().contains("AAEsecond"));

    // Delete: asks, naming it; y confirms.
    t.keys(&["D"]);
    t.wait_for("Delete the integration 'Sales bot'?");
    t.keys(&["y"]);
    t.wait_for("Deleted 'Sales bot'.");
    assert_eq!(stored_token(dir.path()), None);

    t.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.screen().contains("Settings › Channels") {
        assert!(Instant::now() < deadline, "q did not quit:\n{}", t.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_small_terminal_gets_a_message_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 50, 12);
    t.wait_for("Terminal too small: 50×12");
}

#[test]
fn c_puts_the_whole_webhook_url_on_the_clipboard_through_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let public = "https://hooks.example.com";
    let env = [
        ("FLAMETREE_HTTP_PUBLIC_URL", public),
        ("FLAMETREE_HTTP_LISTEN", "127.0.0.1:0"),
    ];
    let mut cli = common::Cli::new(dir.path());
    for (k, v) in env {
        cli = cli.env(k, v);
    }
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--name",
            "Hooks bot",
            "--env",
            "TELEGRAM_MODE=webhook",
            "--secrets-stdin",
        ],
        Some(&format!("bot_token={}\n", common::TG_TOKEN)),
    );
    let url = cli.json(&["channels", "show", "Hooks bot"])["webhook_url"]
        .as_str()
        .unwrap()
        .to_string();

    // 80×24: the panel cuts the URL in the middle; the copy is whole.
    let t = Tmux::start_with(dir.path(), 80, 24, &env);
    // tmux takes OSC 52 from the program into its paste buffer with set-clipboard on.
    assert!(
        t.tmux(&["set-option", "-g", "set-clipboard", "on"])
            .status
            .success()
    );
    let shown = t.wait_for("Webhook URL");
    assert!(shown.contains("https://hooks.example.co"), "{shown}");
    t.keys(&["c"]);
    t.wait_for("Copied the webhook URL of 'Hooks bot'");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let buffer = String::from_utf8_lossy(&t.tmux(&["show-buffer"]).stdout).into_owned();
        if buffer == url {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the clipboard never got {url:?}; tmux's buffer holds {buffer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn signing_in_with_meta_in_the_console_fills_the_form() {
    use flametree::sandbox::meta::MetaSandbox;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sandbox = rt.block_on(MetaSandbox::start()).unwrap();
    sandbox.set_app(
        "4000000000001",
        "fedcba9876543210fedcba9876543210",
        "c1i3nt70k3n",
        1,
    );
    sandbox.add_whatsapp(
        "EAAsystemToken",
        "fedcba9876543210fedcba9876543210",
        "122951744235903",
        &[
            ("114896151713920", "+1 555-0001"),
            ("114896151713921", "+1 555-0002"),
        ],
    );
    sandbox.add_user(
        "EAAshortUserToken",
        "EAAlongUserToken",
        &[],
        &["122951744235903"],
    );
    let dir = tempfile::tempdir().unwrap();
    let url = sandbox.url();
    let env = [
        ("FLAMETREE_META_APP_ID", "4000000000001"),
        (
            "FLAMETREE_META_APP_SECRET",
            "fedcba9876543210fedcba9876543210",
        ),
        ("FLAMETREE_META_CLIENT_TOKEN", "c1i3nt70k3n"),
        ("FLAMETREE_META_GRAPH_API_URL", url.as_str()),
    ];
    let t = Tmux::start_with(dir.path(), 100, 30, &env);
    t.wait_for("No connections yet.");
    t.keys(&["a"]);
    t.wait_for("Add a channel");
    t.keys(&["Enter"]);
    t.wait_for("New connector · WhatsApp");
    t.type_text("Signed shop");
    t.keys(&["Tab", "Tab"]);
    t.wait_for("Enter: sign in with Meta");
    t.keys(&["Enter"]);
    let shown = t.wait_for("and enter the code");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(c) = sandbox.user_codes().pop() {
            break c;
        }
        assert!(Instant::now() < deadline, "no code was asked for");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(shown.contains(&code), "the code is on screen:\n{shown}");
    assert!(shown.contains("https://www.facebook.com/device"), "{shown}");
    assert!(sandbox.approve(&code, "EAAshortUserToken"));
    let picks = t.wait_for("Pick what this connection uses");
    assert!(
        picks.contains("1) WhatsApp Business Account 122951744235903: +1 555-0001"),
        "{picks}"
    );
    t.keys(&["Enter"]);
    let filled = t.wait_for("Filled from Meta");
    assert!(
        filled.contains("114896151713920,114896151713921"),
        "{filled}"
    );
    for secret in ["EAAlongUserToken", "fedcba9876543210", "c1i3nt70k3n"] {
        assert!(!filled.contains(secret), "{secret} on screen:\n{filled}");
    }
    t.keys(&["C-s"]);
    t.wait_for("Saved 'Signed shop'");
    let stored = rt.block_on(async {
        let url = format!("sqlite://{}/flametree.db", dir.path().display());
        let s = flametree::store::open(&url, 5, 1).await.unwrap();
        let tenant = s.tenant("default").await.unwrap();
        s.connection_by_name(tenant.id, "Signed shop")
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        stored.fields.get("business_account_id").map(String::as_str),
        Some("122951744235903")
    );
    for k in ["access_token", "app_secret", "verify_token"] {
        assert!(stored.secrets.contains_key(k), "{k} stored");
    }
}

#[test]
fn migrating_a_deprecated_connection_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let cli = common::Cli::new(dir.path());
    cli.ok(
        &[
            "channels",
            "add",
            "--type",
            "messagebird",
            "--name",
            "Legacy SMS",
            "--set",
            "channel_id=0123456789abcdef0123456789abcdef",
            "--secrets-stdin",
        ],
        Some("access_key=live_legacyKeyForTheConsoleTest\n"),
    );
    cli.ok(&["agents", "create", "--name", "Support"], None);
    cli.ok(
        &[
            "agents",
            "attach",
            "Support",
            "--connection",
            "Legacy SMS",
            "--inbound",
        ],
        None,
    );
    let t = Tmux::start(dir.path(), 100, 30);
    let shown = t.wait_for("Legacy SMS");
    assert!(shown.contains("Deprecated Channels"), "{shown}");
    t.keys(&["Enter"]);
    t.wait_for("Deprecated: it still works; migrate it to Bird");
    t.keys(&["M"]);
    t.wait_for("Replaces 'Legacy SMS'");
    t.keys(&["Tab", "Tab"]);
    t.type_text("2b8f2b7a-0000-4000-8000-000000000001");
    t.keys(&["Tab"]);
    t.type_text("614208aa-b153-4d5d-9989-2fddfc0ce4c3");
    t.keys(&["Tab"]);
    t.type_text("birdAccessKeyTypedInTheConsole");
    t.keys(&["Tab"]);
    t.type_text("bird-signing-key-typed");
    t.keys(&["C-s"]);
    let saved = t.wait_for("moved from 'Legacy SMS'");
    assert!(!saved.contains("birdAccessKey"), "{saved}");
    let out = cli.ok(&["agents", "show", "Support"], None);
    assert!(out.contains("Legacy SMS (Bird)"), "{out}");
    let status = cli.json(&["channels", "show", "Legacy SMS"]);
    assert_eq!(status["desired_state"], "STOPPED", "{status}");
}

/// Issue 16: a bot that fails at start, run by the console itself: its details, its
/// Logs pane and the lines exported from it never show the token.
#[test]
fn the_console_screens_and_exported_logs_never_show_a_planted_token() {
    let dir = tempfile::tempdir().unwrap();
    started_unreachable_bot(dir.path(), "Leaky bot");
    let t = Tmux::start(dir.path(), 160, 40);
    t.wait_for("Leaky bot");
    t.keys(&["/"]);
    t.type_text("Leaky");
    t.keys(&["Enter"]);
    let mut screens = vec![t.wait_for("retry")];
    // One key per send: ESC and a letter sent together read as Alt+letter.
    t.keys(&["Escape"]);
    t.keys(&["l"]);
    t.wait_for("Logs · Leaky bot");
    screens.push(t.wait_for("cannot reach Telegram"));
    t.keys(&["x"]);
    screens.push(t.wait_for("Saved "));
    t.keys(&["Escape"]);
    t.keys(&["Enter"]);
    screens.push(t.wait_for("•••••••• saved"));
    for s in &screens {
        assert!(!s.contains("AAEplanted"), "the token is on screen:\n{s}");
    }
    let exported: Vec<_> = std::fs::read_dir(dir.path().join("exported-logs"))
        .expect("the lines were exported")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!exported.is_empty());
    for text in exported {
        assert!(
            text.contains("Leaky bot") || text.contains("cannot reach"),
            "{text}"
        );
        assert!(
            !text.contains("AAEplanted"),
            "the token was exported:\n{text}"
        );
    }
}

impl Tmux {
    /// Waits until `check` holds for the screen (the console works asynchronously).
    fn wait_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if check(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {what}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The line of the screen holding the focus mark `▸`.
fn focused_line(screen: &str) -> String {
    screen
        .lines()
        .find(|l| l.contains('▸'))
        .unwrap_or_default()
        .to_string()
}

/// Issue 15 at 80×24 on the real binary: a Telegram bot that cannot reach Telegram goes
/// to ERROR; filtering and jumping to it, its whole message, restart's question, the
/// Logs pane's sideways scroll and whole line, the pane following a search to another
/// connection, Simple mode's drawn focus stops, line editing and its discard question.
#[test]
fn incident_moves_replayed_at_80x24() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: starting fails, and after 1 s the bot shows ERROR.
    let unreachable = "TELEGRAM_API_URL=http://127.0.0.1:9";
    let cli = common::Cli::new(dir.path());
    for (name, token) in [
        ("Alpha bot", common::TG_TOKEN),
        (
            "Sales bot",
            "7000000009:AAEsecondBotTokenForTheReplayTest0009",
        ),
    ] {
        cli.ok(
            &[
                "channels",
                "add",
                "--type",
                "telegram",
                "--name",
                name,
                "--env",
                unreachable,
                "--secrets-stdin",
            ],
            Some(&format!("bot_token={token}\n")),
        );
    }
    cli.ok(&["channels", "start", "Alpha bot"], None);
    let t = Tmux::start_with(
        dir.path(),
        80,
        24,
        &[("FLAMETREE_RUNTIME_START_TIMEOUT_SECS", "1")],
    );
    t.wait_until("Alpha bot in ERROR", |s| {
        s.lines()
            .any(|l| l.contains("Alpha bot") && l.contains("ERROR"))
    });

    // Item 8: the footer's pairs are whole, quit always offered.
    let s = t.screen();
    let footer = s.lines().last().unwrap_or_default().trim_end().to_string();
    assert!(
        footer.starts_with("? help") && footer.ends_with("q quit"),
        "{footer}"
    );

    // Item 15: only ERROR, named in the title; back to all; E jumps to the ERROR.
    t.keys(&["f"]);
    let s = t.wait_for("ERROR only");
    assert!(!s.contains("Sales bot"), "{s}");
    t.keys(&["f", "f"]);
    t.wait_for("Sales bot");
    t.keys(&["G", "E"]);
    t.wait_for("Alpha bot · Telegram");

    // Item 8: the whole status, however long.
    t.keys(&["i"]);
    let s = t.wait_for("Status · Alpha bot");
    assert!(s.contains("still trying"), "{s}");
    t.keys(&["Escape"]);

    // Item 16: restart asks first, naming it; n keeps it as it is.
    t.keys(&["r"]);
    t.wait_for("Restart 'Alpha bot'?");
    t.keys(&["n"]);
    t.wait_until("the question gone", |s| !s.contains("Restart 'Alpha bot'?"));

    // Item 18: the Logs pane; → scrolls long lines; Enter opens the newest one whole.
    t.keys(&["l"]);
    t.wait_for("Logs · Alpha bot");
    t.wait_for("cannot reach Telegram");
    t.keys(&["Right"]);
    t.wait_for("→9");
    t.keys(&["Enter"]);
    t.wait_for("Log line · Alpha bot");
    t.keys(&["Escape"]);
    t.wait_until("the popup closed", |s| !s.contains("Log line · Alpha bot"));

    // Item 1: a search selects another connection; the pane goes with it.
    t.keys(&["Tab", "/"]);
    t.type_text("sales");
    t.keys(&["Enter"]);
    let s = t.wait_for("Logs · Sales bot");
    assert!(s.contains("Sales bot · Telegram"), "{s}");
    assert!(!s.contains("Logs · Alpha bot"), "{s}");
    t.keys(&["Escape"]);

    // Item 2: Simple mode on an agent's page; every focus stop is drawn and marked.
    t.keys(&["A"]);
    t.wait_for("AI Agents");
    t.keys(&["n"]);
    t.wait_for("New agent");
    t.type_text("Support");
    t.keys(&["Enter"]);
    t.wait_for("Created agent 'Support'");
    t.keys(&["a"]);
    t.wait_for("pick its type");
    t.keys(&["Down", "Enter"]);
    t.wait_for("Add Telegram connections");
    t.keys(&["Down", "Down", "Enter"]);
    let s = t.wait_for("New Telegram connection (Simple mode)");
    assert!(focused_line(&s).contains("Name*"), "{s}");
    // Item 17: Ctrl-U clears what was typed before the cursor.
    t.type_text("Wrong name");
    t.wait_for("Wrong name");
    t.keys(&["C-u"]);
    t.wait_until("the name cleared", |s| !s.contains("Wrong name"));
    t.type_text("Night bot");
    t.keys(&["Tab"]);
    let s = t.wait_until("the focus on Description", |s| {
        focused_line(s).contains("Description")
    });
    assert!(s.contains("Bot token*"), "{s}");
    // Esc with input asks before discarding it.
    t.keys(&["Escape"]);
    t.wait_for("Discard the new Telegram connection 'Night bot'?");
    t.keys(&["y"]);
    t.wait_until("Simple mode closed", |s| !s.contains("Simple mode"));
    assert!(
        cli.run(&["channels", "show", "Night bot"], None).code() == 4,
        "nothing was created"
    );
}

/// An SSH session drops under a console that runs channels: the terminal hangs up
/// (SIGHUP). The console does not die on the spot but ends as after `q`: each channel
/// it ran is stopped and recorded STOPPED (still wanted running, for the next process),
/// and its last log lines are written.
#[test]
fn a_hung_up_terminal_stops_the_console_s_channels_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cli = started_unreachable_bot(dir.path(), "Alpha bot");
    let t = Tmux::start(dir.path(), 80, 24);
    t.wait_until("Alpha bot retrying", |s| {
        s.contains("cannot reach Telegram")
    });
    assert!(t.tmux(&["kill-server"]).status.success());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = cli.ok(&["channels", "logs", "Alpha bot"], None);
        if logs.contains("stopping: flametree is shutting down") && logs.contains("INFO  stopped") {
            break;
        }
        assert!(Instant::now() < deadline, "never stopped cleanly:\n{logs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = cli.json(&["channels", "status"]);
    assert_eq!(status[0]["status"], "STOPPED", "{status}");
    assert_eq!(status[0]["desired_state"], "RUNNING", "{status}");
}
