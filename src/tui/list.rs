//! The channel list: grouping, search, sort and a selection that follows the
//! connection's id, not its row number, when the list changes under it.

use crate::catalog::Catalog;
use crate::model::{Connection, Status};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    AToZ,
    ZToA,
    /// Trouble first: ERROR, STARTING, STOPPING, STOPPED, RUNNING; A→Z within each.
    Status,
}

impl SortOrder {
    pub fn label(self) -> &'static str {
        match self {
            SortOrder::AToZ => "A→Z",
            SortOrder::ZToA => "Z→A",
            SortOrder::Status => "by status",
        }
    }

    pub fn toggled(self) -> SortOrder {
        match self {
            SortOrder::AToZ => SortOrder::ZToA,
            SortOrder::ZToA => SortOrder::Status,
            SortOrder::Status => SortOrder::AToZ,
        }
    }
}

/// Which connections the list shows, by status (`f` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    All,
    Errors,
    NotRunning,
}

impl StatusFilter {
    /// What the list's title says; `None` when everything shows.
    pub fn label(self) -> Option<&'static str> {
        match self {
            StatusFilter::All => None,
            StatusFilter::Errors => Some("ERROR only"),
            StatusFilter::NotRunning => Some("not RUNNING"),
        }
    }

    /// What an empty filtered list says.
    pub fn none_text(self) -> Option<&'static str> {
        match self {
            StatusFilter::All => None,
            StatusFilter::Errors => Some("No connection in ERROR"),
            StatusFilter::NotRunning => Some("Every connection is RUNNING"),
        }
    }

    pub fn next(self) -> StatusFilter {
        match self {
            StatusFilter::All => StatusFilter::Errors,
            StatusFilter::Errors => StatusFilter::NotRunning,
            StatusFilter::NotRunning => StatusFilter::All,
        }
    }

    fn keeps(self, status: Status) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Errors => status == Status::Error,
            StatusFilter::NotRunning => status != Status::Running,
        }
    }
}

/// Where a status goes when the list is sorted by status: trouble first.
fn status_rank(status: Status) -> u8 {
    match status {
        Status::Error => 0,
        Status::Starting => 1,
        Status::Stopping => 2,
        Status::Stopped => 3,
        Status::Running => 4,
    }
}

/// `indexes` grouped by status rank, A→Z kept within a status: one pass into buckets
/// rather than a sort per keystroke.
fn by_status_rank(all: &[Connection], indexes: Vec<usize>) -> Vec<usize> {
    let mut buckets: [Vec<usize>; 5] = Default::default();
    for i in indexes {
        buckets[status_rank(all[i].status) as usize].push(i);
    }
    buckets.concat()
}

/// What one search found: positions in `order`, and where in the buffer each first
/// holds the needle.
#[derive(Debug)]
struct Searched {
    needle: String,
    matched: Vec<usize>,
    first: Vec<usize>,
}

impl Searched {
    fn new(needle: &str) -> Searched {
        Searched {
            needle: needle.to_string(),
            matched: Vec::new(),
            first: Vec::new(),
        }
    }
}

/// One line of the list: a group heading or a connection (by index into `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Group { deprecated: bool, count: usize },
    Item(usize),
}

/// A connection's place in `rows`, for connections the search hides.
const HIDDEN: usize = usize::MAX;

