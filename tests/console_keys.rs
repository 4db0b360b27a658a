//! The console driven key by key against a real SQLite store: every command the
//! keys produce is executed by the worker and its messages fed back, as the event
//! loop does.

mod common;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flametree::channels::Channels;
use flametree::model::{DesiredState, Status};
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
    _dir: tempfile::TempDir,
}

async fn console(role: Role) -> Console {
    console_with(role, false).await
}

/// With `meta`: the server has a Meta app, so Meta types have the Advanced mode switch.
async fn console_with(role: Role, meta: bool) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flametree.db", dir.path().display());
    let s = store::open(&url, 5, 2).await.unwrap();
    let tenant = s.tenant("default").await.unwrap();
    let operator = Operator {
        name: "ann".into(),
        role,
        role_reason: "test".into(),
    };
    let key = MasterKey::from_bytes([9; 32], KeySource::Config);
    let channels = Arc::new(Channels::new(s, tenant, operator, Ok(Arc::new(key))));
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "SQLite".into(),
        operator: "ann".into(),
        role,
    };
    let mut c = Console {
        app: App::new(header, Theme::plain(), meta, (1000, 1 << 20)),
        channels,
        _dir: dir,
    };
    c.run(vec![Command::Reload]).await;
    c
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

    async fn key(&mut self, code: KeyCode) {
        let cmds = self.app.on_key(KeyEvent::from(code));
        self.run(cmds).await;
    }

    async fn ctrl(&mut self, c: char) {
        let cmds = self
            .app
            .on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
        self.run(cmds).await;
    }

    async fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c)).await;
        }
    }

    async fn add_telegram(&mut self, name: &str, token: &str) {
        self.key(KeyCode::Char('a')).await;
        self.key(KeyCode::Down).await; // WhatsApp → Telegram
        self.key(KeyCode::Enter).await;
        assert_eq!(self.app.focus, Focus::Fields);
        self.type_text(name).await;
        self.key(KeyCode::Tab).await; // description
        self.key(KeyCode::Tab).await; // bot token
        self.app.on_paste(token);
        self.ctrl('s').await;
    }

    /// The runtime reports a status; the console reads it back.
    async fn reports(&mut self, id: i64, status: Status, message: &str) {
        self.channels
            .store()
            .set_status(id, status, message)
            .await
            .unwrap();
        self.run(vec![Command::Reload]).await;
    }

    fn flash(&self) -> String {
        self.app
            .flash
            .as_ref()
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn add_a_telegram_bot_then_start_it_from_the_keyboard() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    assert!(c.flash().contains("Saved 'Sales bot'"), "{}", c.flash());
    let stored = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(stored.secrets["bot_token"].count, 1);
    assert_eq!(
        c.channels
            .reveal(&stored, "bot_token")
            .unwrap()
            .unwrap()
            .expose(),
        common::TG_TOKEN
    );
    assert_eq!(c.app.list.selected_connection().unwrap().name, "Sales bot");
    assert_eq!(c.app.focus, Focus::Panel);

    c.key(KeyCode::Char('s')).await;
    let after = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(
        after.desired,
        DesiredState::Running,
        "Start recorded as desired state"
    );
    assert!(c.flash().contains("Start requested"), "{}", c.flash());
}

#[tokio::test]
async fn save_errors_land_next_to_their_fields_and_nothing_is_stored() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("", "not a token").await;
    let form = c.app.details.form.as_ref().unwrap();
    assert_eq!(
        form.errors.get("name").map(String::as_str),
        Some("Name is required")
    );
    assert!(
        form.errors["bot_token"].contains("does not look right"),
        "{:?}",
        form.errors
    );
    assert!(
        c.flash().starts_with("Not saved: 2 problems"),
        "{}",
        c.flash()
    );
    assert_eq!(
        c.app.focus,
        Focus::Fields,
        "focus lands on the first bad field"
    );
    assert!(c.channels.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn editing_keeps_an_untouched_secret_and_replaces_a_typed_one() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    // Panel → fields: Name, Description; change the description only.
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Tab).await;
    c.type_text("EU customers").await;
    c.ctrl('s').await;
    let stored = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(stored.description, "EU customers");
    assert_eq!(stored.version, 2);
    assert_eq!(
        c.channels
            .reveal(&stored, "bot_token")
            .unwrap()
            .unwrap()
            .expose(),
        common::TG_TOKEN
    );

    let new_token = "555555555:AAEreplacementTokenValue55555555555";
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Tab).await;
    c.key(KeyCode::Tab).await;
    c.type_text(new_token).await;
    c.ctrl('s').await;
    let stored = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(
        c.channels
            .reveal(&stored, "bot_token")
            .unwrap()
            .unwrap()
            .expose(),
        new_token
    );
}

