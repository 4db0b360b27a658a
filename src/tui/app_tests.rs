//! The console's idle behaviour: what wakes it and what costs a frame.

use super::*;
use crate::runtime::Presence;
use crate::store::{LeaseInfo, ProcessInfo};
use crate::tui::list::tests_support::conn;

fn app() -> App {
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "PostgreSQL".into(),
        operator: "ann".into(),
        role: Role::Editor,
    };
    App::new(header, Theme::plain(), false, (100, 1 << 16))
}

fn serve(seen_ms_ago: i64) -> ProcessInfo {
    ProcessInfo {
        id: "web1:7:1".into(),
        host: "web1".into(),
        pid: 7,
        role: "serve".into(),
        tenant: "default".into(),
        runs_channels: true,
        started_at: 1,
        seen_ms_ago,
    }
}

fn presence(db_now: Millis, seen_ms_ago: i64) -> Presence {
    Presence {
        runs_here: false,
        others: vec![serve(seen_ms_ago)],
        leases: Default::default(),
        db_now,
    }
}

#[test]
fn a_presence_that_only_moved_its_clocks_draws_no_frame() {
    let mut a = app();
    a.on_presence(presence(1_000, 0));
    assert!(a.dirty, "the first presence is shown");
    a.dirty = false;
    a.on_presence(presence(4_000, 2_900));
    assert!(!a.dirty, "same summary, same processes: nothing to draw");
    assert_eq!(
        a.presence.as_ref().unwrap().db_now,
        4_000,
        "kept for the next frame"
    );
    let mut two = presence(7_000, 0);
    two.others.push(ProcessInfo {
        id: "web2:8:1".into(),
        role: "console".into(),
        runs_channels: false,
        ..serve(0)
    });
    a.on_presence(two);
    assert!(a.dirty, "another process appeared in the header");
}

#[test]
fn a_selected_connection_losing_its_owner_is_drawn() {
    let mut a = app();
    let mut c = conn(1, "Sales bot", "telegram");
    c.desired = DesiredState::Running;
    c.status = Status::Running;
    a.list.set(vec![c]);
    a.list.selected = Some(1);
    let lease = |expires_in_ms| LeaseInfo {
        connection_id: 1,
        owner: "web1:7:1".into(),
        generation: 1,
        expires_in_ms,
        expires_at: 10_000,
    };
    let mut held = presence(1_000, 0);
    held.leases.insert(1, lease(9_000));
    a.on_presence(held);
    a.dirty = false;
    let mut lapsed = presence(20_000, 0);
    lapsed.leases.insert(1, lease(-10_000));
    a.on_presence(lapsed);
    assert!(a.dirty, "owner-gone now shows for the selected connection");
}

#[test]
fn an_idle_live_console_needs_no_tick_a_polling_or_waiting_one_does() {
    let mut a = app();
    a.fresh.live = true;
    assert!(a.needs_tick(), "before the first load");
    a.on_msg(Msg::Loaded {
        connections: vec![conn(1, "Sales bot", "telegram")],
        marker: None,
        complete: true,
    });
    assert!(
        !a.needs_tick(),
        "PostgreSQL announces changes: nothing to poll"
    );
    a.set_busy("Saving");
    assert!(a.needs_tick(), "the waiting notice counts seconds");
    a.busy = None;
    a.on_msg(Msg::DbDown("connection refused".into()));
    assert!(a.needs_tick(), "a lost database is retried");
    a.fresh.db_down = None;
    a.fresh.live = false;
    assert!(a.needs_tick(), "SQLite polls its change check");
}

