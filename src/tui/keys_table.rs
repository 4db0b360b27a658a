//! The key table: every key of the console, where it works, what the help says about it
//! and what the footers offer (see `keys.rs`).

use super::keys::{Action, Binding, Offer, Section};
use Section::{Agents, Fields, List, Logs, Mouse, Panel, Search};
use crossterm::event::{KeyCode, KeyModifiers};

const N: KeyModifiers = KeyModifiers::NONE;
const C: KeyModifiers = KeyModifiers::CONTROL;

const fn ch(c: char) -> (KeyCode, KeyModifiers) {
    (KeyCode::Char(c), N)
}

/// The keys that mean the same in the list, the panel header and the Logs pane.
const COMMON: &[Section] = &[List, Panel, Logs];

/// A row the help lists and a footer may offer, dispatched by a component.
const fn info(
    section: Section,
    shown: &'static str,
    help: &'static str,
    key: &'static str,
    footer: &'static [(Section, &'static str, u8)],
    offer: Offer,
) -> Binding {
    Binding {
        action: None,
        keys: &[],
        scopes: &[],
        section,
        shown,
        help,
        key,
        footer,
        offer,
    }
}

/// A key of the list or the panel header, dispatched by the table.
#[allow(clippy::too_many_arguments)]
const fn act(
    action: Action,
    keys: &'static [(KeyCode, KeyModifiers)],
    scopes: &'static [Section],
    shown: &'static str,
    help: &'static str,
    key: &'static str,
    footer: &'static [(Section, &'static str, u8)],
    offer: Offer,
) -> Binding {
    Binding {
        action: Some(action),
        keys,
        scopes,
        section: List,
        shown,
        help,
        key,
        footer,
        offer,
    }
}

const fn in_panel(mut b: Binding) -> Binding {
    b.section = Panel;
    b
}

use Offer::{Always, Edits, OwnRun, Runs, WebhookUrl};