#[tokio::test]
async fn delete_asks_first_names_the_target_and_n_keeps_it() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    c.key(KeyCode::Esc).await;
    c.key(KeyCode::Char('D')).await;
    c.key(KeyCode::Char('n')).await;
    assert_eq!(c.channels.list().await.unwrap().len(), 1, "n cancels");
    c.key(KeyCode::Char('D')).await;
    match &c.app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(confirm)) => {
            assert!(
                confirm.question.contains("'Sales bot'"),
                "{}",
                confirm.question
            )
        }
        _ => panic!("delete must ask first"),
    }
    c.key(KeyCode::Char('y')).await;
    assert!(c.channels.list().await.unwrap().is_empty());
    assert!(c.flash().contains("Deleted 'Sales bot'"));
    assert!(c.app.list.selected_connection().is_none());
}

#[tokio::test]
async fn a_save_over_someone_elses_change_is_refused_and_the_input_kept() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Tab).await;
    c.type_text("mine").await;
    // Another operator saves meanwhile.
    let theirs = c.channels.find("Sales bot").await.unwrap();
    let mut draft = flametree::channels::Draft::from_connection(&theirs);
    draft.description = "theirs".into();
    c.channels.edit(&theirs, &draft).await.unwrap();
    c.ctrl('s').await;
    assert!(
        c.flash().contains("your changes were not saved"),
        "{}",
        c.flash()
    );
    assert_eq!(
        c.channels.find("Sales bot").await.unwrap().description,
        "theirs"
    );
    let form = c.app.details.form.as_ref().unwrap();
    assert_eq!(form.value(&flametree::tui::form::Slot::Description), "mine");
}

#[tokio::test]
async fn viewers_can_look_but_every_change_is_refused() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    let mut v = console(Role::Viewer).await;
    v.channels = c.channels.clone();
    let viewer_channels = Channels::new(
        c.channels.store().clone(),
        c.channels.tenant().clone(),
        Operator {
            name: "bob".into(),
            role: Role::Viewer,
            role_reason: "test".into(),
        },
        Ok(Arc::new(MasterKey::from_bytes([9; 32], KeySource::Config))),
    );
    v.channels = Arc::new(viewer_channels);
    v.run(vec![Command::Reload]).await;
    assert_eq!(v.app.list.all.len(), 1);
    for k in ['a', 's', 'D'] {
        v.key(KeyCode::Char(k)).await;
        assert!(v.app.overlay.is_none(), "{k} opened nothing");
        assert!(v.flash().contains("Read-only"), "{k}: {}", v.flash());
    }
    v.key(KeyCode::Enter).await;
    v.key(KeyCode::Tab).await;
    v.type_text("x").await;
    v.ctrl('s').await;
    let stored = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.desired, DesiredState::Stopped);
}

#[tokio::test]
async fn selection_follows_the_connection_when_another_process_adds_one_above_it() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Zulu bot", common::TG_TOKEN).await;
    c.key(KeyCode::Esc).await;
    let mut draft = flametree::channels::Draft {
        type_key: "telegram".into(),
        name: "Alpha bot".into(),
        ..Default::default()
    };
    draft.secrets.insert(
        "bot_token".into(),
        flametree::secrets::SecretString::new(common::TG_TOKEN),
    );
    c.channels.add(&draft).await.unwrap();
    let marker_before = c.app.fresh.marker;
    c.run(vec![Command::Poll {
        last: marker_before,
    }])
    .await;
    assert_eq!(
        c.app.list.all.len(),
        2,
        "the poll saw the other process's change"
    );
    assert_eq!(c.app.list.selected_connection().unwrap().name, "Zulu bot");
}

