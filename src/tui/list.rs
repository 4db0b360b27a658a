//! The channel list: grouping, search, sort and a selection that follows the
//! connection's id, not its row number, when the list changes under it.

use crate::catalog::Catalog;
use crate::model::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    AToZ,
    ZToA,
}

impl SortOrder {
    pub fn label(self) -> &'static str {
        match self {
            SortOrder::AToZ => "A→Z",
            SortOrder::ZToA => "Z→A",
        }
    }

    pub fn toggled(self) -> SortOrder {
        match self {
            SortOrder::AToZ => SortOrder::ZToA,
            SortOrder::ZToA => SortOrder::AToZ,
        }
    }
}

/// One line of the list: a group heading or a connection (by index into `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Group { deprecated: bool, count: usize },
    Item(usize),
}

#[derive(Debug)]
pub struct ChannelList {
    pub all: Vec<Connection>,
    pub rows: Vec<Row>,
    pub query: String,
    pub sort: SortOrder,
    pub selected: Option<i64>,
    /// First row drawn; kept so the selection stays in view without jumping.
    pub offset: usize,
    lowered: Vec<String>,
}

impl Default for ChannelList {
    fn default() -> Self {
        ChannelList {
            all: Vec::new(),
            rows: Vec::new(),
            query: String::new(),
            sort: SortOrder::AToZ,
            selected: None,
            offset: 0,
            lowered: Vec::new(),
        }
    }
}

fn is_deprecated(c: &Connection) -> bool {
    Catalog::get()
        .find(&c.type_key)
        .is_some_and(|t| t.deprecated)
}

impl ChannelList {
    /// Replaces the data, keeping the selected connection selected if it still exists.
    pub fn set(&mut self, all: Vec<Connection>) {
        // Where the selection was must be read before the rows' indexes go stale.
        let previous = self.selected_row();
        self.lowered = all.iter().map(|c| c.name.to_lowercase()).collect();
        self.all = all;
        self.rebuild(previous);
    }

    /// One connection as it is now (`None`: deleted), keeping the selection.
    pub fn upsert(&mut self, id: i64, latest: Option<Connection>) {
        let mut all = self.all.clone();
        match (all.iter().position(|c| c.id == id), latest) {
            (Some(i), Some(c)) => all[i] = c,
            (Some(i), None) => {
                all.remove(i);
            }
            (None, Some(c)) => all.push(c),
            (None, None) => {}
        }
        self.set(all);
    }

    pub fn set_query(&mut self, query: &str) {
        let previous = self.selected_row();
        self.query = query.to_string();
        self.rebuild(previous);
    }

    pub fn toggle_sort(&mut self) {
        let previous = self.selected_row();
        self.sort = self.sort.toggled();
        self.rebuild(previous);
    }

    /// Recomputes rows; the selection keeps its id, or moves to the nearest visible
    /// connection when its own is filtered out or deleted.
    fn rebuild(&mut self, previous_position: Option<usize>) {
        let needle = self.query.to_lowercase();
        let mut current = Vec::new();
        let mut legacy = Vec::new();
        for (i, c) in self.all.iter().enumerate() {
            if needle.is_empty() || self.lowered[i].contains(&needle) {
                if is_deprecated(c) {
                    legacy.push(i);
                } else {
                    current.push(i);
                }
            }
        }
        let key = |i: &usize| (self.lowered[*i].clone(), self.all[*i].id);
        current.sort_by_cached_key(key);
        legacy.sort_by_cached_key(key);
        if self.sort == SortOrder::ZToA {
            current.reverse();
            legacy.reverse();
        }
        let mut rows = Vec::with_capacity(current.len() + legacy.len() + 2);
        rows.push(Row::Group {
            deprecated: false,
            count: current.len(),
        });
        rows.extend(current.into_iter().map(Row::Item));
        if !legacy.is_empty() {
            rows.push(Row::Group {
                deprecated: true,
                count: legacy.len(),
            });
            rows.extend(legacy.into_iter().map(Row::Item));
        }
        self.rows = rows;
        let still_there = self.selected.and_then(|id| self.row_of(id));
        if still_there.is_none() {
            let near = previous_position.unwrap_or(0);
            self.selected = self.nearest_item(near).map(|i| self.all[i].id);
        }
    }

