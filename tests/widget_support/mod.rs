//! What the widget's tests share: an ingress with the widget's limits and a runtime on
//! the test's database, an agent with its widget on, and a WebSocket visitor.

#![allow(dead_code)]

pub mod webdriver;

use crate::common::ChannelsEnv as Env;
use flametree::config::Http;
use flametree::http::Ingress;
use flametree::model::{Agent, Connection, Status};
use flametree::runtime::{Options, Pipeline, Runtime};
use flametree::widget::Limits;
use futures::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

pub struct Host {
    pub ingress: Ingress,
    pub runtime: Runtime,
}

pub async fn host(env: &Env, limits: Limits) -> Host {
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    let http = Http {
        listen: "127.0.0.1:0".into(),
        public_url: String::new(),
        max_body_bytes: 1 << 20,
    };
    let ingress = Ingress::start_with(pipe.clone(), "127.0.0.1:0", &http, limits)
        .await
        .unwrap();
    let runtime = Runtime::start(
        pipe,
        Options {
            public_base: ingress.public_base.clone(),
            ..Options::default()
        },
    );
    Host { ingress, runtime }
}

impl Host {
    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
        self.ingress.shutdown().await;
    }
}

/// An agent answering "You said: …" whose widget allows `origins`, not started.
pub async fn widget_agent(env: &Env, name: &str, origins: &str) -> Agent {
    let mut edit = crate::common::runtime::echo_edit("You said: ");
    edit.widget = Some(serde_json::json!({
        "allowed_origins": origins,
        "title": "Ask Flametree",
        "greeting": "Hello! How can we help?",
        "colour": "#1F6FEB",
    }));
    env.channels.create_agent(name, edit).await.unwrap()
}

/// The agent's widget connection once it is RUNNING (the agent started it).
pub async fn running_widget(env: &Env, agent: &Agent) -> Connection {
    let c = flametree::widget::connection_of(&env.channels, agent)
        .await
        .unwrap()
        .expect("a widget that is on has its connection");
    wait_status(env, &c.name, Status::Running).await
}

pub async fn wait_status(env: &Env, name: &str, status: Status) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = env.channels.find(name).await.unwrap();
        if c.status == status {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "'{name}' is {} ({}), not {status}",
            c.status,
            c.status_message
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the chat as a page on `origin` would; Err carries the HTTP status of a refusal.
pub async fn open_chat(chat_url: &str, origin: &str, visitor: &str) -> Result<Socket, u16> {
    let mut req = format!("{chat_url}?visitor={visitor}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("cannot reach the chat: {e}"),
    }
}

/// The next frame flametree sends (bounded wait).
pub async fn next_frame(ws: &mut Socket) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame within 15 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The next frame of kind `t`, skipping others.
pub async fn frame_of(ws: &mut Socket, t: &str) -> serde_json::Value {
    loop {
        let f = next_frame(ws).await;
        if f["t"] == t {
            return f;
        }
    }
}

pub async fn say(ws: &mut Socket, id: &str, text: &str) {
    let f = serde_json::json!({"t": "msg", "id": id, "text": text});
    ws.send(Message::Text(f.to_string().into())).await.unwrap();
}
