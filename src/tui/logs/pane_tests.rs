//! Tests of the Logs pane: what an operator would notice if it broke.
use super::*;

const AREA: Rect = Rect::new(0, 0, 60, 10);

fn entry(i: i64, level: Level, message: &str) -> LogEntry {
    LogEntry {
        at: i * 1000,
        level,
        message: message.to_string(),
    }
}

fn numbered(range: std::ops::Range<i64>) -> Vec<LogEntry> {
    range
        .map(|i| entry(i, Level::Info, &format!("line {i}")))
        .collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn typed(pane: &mut LogsPane, text: &str) {
    text.chars()
        .for_each(|c| _ = pane.handle_key(key(KeyCode::Char(c))));
}

fn draw_buf(pane: &mut LogsPane) -> Buffer {
    let mut buf = Buffer::empty(AREA);
    pane.render(AREA, &mut buf, &Theme::plain(), true, "telegram");
    buf
}

/// Every row of the pane as text, borders included.
fn draw(pane: &mut LogsPane) -> Vec<String> {
    let buf = draw_buf(pane);
    let row = |y| {
        (0..AREA.width)
            .map(|x| buf[(x, y)].symbol())
            .collect::<String>()
    };
    (0..AREA.height).map(row).collect()
}

/// The rows inside the border, without the border and trailing blanks.
fn body(pane: &mut LogsPane) -> Vec<String> {
    let inner = |r: &String| {
        r.chars()
            .skip(1)
            .take(58)
            .collect::<String>()
            .trim_end()
            .into()
    };
    draw(pane)[1..9].iter().map(inner).collect()
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push([entry(0, Level::Info, "a\tb\x1b[31mred\r\n日本語")]);
    // A wide character's second cell holds a blank in the buffer, hence "日 本 語".
    assert_eq!(
        body(&mut pane)[0],
        "00:00:00.000 INFO  a b [31mred  日 本 語"
    );
}

#[test]
fn follows_by_default_with_the_newest_line_at_the_bottom() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push(numbered(0..20));
    let rows = draw(&mut pane);
    assert!(rows[0].contains("Logs · telegram"), "{}", rows[0]);
    assert!(
        rows[9].contains("following · 20 lines · wrap off"),
        "{}",
        rows[9]
    );
    let body = body(&mut pane);
    assert_eq!(body.len(), 8);
    assert_eq!(body[7], "00:00:19.000 INFO  line 19");
    assert_eq!(body[0], "00:00:12.000 INFO  line 12");
    assert!(pane.following());
}

#[test]
fn empty_pane_shows_a_hint() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    assert!(body(&mut pane).iter().any(|r| r.contains(HINT)));
}

#[test]
fn scrolling_up_pauses_and_new_lines_do_not_move_the_view() {
    let mut pane = LogsPane::new(25, 1 << 20);
    pane.push(numbered(0..20));
    draw(&mut pane);
    pane.scroll(-3);
    assert!(!pane.following());
    let before = body(&mut pane);
    assert!(before[7].ends_with("line 16"), "{before:?}");

    // Evicts lines 0–4, all above the view.
    pane.push(numbered(20..30));
    assert_eq!(body(&mut pane), before);
    let status = pane.status_line();
    assert!(
        status.starts_with("paused — G or End to follow · 10 new"),
        "{status}"
    );
    assert!(status.contains("25 lines · 5 dropped"), "{status}");

    // Reaching the bottom does not resume follow by itself.
    pane.scroll(100);
    assert!(body(&mut pane)[7].ends_with("line 29"));
    assert!(!pane.following());
    pane.push(numbered(30..31));
    assert!(body(&mut pane)[7].ends_with("line 29"));

    assert_eq!(
        pane.handle_key(key(KeyCode::Char('g'))),
        PaneOutcome::Consumed
    );
    assert!(body(&mut pane)[0].ends_with("line 6"), "oldest line kept");
    assert_eq!(
        pane.handle_key(key(KeyCode::Char('G'))),
        PaneOutcome::Consumed
    );
    assert!(pane.following());
    assert!(body(&mut pane)[7].ends_with("line 30"));
    pane.handle_key(key(KeyCode::Up));
    assert!(!pane.following());
    pane.handle_key(key(KeyCode::End));
    assert!(pane.following());
}