    fn row_of(&self, id: i64) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| matches!(r, Row::Item(i) if self.all[*i].id == id))
    }

    fn nearest_item(&self, row: usize) -> Option<usize> {
        let after = self.rows.iter().skip(row);
        let before = self.rows.iter().take(row).rev();
        after.chain(before).find_map(|r| match r {
            Row::Item(i) => Some(*i),
            Row::Group { .. } => None,
        })
    }

    pub fn selected_row(&self) -> Option<usize> {
        self.selected.and_then(|id| self.row_of(id))
    }

    pub fn selected_connection(&self) -> Option<&Connection> {
        let id = self.selected?;
        self.all.iter().find(|c| c.id == id)
    }

    pub fn get(&self, id: i64) -> Option<&Connection> {
        self.all.iter().find(|c| c.id == id)
    }

    pub fn visible_count(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r, Row::Item(_)))
            .count()
    }

    /// Moves by `delta` connections, skipping group headings; stops at the ends.
    pub fn move_by(&mut self, delta: isize) {
        let items: Vec<usize> = self
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Item(i) => Some(*i),
                _ => None,
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let at = self
            .selected
            .and_then(|id| items.iter().position(|i| self.all[*i].id == id))
            .unwrap_or(0) as isize;
        let to = (at + delta).clamp(0, items.len() as isize - 1) as usize;
        self.selected = Some(self.all[items[to]].id);
    }

    pub fn first(&mut self) {
        self.move_by(isize::MIN / 2);
    }

    pub fn last(&mut self) {
        self.move_by(isize::MAX / 2);
    }

    /// Selects what is on screen row `row` (0 = first drawn), for mouse clicks.
    pub fn select_drawn_row(&mut self, row: usize) -> bool {
        match self.rows.get(self.offset + row) {
            Some(Row::Item(i)) => {
                self.selected = Some(self.all[*i].id);
                true
            }
            _ => false,
        }
    }

    /// Adjusts the scroll offset so the selection is within `height` drawn rows.
    pub fn scroll_into_view(&mut self, height: usize) {
        if height == 0 {
            return;
        }
        let max_offset = self.rows.len().saturating_sub(height);
        if let Some(row) = self.selected_row() {
            if row < self.offset {
                self.offset = row;
            } else if row >= self.offset + height {
                self.offset = row + 1 - height;
            }
        }
        self.offset = self.offset.min(max_offset);
    }
}

/// Connections for tests, with fixed times so screens snapshot the same every run.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::model::{Connection, DesiredState, Status};

    pub fn conn(id: i64, name: &str, type_key: &str) -> Connection {
        Connection {
            id,
            tenant_id: 1,
            type_key: type_key.into(),
            name: name.into(),
            description: String::new(),
            fields: Default::default(),
            secrets: Default::default(),
            env: Vec::new(),
            version: 1,
            desired: DesiredState::Stopped,
            status: Status::Stopped,
            status_message: String::new(),
            status_since: 0,
            running_version: None,
            updated_at: 0,
            updated_by: "t".into(),
            hook_id: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::conn;
    use super::*;

    fn names(l: &ChannelList) -> Vec<String> {
        l.rows
            .iter()
            .map(|r| match r {
                Row::Group { deprecated, count } => {
                    format!("[{}{count}]", if *deprecated { "D" } else { "C" })
                }
                Row::Item(i) => l.all[*i].name.clone(),
            })
            .collect()
    }

    fn sample() -> ChannelList {
        let mut l = ChannelList::default();
        l.set(vec![
            conn(1, "beta bot", "telegram"),
            conn(2, "Alpha mail", "email"),
            conn(3, "old sms", "messagebird"),
            conn(4, "Gamma", "whatsapp"),
        ]);
        l
    }

    #[test]
    fn groups_current_then_deprecated_each_sorted_case_insensitively() {
        let mut l = sample();
        assert_eq!(
            names(&l),
            ["[C3]", "Alpha mail", "beta bot", "Gamma", "[D1]", "old sms"]
        );
        l.toggle_sort();
        assert_eq!(
            names(&l),
            ["[C3]", "Gamma", "beta bot", "Alpha mail", "[D1]", "old sms"]
        );
    }

    #[test]
    fn search_filters_by_name_case_insensitively_and_hides_empty_deprecated_group() {
        let mut l = sample();
        l.set_query("BOT");
        assert_eq!(names(&l), ["[C1]", "beta bot"]);
        l.set_query("");
        assert_eq!(l.visible_count(), 4);
    }

    #[test]
    fn selection_follows_the_connection_when_rows_move() {
        let mut l = sample();
        l.selected = Some(4);
        let mut more = l.all.clone();
        more.push(conn(5, "aardvark", "telegram"));
        l.set(more);
        assert_eq!(l.selected, Some(4));
        assert_eq!(l.selected_connection().unwrap().name, "Gamma");
    }

    #[test]
    fn a_deleted_selection_moves_to_the_neighbour_not_to_the_top() {
        let mut l = sample();
        l.selected = Some(1); // beta bot, between Alpha mail and Gamma
        let rest: Vec<_> = l.all.iter().filter(|c| c.id != 1).cloned().collect();
        l.set(rest);
        assert_eq!(l.selected_connection().unwrap().name, "Gamma");
    }

    #[test]
    fn deleting_the_only_connection_leaves_no_selection() {
        let mut l = ChannelList::default();
        l.set(vec![conn(1, "only", "telegram")]);
        l.selected = Some(1);
        l.set(Vec::new());
        assert_eq!(l.selected, None);
        l.move_by(1);
        assert_eq!(l.selected, None);
    }

    #[test]
    fn moving_skips_group_headings_and_stops_at_the_ends() {
        let mut l = sample();
        l.selected = Some(4);
        l.move_by(1);
        assert_eq!(l.selected_connection().unwrap().name, "old sms");
        l.move_by(5);
        assert_eq!(l.selected_connection().unwrap().name, "old sms");
        l.first();
        assert_eq!(l.selected_connection().unwrap().name, "Alpha mail");
    }
}
