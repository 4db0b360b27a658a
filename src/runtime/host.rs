//! Everything a process runs for channels: the pipeline (group-commit writer and log
//! routing), the webhook ingress, and the supervisor — started and stopped together.

use super::{Options, Pipeline, Runtime};
use crate::channels::Channels;
use crate::config::Config;
use crate::http::Ingress;
use std::sync::Arc;

pub struct Host {
    pub pipe: Arc<Pipeline>,
    pub ingress: Option<Ingress>,
    pub runtime: Runtime,
    /// Why the ingress is not running, when it is not.
    pub ingress_problem: Option<String>,
    pub feed: Option<crate::store::feed::ChangeFeed>,
}

impl Host {
    /// Starts the ingress on `http.listen` (unless empty), then the supervisor. An
    /// ingress that cannot listen is reported, not fatal: polling channels still run.
    pub async fn start(
        channels: Arc<Channels>,
        cfg: &Config,
        role: &'static str,
        run_channels: super::RunChannels,
        feed: Option<crate::store::feed::ChangeFeed>,
    ) -> Host {
        let pipe = Pipeline::start(channels, cfg.logs.keep_per_connection);
        let (ingress, ingress_problem) = if cfg.http.listen.trim().is_empty() {
            (
                None,
                Some("the webhook ingress is off (http.listen is empty)".to_string()),
            )
        } else {
            match Ingress::start_with(
                pipe.clone(),
                &cfg.http.listen,
                &cfg.http,
                cfg.widget.clone(),
            )
            .await
            {
                Ok(i) => (Some(i), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "the webhook ingress cannot listen on {} ({e}): webhook-driven channels run \
                         here get no deliveries; set http.listen to a free address",
                        cfg.http.listen
                    )),
                ),
            }
        };
        if let Some(p) = &ingress_problem {
            tracing::warn!("{p}");
        }
        let options = Options {
            feed: feed.clone(),
            ..Options::from_config(cfg, ingress.as_ref().map(|i| i.addr), role, run_channels)
        };
        let runtime = Runtime::start(pipe.clone(), options);
        // Outside any connection's span: its lines are the process's, not a channel's.
        tokio::spawn(super::retention::prune_loop(
            pipe.channels.store().clone(),
            cfg.retention.days,
            runtime.stopping(),
        ));
        Host {
            pipe,
            ingress,
            runtime,
            ingress_problem,
            feed,
        }
    }

    /// Stops the channels (each stop awaited, last log lines written), then the ingress.
    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
        if let Some(i) = &self.ingress {
            i.shutdown().await;
        }
        self.pipe.flush().await;
    }
}
