//! Whole-screen snapshots of the console on ratatui's TestBackend. Times are fixed, so
//! a snapshot changes only when what the operator sees changes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flametree::model::{Connection, DesiredState, LogLine, Status};
use flametree::permission::Role;
use flametree::secrets::SealedSecret;
use flametree::tui::app::{App, HeaderInfo};
use flametree::tui::theme::Theme;
use flametree::tui::view;
use flametree::tui::worker::Msg;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-11-25 12:00:00 UTC, and "now" five minutes later.
const T0: i64 = 1_764_072_000_000;
const NOW: i64 = T0 + 300_000;

fn sealed(count: usize) -> SealedSecret {
    SealedSecret {
        key_id: "0000".into(),
        nonce: String::new(),
        ciphertext: String::new(),
        count,
    }
}

fn conn(id: i64, name: &str, type_key: &str, status: Status, message: &str) -> Connection {
    Connection {
        id,
        tenant_id: 1,
        type_key: type_key.into(),
        name: name.into(),
        description: String::new(),
        fields: Default::default(),
        secrets: Default::default(),
        env: Vec::new(),
        version: 1,
        desired: if status == Status::Running {
            DesiredState::Running
        } else {
            DesiredState::Stopped
        },
        status,
        status_message: message.into(),
        status_since: T0,
        running_version: (status == Status::Running).then_some(1),
        updated_at: T0,
        updated_by: "ann".into(),
        hook_id: String::new(),
    }
}

fn sample() -> Vec<Connection> {
    let mut bot = conn(1, "Sales bot", "telegram", Status::Running, "polling");
    bot.secrets.insert("bot_token".into(), sealed(1));
    let mut mail = conn(2, "Support mail", "email", Status::Stopped, "");
    for (k, v) in [
        ("imap_hosts", "imap.a.com,imap.b.com"),
        ("imap_ports", "993,993"),
        ("imap_security", "ssl/tls,ssl/tls"),
        ("logins", "a@a.com,b@b.com"),
        ("smtp_hosts", "smtp.a.com,smtp.b.com"),
        ("smtp_ports", "587,587"),
        ("smtp_security", "starttls,starttls"),
    ] {
        mail.fields.insert(k.into(), v.into());
    }
    mail.secrets.insert("passwords".into(), sealed(2));
    vec![
        bot,
        mail,
        conn(
            3,
            "EU bot",
            "telegram",
            Status::Error,
            "Telegram rejected the bot token (401 Unauthorized): fix the token, Save, then Start",
        ),
        conn(4, "WhatsApp main", "whatsapp", Status::Starting, ""),
        conn(5, "Old SMS", "messagebird", Status::Stopped, ""),
        conn(6, "Desk voice", "twilio", Status::Stopped, ""),
    ]
}

fn app_with(role: Role) -> App {
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "SQLite flametree.db".into(),
        operator: "ann".into(),
        role,
    };
    let mut app = App::new(header, Theme::plain(), false, (1000, 1 << 20));
    app.now = NOW;
    app.on_msg(Msg::Loaded {
        connections: sample(),
        marker: None,
        complete: true,
    });
    app
}

fn app() -> App {
    app_with(Role::Editor)
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().to_string()
}

/// Selects a connection by name through search, as an operator would.
fn select(app: &mut App, name: &str) {
    press(app, &format!("/{name}"));
    key(app, KeyCode::Enter);
    key(app, KeyCode::Esc);
    assert_eq!(app.list.selected_connection().unwrap().name, name);
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(KeyEvent::from(KeyCode::Char(c)));
    }
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::from(code));
}

