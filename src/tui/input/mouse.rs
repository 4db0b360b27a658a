//! Clicks and the wheel, on what the last frame recorded as clickable.

use super::*;

impl App {
    pub fn on_mouse(&mut self, ev: MouseEvent) -> Vec<Command> {
        let hit = self
            .hits
            .iter()
            .rev()
            .find(|(r, _)| r.contains(ratatui::layout::Position::new(ev.column, ev.row)))
            .map(|(r, h)| (*r, *h));
        let Some((rect, hit)) = hit else {
            return Vec::new();
        };
        self.dirty = true;
        match ev.kind {
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let delta = if ev.kind == MouseEventKind::ScrollDown {
                    3
                } else {
                    -3
                };
                self.wheel(hit, delta)
            }
            MouseEventKind::Down(MouseButton::Left) => {
                self.click(hit, ev.row.saturating_sub(rect.y) as usize)
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn wheel(&mut self, hit: Hit, delta: i32) -> Vec<Command> {
        match hit {
            Hit::LogsPane => {
                self.logs.scroll(delta);
                Vec::new()
            }
            Hit::Overlay => {
                if let Some(o) = &mut self.overlay {
                    o.scroll_by(delta);
                }
                Vec::new()
            }
            Hit::Form | Hit::Slot(_) => {
                if let Some(f) = &mut self.details.form {
                    f.scroll = (f.scroll as i32 + delta).max(0) as usize;
                }
                Vec::new()
            }
            _ if self.overlay.is_none() => {
                let before = self.list.selected;
                self.list.move_by(delta as isize);
                if self.list.selected != before && self.focus == Focus::List {
                    self.sync_form_to_selection();
                    return self.follow_logs_to_selection().into_iter().collect();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn click(&mut self, hit: Hit, row_in_rect: usize) -> Vec<Command> {
        match hit {
            Hit::ConfirmYes => self.on_key(KeyEvent::from(KeyCode::Char('y'))),
            Hit::ConfirmNo => self.on_key(KeyEvent::from(KeyCode::Esc)),
            Hit::PickerRow(i) => {
                if let Some(Overlay::Picker { selected, .. }) = &mut self.overlay {
                    *selected = i;
                }
                self.on_key(KeyEvent::from(KeyCode::Enter))
            }
            _ if self.overlay.is_some() => Vec::new(),
            Hit::ListRow(row) => {
                if self.form_dirty() {
                    self.flash(
                        "Save (Ctrl-S) or discard (Esc) your changes first",
                        FlashKind::Warn,
                    );
                    return Vec::new();
                }
                let before = self.list.selected;
                self.focus = Focus::List;
                if self.list.select_drawn_row(row) && self.list.selected != before {
                    self.sync_form_to_selection();
                    return self.follow_logs_to_selection().into_iter().collect();
                }
                Vec::new()
            }
            Hit::Slot(i) => {
                if let Some(f) = &mut self.details.form {
                    f.set_focus(Some(i));
                    self.focus = Focus::Fields;
                }
                Vec::new()
            }
            Hit::StartStop => self.start_stop(),
            Hit::CopyWebhook => {
                self.copy_webhook_url();
                Vec::new()
            }
            Hit::Logs => self.toggle_logs(),
            Hit::LogsPane => {
                // A click in the focused pane opens the line clicked.
                if self.focus == Focus::Logs {
                    let line = self.logs.line_at_row(row_in_rect).cloned();
                    self.open_log_line(line);
                }
                self.focus = Focus::Logs;
                Vec::new()
            }
            Hit::Save => self.save(),
            Hit::Delete => {
                self.ask_delete();
                Vec::new()
            }
            Hit::Add => self.open_picker(),
            Hit::List | Hit::Form | Hit::Overlay => Vec::new(),
        }
    }
}
