//! Text assets compiled into the binary.

include!(concat!(env!("OUT_DIR"), "/setup_pages.rs"));

/// The setup page for a channel type, by file name (`telegram.md`).
pub fn setup_page(name: &str) -> Option<&'static str> {
    SETUP_PAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}