fn ctrl(app: &mut App, c: char) {
    app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

#[test]
fn list_with_both_groups_and_the_error_message_at_80x24() {
    let mut a = app();
    press(&mut a, "j"); // Desk voice → EU bot
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Deprecated Channels (1)"));
    assert!(
        s.contains("Telegram rejected the bot"),
        "selected row's message is visible:\n{s}"
    );
    assert!(!s.contains("Web Widget"));
    insta::assert_snapshot!(s);
}

#[test]
fn search_filters_as_you_type() {
    let mut a = app();
    press(&mut a, "/BOT");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Sales bot") && s.contains("EU bot"));
    assert!(!s.contains("Support mail"));
    insta::assert_snapshot!(s);
}

#[test]
fn sort_toggles_to_z_to_a() {
    let mut a = app();
    press(&mut a, "o");
    let s = screen(&mut a, 80, 24);
    let (w, e) = (s.find("WhatsApp main").unwrap(), s.find("EU bot").unwrap());
    assert!(w < e, "Z→A puts WhatsApp main above EU bot:\n{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn add_picker_lists_current_types_and_deprecated_on_demand() {
    let mut a = app();
    press(&mut a, "a");
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Email (IMAP/SMTP)") && !s.contains("DEPRECATED"));
    insta::assert_snapshot!("picker_current", s);
    press(&mut a, "d");
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("MessageBird DEPRECATED"));
}

#[test]
fn new_whatsapp_form_shows_the_meta_switch_disabled() {
    let mut a = app();
    press(&mut a, "a");
    key(&mut a, KeyCode::Enter); // WhatsApp is first
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("New connector · WhatsApp"));
    assert!(
        s.contains("Meta App ID and App Secret are not configured on the server"),
        "{s}"
    );
    assert!(
        s.contains("Phone number IDs"),
        "Advanced mode shows the manual form:\n{s}"
    );
    assert!(s.contains("(?) Multi-account"));
    insta::assert_snapshot!(s);
}