#[rustfmt::skip]
pub static TABLE: &[Binding] = &[
    // The list.
    act(Action::Down, &[(KeyCode::Down, N), ch('j')], &[List], "↑ ↓  j k", "move", "↑↓", &[(List, "move", 1)], Always),
    act(Action::Up, &[(KeyCode::Up, N), ch('k')], &[List], "", "", "", &[], Always),
    act(Action::First, &[(KeyCode::Home, N), ch('g')], &[List], "g G  Home End", "first / last", "", &[], Always),
    act(Action::Last, &[(KeyCode::End, N), ch('G')], &[List], "", "", "", &[], Always),
    act(Action::PageDown, &[(KeyCode::PageDown, N)], &[List], "PgUp PgDn", "move by 10", "", &[], Always),
    act(Action::PageUp, &[(KeyCode::PageUp, N)], &[List], "", "", "", &[], Always),
    act(Action::Open, &[(KeyCode::Enter, N), (KeyCode::Right, N)], &[List], "Enter  →", "open the selected connection (Details panel)", "Enter", &[(List, "open", 2)], Always),
    act(Action::Search, &[ch('/')], &[List], "/", "search by name as you type; Enter keeps the filter, Esc clears it", "/", &[(List, "search", 3)], Always),
    act(Action::ClearSearch, &[(KeyCode::Esc, N)], &[List], "", "", "", &[], Always),
    act(Action::Sort, &[ch('o')], &[List], "o", "sort: A→Z → Z→A → by status (ERROR first)", "o", &[(List, "sort", 11)], Always),
    act(Action::Filter, &[ch('f')], &[List], "f", "filter by status: all → ERROR only → not RUNNING (the title says which)", "f", &[(List, "filter", 8)], Always),
    act(Action::NextError, &[ch('E')], &[List], "E", "jump to the next connection in ERROR", "E", &[(List, "next error", 9)], Always),
    // The list, the panel header and the Logs pane.
    act(Action::Add, &[ch('a')], COMMON, "a", "add a connection: pick a channel type (d shows deprecated types, Ctrl-G its setup guide)", "a", &[(List, "add", 7)], Edits),
    act(Action::StartStop, &[ch('s')], COMMON, "s", "Stop when running, starting or retrying (asks first when RUNNING); else Start", "s", &[(List, "start/stop", 4), (Panel, "start/stop", 2)], OwnRun),
    act(Action::Restart, &[ch('r')], COMMON, "r", "restart: Stop, then Start once STOPPED (asks first; ui.confirm_stop = false skips both questions)", "r", &[(List, "restart", 6), (Panel, "restart", 6)], Runs),
    act(Action::Logs, &[ch('l')], COMMON, "l", "Logs of the selected connection (again: focus / close); SIP/Twilio: their calls", "l", &[(List, "logs", 5), (Panel, "logs", 3), (Logs, "close", 9)], Always),
    act(Action::CopyUrl, &[ch('c')], COMMON, "c", "copy the webhook URL, whole, to the clipboard (OSC 52)", "c", &[(List, "copy URL", 5), (Panel, "copy URL", 3)], WebhookUrl),
    act(Action::Delete, &[ch('D'), (KeyCode::Delete, N)], COMMON, "D  Delete", "delete the connection (asks first, naming it)", "D", &[(List, "delete", 10), (Panel, "delete", 7)], Edits),
    act(Action::Status, &[ch('i')], COMMON, "i", "the connection's status and its whole message, in a popup", "", &[], Always),
    act(Action::Migrate, &[ch('M')], COMMON, "M", "migrate a deprecated connection to its successor", "", &[], Edits),
    act(Action::Mouse, &[ch('m')], COMMON, "m", "mouse capture on/off (off: select text with the mouse)", "", &[], Always),
    act(Action::Agents, &[ch('A')], COMMON, "A", "the AI Agents screen (A again comes back)", "A", &[(List, "agents", 12)], Always),
    act(Action::Help, &[ch('?'), (KeyCode::F(1), N)], COMMON, "?  F1", "this help", "?", &[(List, "help", 0), (Panel, "help", 0), (Logs, "help", 0), (Search, "help", 0), (Agents, "help", 0)], Always),
    act(Action::Quit, &[ch('q')], COMMON, "q  Ctrl-C", "quit (asks first if a form has unsaved changes)", "q", &[(List, "quit", 99), (Agents, "quit", 99)], Always),
    // The panel header.
    in_panel(act(Action::Fields, &[(KeyCode::Tab, N)], &[List, Panel], "Tab  Enter  e", "go into the form's fields", "Tab", &[(Panel, "fields", 1)], Always)),
    in_panel(act(Action::Fields, &[(KeyCode::Enter, N), ch('e'), (KeyCode::Down, N)], &[Panel], "", "", "", &[], Always)),
    info(Panel, "s r l c D", "Start/Stop, restart, Logs, copy URL, Delete — as in the list (voice: no s r)", "", &[], Always),
    info(Panel, "Ctrl-S", "save", "^S", &[(Panel, "save", 4)], Edits),
    in_panel(act(Action::Setup, &[(KeyCode::Char('g'), C)], COMMON, "Ctrl-G", "setup guide for this channel type: where to find each credential", "^G", &[(Panel, "setup guide", 8)], Always)),
    in_panel(act(Action::Back, &[(KeyCode::Esc, N), (KeyCode::Left, N)], &[Panel], "Esc  ←", "back to the list (asks before discarding unsaved changes)", "Esc", &[(Panel, "back", 5)], Always)),
    // The search box (its keys are the box's own).
    info(Search, "", "", "type", &[(Search, "filter", 1)], Always),
    info(Search, "", "", "Enter", &[(Search, "keep", 2)], Always),
    info(Search, "", "", "Esc", &[(Search, "clear", 3)], Always),
    info(Search, "", "", "↑↓", &[(Search, "move", 4)], Always),
    // The form (dispatched by the form).
    info(Fields, "Tab ↓ Enter", "next field", "Tab/↑↓", &[(Fields, "next field", 1)], Always),
    info(Fields, "Shift-Tab ↑", "previous field", "", &[], Always),
    info(Fields, "typing", "edits the field; Ctrl-U / Ctrl-K clear to its start / end, Ctrl-A / Ctrl-E jump there, Ctrl-W or Alt-Backspace deletes a word; secrets are masked: typing replaces, leaving empty keeps", "", &[], Always),
    info(Fields, "Space", "toggle Advanced mode (WhatsApp, Instagram, Facebook)", "", &[], Edits),
    info(Fields, "Space ← →", "on an option field (transport, security, true/false): next / previous option", "", &[], Edits),
    info(Fields, "Ctrl-N", "add an environment variable (offers the type's variables)", "^N", &[(Fields, "add variable", 4)], Edits),
    info(Fields, "Ctrl-X", "remove the variable row, or empty an optional saved secret", "^X", &[(Fields, "remove", 5)], Edits),
    info(Fields, "Ctrl-S", "save; errors appear next to their fields", "^S", &[(Fields, "save", 2)], Edits),
    info(Fields, "Ctrl-G", "setup guide for the type", "^G", &[(Fields, "setup guide", 6)], Always),
    info(Fields, "F1", "this help (? types a question mark here)", "F1", &[(Fields, "help", 0)], Always),
    info(Fields, "Esc", "leave the fields (the panel header keys work again)", "Esc", &[(Fields, "leave fields", 3)], Always),
    // The Logs pane (dispatched by the pane).
    info(Logs, "↑ ↓  j k", "scroll; scrolling up pauses follow", "", &[], Always),
    info(Logs, "G  End", "jump to the newest line and follow again", "G", &[(Logs, "follow", 3)], Always),
    info(Logs, "g  Home", "oldest line", "", &[], Always),
    info(Logs, "PgUp PgDn  ^U ^D", "page / half page", "", &[], Always),
    info(Logs, "/", "search; Enter keeps it; matches are highlighted", "/", &[(Logs, "search", 1)], Always),
    info(Logs, "n  N", "next / previous match", "n/N", &[(Logs, "next/prev", 2)], Always),
    info(Logs, "v", "level filter: all → INFO+ → WARN+ → ERROR", "v", &[(Logs, "level", 6)], Always),
    info(Logs, "w", "wrap long lines on/off (a line fills the pane at most)", "w", &[(Logs, "wrap", 7)], Always),
    info(Logs, "← →", "scroll long lines sideways (wrap off)", "←→", &[(Logs, "scroll", 8)], Always),
    info(Logs, "Enter", "the current match, else the newest line on screen, whole, in a popup (a click opens the clicked line)", "Enter", &[(Logs, "line", 5)], Always),
    info(Logs, "x", "save the lines shown to a file (mode 0600)", "x", &[(Logs, "save to file", 10)], Always),
    info(Logs, "Esc  Tab", "back to the details / the list;  l closes the pane", "Esc", &[(Logs, "back", 4)], Always),
    // The agents screen (dispatched by it).
    info(Agents, "A  Esc", "back to Channels  /  back to the agent list", "A", &[(Agents, "channels", 1)], Always),
    info(Agents, "↑ ↓  j k", "choose an agent, or a row of its Communication channels card", "↑↓", &[(Agents, "move", 2)], Always),
    info(Agents, "Tab", "between the agent list and the card", "Tab", &[(Agents, "card", 3)], Always),
    info(Agents, "n", "new agent (with the built-in rule responder)", "n", &[(Agents, "new agent", 4)], Edits),
    info(Agents, "e  v", "edit the responder (rules or OpenAI-compatible API) / v: speech engines for SIP", "e", &[(Agents, "responder", 5)], Edits),
    info(Agents, "w", "edit the Web Widget; the panel shows its snippet, live visitors, log", "w", &[], Edits),
    info(Agents, "s", "Start agent / Stop agent (saved changes apply at restart)", "s", &[(Agents, "start/stop agent", 6)], Edits),
    info(Agents, "a", "add channels: pick the type (d: show deprecated), tick connections with Space, i toggles Inbound, Enter saves; Simple mode creates a Telegram or WhatsApp connection right there", "a", &[(Agents, "add channel", 7)], Edits),
    info(Agents, "Space", "on a card row: Inbound on/off", "Space", &[(Agents, "inbound", 8)], Edits),
    info(Agents, "x", "on a card row: detach (applies when the agent restarts)", "x", &[(Agents, "detach", 9)], Edits),
    info(Agents, "D", "on the agent list: delete the agent (asks first, naming it)", "", &[], Edits),
    // The mouse.
    info(Mouse, "click", "select a row, focus a field, press a [ button ]; in the focused Logs pane, open the line", "", &[], Always),
    info(Mouse, "wheel", "scroll the list, the form, the logs or a popup", "", &[], Always),
];
