//! `flametree demo`'s Web Widget: the demo agent's widget turned on for a small shop
//! page served on 127.0.0.1, which embeds it with the snippet `agents show` prints.

use crate::channels::Channels;
use crate::model::Agent;

/// Turns the agent's widget on for a page it serves; returns the page's address.
pub async fn start(
    channels: &Channels,
    agent: &Agent,
    public_base: &str,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let page = format!("http://{}", listener.local_addr()?);
    let edit = crate::agents::service::AgentEdit {
        widget: Some(serde_json::json!({
            "allowed_origins": page,
            "title": "Demo shop support",
            "greeting": "Hi! Ask about an order or shipping.",
        })),
        ..Default::default()
    };
    // As stored now: attaching the demo's channels moved its version on.
    let agent = channels
        .store()
        .agent(agent.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo agent is gone"))?;
    let agent = channels.edit_agent(&agent, edit).await?;
    let c = super::connection_of(channels, &agent)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo agent's widget has no connection"))?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Demo shop</title></head>\
         <body style=\"font-family:sans-serif;margin:40px\"><h1>Demo shop</h1>\
         <p>Hand-made lamps and candles. The chat button in the corner is flametree's Web \
         Widget, answered by the demo agent.</p>{}</body></html>",
        super::snippet(public_base, &c.hook_id)
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the demo's shop page stopped: {e}");
        }
    });
    Ok(page)
}