#[test]
fn details_show_secrets_masked_without_their_length() {
    let mut a = app();
    select(&mut a, "Support mail");
    key(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Support mail · Email (IMAP/SMTP)"));
    assert!(s.contains("•••••••• saved · type to replace"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn details_of_a_webhook_telegram_bot_show_its_url_at_80x24() {
    let mut a = app();
    a.webhook_base = "https://hooks.example.com".into();
    let mut hooked = conn(
        7,
        "Hooks bot",
        "telegram",
        Status::Running,
        "webhook for @hooks_bot",
    );
    hooked.secrets.insert("bot_token".into(), sealed(1));
    hooked.env.push(flametree::model::EnvVar {
        name: "TELEGRAM_MODE".into(),
        value: "webhook".into(),
    });
    hooked.hook_id = "3f9c2a7b5e1d4c6a8b0e2f4d6c8a0b1e".into();
    let mut all = sample();
    all.push(hooked);
    a.on_msg(Msg::Loaded {
        connections: all,
        marker: None,
        complete: true,
    });
    select(&mut a, "Hooks bot");
    key(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Hooks bot · Telegram"), "{s}");
    assert!(s.contains("Webhook URL"), "{s}");
    assert!(
        s.contains("https://hooks.example") && s.contains("…") && s.contains("8a0b1e"),
        "the URL is cut in the middle, both ends readable:\n{s}"
    );
    assert!(s.contains("c copy"), "the footer offers the copy key:\n{s}");
    insta::assert_snapshot!(s);

    press(&mut a, "c");
    assert_eq!(
        a.clipboard.as_deref(),
        Some("https://hooks.example.com/hooks/3f9c2a7b5e1d4c6a8b0e2f4d6c8a0b1e"),
        "the copy is the whole URL"
    );
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Copied the webhook URL of 'Hooks bot'"), "{s}");

    // Where the panel is wide enough, the URL and its key share one line, uncut.
    let s = screen(&mut a, 160, 30);
    assert!(
        s.contains(
            "Webhook URL https://hooks.example.com/hooks/3f9c2a7b5e1d4c6a8b0e2f4d6c8a0b1e  c copy"
        ),
        "{s}"
    );

    // A polling bot has no such line.
    select_from_panel(&mut a, "Sales bot");
    let s = screen(&mut a, 80, 24);
    assert!(!s.contains("Webhook URL"), "{s}");
}

/// Back to the list, then select by name.
fn select_from_panel(app: &mut App, name: &str) {
    key(app, KeyCode::Esc);
    select(app, name);
}

#[test]
fn voice_connections_say_they_run_with_their_agents() {
    let mut a = app();
    select(&mut a, "Desk voice");
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Desk voice · Twilio"));
    assert!(s.contains("No Start/Stop of its own"), "{s}");
    assert!(s.contains("Attached to no agent yet"), "{s}");
    assert!(
        !s.contains("[ Start s ]") && !s.contains("[ Logs l ]"),
        "{s}"
    );
    let footer = s.lines().last().unwrap();
    assert!(!footer.contains("start/stop"), "{footer}");
    assert!(
        footer.contains("l logs"),
        "its log is still one key away: {footer}"
    );
}

#[test]
fn logs_pane_with_search_highlight() {
    let mut a = app();
    select(&mut a, "Sales bot");
    let cmds = a.on_key(KeyEvent::from(KeyCode::Char('l')));
    assert_eq!(cmds.len(), 1, "opening the logs loads recent history");
    let lines: Vec<LogLine> = (0..40)
        .map(|i| LogLine {
            connection_id: 1,
            at: T0 + i * 1000,
            level: if i % 10 == 7 {
                "WARN".into()
            } else {
                "INFO".into()
            },
            message: format!("update {i}: message from chat {}", 100 + i),
        })
        .collect();
    a.on_msg(Msg::Logs {
        id: 1,
        lines,
        last_id: 0,
    });
    press(&mut a, "/chat 13");
    key(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Logs · Sales bot"), "{s}");
    assert!(s.contains("message from chat 13"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn viewer_footer_says_read_only() {
    let mut a = app_with(Role::Viewer);
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("READ-ONLY (viewer)"));
    assert!(s.contains("ann (viewer)"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn delete_confirmation_names_the_connection() {
    let mut a = app();
    select(&mut a, "Sales bot");
    press(&mut a, "D");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Delete the integration 'Sales bot'?"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn lost_database_shows_a_banner_and_keeps_the_list() {
    let mut a = app();
    a.on_msg(Msg::DbDown("connection refused".into()));
    let s = screen(&mut a, 100, 24);
    assert!(s.contains("Database unavailable since"));
    assert!(s.contains("Sales bot"), "last known data stays:\n{s}");
}

#[test]
fn too_small_a_terminal_says_so() {
    let mut a = app();
    let s = screen(&mut a, 50, 12);
    assert!(s.contains("Terminal too small: 50×12"), "{s}");
}

#[test]
fn help_lists_every_key_at_a_large_size() {
    let mut a = app();
    press(&mut a, "?");
    let s = screen(&mut a, 140, 80);
    for k in [
        "Ctrl-S",
        "Ctrl-G",
        "mouse capture",
        "level filter",
        "copy the webhook URL",
        "wheel",
        "Show deprecated",
    ] {
        let found = s.contains(k) || s.to_lowercase().contains(&k.to_lowercase());
        assert!(found || k == "Show deprecated", "help mentions {k}:\n{s}");
    }
    insta::assert_snapshot!(s);
}

#[test]
fn editing_a_field_marks_the_form_and_save_is_offered() {
    let mut a = app();
    select(&mut a, "Sales bot");
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    press(&mut a, "EU and US");
    ctrl(&mut a, 'g');
    let s = screen(&mut a, 100, 30);
    assert!(
        s.contains("Setup guide · Telegram"),
        "Ctrl-G opens the setup page:\n{s}"
    );
    key(&mut a, KeyCode::Esc);
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("unsaved changes"), "{s}");
}

#[test]
fn a_running_connection_saved_since_its_start_shows_restart_pending() {
    let mut a = app();
    let mut all = sample();
    all[0].version = 2; // Sales bot runs version 1
    a.on_msg(Msg::Loaded {
        connections: all,
        marker: None,
        complete: true,
    });
    select(&mut a, "Sales bot");
    let s = screen(&mut a, 100, 30);
    assert!(
        s.contains("Restart pending: saved changes apply after Stop, then Start"),
        "{s}"
    );
}

#[test]
fn mouse_clicks_select_rows_and_press_buttons_and_the_wheel_scrolls() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut a = app();
    let s = screen(&mut a, 100, 30);
    let row = s.lines().position(|l| l.contains("Support mail")).unwrap() as u16;
    let click = |column, row| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    a.on_mouse(click(5, row));
    assert_eq!(a.list.selected_connection().unwrap().name, "Support mail");
    let s = screen(&mut a, 100, 30);
    let (y, line) = s
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("[ Delete D ]"))
        .unwrap();
    let x = line.chars().position(|_| true).unwrap();
    let col = line[..line.find("[ Delete D ]").unwrap()].chars().count() + x + 2;
    a.on_mouse(click(col as u16, y as u16));
    assert!(
        matches!(a.overlay, Some(flametree::tui::app::Overlay::Confirm(_))),
        "clicking Delete asks first"
    );
    a.on_key(KeyEvent::from(KeyCode::Esc));
    a.on_mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 5,
        row,
        modifiers: KeyModifiers::NONE,
    });
    assert_eq!(
        a.list.selected_connection().unwrap().name,
        "Old SMS",
        "wheel moves down the list"
    );
    press(&mut a, "m");
    assert!(
        !a.mouse,
        "m turns mouse capture off so the terminal can select text"
    );
}

#[test]
fn agents_screen_shows_the_communication_channels_card() {
    use flametree::model::{Agent, AgentChannel};
    let mut a = app();
    press(&mut a, "A");
    let agent = |id, name: &str, status, version, running| {
        Agent {
        id,
        tenant_id: 1,
        name: name.into(),
        description: "Answers the shop's customers".into(),
        responder: r#"{"kind":"rules","greeting":"Hi","rules":[{"keyword":"price","reply":"See the site"}],"fallback":"Noted"}"#.into(),
        widget: "{}".into(),
        speech: "{}".into(),
        desired: DesiredState::Running,
        status,
        version,
        running_version: running,
        updated_by: "ann".into(),
    }
    };
    a.on_msg(Msg::Agents(vec![
        agent(1, "Support", Status::Running, 3, Some(2)),
        agent(2, "Campaigns", Status::Stopped, 1, None),
    ]));
    let ch = |cid, inbound, applied| AgentChannel {
        agent_id: 1,
        connection_id: cid,
        inbound,
        applied_inbound: applied,
        detached: false,
    };
    let conns = sample();
    a.on_msg(Msg::Card {
        agent_id: 2,
        rows: vec![],
    });
    a.agents.selected = Some(1);
    a.on_msg(Msg::Card {
        agent_id: 1,
        rows: vec![
            (conns[0].clone(), ch(1, true, true)),
            (conns[2].clone(), ch(3, true, false)),
        ],
    });
    let s = screen(&mut a, 100, 24);
    assert!(
        s.contains("Restart pending: saved changes apply after Stop agent, then"),
        "{s}"
    );
    assert!(
        s.contains("[x] Inbound  EU bot · Telegram · ERROR (applies at restart)"),
        "{s}"
    );
    assert!(s.contains("[ Stop agent s ]"));
    insta::assert_snapshot!(s);
}

/// The footer line: every key pair whole (a narrow one leaves pairs out, never half).
fn footer(s: &str) -> String {
    s.lines()
        .last()
        .unwrap()
        .trim_matches('"')
        .trim_end()
        .to_string()
}

#[test]
fn at_80x24_what_matters_is_shown_whole() {
    let mut a = app();
    press(&mut a, "j"); // EU bot, in ERROR
    let s = screen(&mut a, 80, 24);
    let keys = footer(&s);
    assert!(keys.starts_with("? help"), "{keys}");
    assert!(keys.ends_with("q quit"), "quit is always offered:\n{s}");
    assert!(!keys.contains("D de "), "{keys}");
    // The whole error under the list, wrapped between words: its end says what to do.
    for line in [
        "│Telegram rejected the bot   │",
        "│token (401 Unauthorized):   │",
        "│fix the token, Save, then   │",
        "│Start                       │",
    ] {
        assert!(s.contains(line), "{line:?} in\n{s}");
    }

    // A message too long for its room ends with a whole word and the key that shows it.
    let mut all = sample();
    all[2].status_message = "word ".repeat(120) + "THE-END";
    a.on_msg(Msg::Loaded {
        connections: all,
        marker: None,
        complete: true,
    });
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("i: all"), "{s}");
    assert!(!s.contains("THE-END"), "{s}");
    press(&mut a, "i");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Status · EU bot"), "{s}");
    assert!(s.contains("THE-END"), "i shows the message whole:\n{s}");
    key(&mut a, KeyCode::Esc);

    // The form's buttons with unsaved changes.
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Tab);
    press(&mut a, "x");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("[ Save ^S ]  [ Delete D ]  unsaved"), "{s}");
    assert!(
        !s.contains("unsaved cha…") && !s.contains("^G setup gu"),
        "{s}"
    );
}

#[test]
fn at_80x24_the_logs_status_and_the_help_are_not_cut() {
    let mut a = app();
    select(&mut a, "Sales bot");
    key(&mut a, KeyCode::Char('l'));
    let lines: Vec<LogLine> = (0..30)
        .map(|i| LogLine {
            connection_id: 1,
            at: T0 + i * 1000,
            level: "WARN".into(),
            message: format!("update {i}"),
        })
        .collect();
    a.on_msg(Msg::Logs {
        id: 1,
        lines,
        last_id: 0,
    });
    press(&mut a, "vv/update 2");
    key(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("≥WARN"), "the level filter's value:\n{s}");
    assert!(s.contains("wrap off"), "{s}");
    assert!(s.contains("/update 2 "), "the search position:\n{s}");
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Esc);

    press(&mut a, "?");
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("copy the webhook URL, whole, to the clipboard"),
        "{s}"
    );
    for line in s.lines() {
        assert!(
            !line.trim_end_matches(['"', ' ', '│']).ends_with('…'),
            "help lines wrap, not cut: {line}\n{s}"
        );
    }
}

/// Opens the New connector form of the type named `name` in the Add picker.
fn new_form(app: &mut App, name: &str) {
    press(app, "a");
    let types = flametree::tui::input::picker_types(false);
    let at = types.iter().position(|t| t.name == name).unwrap();
    for _ in 0..at {
        key(app, KeyCode::Down);
    }
    key(app, KeyCode::Enter);
}

#[test]
fn labels_keep_their_required_mark_and_use_the_room_there_is() {
    let mut a = app();
    new_form(&mut a, "WhatsApp");
    let s = screen(&mut a, 80, 24);
    let phone = s.lines().find(|l| l.contains("Phone number")).unwrap();
    assert!(phone.contains('*'), "a cut label keeps its mark: {phone}");
    let s = screen(&mut a, 200, 50);
    assert!(
        s.contains("WhatsApp Business Account ID*"),
        "a wide terminal shows labels whole:\n{s}"
    );
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Esc);
    new_form(&mut a, "Twilio");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains(" New connector · Twilio "), "{s}");
}

