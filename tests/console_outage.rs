//! A lost database: the console keeps what it has, shows a banner, and recovers by
//! itself. PostgreSQL is reached through a local TCP relay the test can cut.

mod common;

use flametree::channels::{Channels, Draft};
use flametree::permission::{Operator, Role};
use flametree::secrets::{KeySource, MasterKey, SecretString};
use flametree::store;
use flametree::tui::app::{App, HeaderInfo};
use flametree::tui::theme::Theme;
use flametree::tui::worker::{self, Command, Msg};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Relays 127.0.0.1:<port> to PostgreSQL at `target` until aborted; aborting drops every
/// connection.
struct Relay {
    port: u16,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(port: u16, target: String) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { port, task }
    }

    fn cut(self) -> u16 {
        self.task.abort();
        self.port
    }
}

async fn run(app: &mut App, ch: &Channels, cmd: Command) -> Vec<String> {
    let mut kinds = Vec::new();
    for msg in worker::execute(ch, cmd).await {
        kinds.push(match &msg {
            Msg::Loaded { .. } => "loaded".to_string(),
            Msg::Unchanged => "unchanged".to_string(),
            Msg::DbDown(_) => "down".to_string(),
            other => format!("{other:?}"),
        });
        app.on_msg(msg);
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_survives_losing_the_database_and_recovers_by_itself() {
    let db = common::PgDb::create().await;
    let relay = Relay::start(0, db.addr()).await;
    let url = db
        .url
        .replace(&db.addr(), &format!("127.0.0.1:{}", relay.port));
    let s = store::open(&url, 1, 2).await.unwrap();
    let tenant = s.tenant("default").await.unwrap();
    let op = Operator {
        name: "ann".into(),
        role: Role::Editor,
        role_reason: "test".into(),
    };
    let ch = Channels::new(
        s,
        tenant,
        op,
        Ok(Arc::new(MasterKey::from_bytes([1; 32], KeySource::Config))),
    );
    let mut draft = Draft {
        type_key: "telegram".into(),
        name: "Sales bot".into(),
        ..Default::default()
    };
    draft
        .secrets
        .insert("bot_token".into(), SecretString::new(common::TG_TOKEN));
    ch.add(&draft).await.unwrap();

    let header = HeaderInfo {
        tenant: "default".into(),
        database: "PostgreSQL".into(),
        operator: "ann".into(),
        role: Role::Editor,
    };
    let mut app = App::new(header, Theme::plain(), false, (100, 1 << 16));
    assert_eq!(run(&mut app, &ch, Command::Reload).await, ["loaded"]);
    assert_eq!(app.list.all.len(), 1);

    let port = relay.cut();
    let poll = Command::Poll {
        last: app.fresh.marker,
    };
    assert_eq!(run(&mut app, &ch, poll).await, ["down"]);
    assert!(app.fresh.db_down.is_some(), "the banner shows");
    assert_eq!(app.list.all.len(), 1, "the last known list stays on screen");

    // An action while the database is down is reported, not lost silently.
    let conn = app.list.all[0].clone();
    let kinds = run(
        &mut app,
        &ch,
        Command::SetDesired {
            connection: Box::new(conn),
            desired: flametree::model::DesiredState::Running,
        },
    )
    .await;
    assert_eq!(kinds, ["down"]);

    let _relay = Relay::start(port, db.addr()).await;
    let mut recovered = false;
    for _ in 0..20 {
        let poll = Command::Poll {
            last: app.fresh.marker,
        };
        let kinds = run(&mut app, &ch, poll).await;
        if kinds.iter().any(|k| k == "loaded" || k == "unchanged") {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(recovered, "the console reconnects by itself");
    assert!(app.fresh.db_down.is_none(), "the banner goes away");
}
