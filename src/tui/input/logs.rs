//! The Logs pane's keys as the app sees them: opening, closing, following the
//! selection, a line shown whole, saving to a file.

use super::*;

impl App {
    pub(super) fn logs_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match self.logs.handle_key(key) {
            PaneOutcome::Consumed => Vec::new(),
            PaneOutcome::Close => {
                self.focus = if self.details.form.is_some() {
                    Focus::Panel
                } else {
                    Focus::List
                };
                Vec::new()
            }
            PaneOutcome::SaveRequested => {
                self.export_logs();
                Vec::new()
            }
            PaneOutcome::OpenLine => {
                let line = self.logs.selected_line().cloned();
                self.open_log_line(line);
                Vec::new()
            }
            PaneOutcome::NotHandled => match key.code {
                KeyCode::Tab => {
                    self.focus = Focus::List;
                    Vec::new()
                }
                _ => self.common_key(crate::tui::keys::action(
                    crate::tui::keys::Section::Logs,
                    &key,
                )),
            },
        }
    }

    /// One log line whole, wrapped and scrollable, in a popup (the pane cuts long ones).
    pub(super) fn open_log_line(&mut self, line: Option<crate::tui::logs::ring::LogEntry>) {
        let Some(e) = line else {
            self.flash("No line to show", FlashKind::Info);
            return;
        };
        /// Beyond this the popup would cost a frame's time to lay out; x saves it all.
        const SHOWN: usize = 64 * 1024;
        let mut message = e.message;
        if message.len() > SHOWN {
            let cut = (0..=SHOWN)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            let rest = message.len() - cut;
            message.truncate(cut);
            message.push_str(&format!(
                " … ({rest} more bytes: x saves the lines to a file)"
            ));
        }
        let at = chrono::DateTime::from_timestamp_millis(e.at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
            .unwrap_or_default();
        let name = self
            .logs
            .for_id
            .and_then(|id| self.list.get(id))
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.overlay = Some(Overlay::Text {
            title: format!("Log line · {name}"),
            body: format!("{at} {}\n\n{message}", e.level.as_str()),
            scroll: 0,
        });
    }

    pub(super) fn export_logs(&mut self) {
        let Some(c) = self.logs.for_id.and_then(|id| self.list.get(id)) else {
            return;
        };
        let safe: String = c
            .name
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        let stamp = chrono::DateTime::from_timestamp_millis(self.now)
            .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
            .unwrap_or_default();
        let path = self
            .export_dir
            .join(format!("flametree-{safe}-{stamp}.log"));
        match crate::fsutil::create_private_dir(&self.export_dir)
            .and_then(|_| self.logs.export(&path))
        {
            Ok(n) => self.flash(
                format!(
                    "Saved {n} line{} to {} (mode 0600)",
                    if n == 1 { "" } else { "s" },
                    path.display()
                ),
                FlashKind::Info,
            ),
            Err(e) => self.flash(
                format!("Could not save the logs to {}: {e}", path.display()),
                FlashKind::Error,
            ),
        }
    }

    pub fn toggle_logs(&mut self) -> Vec<Command> {
        // Voice lines too: no Logs button of their own (the spec), but their log of
        // registration and calls is what an operator needs; titled with the agent.
        let Some(c) = self.current().cloned() else {
            self.flash("Select a connection first", FlashKind::Info);
            return Vec::new();
        };
        if self.logs.for_id == Some(c.id) {
            if self.focus == Focus::Logs {
                self.logs.close();
                self.focus = if self.details.form.is_some() {
                    Focus::Panel
                } else {
                    Focus::List
                };
            } else {
                self.focus = Focus::Logs;
            }
            return Vec::new();
        }
        self.focus = Focus::Logs;
        let title = self.logs_title(&c);
        vec![self.logs.open(c.id, &title)]
    }
}
