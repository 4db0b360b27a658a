//! A process with a webhook ingress and a runtime on the test's database, and the
//! helpers the webhook-driven connector tests share.

use super::ChannelsEnv as Env;
use flametree::channels::Draft;
use flametree::config::Http;
use flametree::http::Ingress;
use flametree::model::{Connection, DesiredState, EnvVar, Status};
use flametree::runtime::{Options, Pipeline, Runtime};
use flametree::secrets::SecretString;
use std::time::{Duration, Instant};

pub struct Host {
    pub ingress: Ingress,
    pub runtime: Runtime,
}

pub async fn host(env: &Env) -> Host {
    let pipe = Pipeline::start(env.channels.clone(), 1000);
    let http = Http {
        listen: "127.0.0.1:0".into(),
        public_url: String::new(),
        max_body_bytes: 1 << 20,
    };
    let ingress = Ingress::start(pipe.clone(), "127.0.0.1:0", &http)
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
    pub fn url(&self, c: &Connection) -> String {
        flametree::runtime::webhook_url(&self.ingress.public_base, &c.hook_id)
    }
    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
        self.ingress.shutdown().await;
    }
}

pub fn draft(
    type_key: &str,
    name: &str,
    fields: &[(&str, &str)],
    secrets: &[(&str, &str)],
    env: &[(&str, String)],
) -> Draft {
    let mut d = Draft {
        type_key: type_key.into(),
        name: name.into(),
        ..Default::default()
    };
    for (k, v) in fields {
        d.fields.insert(k.to_string(), v.to_string());
    }
    for (k, v) in secrets {
        d.secrets.insert(k.to_string(), SecretString::new(*v));
    }
    for (k, v) in env {
        d.env.push(EnvVar {
            name: k.to_string(),
            value: v.clone(),
        });
    }
    d
}

/// The connection, answered by the started echo agent (not started itself).
pub async fn add_answered(env: &Env, d: &Draft) -> Connection {
    let c = env.channels.add(d).await.unwrap().connection;
    let echo = super::runtime::echo_agent(env).await;
    env.channels
        .attach_connection(&echo, &c, true)
        .await
        .unwrap();
    env.channels.run_agent(&echo, true).await.unwrap();
    c
}

/// The same, and Start requested.
pub async fn add_running(env: &Env, d: &Draft) -> Connection {
    let c = add_answered(env, d).await;
    env.channels
        .set_desired(&c, DesiredState::Running)
        .await
        .unwrap();
    c
}

/// Waits (bounded: 30 s covers a start that logs in to several servers) until the
/// connection reaches `status`.
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
