//! Changes made by other processes reach a console live: PostgreSQL announces them
//! (LISTEN/NOTIFY) and the console reads only what changed; SQLite consoles look with a
//! cheap change check every tick instead.

mod common;

use flametree::channels::Channels;
use flametree::model::{Status, now_millis};
use flametree::permission::{Operator, Role};
use flametree::secrets::{KeySource, MasterKey};
use flametree::store::feed::{Change, ChangeFeed};
use flametree::tui::app::{App, HeaderInfo};
use flametree::tui::theme::Theme;
use flametree::tui::worker::{self, Command};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn channels_on(url: &str) -> Arc<Channels> {
    let s = flametree::store::open(url, 5, 2).await.unwrap();
    let tenant = s.tenant("default").await.unwrap();
    let operator = Operator {
        name: "ann".into(),
        role: Role::Editor,
        role_reason: "test".into(),
    };
    let key = MasterKey::from_base64(common::KEY_B64, KeySource::Config).unwrap();
    Arc::new(Channels::new(s, tenant, operator, Ok(Arc::new(key))))
}

/// A console's state and worker, fed by the database's announcements like the real
/// event loop.
struct Console {
    app: App,
    channels: Arc<Channels>,
    changes: tokio::sync::broadcast::Receiver<Change>,
}

impl Console {
    async fn run(&mut self, commands: Vec<Command>) -> usize {
        let mut queue: VecDeque<Command> = commands.into();
        let mut ran = 0;
        while let Some(cmd) = queue.pop_front() {
            ran += 1;
            for msg in worker::execute(&self.channels, cmd).await {
                queue.extend(self.app.on_msg(msg));
            }
        }
        ran
    }

    /// Handles announcements until `ok` holds, or fails after `within`.
    async fn until(&mut self, within: Duration, ok: impl Fn(&Console) -> bool) {
        let deadline = Instant::now() + within;
        while !ok(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let change = tokio::time::timeout(left, self.changes.recv())
                .await
                .expect("in time")
                .unwrap();
            let cmds = self.app.on_change(change, self.channels.tenant().id);
            self.run(cmds).await;
        }
    }

    fn pane(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pane.log");
        self.app.logs.export(&path).unwrap();
        std::fs::read_to_string(path).unwrap()
    }
}