#[test]
fn search_highlights_and_moves_between_matches() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push((0..20).map(|i| {
        let timeout = if i % 5 == 0 { " Timeout waiting" } else { "" };
        entry(i, Level::Info, &format!("line {i}{timeout}"))
    }));
    draw(&mut pane);
    pane.handle_key(key(KeyCode::Char('/')));
    typed(&mut pane, "timeOUT");
    assert!(pane.search_active());
    assert!(pane.status_line().starts_with("/timeOUT█"));
    assert!(pane.following(), "typing alone does not move the view");
    pane.handle_key(key(KeyCode::Enter));
    assert!(!pane.search_active());
    assert!(!pane.following(), "jumping to a match pauses");
    assert!(
        pane.status_line().ends_with("/timeOUT 4/4"),
        "{}",
        pane.status_line()
    );

    // The match on screen ("line 15 Timeout…") is highlighted, other text is not.
    let buf = draw_buf(&mut pane);
    let text = |y, xs: std::ops::Range<u16>| xs.map(|x| buf[(x, y)].symbol()).collect::<String>();
    let y = (1..9).find(|&y| text(y, 20..27) == "line 15");
    let y = y.expect("line 15 on screen");
    let reversed = |x| buf[(x, y)].modifier.contains(Modifier::REVERSED);
    assert!((28..35).all(reversed), "Timeout is highlighted");
    assert!(!reversed(27) && !reversed(35) && !reversed(20));

    pane.handle_key(key(KeyCode::Char('N')));
    assert!(pane.status_line().ends_with("/timeOUT 3/4"));
    assert!(
        body(&mut pane)
            .iter()
            .any(|r| r.ends_with("line 10 Timeout waiting"))
    );
    pane.handle_key(key(KeyCode::Char('n')));
    assert!(pane.status_line().ends_with("/timeOUT 4/4"));
    pane.handle_key(key(KeyCode::Char('n')));
    assert!(
        pane.status_line().ends_with("/timeOUT 1/4"),
        "wraps to the oldest"
    );
    assert!(
        body(&mut pane)
            .iter()
            .any(|r| r.ends_with("line 0 Timeout waiting"))
    );

    // Esc while typing cancels and clears; Esc otherwise closes the pane.
    pane.handle_key(key(KeyCode::Char('/')));
    typed(&mut pane, "line");
    assert_eq!(pane.handle_key(key(KeyCode::Esc)), PaneOutcome::Consumed);
    assert!(!pane.search_active() && !pane.status_line().contains('/'));
    assert_eq!(pane.handle_key(key(KeyCode::Esc)), PaneOutcome::Close);
}

#[test]
fn level_filter_hides_info_at_warn_and_above() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push((0..10).map(|i| {
        let level = if i % 2 == 0 { Level::Info } else { Level::Warn };
        entry(i, level, &format!("line {i}"))
    }));
    pane.handle_key(key(KeyCode::Char('v')));
    assert!(pane.status_line().contains("level ≥ INFO"));
    pane.handle_key(key(KeyCode::Char('v')));
    assert!(pane.status_line().contains("level ≥ WARN"));
    let body = body(&mut pane);
    assert!(body.iter().all(|r| !r.contains("INFO")), "{body:?}");
    assert_eq!(body.iter().filter(|r| r.contains("WARN ")).count(), 5);
    pane.handle_key(key(KeyCode::Char('v')));
    pane.handle_key(key(KeyCode::Char('v')));
    assert!(!pane.status_line().contains("level"));
}

#[test]
fn wrap_shows_the_end_of_a_long_line_and_caps_huge_ones() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push(numbered(0..10));
    pane.push([entry(
        10,
        Level::Info,
        &format!("{}THE-END", "x".repeat(100)),
    )]);
    let cut = body(&mut pane);
    assert!(
        cut[7].ends_with('…') && !cut.concat().contains("THE-END"),
        "{cut:?}"
    );

    pane.handle_key(key(KeyCode::Char('w')));
    assert!(pane.status_line().contains("wrap on"));
    let wrapped = body(&mut pane);
    assert!(wrapped[7].ends_with("THE-END"), "{wrapped:?}");
    assert!(
        wrapped[5].starts_with("00:00:10.000 INFO  xxx"),
        "{wrapped:?}"
    );

    // 90,000 characters: drawn as a paneful of rows at most, then "…".
    pane.push([entry(11, Level::Info, &"y".repeat(90_000))]);
    let capped = body(&mut pane);
    assert!(capped[7].ends_with('…'), "{capped:?}");
    assert!(
        capped[0].starts_with("00:00:11.000"),
        "a paneful: {capped:?}"
    );

    // Paused at the end with the top line's start scrolled off: new lines arrive
    // below and not a row moves.
    pane.push([entry(12, Level::Info, &"w".repeat(100))]);
    pane.scroll(-1);
    pane.scroll(1);
    let paused = body(&mut pane);
    assert!(
        paused[4].ends_with("y…") && paused[7].ends_with("www"),
        "{paused:?}"
    );
    pane.push(numbered(13..20));
    assert_eq!(body(&mut pane), paused);
}