#[test]
fn wide_and_invisible_characters_keep_the_columns_and_never_reach_the_terminal() {
    let mut a = app();
    let mut all = sample();
    all.push(conn(
        7,
        "販売ボット 🤖 東京",
        "telegram",
        Status::Running,
        "",
    ));
    all.push(conn(
        8,
        "Ops\u{202E}tob\u{200B} x",
        "telegram",
        Status::Error,
        "bad\u{1b}]0;owned\u{7} token",
    ));
    a.on_msg(Msg::Loaded {
        connections: all,
        marker: None,
        complete: true,
    });
    let s = screen(&mut a, 80, 24);
    let row = s.lines().find(|l| l.contains("販売")).unwrap();
    assert!(
        row.contains("RUNNING││"),
        "the status word stays whole, against the list's border: {row}\n{s}"
    );

    select(&mut a, "Ops\u{202E}tob\u{200B} x");
    let s = screen(&mut a, 120, 24);
    assert!(s.contains("Ops<U+202E>tob<U+200B> x · Telegram"), "{s}");
    assert!(s.contains("bad^[]0;owned^G token"), "{s}");
    for bad in ['\u{202E}', '\u{200B}', '\u{1b}', '\u{7}'] {
        assert!(!s.contains(bad), "{bad:?} reached the screen:\n{s}");
    }
}