#[tokio::test]
async fn stop_is_accepted_in_every_state_and_only_records_the_desired_state() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    let id = c.channels.find("Sales bot").await.unwrap().id;
    c.key(KeyCode::Char('s')).await; // Start
    assert_eq!(
        c.channels.find("Sales bot").await.unwrap().desired,
        DesiredState::Running
    );

    // The provider cannot be reached: STARTING, retrying. `s` stops it, as the CLI would.
    c.channels
        .store()
        .set_status(
            id,
            Status::Starting,
            "cannot reach Telegram: connection refused; retrying in 4 s (attempt 3)",
        )
        .await
        .unwrap();
    c.run(vec![Command::Reload]).await;
    assert_eq!(
        c.app.current().unwrap().status,
        Status::Starting,
        "the console sees STARTING"
    );
    c.key(KeyCode::Char('s')).await;
    assert_eq!(
        c.channels.find("Sales bot").await.unwrap().desired,
        DesiredState::Stopped,
        "Stop recorded while STARTING"
    );
    assert!(
        c.flash().contains("Stop requested for 'Sales bot'"),
        "{}",
        c.flash()
    );

    // ERROR while it keeps retrying (desired still RUNNING): `s` is Stop too.
    let conn = c.channels.find("Sales bot").await.unwrap();
    c.channels
        .set_desired(&conn, DesiredState::Running)
        .await
        .unwrap();
    c.channels
        .store()
        .set_status(id, Status::Error, "cannot reach Telegram: timed out")
        .await
        .unwrap();
    c.run(vec![Command::Reload]).await;
    c.key(KeyCode::Char('s')).await;
    assert_eq!(
        c.channels.find("Sales bot").await.unwrap().desired,
        DesiredState::Stopped,
        "Stop recorded for ERROR while retrying"
    );

    // Stopped for good (ERROR, desired STOPPED): `s` is Start again.
    c.run(vec![Command::Reload]).await;
    c.key(KeyCode::Char('s')).await;
    assert_eq!(
        c.channels.find("Sales bot").await.unwrap().desired,
        DesiredState::Running
    );
}

#[tokio::test]
async fn c_copies_the_whole_webhook_url_and_a_polling_bot_has_none() {
    let mut c = console(Role::Editor).await;
    c.app.webhook_base = "https://hooks.example.com".into();
    c.add_telegram("Polling bot", common::TG_TOKEN).await;
    c.key(KeyCode::Char('c')).await;
    assert!(c.app.clipboard.is_none());
    assert!(
        c.flash()
            .contains("'Polling bot' has no webhook URL: it does not receive webhooks (set TELEGRAM_MODE=webhook"),
        "{}",
        c.flash()
    );

    let mut draft =
        flametree::channels::Draft::from_connection(&c.channels.find("Polling bot").await.unwrap());
    draft.env.push(flametree::model::EnvVar {
        name: "TELEGRAM_MODE".into(),
        value: "webhook".into(),
    });
    let existing = c.channels.find("Polling bot").await.unwrap();
    c.channels.edit(&existing, &draft).await.unwrap();
    c.run(vec![Command::Reload]).await;
    let hook_id = c.channels.find("Polling bot").await.unwrap().hook_id;
    assert_eq!(
        hook_id.len(),
        32,
        "the store gives every connection a hook id"
    );
    c.key(KeyCode::Char('c')).await;
    assert_eq!(
        c.app.clipboard.as_deref(),
        Some(format!("https://hooks.example.com/hooks/{hook_id}").as_str()),
        "the copy is the whole URL, however the panel cuts it"
    );
    assert!(
        c.flash()
            .contains("Copied the webhook URL of 'Polling bot' to the clipboard"),
        "{}",
        c.flash()
    );
}

#[tokio::test]
async fn an_idle_poll_asks_for_no_redraw() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    c.app.dirty = false;
    let cmds = c.app.on_tick(c.app.fresh.last_poll + 5_000, 1_000);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Poll { .. })),
        "a tick polls for changes"
    );
    c.run(cmds).await;
    assert!(!c.app.dirty, "nothing changed, so nothing is redrawn");
    assert!(
        c.app.on_tick(c.app.fresh.last_poll + 10, 1_000).is_empty(),
        "no second poll within the interval"
    );
}