#[test]
fn a_one_megabyte_line_is_truncated_and_drawn_cut() {
    let mut pane = LogsPane::new(1000, 256 * 1024);
    pane.push([entry(0, Level::Error, &"z".repeat(1 << 20))]);
    assert!(pane.ring.bytes() <= 256 * 1024);
    // Drawn cut in both wrap modes (its speed is measured by the console benchmark).
    for _ in 0..2 {
        assert!(body(&mut pane).iter().any(|r| r.ends_with('…')));
        pane.handle_key(key(KeyCode::Char('w')));
    }
    pane.handle_key(key(KeyCode::Char('/')));
    typed(&mut pane, "truncated");
    pane.handle_key(key(KeyCode::Enter));
    assert!(pane.status_line().ends_with("/truncated 1/1"));
}

#[test]
fn export_writes_filtered_lines_to_a_private_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telegram.log");
    let mut pane = LogsPane::new(1000, 1 << 20);
    let at = 1_795_543_381_123;
    pane.push(
        [Level::Info, Level::Warn, Level::Error].map(|level| LogEntry {
            at,
            level,
            message: format!("{} happened", level.as_str().to_lowercase()),
        }),
    );
    typed(&mut pane, "vv");
    assert_eq!(pane.export(&path).unwrap(), 2);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "2026-11-24 18:03:01.123 WARN warn happened\n2026-11-24 18:03:01.123 ERROR error happened\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = pane.export(&path).unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "not overwritten"
    );
}

#[test]
fn leaves_app_keys_to_the_app() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    for code in [
        KeyCode::Char('q'),
        KeyCode::Char('?'),
        KeyCode::Char('l'),
        KeyCode::Tab,
    ] {
        assert_eq!(pane.handle_key(key(code)), PaneOutcome::NotHandled);
    }
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(pane.handle_key(ctrl_c), PaneOutcome::NotHandled);
    assert_eq!(
        pane.handle_key(key(KeyCode::Char('x'))),
        PaneOutcome::SaveRequested
    );
    pane.handle_key(key(KeyCode::Char('/')));
    assert_eq!(
        pane.handle_key(key(KeyCode::Char('q'))),
        PaneOutcome::Consumed
    );
    assert_eq!(pane.handle_key(ctrl_c), PaneOutcome::NotHandled);
    assert_eq!(thousands(1_234_567), "1,234,567");
}

#[test]
fn wrap_shows_more_than_four_rows_of_a_long_line() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    let words: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
    pane.push([entry(
        0,
        Level::Info,
        &format!("{} THE-END", words.join(" ")),
    )]);
    pane.handle_key(key(KeyCode::Char('w')));
    let rows = body(&mut pane);
    assert!(
        rows.iter().any(|r| r.ends_with("THE-END")),
        "six rows of a 58-column pane, all shown: {rows:?}"
    );
}

#[test]
fn left_and_right_scroll_unwrapped_lines_and_enter_opens_the_line() {
    let mut pane = LogsPane::new(1000, 1 << 20);
    pane.push(numbered(0..3));
    pane.push([entry(3, Level::Warn, &format!("{}THE-END", "x".repeat(60)))]);
    assert!(!body(&mut pane).concat().contains("THE-END"));
    for _ in 0..4 {
        pane.handle_key(key(KeyCode::Right));
    }
    let rows = body(&mut pane);
    assert!(rows[3].ends_with("THE-END"), "{rows:?}");
    assert!(
        rows[3].starts_with("00:00:03.000 WARN  …x"),
        "time and level stay, the hidden start is marked: {rows:?}"
    );
    assert!(
        pane.status_line().contains("→ column 33"),
        "{}",
        pane.status_line()
    );
    for _ in 0..4 {
        pane.handle_key(key(KeyCode::Left));
    }
    assert!(!body(&mut pane).concat().contains("THE-END"));
    assert!(!pane.status_line().contains('→'));

    // Enter opens the newest line on screen, or the current match.
    assert_eq!(pane.handle_key(key(KeyCode::Enter)), PaneOutcome::OpenLine);
    assert!(pane.selected_line().unwrap().message.ends_with("THE-END"));
    pane.handle_key(key(KeyCode::Char('/')));
    typed(&mut pane, "line 1");
    pane.handle_key(key(KeyCode::Enter));
    assert_eq!(pane.selected_line().unwrap().message, "line 1");
    // A click on a row: the line drawn there (row 0 is the border).
    body(&mut pane);
    assert_eq!(pane.line_at_row(1).unwrap().message, "line 0");
    assert!(pane.line_at_row(0).is_none());
}
