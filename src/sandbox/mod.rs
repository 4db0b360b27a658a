//! Faithful local stand-ins for providers that live on the internet, speaking their
//! documented wire formats on 127.0.0.1: for the tests and `flametree demo`.

pub mod bird;
pub mod infobip;
pub mod intercom;
pub mod legacy;
pub mod meta;
pub mod openai;
pub mod server;
pub mod telegram;
pub mod twilio;
