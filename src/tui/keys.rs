//! One key table (`keys_table.rs`) drives the list's and the panel's dispatch, every
//! footer and the `?` overlay, so what a key does, what the footer offers and what the
//! help says cannot drift apart. Keys of the form, the Logs pane and the agents screen
//! are dispatched by those components; their rows here give their help and footers.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub use super::keys_table::TABLE;

/// Where a key works (its footer and dispatch) or where the help lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    List,
    Search,
    Panel,
    Fields,
    Logs,
    Agents,
    Mouse,
}

impl Section {
    /// The help overlay's sections, in order, with their titles.
    pub const HELP: [(Section, &'static str); 6] = [
        (Section::List, "Channel list"),
        (Section::Panel, "Details panel"),
        (Section::Fields, "Form fields"),
        (Section::Logs, "Logs pane"),
        (Section::Agents, "AI Agents"),
        (Section::Mouse, "Mouse (when capture is on)"),
    ];
}

/// What a key of the list or the panel header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    Open,
    Search,
    ClearSearch,
    Sort,
    Filter,
    NextError,
    Add,
    StartStop,
    Restart,
    Logs,
    CopyUrl,
    Delete,
    Status,
    Migrate,
    Mouse,
    Agents,
    Help,
    Quit,
    Setup,
    /// Into the form's fields.
    Fields,
    /// Out of the panel, back to the list.
    Back,
}

/// When the footer offers a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Always,
    /// Not to viewers.
    Edits,
    /// Where the connection shown has a webhook URL.
    WebhookUrl,
    /// Where the connection shown runs or is wanted running, on its own (and not to
    /// viewers).
    Runs,
    /// Where the connection shown starts and stops on its own — not a voice line, which
    /// runs with its agent (and not to viewers).
    OwnRun,
}

pub struct Binding {
    /// What it does in the list or the panel; `None` where a component handles it.
    pub action: Option<Action>,
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// Where the key dispatches to `action`.
    pub scopes: &'static [Section],
    /// Where the help lists it, as `shown` and `help`; an empty `shown` is a twin of the
    /// row above (↑ beside ↓) and is not listed again.
    pub section: Section,
    pub shown: &'static str,
    pub help: &'static str,
    /// The footer's key label, and per footer: the word and its rank (lower comes first
    /// and stays longest on a narrow terminal).
    pub key: &'static str,
    pub footer: &'static [(Section, &'static str, u8)],
    pub offer: Offer,
}

/// The action `key` has in `scope`, by the table.
pub fn action(scope: Section, key: &KeyEvent) -> Option<Action> {
    // Shift is part of the character ('E', '?'), not a modifier to compare.
    let mods = key.modifiers - KeyModifiers::SHIFT;
    TABLE
        .iter()
        .filter(|b| b.scopes.contains(&scope))
        .find(|b| b.keys.iter().any(|&(c, m)| c == key.code && m == mods))
        .and_then(|b| b.action)
}

/// The footer of `scope`: (key, word) in order of importance, for the keys `offered`.
pub fn footer(
    scope: Section,
    offered: impl Fn(Offer) -> bool,
) -> Vec<(&'static str, &'static str)> {
    let mut pairs: Vec<(u8, &str, &str)> = TABLE
        .iter()
        .filter(|b| offered(b.offer))
        .flat_map(|b| {
            b.footer
                .iter()
                .filter(move |(s, _, _)| *s == scope)
                .map(move |(_, word, rank)| (*rank, b.key, *word))
        })
        .collect();
    pairs.sort_by_key(|(rank, _, _)| *rank);
    pairs.into_iter().map(|(_, k, w)| (k, w)).collect()
}

/// The help overlay's rows: a section title (`None` key) or (keys, what they do).
pub fn help_rows() -> Vec<(Option<&'static str>, &'static str)> {
    let mut rows = Vec::new();
    for (section, title) in Section::HELP {
        rows.push((None, title));
        rows.extend(
            TABLE
                .iter()
                .filter(|b| b.section == section && !b.shown.is_empty())
                .map(|b| (Some(b.shown), b.help)),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_footer_key_is_in_the_help_and_every_action_has_a_key() {
        // The search box's keys are told under "/"; every other key a footer offers
        // has its own row in the help.
        for b in TABLE.iter().filter(|b| !b.footer.is_empty()) {
            assert!(
                !b.shown.is_empty() || b.section == Section::Search,
                "the footer offers {:?}, the help does not list it",
                b.key
            );
        }
        for b in TABLE.iter().filter(|b| b.action.is_some()) {
            assert!(!b.keys.is_empty() && !b.scopes.is_empty(), "{:?}", b.action);
            for &(code, mods) in b.keys {
                for &scope in b.scopes {
                    let key = KeyEvent::new(code, mods);
                    assert_eq!(action(scope, &key), b.action, "{code:?} in {scope:?}");
                }
            }
        }
    }
}
