//! The Web Widget in a real browser (Debian's headless Chromium, driven through
//! chromedriver): a shop's page on an allowed origin loads the script, the visitor
//! types, the agent's answer appears; a reload keeps the conversation; markup is shown
//! as text; a page on another origin is refused; a stopped agent's widget says it is
//! offline — on SQLite and PostgreSQL.
//!
//! `FLAMETREE_WIDGET_SCREENSHOT=docs/widget.png` saves the open widget (the README's
//! picture).

mod common;
mod widget_support;

use common::Be;
use flametree::widget::{self, Limits};
use serde_json::json;
use widget_support::webdriver::Browser;
use widget_support::*;

/// A shop's page that embeds the widget with the snippet `agents show` prints.
async fn shop_page(snippet: String) -> std::net::SocketAddr {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Demo shop</title></head>\
         <body style=\"font-family:sans-serif;margin:40px;background:#fafafa\">\
         <h1>Demo shop</h1><p>Hand-made lamps and candles, shipped across Europe.</p>\
         {snippet}</body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The widget's bubbles as [class, text] pairs.
const BUBBLES: &str = "return Array.from(document.querySelectorAll('#ftw-log .ftw-msg'))\
    .map(e => [e.classList.contains('ftw-me') ? 'me' : 'agent', e.textContent]);";

/// Waits until the last bubble is the agent's and reads `text`.
async fn answered(b: &Browser, text: &str) {
    let script = format!(
        "const l = Array.from(document.querySelectorAll('#ftw-log .ftw-agent')); \
         return l.length && l[l.length - 1].textContent === {} ? true : null;",
        json!(text)
    );
    b.wait_for(&format!("the answer '{text}'"), &script).await;
}

async fn a_visitor_chats_on_the_shop_s_page(be: Be) {
    let env = common::channels_env_on(be).await;
    let h = host(&env, Limits::default()).await;
    // The page's origin is known only once it listens: the widget is turned on after.
    let agent = widget_agent(&env, "Shop", "http://example.invalid").await;
    let c = flametree::widget::connection_of(&env.channels, &agent)
        .await
        .unwrap()
        .unwrap();
    let snippet = widget::snippet(&h.ingress.public_base, &c.hook_id);
    let page = shop_page(snippet).await;
    let shop = format!("http://127.0.0.1:{}", page.port());
    let edit = flametree::agents::service::AgentEdit {
        widget: Some(json!({
            "allowed_origins": shop,
            "title": "Ask Flametree",
            "greeting": "Hello! How can we help?",
            "colour": "#1F6FEB",
        })),
        ..Default::default()
    };
    let agent = env.channels.edit_agent(&agent, edit).await.unwrap();
    env.channels.run_agent(&agent, true).await.unwrap();
    running_widget(&env, &agent).await;

    let b = Browser::start().await;
    b.goto(&format!("{shop}/")).await;
    b.click("#ftw-launcher").await;
    b.wait_for(
        "the greeting",
        "const g = document.querySelector('#ftw-log .ftw-greeting'); \
         return g && g.textContent === 'Hello! How can we help?';",
    )
    .await;
    assert_eq!(
        b.run("return document.querySelector('#ftw-title').textContent")
            .await,
        "Ask Flametree"
    );
    b.type_into("#ftw-input", "Where is my order?\u{E007}")
        .await;
    answered(&b, "You said: Where is my order?").await;

    // Markup from the visitor (and in the agent's echo of it) is text, never HTML.
    let payload =
        "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"><b>bold</b>";
    b.type_into("#ftw-input", &format!("{payload}\u{E007}"))
        .await;
    answered(&b, &format!("You said: {payload}")).await;
    let bubbles = b.run(BUBBLES).await;
    assert_eq!(
        bubbles,
        json!([
            ["agent", "Hello! How can we help?"],
            ["me", "Where is my order?"],
            ["agent", "You said: Where is my order?"],
            ["me", payload],
            ["agent", format!("You said: {payload}")],
        ])
    );
    assert_eq!(
        b.run("return [document.querySelectorAll('#ftw-log script, #ftw-log img, #ftw-log b').length, typeof window.pwned]")
            .await,
        json!([0, "undefined"])
    );
    if let Ok(path) = std::env::var("FLAMETREE_WIDGET_SCREENSHOT") {
        std::fs::write(&path, b.screenshot_png().await).unwrap();
    }

    // A reload: the same visitor, the same conversation, and it goes on.
    let visitor = b
        .run("return Object.keys(localStorage).filter(k => k.endsWith(':visitor')).map(k => localStorage.getItem(k))")
        .await;
    b.refresh().await;
    b.wait_for(
        "the conversation after the reload",
        "return document.querySelectorAll('#ftw-log .ftw-msg').length === 5 ? true : null;",
    )
    .await;
    assert_eq!(b.run(BUBBLES).await, bubbles);
    b.type_into("#ftw-input", "Thanks!\u{E007}").await;
    answered(&b, "You said: Thanks!").await;
    let again = b
        .run("return Object.keys(localStorage).filter(k => k.endsWith(':visitor')).map(k => localStorage.getItem(k))")
        .await;
    assert_eq!(visitor, again);
    let id = visitor[0].as_str().unwrap().trim_matches('"').to_string();
    let log = common::runtime::log_text(&env, &c.name, "Thanks").await;
    assert_eq!(
        log.matches(&format!("from {id}")).count(),
        3,
        "three messages from one visitor, each answered once:\n{log}"
    );

    // The same page served from another origin: the widget says so, and flametree
    // refuses the browser's WebSocket (with a WARN naming the site).
    let other = format!("http://localhost:{}", page.port());
    b.goto(&format!("{other}/")).await;
    b.click("#ftw-launcher").await;
    assert_eq!(
        b.wait_for(
            "the refusal",
            "const s = document.querySelector('#ftw-status'); return s && s.textContent || null;"
        )
        .await,
        "This chat is not available on this site."
    );
    let chat = widget::chat_url(&h.ingress.public_base, &c.hook_id);
    let opened = b
        .run_async(&format!(
            "const done = arguments[arguments.length - 1]; \
             const ws = new WebSocket({}); \
             ws.onopen = () => done('open'); ws.onclose = () => done('refused');",
            json!(format!("{chat}?visitor=0123456789abcdef"))
        ))
        .await;
    assert_eq!(opened, "refused");
    let log = common::runtime::log_text(&env, &c.name, &other).await;
    assert!(
        log.contains(&format!("WARN refused a page on {other} (403)")),
        "{log}"
    );

    // Back on the shop's page, the agent stops: the open widget says so at once, and a
    // message typed then is marked as not sent, with the reason.
    b.goto(&format!("{shop}/")).await;
    b.wait_for(
        "the conversation on the shop's page again",
        "return document.querySelectorAll('#ftw-log .ftw-msg').length === 7 ? true : null;",
    )
    .await;
    env.channels.run_agent(&agent, false).await.unwrap();
    let status = "const s = document.querySelector('#ftw-status'); \
                  return s && s.textContent.includes('offline') ? s.textContent : null;";
    assert_eq!(
        b.wait_for("the offline notice", status).await,
        "Ask Flametree is offline right now. Please try again later."
    );
    b.type_into("#ftw-input", "Hello?\u{E007}").await;
    assert_eq!(
        b.wait_for(
            "the message marked as not sent",
            "const n = document.querySelector('#ftw-log .ftw-note'); return n && n.textContent;"
        )
        .await,
        "Not sent"
    );
    assert_eq!(
        b.run("return document.querySelector('#ftw-status').textContent")
            .await,
        "Ask Flametree is offline right now, so your message was not sent. Please try again later."
    );
    drop(b);
    h.shutdown().await;
}

on_both!(a_visitor_chats_on_the_shop_s_page);