#[tokio::test]
async fn quitting_with_channels_running_here_says_how_many_will_stop() {
    let mut c = console(Role::Editor).await;
    c.app
        .running_here
        .store(2, std::sync::atomic::Ordering::Relaxed);
    c.key(KeyCode::Char('q')).await;
    assert!(!c.app.quit, "q asks first");
    match &c.app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(confirm)) => {
            assert!(
                confirm
                    .question
                    .starts_with("2 channels are running in this console will stop"),
                "{}",
                confirm.question
            )
        }
        _ => panic!("quit must ask when channels run here"),
    }
    c.key(KeyCode::Char('y')).await;
    assert!(c.app.quit);
}

#[tokio::test]
async fn the_details_panel_says_why_a_channel_gets_no_replies() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    let (_, text) = c.app.details.diagnosis.clone().expect("diagnosed");
    assert!(text.starts_with("attached to no agent"), "{text}");

    let conn = c.channels.find("Sales bot").await.unwrap();
    let agent = c
        .channels
        .create_agent("Support", Default::default())
        .await
        .unwrap();
    c.channels
        .attach_connection(&agent, &conn, true)
        .await
        .unwrap();
    c.channels.run_agent(&agent, true).await.unwrap();
    // Any change to the connection (here: Start) brings a fresh diagnosis.
    c.key(KeyCode::Char('s')).await;
    let (_, text) = c.app.details.diagnosis.clone().unwrap();
    assert_eq!(text, "answered by agent 'Support'");

    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
    term.draw(|f| flametree::tui::view::draw(f, &mut c.app))
        .unwrap();
    let screen = term.backend().to_string();
    // Routed to Support, but no runtime runs it here: it answers nobody yet.
    assert!(
        screen.contains("No replies while STOPPED: agent 'Support' answers once it runs"),
        "{screen}"
    );
    assert!(!screen.contains("Replies: answered by"), "{screen}");

    // Running: the agent answers, and the panel says so.
    c.channels
        .store()
        .set_status(conn.id, flametree::model::Status::Running, "polling")
        .await
        .unwrap();
    c.run(vec![Command::Reload, Command::Diagnose { id: conn.id }])
        .await;
    term.draw(|f| flametree::tui::view::draw(f, &mut c.app))
        .unwrap();
    let screen = term.backend().to_string();
    assert!(
        screen.contains("Replies: answered by agent 'Support'"),
        "{screen}"
    );
}