#[test]
fn a_poll_that_finds_nothing_keeps_a_frame_still_owed() {
    let mut a = app();
    a.on_msg(Msg::Loaded {
        connections: vec![conn(1, "Sales bot", "telegram")],
        marker: None,
        complete: true,
    });
    a.dirty = false;
    // The Logs pane's lines arrive, then the answer to a poll before the frame is drawn
    // (frames wait up to 16 ms): the lines must still be drawn.
    a.toggle_logs();
    a.dirty = false;
    a.on_msg(Msg::Logs {
        id: 1,
        lines: vec![crate::model::LogLine {
            connection_id: 1,
            at: 1,
            level: "INFO".into(),
            message: "started".into(),
        }],
        last_id: 1,
    });
    a.on_msg(Msg::Unchanged);
    assert!(a.dirty, "the frame with the new lines was cancelled");
    a.dirty = false;
    a.on_msg(Msg::Unchanged);
    assert!(!a.dirty, "nothing new, nothing drawn");
}

/// With unsaved edits, choosing a deprecated type in the Add picker asks first; yes
/// opens the new connector of the type that was highlighted, not the one at the same
/// row of the list without deprecated types.
#[test]
fn discarding_edits_for_a_deprecated_type_opens_that_type() {
    use crate::tui::overlay::picker_types;
    use crossterm::event::{KeyCode, KeyEvent};
    let mut a = app();
    a.on_msg(Msg::Loaded {
        connections: vec![conn(1, "Sales bot", "telegram")],
        marker: None,
        complete: true,
    });
    a.on_key(KeyEvent::from(KeyCode::Tab));
    a.on_key(KeyEvent::from(KeyCode::Char('x')));
    assert!(a.form_dirty(), "the name field was edited");
    let all = picker_types(true);
    let i = all
        .iter()
        .position(|t| t.deprecated)
        .expect("a deprecated type");
    a.overlay = Some(Overlay::Picker {
        selected: i,
        show_deprecated: true,
    });
    a.on_key(KeyEvent::from(KeyCode::Enter));
    assert!(
        matches!(a.overlay, Some(Overlay::Confirm(_))),
        "asks before discarding"
    );
    a.on_key(KeyEvent::from(KeyCode::Char('y')));
    let form = a.details.form.as_ref().expect("a new connector form");
    assert!(form.is_new());
    assert_eq!(form.ty.key, all[i].key);
}

/// A flood while the console could not keep up (a terminal blocked on a slow link): the
/// log bus skips lines, and the open Logs pane reads them back from the store — at once,
/// and again once the writer has stored what it still held — instead of missing them.
#[test]
fn lines_the_log_bus_skipped_are_read_back_from_the_store() {
    let line = |at: i64, text: &str| crate::model::LogLine {
        connection_id: 1,
        at,
        level: "INFO".into(),
        message: text.into(),
    };
    let mut a = app();
    a.fresh.live = true;
    a.on_msg(Msg::Loaded {
        connections: vec![conn(1, "Sales bot", "telegram")],
        marker: None,
        complete: true,
    });
    a.toggle_logs();
    a.on_msg(Msg::Logs {
        id: 1,
        lines: vec![line(1, "started")],
        last_id: 5,
    });
    assert!(!a.needs_tick(), "nothing owed before the lag");

    let now = 10_000;
    let first = a.on_log_lag(now);
    assert!(
        matches!(first.as_slice(), [Command::MoreLogs { id: 1, after: 5 }]),
        "the skipped lines are read from the store at once"
    );
    assert!(a.needs_tick(), "a second read is owed");
    a.on_msg(Msg::MoreLogs {
        id: 1,
        lines: vec![(6, line(2, "flood 6"))],
    });
    let reads = |cmds: &[Command]| {
        cmds.iter()
            .filter(|c| matches!(c, Command::MoreLogs { .. }))
            .count()
    };
    assert_eq!(
        reads(&a.on_tick(now + 50, 1000)),
        0,
        "too soon: the writer may hold lines"
    );
    let later = a.on_tick(now + 300, 1000);
    assert!(
        matches!(later.as_slice(), [Command::MoreLogs { id: 1, after: 6 }]),
        "read again after the last line read"
    );
    a.on_msg(Msg::MoreLogs {
        id: 1,
        lines: vec![(7, line(3, "flood 7"))],
    });
    assert!(!a.needs_tick(), "nothing owed any more");
    assert_eq!(reads(&a.on_tick(now + 2_000, 1000)), 0);
}