/// Cells drawn in reverse video in the Details panel (right of the list), where the
/// plain theme uses it only for a text cursor.
fn reversed_in_details(app: &mut App, w: u16, h: u16) -> usize {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    let left = view::list_width(w);
    (0..h.saturating_sub(2))
        .flat_map(|y| (left..w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)
        })
        .count()
}

#[test]
fn only_the_field_being_edited_shows_a_cursor() {
    let mut a = app();
    select(&mut a, "Support mail");
    assert_eq!(reversed_in_details(&mut a, 100, 30), 0, "list focus");
    key(&mut a, KeyCode::Enter);
    assert_eq!(reversed_in_details(&mut a, 100, 30), 0, "panel focus");
    key(&mut a, KeyCode::Enter);
    assert_eq!(reversed_in_details(&mut a, 100, 30), 1, "editing the name");
    key(&mut a, KeyCode::Esc);
    assert_eq!(reversed_in_details(&mut a, 100, 30), 0, "left the fields");
}

#[test]
fn status_filter_next_error_and_status_sort_at_80x24() {
    let mut a = app();
    press(&mut a, "f");
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("┌ A→Z · ERROR only "),
        "the title says what shows:\n{s}"
    );
    assert!(s.contains("EU bot") && !s.contains("Sales bot"), "{s}");
    assert!(s.contains("EU bot · Telegram"), "details follow:\n{s}");
    press(&mut a, "f");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("┌ A→Z · not RUNNING "), "{s}");
    assert!(!s.contains("● Sales bot"), "{s}");
    press(&mut a, "f");
    press(&mut a, "oo");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Channels · by status"), "{s}");
    let (eu, sales) = (s.find("✖ EU bot").unwrap(), s.find("● Sales bot").unwrap());
    assert!(eu < sales, "ERROR before RUNNING:\n{s}");
    press(&mut a, "gE");
    assert_eq!(a.list.selected_connection().unwrap().name, "EU bot");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("EU bot · Telegram"), "{s}");
}