#[tokio::test]
async fn agents_screen_create_attach_start_and_simple_mode() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    c.key(KeyCode::Esc).await;
    c.key(KeyCode::Char('A')).await;
    assert_eq!(c.app.screen, flametree::tui::app::Screen::Agents);

    // n: a new agent.
    c.key(KeyCode::Char('n')).await;
    c.type_text("Support").await;
    c.key(KeyCode::Enter).await;
    assert!(
        c.flash().contains("Created agent 'Support'"),
        "{}",
        c.flash()
    );
    assert_eq!(c.app.agents.selected_agent().unwrap().name, "Support");

    // a: pick Telegram, tick Sales bot, Inbound stays on, Enter saves.
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Char(' ')).await;
    c.key(KeyCode::Enter).await;
    assert!(
        c.flash()
            .contains("Saved 'Sales bot' (Inbound on) on agent 'Support'"),
        "{}",
        c.flash()
    );
    assert_eq!(c.app.agents.card.len(), 1);
    assert!(c.app.agents.card[0].1.inbound);

    // s: Start agent; the connection's messages now go to it.
    c.key(KeyCode::Char('s')).await;
    assert!(
        c.flash().contains("Started agent 'Support'"),
        "{}",
        c.flash()
    );
    let conn = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(
        c.channels.reply_diagnosis(conn.id).await.unwrap(),
        "answered by agent 'Support'"
    );

    // Simple mode: a new Telegram bot created from the agent's page.
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Down).await; // past Sales bot, onto "+ New Telegram connection"
    c.key(KeyCode::Enter).await;
    c.type_text("Night bot").await;
    c.key(KeyCode::Tab).await; // description
    c.key(KeyCode::Tab).await; // bot token
    c.app
        .on_paste("777777777:AAEsimpleModeTokenValue777777777777");
    c.ctrl('s').await;
    assert!(
        c.flash()
            .contains("Created 'Night bot' and attached it to agent 'Support'"),
        "{}",
        c.flash()
    );
    let night = c.channels.find("Night bot").await.unwrap();
    assert_eq!(
        night.secrets["bot_token"].count, 1,
        "created in Settings › Channels with its secret"
    );
    assert!(
        c.app.list.all.iter().any(|x| x.name == "Night bot"),
        "it appears in the channel list"
    );
    assert!(c.app.agents.selected_agent().unwrap().restart_pending());

    // A second agent cannot take Sales bot's inbound slot: the refusal names the owner.
    c.key(KeyCode::Char('n')).await;
    c.type_text("Sales").await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Char(' ')).await;
    c.key(KeyCode::Enter).await;
    assert!(
        c.flash()
            .contains("already answers inbound messages for agent 'Support'"),
        "{}",
        c.flash()
    );

    // D deletes the selected agent after a confirmation that names it.
    c.key(KeyCode::Esc).await;
    c.key(KeyCode::Char('D')).await;
    match &c.app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(confirm)) => {
            assert!(
                confirm.question.starts_with("Delete the agent 'Sales'?"),
                "{}",
                confirm.question
            )
        }
        _ => panic!("deleting an agent asks first"),
    }
    c.key(KeyCode::Char('y')).await;
    assert!(c.flash().contains("Deleted agent 'Sales'"), "{}", c.flash());
    assert_eq!(c.channels.agents().await.unwrap().len(), 1);

    c.key(KeyCode::Char('A')).await;
    assert_eq!(c.app.screen, flametree::tui::app::Screen::Channels);
}

#[tokio::test]
async fn quitting_with_unsaved_changes_asks_whether_to_quit_and_y_quits() {
    let mut c = console(Role::Editor).await;
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await;
    c.key(KeyCode::Enter).await;
    c.type_text("Half typed").await;
    c.ctrl('c').await;
    match &c.app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(confirm)) => {
            assert_eq!(
                confirm.question,
                "Quit and discard your unsaved changes to 'Half typed'?"
            );
            assert_eq!(confirm.yes, "Quit");
        }
        _ => panic!("q with unsaved input must ask"),
    }
    c.key(KeyCode::Char('y')).await;
    assert!(c.app.quit);
}

#[tokio::test]
async fn the_logs_pane_follows_a_search_to_the_connection_in_details() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Alpha bot", common::TG_TOKEN).await;
    c.key(KeyCode::Esc).await;
    c.add_telegram(
        "Sales bot",
        "7000000009:AAEsecondBotTokenForTheSearchTest00009",
    )
    .await;
    while c.app.focus != flametree::tui::app::Focus::List {
        c.key(KeyCode::Esc).await;
    }
    c.key(KeyCode::Char('g')).await;
    c.key(KeyCode::Char('l')).await;
    let alpha = c.channels.find("Alpha bot").await.unwrap();
    let sales = c.channels.find("Sales bot").await.unwrap();
    assert_eq!(c.app.logs.for_id, Some(alpha.id));
    while c.app.focus != flametree::tui::app::Focus::List {
        c.key(KeyCode::Esc).await;
    }
    c.key(KeyCode::Char('/')).await;
    c.type_text("sales").await;
    c.key(KeyCode::Enter).await;
    assert_eq!(
        c.app.list.selected_connection().map(|s| s.id),
        Some(sales.id),
        "the match is selected"
    );
    assert_eq!(
        c.app.logs.for_id,
        Some(sales.id),
        "and so does the Logs pane"
    );
    // A search matching nothing leaves nobody for the pane: it closes.
    c.key(KeyCode::Char('/')).await;
    c.type_text("zzz").await;
    assert_eq!(c.app.logs.for_id, None);
}

