//! The Logs pane: a bounded ring of lines and the pane that shows it.

pub mod pane;
pub mod ring;
pub mod view;