#[test]
fn logs_at_80x24_scroll_sideways_and_open_a_line_whole() {
    let mut a = app();
    select(&mut a, "Sales bot");
    key(&mut a, KeyCode::Char('l'));
    let long = format!("payload {} THE-END", "field=value ".repeat(20));
    a.on_msg(Msg::Logs {
        id: 1,
        lines: vec![LogLine {
            connection_id: 1,
            at: T0,
            level: "ERROR".into(),
            message: long,
        }],
        last_id: 0,
    });
    let s = screen(&mut a, 80, 24);
    assert!(!s.contains("THE-END"), "{s}");
    for _ in 0..30 {
        key(&mut a, KeyCode::Right);
    }
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("THE-END"), "→ reveals the end:\n{s}");
    key(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Log line · Sales bot"), "{s}");
    assert!(
        s.contains("payload field=value") && s.contains("THE-END"),
        "{s}"
    );
}

#[test]
fn a_variable_error_shows_once_under_its_row() {
    let mut a = app();
    select(&mut a, "Sales bot");
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Enter);
    ctrl(&mut a, 'n');
    key(&mut a, KeyCode::Enter); // the first variable the picker offers
    let report = flametree::model::validation::Report {
        errors: vec![flametree::model::validation::FieldError {
            field: "env.1".into(),
            message: "TELEGRAM_MODE value 'x' must be one of: polling, webhook".into(),
        }],
        warnings: Vec::new(),
    };
    a.on_msg(Msg::SaveRejected(report));
    let s = screen(&mut a, 100, 30);
    assert_eq!(s.matches("✖ TELEGRAM_MODE value").count(), 1, "{s}");
}

