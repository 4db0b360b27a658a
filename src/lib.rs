//! flametree: a terminal console for Settings › Channels that also runs the channels.

pub mod agents;
pub mod assets;
pub mod catalog;
pub mod channels;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod context;
pub mod demo;
pub mod fsutil;
pub mod http;
pub mod key_rotation;
pub mod logbus;
pub mod migrate;
pub mod model;
pub mod permission;
pub mod runtime;
pub mod sandbox;
pub mod secrets;
pub mod store;
pub mod tui;
pub mod widget;