async fn console(url: &str, feed: &ChangeFeed) -> Console {
    let channels = channels_on(url).await;
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "PostgreSQL".into(),
        operator: "ann".into(),
        role: Role::Editor,
    };
    let mut app = App::new(header, Theme::plain(), false, (1000, 1 << 20));
    app.fresh.live = true;
    app.tenant_id = channels.tenant().id;
    let mut c = Console {
        app,
        channels,
        changes: feed.subscribe(),
    };
    c.run(vec![Command::Reload]).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_s_log_lines_and_status_reach_the_console_within_a_second() {
    let db = common::PgDb::create().await;
    // "serve": another process on the same database.
    let serve = channels_on(&db.url).await;
    let draft = common::telegram_draft("Alpha", common::TG_TOKEN, "http://127.0.0.1:9");
    let alpha = serve.add(&draft).await.unwrap().connection;
    let feed = ChangeFeed::start(&db.url)
        .await
        .expect("PostgreSQL has a feed");
    let mut c = console(&db.url, &feed).await;
    assert_eq!(c.app.list.get(alpha.id).unwrap().status, Status::Stopped);
    // Open the Logs pane on Alpha.
    let open = c.app.follow_logs_to_selection().into_iter().collect();
    c.run(open).await;
    assert_eq!(c.app.logs.for_id, Some(alpha.id));

    // No polling: a tick asks the database nothing while it announces changes.
    assert!(c.app.on_tick(now_millis() + 60_000, 1000).is_empty());

    let t0 = Instant::now();
    serve
        .log(alpha.id, "INFO", "message 42:7 from 42 (written by serve)")
        .await;
    c.until(Duration::from_secs(1), |c| {
        c.pane().contains("written by serve")
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    let t0 = Instant::now();
    serve
        .store()
        .set_status(alpha.id, Status::Running, "polling as @alpha_bot")
        .await
        .unwrap();
    c.until(Duration::from_secs(1), |c| {
        c.app.list.get(alpha.id).unwrap().status == Status::Running
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(
        c.app.list.get(alpha.id).unwrap().status_message,
        "polling as @alpha_bot"
    );

    // A line this console already shows (its own process's) is not shown twice when
    // the store announces it.
    let own = flametree::model::LogLine {
        connection_id: alpha.id,
        at: now_millis(),
        level: "INFO".into(),
        message: "written here".into(),
    };
    c.app.on_log_lines(std::slice::from_ref(&own));
    serve.store().append_logs(&[own], 100).await.unwrap();
    serve.log(alpha.id, "INFO", "and a marker after it").await;
    c.until(Duration::from_secs(2), |c| {
        c.pane().contains("and a marker after it")
    })
    .await;
    assert_eq!(c.pane().matches("written here").count(), 1, "{}", c.pane());

    // A connection deleted elsewhere leaves the list.
    serve
        .delete(&serve.find("Alpha").await.unwrap())
        .await
        .unwrap();
    c.until(Duration::from_secs(1), |c| {
        c.app.list.get(alpha.id).is_none()
    })
    .await;
}

/// Waits (at most `limit`) for `ok`, looking every 10 ms.
async fn until(limit: Duration, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The routes a runtime keeps rely on the feed saying whether it listens: a feed whose
/// database connection is killed says it does not, listens again by itself, says
/// Resync once it does (what was announced in between is lost), and delivers the
/// changes made after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_lost_its_connection_says_so_and_resyncs_once_it_listens_again() {
    let db = common::PgDb::create().await;
    let serve = channels_on(&db.url).await;
    let feed = ChangeFeed::start(&db.url)
        .await
        .expect("PostgreSQL has a feed");
    let mut rx = feed.subscribe();
    until(Duration::from_secs(10), "listening", || feed.listening()).await;
    while rx.try_recv().is_ok() {}

    let mut kill = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut kill)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one listening backend");
    until(Duration::from_secs(5), "says it does not listen", || {
        !feed.listening()
    })
    .await;
    listens_again_resynced(&feed, &mut rx, &serve, Duration::from_secs(10)).await;
}

/// After a lost connection the feed listens again (within `within`), having announced
/// `Resync` twice (at the loss and once listening), and announces what changes next.
async fn listens_again_resynced(
    feed: &ChangeFeed,
    rx: &mut tokio::sync::broadcast::Receiver<Change>,
    serve: &Channels,
    within: Duration,
) {
    until(within, "listens again", || feed.listening()).await;
    let mut resyncs = 0;
    while let Ok(c) = rx.try_recv() {
        resyncs += usize::from(c == Change::Resync);
    }
    assert_eq!(resyncs, 2, "at the loss and once listening again");

    let draft = common::telegram_draft("Alpha", common::TG_TOKEN, "http://127.0.0.1:9");
    let alpha = serve.add(&draft).await.unwrap().connection;
    let next = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Change::Connection { id, .. }) = rx.recv().await {
                return id;
            }
        }
    })
    .await
    .expect("a change made after the feed listens again is announced");
    assert_eq!(next, alpha.id);
}

