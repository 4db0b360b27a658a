//! The Web Widget on the console's agents screen, driven key by key against a real
//! store (every command the keys produce executed by the worker and its messages fed
//! back, as the event loop does): editing the settings, the snippet, the live visitors
//! and the widget's recent log — on SQLite and PostgreSQL.

mod common;
mod widget_support;

use common::Be;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flametree::model::Status;
use flametree::permission::Role;
use flametree::tui::app::{App, HeaderInfo};
use flametree::tui::theme::Theme;
use flametree::tui::worker::{self, Command};
use flametree::widget::Limits;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::VecDeque;
use widget_support::*;

struct Console {
    app: App,
    env: common::ChannelsEnv,
}

impl Console {
    async fn run(&mut self, commands: Vec<Command>) {
        let mut queue: VecDeque<Command> = commands.into();
        while let Some(cmd) = queue.pop_front() {
            for msg in worker::execute(&self.env.channels, cmd).await {
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

    fn flash(&self) -> String {
        self.app
            .flash
            .as_ref()
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    }

    fn screen(&mut self, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| flametree::tui::view::draw(f, &mut self.app))
            .unwrap();
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..h {
            for x in 0..w {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

async fn the_agents_screen_edits_and_watches_the_widget(be: Be) {
    let env = common::channels_env_on(be).await;
    let h = host(&env, Limits::default()).await;
    let edit = common::runtime::echo_edit("You said: ");
    env.channels.create_agent("Shop", edit).await.unwrap();
    let header = HeaderInfo {
        tenant: "default".into(),
        database: "test".into(),
        operator: "tester".into(),
        role: Role::Editor,
    };
    let mut c = Console {
        app: App::new(header, Theme::plain(), false, (1000, 1 << 20)),
        env,
    };
    c.app.webhook_base = h.ingress.public_base.clone();
    c.run(vec![Command::Reload]).await;
    c.key(KeyCode::Char('A')).await;
    let s = c.screen(120, 36);
    assert!(
        s.contains("off — w sets the sites that may embed it"),
        "{s}"
    );

    c.key(KeyCode::Char('w')).await;
    let s = c.screen(120, 36);
    assert!(s.contains("Web Widget · Shop"), "{s}");
    c.type_text(SHOP).await; // Allowed origins
    c.key(KeyCode::Tab).await; // Title
    c.type_text("Ask us").await;
    c.key(KeyCode::Tab).await; // Greeting
    c.type_text("Hi!").await;
    c.key(KeyCode::Tab).await; // Colour
    c.type_text("red").await;
    c.ctrl('s').await;
    assert!(
        c.flash().starts_with(
            "Not saved: Web Widget Colour 'red' does not look right: expected a hex colour"
        ),
        "{}",
        c.flash()
    );
    c.ctrl('u').await;
    c.type_text("#1F6FEB").await;
    c.key(KeyCode::Tab).await; // Position
    c.key(KeyCode::Char(' ')).await;
    c.ctrl('s').await;
    assert!(
        c.flash()
            .starts_with("Saved the Web Widget of agent 'Shop'."),
        "{}",
        c.flash()
    );
    let agent = c.env.channels.find_agent("Shop").await.unwrap();
    let w: serde_json::Value = serde_json::from_str(&agent.widget).unwrap();
    assert_eq!(
        w,
        serde_json::json!({"allowed_origins": SHOP, "title": "Ask us", "greeting": "Hi!",
            "colour": "#1F6FEB", "position": "bottom-left"})
    );
    let conn = flametree::widget::connection_of(&c.env.channels, &agent)
        .await
        .unwrap()
        .unwrap();
    let snippet = flametree::widget::snippet(&h.ingress.public_base, &conn.hook_id);
    let s = c.screen(180, 36);
    assert!(s.contains(&snippet), "the snippet to paste:\n{s}");
    assert!(
        s.contains("offline: visitors are told so until Start agent"),
        "{s}"
    );

    // Started: the panel counts the visitors and shows what the widget logged.
    c.key(KeyCode::Char('s')).await;
    running_widget(&c.env, &agent).await;
    let chat = flametree::widget::chat_url(&h.ingress.public_base, &conn.hook_id);
    let mut visitor = open_chat(&chat, SHOP, "0123456789abcdef").await.unwrap();
    frame_of(&mut visitor, "status").await;
    assert_eq!(
        open_chat(&chat, "https://evil.example.net", "0123456789abcdef")
            .await
            .err(),
        Some(403)
    );
    common::runtime::log_text(&c.env, &conn.name, "evil.example.net").await;
    let tenant = c.env.channels.tenant().id;
    let cmds = c.app.on_change(
        flametree::store::feed::Change::Log {
            connection_id: conn.id,
        },
        tenant,
    );
    assert!(!cmds.is_empty(), "a change of the widget's log reloads it");
    c.run(cmds).await;
    let s = c.screen(180, 36);
    assert!(s.contains("serving the web widget · 1 live visitor"), "{s}");
    assert!(
        s.contains("WARN refused a page on https://evil.example.net (403)"),
        "{s}"
    );
    // The widget's connection stays off the Settings › Channels list.
    c.key(KeyCode::Char('A')).await;
    let s = c.screen(180, 36);
    assert!(!s.contains("Web Widget · Shop"), "{s}");
    let _ = wait_status(&c.env, &conn.name, Status::Running).await;
    h.shutdown().await;
}

const SHOP: &str = "http://shop.example.test";

on_both!(the_agents_screen_edits_and_watches_the_widget);
