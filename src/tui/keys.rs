//! Every key, as the `?` overlay lists it. The footer shows the subset that applies.

/// (keys, what they do); an empty key starts a section.
pub const HELP: &[(&str, &str)] = &[
    ("", "Channel list"),
    ("↑ ↓  j k", "move"),
    ("g G  Home End", "first / last"),
    ("PgUp PgDn", "move by 10"),
    ("Enter  →", "open the selected connection (Details panel)"),
    (
        "/",
        "search by name as you type; Enter keeps the filter, Esc clears it",
    ),
    ("o", "sort: A→Z → Z→A → by status (ERROR first)"),
    (
        "f",
        "filter by status: all → ERROR only → not RUNNING (the title says which)",
    ),
    ("E", "jump to the next connection in ERROR"),
    (
        "a",
        "add a connection: pick a channel type (d shows deprecated types)",
    ),
    (
        "s",
        "Stop when running, starting or retrying (asks first when RUNNING); else Start",
    ),
    (
        "r",
        "restart: Stop, then Start once STOPPED (asks first; ui.confirm_stop = false skips both questions)",
    ),
    (
        "l",
        "Logs of the selected connection (again: focus / close)",
    ),
    (
        "c",
        "copy the webhook URL, whole, to the clipboard (OSC 52)",
    ),
    ("D  Delete", "delete the connection (asks first, naming it)"),
    (
        "i",
        "the connection's status and its whole message, in a popup",
    ),
    ("M", "migrate a deprecated connection to its successor"),
    (
        "m",
        "mouse capture on/off (off: select text with the mouse)",
    ),
    ("?  F1", "this help"),
    (
        "q  Ctrl-C",
        "quit (asks first if a form has unsaved changes)",
    ),
    ("", "Details panel"),
    ("Tab  Enter  e", "go into the form's fields"),
    (
        "s r l c D",
        "Start/Stop, restart, Logs, copy URL, Delete — as in the list",
    ),
    ("Ctrl-S", "save"),
    (
        "Ctrl-G",
        "setup guide for this channel type: where to find each credential",
    ),
    (
        "Esc  ←",
        "back to the list (asks before discarding unsaved changes)",
    ),
    ("", "Form fields"),
    ("Tab ↓ Enter", "next field"),
    ("Shift-Tab ↑", "previous field"),
    (
        "typing",
        "edits the field; Ctrl-U / Ctrl-K clear to its start / end; secrets are masked: typing replaces, leaving empty keeps",
    ),
    (
        "Space",
        "toggle Advanced mode (WhatsApp, Instagram, Facebook)",
    ),
    (
        "Space ← →",
        "on an option field (transport, security, true/false): next / previous option",
    ),
    (
        "Ctrl-N",
        "add an environment variable (offers the type's variables)",
    ),
    (
        "Ctrl-X",
        "remove the variable row, or empty an optional saved secret",
    ),
    ("Ctrl-S", "save; errors appear next to their fields"),
    ("Ctrl-G  F1", "setup guide  /  help"),
    ("Esc", "leave the fields (the panel header keys work again)"),
    ("", "Logs pane"),
    ("↑ ↓  j k", "scroll; scrolling up pauses follow"),
    ("G  End", "jump to the newest line and follow again"),
    ("g  Home", "oldest line"),
    ("PgUp PgDn  ^U ^D", "page / half page"),
    ("/", "search; Enter keeps it; matches are highlighted"),
    ("n  N", "next / previous match"),
    ("v", "level filter: all → INFO+ → WARN+ → ERROR"),
    (
        "w",
        "wrap long lines on/off (a line fills the pane at most)",
    ),
    ("← →", "scroll long lines sideways (wrap off)"),
    (
        "Enter",
        "the current match, else the newest line on screen, whole, in a popup (a click opens the clicked line)",
    ),
    ("x", "save the lines shown to a file (mode 0600)"),
    ("Esc", "back;  l closes the pane"),
    ("", "AI Agents"),
    (
        "↑ ↓  j k",
        "choose an agent, or a row of its Communication channels card",
    ),
    ("Tab", "between the agent list and the card"),
    ("n", "new agent (with the built-in rule responder)"),
    (
        "e",
        "edit the agent's responder: rules (greeting, keyword rules, fallback) or an OpenAI-compatible API (masked key; typing replaces it)",
    ),
    (
        "s",
        "Start agent / Stop agent (saved changes apply at restart)",
    ),
    (
        "a",
        "add channels: pick the type (d: show deprecated), tick connections with Space, i toggles Inbound, Enter saves; Simple mode creates a Telegram or WhatsApp connection right there",
    ),
    ("Space", "on a card row: Inbound on/off"),
    (
        "x",
        "on a card row: detach (applies when the agent restarts)",
    ),
    ("A  Esc", "back to Channels  /  back to the agent list"),
    ("", "Mouse (when capture is on)"),
    ("click", "select a row, focus a field, press a [ button ]"),
    ("wheel", "scroll the list, the form, the logs or a popup"),
];