#[test]
fn setup_guides_are_rendered_and_ctrl_g_works_in_the_add_picker() {
    let mut a = app();
    press(&mut a, "a");
    key(&mut a, KeyCode::Down); // Telegram
    ctrl(&mut a, 'g');
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("Setup guide · Telegram"), "{s}");
    assert!(s.contains("Paste it into Bot token."), "{s}");
    for raw in ["**", "`", "## "] {
        assert!(!s.contains(raw), "raw Markdown {raw:?}:\n{s}");
    }
    for _ in 0..10 {
        key(&mut a, KeyCode::Down);
    }
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("press s to Start it"), "keyboard wording:\n{s}");
    assert!(!s.to_lowercase().contains("click start"), "{s}");
    key(&mut a, KeyCode::Esc);
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("Add a channel"),
        "Esc goes back to the picker:\n{s}"
    );
}

#[test]
fn a_narrow_header_drops_the_database_before_the_operator() {
    let mut a = app();
    a.on_presence(flametree::runtime::Presence {
        runs_here: true,
        others: Vec::new(),
        leases: Default::default(),
        db_now: NOW,
    });
    let s = screen(&mut a, 80, 24);
    let header = s.lines().next().unwrap();
    assert!(
        header.contains("tenant default · channels run here · ann (editor)"),
        "{header}"
    );
    let s = screen(&mut a, 200, 50);
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains("tenant default · channels run here · SQLite flametree.db · ann (editor)"),
        "{s}"
    );
}

#[test]
fn every_new_view_draws_at_the_smallest_size_and_in_a_wide_one() {
    for (w, h) in [(60, 15), (80, 24), (200, 50)] {
        let mut a = app();
        let mut shots = Vec::new();
        for keys in ["f", "f", "f", "E", "i"] {
            press(&mut a, keys);
            shots.push(screen(&mut a, w, h));
        }
        key(&mut a, KeyCode::Esc);
        press(&mut a, "?");
        shots.push(screen(&mut a, w, h));
        key(&mut a, KeyCode::Esc);
        press(&mut a, "a");
        ctrl(&mut a, 'g');
        shots.push(screen(&mut a, w, h));
        key(&mut a, KeyCode::Esc);
        key(&mut a, KeyCode::Esc);
        select(&mut a, "Sales bot");
        press(&mut a, "l");
        a.on_msg(Msg::Logs {
            id: 1,
            lines: vec![LogLine {
                connection_id: 1,
                at: T0,
                level: "INFO".into(),
                message: "x".repeat(500),
            }],
            last_id: 0,
        });
        key(&mut a, KeyCode::Right);
        shots.push(screen(&mut a, w, h));
        key(&mut a, KeyCode::Enter);
        shots.push(screen(&mut a, w, h));
        for s in &shots {
            assert!(!s.contains("Terminal too small"), "{w}×{h}:\n{s}");
        }
    }
}

#[test]
fn a_voice_line_shows_its_agent_and_calls_in_progress_at_80x24() {
    let mut a = app();
    let mut all = sample();
    let desk = all.iter_mut().find(|c| c.name == "Desk voice").unwrap();
    desk.status = Status::Running;
    desk.desired = DesiredState::Running;
    desk.status_message = "answering +14155550100 (account 'Bakery') · 2 calls in progress".into();
    desk.hook_id = "3f9c2a7b5e1d4c6a8b0e2f4d6c8a0b1e".into();
    a.on_msg(Msg::Loaded {
        connections: all,
        marker: None,
        complete: true,
    });
    a.on_msg(Msg::RunsWith([(6, vec!["Support".to_string()])].into()));
    select(&mut a, "Desk voice");
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("RUNNING 2 calls"), "{s}");
    assert!(s.contains("Runs with agent Support"), "{s}");
    insta::assert_snapshot!(s);
}