#[tokio::test]
async fn a_flash_goes_once_the_situation_it_describes_has_changed() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    let id = c.channels.find("Sales bot").await.unwrap().id;
    c.key(KeyCode::Char('s')).await;
    assert!(c.flash().contains("Start requested for 'Sales bot'"));

    // The runtime picks it up: the request is no longer news, the list says STARTING.
    c.reports(id, Status::Starting, "connecting to Telegram")
        .await;
    assert_eq!(c.app.flash, None, "'Start requested' outlived the start");

    // A refusal on the agents screen stays there.
    while c.app.focus != Focus::List {
        c.key(KeyCode::Esc).await;
    }
    c.key(KeyCode::Char('A')).await;
    c.key(KeyCode::Char('a')).await;
    assert!(c.flash().contains("Create an agent first"), "{}", c.flash());
    c.key(KeyCode::Char('A')).await;
    assert_eq!(
        c.app.flash, None,
        "the agents screen's message left with it"
    );

    // A save the form refused goes with the form.
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await;
    c.key(KeyCode::Enter).await;
    c.ctrl('s').await;
    assert!(c.flash().starts_with("Not saved"), "{}", c.flash());
    c.key(KeyCode::Esc).await;
    c.key(KeyCode::Esc).await;
    assert!(c.app.details.form.as_ref().is_none_or(|f| !f.is_new()));
    assert_eq!(c.app.flash, None, "the refusal of a form no longer open");

    // Information ages out.
    c.key(KeyCode::Char('c')).await;
    assert!(c.flash().contains("has no webhook URL"), "{}", c.flash());
    let now = c.app.now;
    c.app
        .on_tick(now + flametree::tui::app::INFO_FLASH_MS - 1, 1_000);
    assert!(c.flash().contains("has no webhook URL"), "still readable");
    c.app
        .on_tick(now + flametree::tui::app::INFO_FLASH_MS, 1_000);
    assert_eq!(c.app.flash, None);
}

fn draw(app: &mut App, w: u16, h: u16) -> String {
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    term.draw(|f| flametree::tui::view::draw(f, app)).unwrap();
    term.backend().to_string()
}

/// The screen line holding the focus mark `▸`.
fn focused_line(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains('▸')).collect();
    assert_eq!(lines.len(), 1, "exactly one focus mark:\n{screen}");
    lines[0].to_string()
}

#[tokio::test]
async fn simple_mode_shows_every_field_tab_reaches_and_esc_asks_before_discarding() {
    let mut c = console(Role::Editor).await;
    c.key(KeyCode::Char('A')).await;
    c.key(KeyCode::Char('n')).await;
    c.type_text("Support").await;
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Char('a')).await;
    c.key(KeyCode::Down).await; // Telegram
    c.key(KeyCode::Enter).await;
    c.key(KeyCode::Enter).await; // "+ New Telegram connection here"
    let s = draw(&mut c.app, 80, 24);
    assert!(focused_line(&s).contains("Name*"), "{s}");
    c.type_text("Night bot").await;
    c.key(KeyCode::Tab).await;
    let s = draw(&mut c.app, 80, 24);
    assert!(
        focused_line(&s).contains("Description"),
        "the focus stop after Name is drawn and marked:\n{s}"
    );
    c.key(KeyCode::Tab).await;
    let s = draw(&mut c.app, 80, 24);
    assert!(focused_line(&s).contains("Bot token*"), "{s}");
    // Every stop Tab reaches is on screen with the mark, round the form and back.
    for _ in 0..3 {
        c.key(KeyCode::Tab).await;
        focused_line(&draw(&mut c.app, 80, 24));
    }

    // Esc with input asks; n keeps the form and what was typed.
    c.key(KeyCode::Esc).await;
    match &c.app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(confirm)) => assert_eq!(
            confirm.question,
            "Discard the new Telegram connection 'Night bot'? Nothing was created yet."
        ),
        _ => panic!("Esc with input must ask"),
    }
    c.key(KeyCode::Char('n')).await;
    assert!(matches!(
        c.app.agents.add,
        Some(flametree::tui::agents::AddFlow::Simple { .. })
    ));
    c.key(KeyCode::Esc).await;
    c.key(KeyCode::Char('y')).await;
    assert!(c.app.agents.add.is_none(), "y discards");
    assert!(c.channels.find("Night bot").await.is_err());
}