/// A TCP relay to PostgreSQL whose connections can go silent: their bytes stop
/// flowing both ways while the sockets stay open, as when a firewall forgets the
/// connection or the server's host vanishes. Connections made later flow.
struct SilencingRelay {
    port: u16,
    generation: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SilencingRelay {
    async fn start(target: String) -> SilencingRelay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let current = generation.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (in_r, in_w) = inbound.into_split();
                let (out_r, out_w) = outbound.into_split();
                conns.spawn(pass_on(in_r, out_w, current.clone(), born));
                conns.spawn(pass_on(out_r, in_w, current.clone(), born));
            }
        });
        SilencingRelay {
            port,
            generation,
            task,
        }
    }

    /// Every connection open now goes silent.
    fn silence(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies one direction of a relayed connection until either side closes, or holds
/// both open and passes nothing once the relay's generation moved past `born`.
async fn pass_on(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    current: Arc<std::sync::atomic::AtomicU64>,
    born: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if current.load(std::sync::atomic::Ordering::SeqCst) != born {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for SilencingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A feed whose connection goes silent (no close, no reset) notices within about 15 s
/// (10 s without a notification, then a query unanswered for 5 s), says it does not
/// listen (so routes are kept for a second, not a minute), listens again on a new
/// connection and resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_connection_went_silent_notices_and_listens_again() {
    let db = common::PgDb::create().await;
    let serve = channels_on(&db.url).await;
    let relay = SilencingRelay::start(db.addr()).await;
    let url = db
        .url
        .replace(&db.addr(), &format!("127.0.0.1:{}", relay.port));
    let feed = ChangeFeed::start(&url)
        .await
        .expect("PostgreSQL has a feed");
    let mut rx = feed.subscribe();
    until(Duration::from_secs(10), "listening", || feed.listening()).await;
    while rx.try_recv().is_ok() {}

    relay.silence();
    let silenced = Instant::now();
    until(Duration::from_secs(30), "says it does not listen", || {
        !feed.listening()
    })
    .await;
    let noticed = silenced.elapsed();
    assert!(
        noticed >= Duration::from_secs(4),
        "not before its check went unanswered: {noticed:?}"
    );
    listens_again_resynced(&feed, &mut rx, &serve, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_has_no_feed_and_the_console_polls_its_cheap_change_check() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flametree.db", dir.path().display());
    assert!(ChangeFeed::start(&url).await.is_none());
    let channels = channels_on(&url).await;
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "SQLite".into(),
        operator: "ann".into(),
        role: Role::Editor,
    };
    let mut app = App::new(header, Theme::plain(), false, (1000, 1 << 20));
    for m in worker::execute(&channels, Command::Reload).await {
        app.on_msg(m);
    }
    let polls = app.on_tick(now_millis() + 60_000, 1000);
    assert!(
        polls.iter().any(|c| matches!(c, Command::Poll { .. })),
        "{polls:?}"
    );
}

/// A console of its own on `url`, after its first load: live on PostgreSQL (the feed),
/// polling on SQLite.
struct Watcher {
    app: App,
    channels: Arc<Channels>,
    changes: Option<tokio::sync::broadcast::Receiver<Change>>,
    _feed: Option<ChangeFeed>,
}

impl Watcher {
    async fn open(url: &str) -> Watcher {
        let feed = ChangeFeed::start(url).await;
        let channels = channels_on(url).await;
        let header = HeaderInfo {
            tenant: "default".into(),
            database: "test".into(),
            operator: "ann".into(),
            role: Role::Editor,
        };
        let mut app = App::new(header, Theme::plain(), false, (1000, 1 << 20));
        app.fresh.live = feed.is_some();
        app.tenant_id = channels.tenant().id;
        let mut w = Watcher {
            app,
            channels,
            changes: feed.as_ref().map(|f| f.subscribe()),
            _feed: feed,
        };
        w.run(vec![Command::Reload]).await;
        w
    }

    async fn run(&mut self, commands: Vec<Command>) {
        let mut queue: VecDeque<Command> = commands.into();
        while let Some(cmd) = queue.pop_front() {
            for msg in worker::execute(&self.channels, cmd).await {
                queue.extend(self.app.on_msg(msg));
            }
        }
    }

    fn key(&mut self, code: crossterm::event::KeyCode) {
        let cmds = self.app.on_key(crossterm::event::KeyEvent::from(code));
        assert!(cmds.iter().all(|c| matches!(c, Command::Diagnose { .. })));
    }

    /// Takes in what other processes changed — announced on PostgreSQL, polled on
    /// SQLite — until `ok` holds. The timeout only turns a hang into a failure.
    async fn until(&mut self, ok: impl Fn(&App) -> bool) {
        let started = now_millis();
        let mut clock = started;
        while !ok(&self.app) {
            let cmds = match &mut self.changes {
                Some(rx) => {
                    let change = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                        .await
                        .expect("an announcement")
                        .unwrap();
                    self.app.on_change(change, self.channels.tenant().id)
                }
                None => {
                    clock += 60_000;
                    assert!(
                        clock - started < 50 * 60_000,
                        "50 change checks and still not there"
                    );
                    self.app.on_tick(clock, 1000)
                }
            };
            self.run(cmds).await;
        }
    }
}

/// Another process changes a status and renames a connection while this console has
/// a search typed and a connection selected: both show, in their places, and the
/// search, the selection and the counts stay right.
async fn changes_from_elsewhere_keep_the_search_and_the_selection(be: common::Be) {
    use crossterm::event::KeyCode;
    let env = common::channels_env_on(be).await;
    let mut ids = Vec::new();
    for name in ["Alpha", "Bravo", "Charlie", "Delta"] {
        let draft = common::telegram_draft(name, common::TG_TOKEN, "http://127.0.0.1:9");
        ids.push(env.channels.add(&draft).await.unwrap().connection);
    }
    let (alpha, charlie) = (ids[0].clone(), ids[2].clone());
    let mut w = Watcher::open(&env.url).await;
    w.key(KeyCode::Char('/'));
    for c in "ha".chars() {
        w.key(KeyCode::Char(c));
    }
    w.key(KeyCode::Enter);
    w.app.list.selected = Some(charlie.id);
    assert_eq!(w.app.list.visible_count(), 2, "Alpha and Charlie");

    env.channels
        .store()
        .set_status(charlie.id, Status::Error, "Telegram rejected the bot token")
        .await
        .unwrap();
    let mut renamed = flametree::channels::Draft::from_connection(&alpha);
    renamed.name = "Zulu".into();
    env.channels.edit(&alpha, &renamed).await.unwrap();
    w.until(|a| {
        a.list.get(charlie.id).unwrap().status == Status::Error
            && a.list.get(alpha.id).unwrap().name == "Zulu"
    })
    .await;

    let l = &w.app.list;
    assert_eq!(l.query, "ha");
    assert_eq!(l.visible_count(), 1, "Zulu no longer matches");
    assert_eq!(l.selected, Some(charlie.id));
    assert_eq!(l.status_counts(), (0, 1));
    assert_eq!(
        l.selected_connection().unwrap().status_message,
        "Telegram rejected the bot token"
    );
    w.key(KeyCode::Char('/'));
    w.key(KeyCode::Esc);
    let names: Vec<&str> = w
        .app
        .list
        .rows
        .iter()
        .filter_map(|r| match r {
            flametree::tui::list::Row::Item(i) => Some(w.app.list.all[*i].name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Bravo", "Charlie", "Delta", "Zulu"]);
    assert_eq!(w.app.list.selected, Some(charlie.id));
}

on_both!(changes_from_elsewhere_keep_the_search_and_the_selection);

fn pane_text(app: &App) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pane.log");
    app.logs.export(&path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

/// A console beside `flametree serve` follows serve's log lines in the open Logs pane
/// on either database — announced on PostgreSQL, asked for with each change check on
/// SQLite — and a line the console's own process showed live is not shown twice.
async fn another_process_s_log_lines_follow_in_the_open_logs_pane(be: common::Be) {
    let env = common::channels_env_on(be).await;
    let draft = common::telegram_draft("Alpha", common::TG_TOKEN, "http://127.0.0.1:9");
    let alpha = env.channels.add(&draft).await.unwrap().connection;
    let mut w = Watcher::open(&env.url).await;
    w.app.list.selected = Some(alpha.id);
    let open = w.app.follow_logs_to_selection().into_iter().collect();
    w.run(open).await;
    assert_eq!(w.app.logs.for_id, Some(alpha.id));
    assert!(!pane_text(&w.app).contains("written by serve"));

    env.channels
        .log(alpha.id, "INFO", "message 42:7 from 42 (written by serve)")
        .await;
    w.until(|a| pane_text(a).contains("written by serve")).await;

    // A line this console's own runtime showed live, then stored.
    let own = flametree::model::LogLine {
        connection_id: alpha.id,
        at: now_millis(),
        level: "INFO".into(),
        message: "written here".into(),
    };
    w.app.on_log_lines(std::slice::from_ref(&own));
    env.channels.store().append_logs(&[own], 100).await.unwrap();
    env.channels
        .log(alpha.id, "INFO", "and a marker after it")
        .await;
    w.until(|a| pane_text(a).contains("and a marker after it"))
        .await;
    let pane = pane_text(&w.app);
    assert_eq!(pane.matches("written here").count(), 1, "{pane}");
    assert_eq!(pane.matches("written by serve").count(), 1, "{pane}");
}

on_both!(another_process_s_log_lines_follow_in_the_open_logs_pane);
