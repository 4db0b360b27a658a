//! Agents answer customers. A connection's inbound message goes to the running agent
//! that has it attached with Inbound on; the reply goes back through the connection.

pub mod audio;
pub mod responder;
pub mod routing;
pub mod service;
pub mod speech;
pub mod speech_client;

pub use responder::{ResponderConfig, Rule, Rules};
pub use routing::{Route, answer, diagnosis, inbound_route};