/// The list's data and what is derived from it. With a hundred thousand connections
/// every keystroke must stay well under a frame, so what depends only on the data
/// (lowercased names, the A→Z order, positions by id, status counts) is computed when
/// the data changes, and a keystroke only filters that order.
#[derive(Debug, Default)]
pub struct ChannelList {
    pub all: Vec<Connection>,
    pub rows: Vec<Row>,
    pub query: String,
    pub sort: SortOrder,
    pub filter: StatusFilter,
    pub selected: Option<i64>,
    /// First row drawn; kept so the selection stays in view without jumping.
    pub offset: usize,
    /// The lowercased names in A→Z order, each ended by NUL, in one buffer: a search
    /// is one SIMD substring scan over it instead of a pointer chase per name.
    haystack: String,
    /// Where each name of `order` starts in `haystack`, plus its end as a last entry.
    starts: Vec<usize>,
    /// Whether each connection of `order` is of a deprecated type.
    deprecated: Vec<bool>,
    /// What the rows show: positions in `order`, and the sort and filter they were
    /// made for (`None` after the data changed).
    matched: Vec<usize>,
    shown_for: Option<(SortOrder, StatusFilter)>,
    /// The previous search's buffer, reused.
    spare: Vec<usize>,
    /// What each prefix of the search typed so far found (for the status filter
    /// `trail_filter`), shortest first; cleared when the data changes.
    trail: Vec<Searched>,
    trail_filter: StatusFilter,
    /// Indexes into `all`, A→Z by lowercased name, then id.
    order: Vec<usize>,
    /// Index into `all` by connection id.
    index_of: HashMap<i64, usize>,
    /// Row of each index into `all` (`HIDDEN` when filtered out).
    row_of_index: Vec<usize>,
    visible: usize,
    running: usize,
    errors: usize,
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
        self.all = all;
        self.derive();
        self.rebuild(previous);
    }

    /// Recomputes everything that depends on the data alone.
    fn derive(&mut self) {
        let lowered: Vec<String> = self.all.iter().map(|c| c.name.to_lowercase()).collect();
        self.index_of = self
            .all
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let mut order: Vec<usize> = (0..self.all.len()).collect();
        // The store sends the rows by name already, so this is close to one pass.
        order.sort_by(|a, b| {
            lowered[*a]
                .cmp(&lowered[*b])
                .then(self.all[*a].id.cmp(&self.all[*b].id))
        });
        self.haystack.clear();
        self.starts.clear();
        for &i in &order {
            self.starts.push(self.haystack.len());
            // A name cannot hold the separator, so no match spans two names.
            self.haystack
                .extend(lowered[i].chars().filter(|c| *c != '\0'));
            self.haystack.push('\0');
        }
        self.starts.push(self.haystack.len());
        self.deprecated = order.iter().map(|&i| is_deprecated(&self.all[i])).collect();
        self.order = order;
        self.shown_for = None;
        self.trail.clear();
        self.running = self
            .all
            .iter()
            .filter(|c| c.status == Status::Running)
            .count();
        self.errors = self
            .all
            .iter()
            .filter(|c| c.status == Status::Error)
            .count();
    }

    /// One connection as it is now (`None`: deleted), keeping the selection. A change
    /// that leaves its name and type alone (a status, a setting) leaves every row where
    /// it is, so it is swapped in place instead of rebuilding the list.
    pub fn upsert(&mut self, id: i64, latest: Option<Connection>) {
        let at = self.index_of.get(&id).copied();
        // A status change moves rows when the list is filtered or sorted by status.
        let by_status = self.filter != StatusFilter::All || self.sort == SortOrder::Status;
        if let (Some(i), Some(c)) = (at, &latest)
            && c.name == self.all[i].name
            && c.type_key == self.all[i].type_key
            && (!by_status || c.status == self.all[i].status)
        {
            let old = std::mem::replace(&mut self.all[i], c.clone());
            self.count_status(old.status, -1);
            self.count_status(c.status, 1);
            return;
        }
        let previous = self.selected_row();
        match (at, latest) {
            (Some(i), Some(c)) => self.all[i] = c,
            (Some(i), None) => {
                self.all.remove(i);
            }
            (None, Some(c)) => self.all.push(c),
            (None, None) => return,
        }
        self.derive();
        self.rebuild(previous);
    }

    fn count_status(&mut self, status: Status, by: isize) {
        let counter = match status {
            Status::Running => &mut self.running,
            Status::Error => &mut self.errors,
            _ => return,
        };
        *counter = counter.saturating_add_signed(by);
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

    /// `f`: all → ERROR only → not RUNNING → all.
    pub fn cycle_filter(&mut self) {
        let previous = self.selected_row();
        self.filter = self.filter.next();
        self.rebuild(previous);
    }

    /// The next connection in ERROR after the selection, wrapping round; false when the
    /// list shows none.
    pub fn select_next_error(&mut self) -> bool {
        let from = self.selected_row().map_or(0, |r| r + 1);
        let n = self.rows.len();
        let found = (0..n)
            .map(|k| (from + k) % n)
            .find_map(|r| match self.rows[r] {
                Row::Item(i) if self.all[i].status == Status::Error => Some(self.all[i].id),
                _ => None,
            });
        if found.is_some() {
            self.selected = found;
        }
        found.is_some()
    }

    /// Recomputes rows; the selection keeps its id, or moves to the nearest visible
    /// connection when its own is filtered out or deleted.
    fn rebuild(&mut self, previous_position: Option<usize>) {
        let mut matched = std::mem::take(&mut self.spare);
        self.find_matches(&mut matched);
        // Typing into a search that every name still matches ("c", "ch", … against
        // "Channel …") changes nothing: the rows stand and only the scan was paid.
        let shown = (self.sort, self.filter);
        if self.shown_for == Some(shown) && matched == self.matched {
            self.spare = matched;
            return;
        }
        self.spare = std::mem::replace(&mut self.matched, matched);
        self.shown_for = Some(shown);
        let (mut current, mut legacy): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for &k in &self.matched {
            let i = self.order[k];
            if self.deprecated[k] {
                legacy.push(i);
            } else {
                current.push(i);
            }
        }
        match self.sort {
            SortOrder::AToZ => {}
            SortOrder::ZToA => {
                current.reverse();
                legacy.reverse();
            }
            SortOrder::Status => {
                current = by_status_rank(&self.all, current);
                legacy = by_status_rank(&self.all, legacy);
            }
        }
        self.visible = current.len() + legacy.len();
        // The old rows' buffer is reused: freeing and growing a 100,000-row vector on
        // every keystroke cost as much as the search itself.
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        rows.reserve(self.visible + 2);
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
        self.row_of_index.clear();
        self.row_of_index.resize(self.all.len(), HIDDEN);
        for (r, row) in rows.iter().enumerate() {
            if let Row::Item(i) = row {
                self.row_of_index[*i] = r;
            }
        }
        self.rows = rows;
        let still_there = self.selected.and_then(|id| self.row_of(id));
        if still_there.is_none() {
            let near = previous_position.unwrap_or(0);
            self.selected = self.nearest_item(near).map(|i| self.all[i].id);
        }
    }

    /// The positions in `order` of the connections the search and the status filter
    /// keep, A→Z.
    fn find_matches(&mut self, matched: &mut Vec<usize>) {
        matched.clear();
        let needle = self.query.to_lowercase().replace('\0', "");
        if self.trail_filter != self.filter {
            self.trail.clear();
            self.trail_filter = self.filter;
        }
        if needle.is_empty() {
            self.trail.clear();
            matched.extend((0..self.order.len()).filter(|&k| self.keeps(k)));
            return;
        }
        // Erasing goes back to what a shorter search found; typing on narrows it.
        while self
            .trail
            .last()
            .is_some_and(|t| !needle.starts_with(&t.needle))
        {
            self.trail.pop();
        }
        let step = match self.trail.last() {
            Some(t) if t.needle == needle => None,
            Some(t) => Some(self.narrow(t, &needle)),
            None => Some(self.scan(&needle)),
        };
        if let Some(step) = step {
            self.trail.push(step);
        }
        if let Some(t) = self.trail.last() {
            matched.extend_from_slice(&t.matched);
        }
    }

    fn keeps(&self, k: usize) -> bool {
        self.filter == StatusFilter::All || self.filter.keeps(self.all[self.order[k]].status)
    }

    /// Every name searched: one finder over the whole buffer; after a match the scan
    /// resumes at the next name, so a name is looked at once however often it holds
    /// the needle.
    fn scan(&self, needle: &str) -> Searched {
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let hay = self.haystack.as_bytes();
        let mut found = Searched::new(needle);
        let (mut k, mut from) = (0, 0);
        while let Some(at) = finder.find(&hay[from..]) {
            let at = from + at;
            while self.starts[k + 1] <= at {
                k += 1;
            }
            if self.keeps(k) {
                found.matched.push(k);
                found.first.push(at);
            }
            from = self.starts[k + 1];
        }
        found
    }

    /// A search that extends `shorter`: only its matches can hold `needle`, and where
    /// one first holds it, `needle` starts there or later. Typing into a search that
    /// every name matches costs a byte comparison a name instead of a scan.
    fn narrow(&self, shorter: &Searched, needle: &str) -> Searched {
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let (hay, n) = (self.haystack.as_bytes(), needle.len());
        let mut found = Searched::new(needle);
        found.matched.reserve(shorter.matched.len());
        found.first.reserve(shorter.matched.len());
        for (&k, &at) in shorter.matched.iter().zip(&shorter.first) {
            // The name ends before its NUL.
            let end = self.starts[k + 1] - 1;
            let here = at + n <= end && &hay[at..at + n] == needle.as_bytes();
            let first = if here {
                Some(at)
            } else {
                finder.find(&hay[at + 1..end]).map(|f| at + 1 + f)
            };
            if let Some(first) = first {
                found.matched.push(k);
                found.first.push(first);
            }
        }
        // Kept while the search is typed on: no more than it found.
        found.matched.shrink_to_fit();
        found.first.shrink_to_fit();
        found
    }

    fn row_of(&self, id: i64) -> Option<usize> {
        let i = *self.index_of.get(&id)?;
        self.row_of_index.get(i).copied().filter(|r| *r != HIDDEN)
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
        self.get(self.selected?)
    }

    pub fn get(&self, id: i64) -> Option<&Connection> {
        self.index_of.get(&id).map(|i| &self.all[*i])
    }

    /// Connections the search shows.
    pub fn visible_count(&self) -> usize {
        self.visible
    }

    /// Connections RUNNING and in ERROR, whatever the search shows.
    pub fn status_counts(&self) -> (usize, usize) {
        (self.running, self.errors)
    }

    /// Moves by `delta` connections, skipping group headings; stops at the ends.
    pub fn move_by(&mut self, delta: isize) {
        let Some(first) = self.nearest_item(0) else {
            return;
        };
        let from = self.selected_row().unwrap_or(self.row_of_index[first]);
        let item = |r: &Row| match r {
            Row::Item(i) => Some(*i),
            Row::Group { .. } => None,
        };
        let steps = delta.unsigned_abs();
        let target = if delta >= 0 {
            let ahead = self.rows[from..].iter().filter_map(item);
            ahead.take(steps + 1).last()
        } else {
            let behind = self.rows[..=from].iter().rev().filter_map(item);
            behind.take(steps + 1).last()
        };
        if let Some(i) = target {
            self.selected = Some(self.all[i].id);
        }
    }

    pub fn first(&mut self) {
        self.selected = self.nearest_item(0).map(|i| self.all[i].id);
    }

    pub fn last(&mut self) {
        let last = self.rows.iter().rev().find_map(|r| match r {
            Row::Item(i) => Some(*i),
            Row::Group { .. } => None,
        });
        self.selected = last.map(|i| self.all[i].id);
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
    fn a_search_never_matches_across_two_names_and_lists_a_name_once() {
        let mut l = sample();
        // "Alpha mail" is followed by "beta bot": "mailbeta" spans the two.
        l.set_query("mailbeta");
        assert_eq!(names(&l), ["[C0]"]);
        l.set_query("a");
        assert_eq!(names(&l), ["[C3]", "Alpha mail", "beta bot", "Gamma"]);
        l.set_query("mail");
        assert_eq!(names(&l), ["[C1]", "Alpha mail"]);
        // The last name in the buffer matches up to its end.
        l.set_query("sms");
        assert_eq!(names(&l), ["[C0]", "[D1]", "old sms"]);
    }

    #[test]
    fn typing_and_erasing_find_what_a_plain_search_finds() {
        // Names where a needle's first place is not where its extension is.
        let words = ["cxch", "abab", "aab", "Chan", "cch", "xcxcx", "ba", "ABA b"];
        let mut all = Vec::new();
        for (i, a) in words.iter().enumerate() {
            for (j, b) in words.iter().enumerate() {
                let mut c = conn((i * 10 + j) as i64, &format!("{a}{b}"), "telegram");
                c.status = if (i + j) % 3 == 0 {
                    Status::Error
                } else {
                    Status::Running
                };
                all.push(c);
            }
        }
        let mut l = ChannelList::default();
        l.set(all.clone());
        let plain = |l: &ChannelList, q: &str| -> Vec<String> {
            let mut v: Vec<String> = l
                .all
                .iter()
                .filter(|c| c.name.to_lowercase().contains(&q.to_lowercase()))
                .filter(|c| l.filter.keeps(c.status))
                .map(|c| c.name.clone())
                .collect();
            v.sort_by_key(|n| n.to_lowercase());
            v
        };
        let shown = |l: &ChannelList| -> Vec<String> {
            let mut v: Vec<String> = l
                .rows
                .iter()
                .filter_map(|r| match r {
                    Row::Item(i) => Some(l.all[*i].name.clone()),
                    _ => None,
                })
                .collect();
            v.sort_by_key(|n| n.to_lowercase());
            v
        };
        for typed in ["cxch", "abab b", "ch", "aab", "xcx", "b a"] {
            for filter_step in 0..2 {
                let mut q = String::new();
                for ch in typed.chars() {
                    q.push(ch);
                    l.set_query(&q);
                    assert_eq!(shown(&l), plain(&l, &q), "typing {q:?}");
                }
                while q.pop().is_some() {
                    l.set_query(&q);
                    assert_eq!(shown(&l), plain(&l, &q), "erasing to {q:?}");
                }
                if filter_step == 0 {
                    l.cycle_filter();
                }
            }
            l.cycle_filter();
            l.cycle_filter();
        }
        // A change of data mid-search: the search starts over on the new names.
        l.set_query("ch");
        let mut fewer = all.clone();
        fewer.retain(|c| !c.name.starts_with("cxch"));
        l.set(fewer);
        l.set_query("cha");
        assert_eq!(shown(&l), plain(&l, "cha"));
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

    #[test]
    fn a_status_change_is_swapped_in_place_and_counted() {
        let mut l = sample();
        l.selected = Some(4);
        let rows = l.rows.clone();
        let mut gamma = l.get(4).unwrap().clone();
        gamma.status = Status::Error;
        l.upsert(4, Some(gamma));
        assert_eq!(l.rows, rows, "no row moved");
        assert_eq!(l.get(4).unwrap().status, Status::Error);
        assert_eq!(l.status_counts(), (0, 1));
        let mut gamma = l.get(4).unwrap().clone();
        gamma.status = Status::Running;
        l.upsert(4, Some(gamma));
        assert_eq!(l.status_counts(), (1, 0));
        assert_eq!(l.selected_connection().unwrap().name, "Gamma");
    }

    #[test]
    fn a_rename_an_addition_and_a_deletion_find_their_places() {
        let mut l = sample();
        l.selected = Some(4);
        let mut renamed = l.get(2).unwrap().clone();
        renamed.name = "zulu mail".into();
        l.upsert(2, Some(renamed));
        assert_eq!(
            names(&l),
            ["[C3]", "beta bot", "Gamma", "zulu mail", "[D1]", "old sms"]
        );
        l.upsert(5, Some(conn(5, "Delta", "telegram")));
        l.upsert(1, None);
        assert_eq!(
            names(&l),
            ["[C3]", "Delta", "Gamma", "zulu mail", "[D1]", "old sms"]
        );
        assert_eq!(l.selected_connection().unwrap().name, "Gamma");
        assert!(l.get(1).is_none());
        l.upsert(1, None);
        assert_eq!(l.all.len(), 4);
    }

    #[test]
    fn search_keeps_the_a_to_z_order_and_counts_what_it_shows() {
        let mut l = sample();
        l.set_query("a");
        assert_eq!(names(&l), ["[C3]", "Alpha mail", "beta bot", "Gamma"]);
        assert_eq!(l.visible_count(), 3);
        l.toggle_sort();
        assert_eq!(names(&l), ["[C3]", "Gamma", "beta bot", "Alpha mail"]);
        l.set_query("SMS");
        assert_eq!(names(&l), ["[C0]", "[D1]", "old sms"]);
        assert_eq!(l.selected_connection().unwrap().name, "old sms");
    }

    #[test]
    fn moving_backwards_and_past_the_start() {
        let mut l = sample();
        l.last();
        assert_eq!(l.selected_connection().unwrap().name, "old sms");
        l.move_by(-2);
        assert_eq!(l.selected_connection().unwrap().name, "beta bot");
        l.move_by(-10);
        assert_eq!(l.selected_connection().unwrap().name, "Alpha mail");
        l.move_by(0);
        assert_eq!(l.selected_connection().unwrap().name, "Alpha mail");
    }

    fn with_statuses() -> ChannelList {
        let mut l = ChannelList::default();
        let mut all = Vec::new();
        for (id, name, status) in [
            (1, "alpha", Status::Running),
            (2, "bravo", Status::Error),
            (3, "charlie", Status::Stopped),
            (4, "delta", Status::Error),
            (5, "echo", Status::Starting),
        ] {
            let mut c = conn(id, name, "telegram");
            c.status = status;
            all.push(c);
        }
        l.set(all);
        l
    }

    #[test]
    fn filter_by_status_and_sort_with_trouble_first() {
        let mut l = with_statuses();
        l.cycle_filter();
        assert_eq!(l.filter.label(), Some("ERROR only"));
        assert_eq!(names(&l), ["[C2]", "bravo", "delta"]);
        l.cycle_filter();
        assert_eq!(names(&l), ["[C4]", "bravo", "charlie", "delta", "echo"]);
        l.cycle_filter();
        assert_eq!(l.filter, StatusFilter::All);
        l.toggle_sort();
        l.toggle_sort();
        assert_eq!(l.sort.label(), "by status");
        assert_eq!(
            names(&l),
            ["[C5]", "bravo", "delta", "echo", "charlie", "alpha"]
        );
    }

    #[test]
    fn a_status_change_moves_a_row_out_of_a_status_filter() {
        let mut l = with_statuses();
        l.cycle_filter();
        let mut fixed = l.get(2).unwrap().clone();
        fixed.status = Status::Running;
        l.upsert(2, Some(fixed));
        assert_eq!(names(&l), ["[C1]", "delta"]);
    }

    #[test]
    fn next_error_goes_round_the_list() {
        let mut l = with_statuses();
        l.first();
        assert!(l.select_next_error());
        assert_eq!(l.selected_connection().unwrap().name, "bravo");
        assert!(l.select_next_error());
        assert_eq!(l.selected_connection().unwrap().name, "delta");
        assert!(l.select_next_error());
        assert_eq!(l.selected_connection().unwrap().name, "bravo");
        l.set(vec![conn(9, "fine", "telegram")]);
        assert!(!l.select_next_error());
    }
}