#[tokio::test]
async fn switching_advanced_mode_off_and_saving_changes_nothing() {
    use flametree::secrets::SecretString;
    let mut c = console_with(Role::Editor, true).await;
    let draft = flametree::channels::Draft {
        type_key: "whatsapp".into(),
        name: "Shop WhatsApp".into(),
        fields: [
            ("phone_number_ids", "114896151713920"),
            ("business_account_id", "122951744235903"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        secrets: [
            ("access_token", "EAAGsandboxTokenForWhatsAppTests0001"),
            ("app_secret", "0123456789abcdef0123456789abcdef"),
            ("verify_token", "verify-me-please-42"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), SecretString::new(v.to_string())))
        .collect(),
        ..Default::default()
    };
    c.channels.add(&draft).await.unwrap();
    c.run(vec![Command::Reload]).await;
    c.key(KeyCode::Enter).await; // panel
    c.key(KeyCode::Enter).await; // Name
    c.key(KeyCode::Tab).await; // Description
    c.key(KeyCode::Tab).await; // Advanced mode
    assert!(
        c.app.details.form.as_ref().unwrap().advanced,
        "stored credentials: on"
    );
    c.key(KeyCode::Char(' ')).await;
    assert!(!c.app.details.form.as_ref().unwrap().advanced);
    c.ctrl('s').await;
    assert_eq!(c.flash(), "Nothing changed: nothing to save");
    let stored = c.channels.find("Shop WhatsApp").await.unwrap();
    assert_eq!(stored.version, 1, "no version that changes nothing");
    assert!(
        !c.app.details.form.as_ref().unwrap().advanced,
        "the switch stays where the operator put it"
    );

    // A real change is saved as before.
    c.key(KeyCode::Up).await; // Description
    c.type_text("EU shop").await;
    c.ctrl('s').await;
    assert!(
        c.flash().starts_with("Saved 'Shop WhatsApp'"),
        "{}",
        c.flash()
    );
    assert_eq!(c.channels.find("Shop WhatsApp").await.unwrap().version, 2);
}

fn confirm_question(app: &App) -> String {
    match &app.overlay {
        Some(flametree::tui::app::Overlay::Confirm(c)) => c.question.clone(),
        _ => panic!("expected a confirmation"),
    }
}

#[tokio::test]
async fn stop_of_a_running_channel_and_restart_ask_first_and_restart_starts_once_stopped() {
    let mut c = console(Role::Editor).await;
    c.add_telegram("Sales bot", common::TG_TOKEN).await;
    let id = c.channels.find("Sales bot").await.unwrap().id;
    c.key(KeyCode::Char('s')).await;
    let desired = |c: &Console| {
        let c = c.channels.clone();
        async move { c.find("Sales bot").await.unwrap().desired }
    };
    c.reports(id, Status::Running, "polling").await;

    // Stop of a RUNNING channel asks, naming it and what it costs; n keeps it running.
    c.key(KeyCode::Char('s')).await;
    assert_eq!(
        confirm_question(&c.app),
        "Stop 'Sales bot'? Customers writing to it get no replies until it is started again."
    );
    c.key(KeyCode::Char('n')).await;
    assert_eq!(desired(&c).await, DesiredState::Running);

    // r: asks, then Stop; Start follows once the runtime reports STOPPED.
    c.key(KeyCode::Char('r')).await;
    assert!(
        confirm_question(&c.app).starts_with("Restart 'Sales bot'?"),
        "{}",
        confirm_question(&c.app)
    );
    c.key(KeyCode::Char('y')).await;
    assert_eq!(desired(&c).await, DesiredState::Stopped, "first the Stop");
    assert!(
        c.flash().starts_with("Restarting 'Sales bot'"),
        "{}",
        c.flash()
    );
    c.reports(id, Status::Stopping, "").await;
    assert_eq!(
        desired(&c).await,
        DesiredState::Stopped,
        "not while STOPPING"
    );
    c.reports(id, Status::Stopped, "").await;
    assert_eq!(desired(&c).await, DesiredState::Running, "then the Start");
    assert!(
        c.flash().contains("Start requested for 'Sales bot'"),
        "{}",
        c.flash()
    );

    // A stopped channel has nothing to restart.
    let conn = c.channels.find("Sales bot").await.unwrap();
    c.channels
        .set_desired(&conn, DesiredState::Stopped)
        .await
        .unwrap();
    c.run(vec![Command::Reload]).await;
    c.key(KeyCode::Char('r')).await;
    assert!(c.app.overlay.is_none());
    assert_eq!(c.flash(), "'Sales bot' is not running: s starts it");

    // ui.confirm_stop = false: Stop of a RUNNING channel goes at once.
    c.app.confirm_stop = false;
    let conn = c.channels.find("Sales bot").await.unwrap();
    c.channels
        .set_desired(&conn, DesiredState::Running)
        .await
        .unwrap();
    c.reports(id, Status::Running, "polling").await;
    c.key(KeyCode::Char('s')).await;
    assert!(c.app.overlay.is_none());
    assert_eq!(desired(&c).await, DesiredState::Stopped);
}

#[tokio::test]
async fn the_responder_is_edited_on_the_agents_screen_with_a_masked_key() {
    let mut c = console(Role::Editor).await;
    c.key(KeyCode::Char('A')).await;
    c.key(KeyCode::Char('n')).await;
    c.type_text("Support").await;
    c.key(KeyCode::Enter).await;
    let stored = |c: &Console| {
        let ch = c.channels.clone();
        async move {
            let a = ch.find_agent("Support").await.unwrap();
            serde_json::from_str::<serde_json::Value>(&a.responder).unwrap()
        }
    };

    // Rules: a greeting and one keyword rule.
    c.key(KeyCode::Char('e')).await;
    c.key(KeyCode::Tab).await; // Greeting
    c.ctrl('u').await;
    c.type_text("Hi there").await;
    c.key(KeyCode::Tab).await; // Fallback
    c.key(KeyCode::Tab).await; // + Add rule
    c.key(KeyCode::Enter).await;
    c.type_text("price").await;
    c.key(KeyCode::Tab).await;
    c.type_text("See example.com/prices").await;
    c.ctrl('s').await;
    assert!(
        c.flash()
            .starts_with("Saved the responder of agent 'Support'"),
        "{}",
        c.flash()
    );
    let r = stored(&c).await;
    assert_eq!(r["greeting"], "Hi there");
    assert_eq!(r["rules"][0]["keyword"], "price");
    assert_eq!(r["rules"][0]["reply"], "See example.com/prices");

    // OpenAI-compatible, with a key that never reaches the screen.
    c.key(KeyCode::Char('e')).await;
    c.key(KeyCode::Char(' ')).await; // Responder: OpenAI-compatible
    c.key(KeyCode::Tab).await; // Base URL
    c.ctrl('u').await;
    c.type_text("http://127.0.0.1:9/v1").await;
    c.key(KeyCode::Tab).await; // Model
    c.type_text("gpt-4o-mini").await;
    c.key(KeyCode::Tab).await; // API key
    c.app.on_paste("sk-planted-secret-key");
    let s = draw(&mut c.app, 100, 30);
    assert!(!s.contains("sk-planted"), "the key is masked:\n{s}");
    assert!(focused_line(&s).contains("API key"), "{s}");
    c.ctrl('s').await;
    assert!(
        c.flash().starts_with("Saved the responder"),
        "{}",
        c.flash()
    );
    let r = stored(&c).await;
    assert_eq!(r["kind"], "open_ai", "{r}");
    assert_eq!(r["model"], "gpt-4o-mini");
    assert!(r["api_key"].is_object(), "sealed, not plain: {r}");
    assert!(!r.to_string().contains("sk-planted"));

    // Reopened: the key is not loaded; Esc with an edit asks first.
    c.key(KeyCode::Char('e')).await;
    for (w, h) in [(60, 15), (80, 24)] {
        let small = draw(&mut c.app, w, h);
        assert!(small.contains("Responder · Support"), "{small}");
    }
    let s = draw(&mut c.app, 100, 30);
    assert!(s.contains("•••••••• saved · type to replace"), "{s}");
    c.key(KeyCode::Tab).await;
    c.type_text("x").await;
    c.key(KeyCode::Esc).await;
    assert!(
        confirm_question(&c.app).starts_with("Discard your changes to the responder of 'Support'")
    );
}
