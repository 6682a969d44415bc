//! Tasker's `sequence`: the results of a task's steps so far, by step name.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// The results of the task's steps so far, by step name (Tasker's `sequence`).
///
/// A clone is a snapshot: it keeps seeing the results recorded before it was taken, whatever is
/// recorded later. Cloning, recording and looking a step up each take constant time, whatever
/// the number of steps (the runner gives every step a snapshot).
///
/// ```
/// use tasker_telemetry::handler::Sequence;
///
/// let mut sequence = Sequence::new();
/// sequence.record("fetch_cart", serde_json::json!({"items": 2}));
/// let snapshot = sequence.clone();
/// sequence.record("charge", serde_json::json!("ch_1"));
/// assert_eq!(sequence.results_of("fetch_cart").unwrap()["items"], 2);
/// assert!(snapshot.results_of("charge").is_none());
/// ```
#[derive(Clone, Default)]
pub struct Sequence {
    shared: Arc<Shared>,
    /// This snapshot sees `shared.entries[..len]`.
    len: usize,
}

/// Entries are only ever appended, so a snapshot is a length; a result recorded again is a new
/// entry, found first by later snapshots.
#[derive(Default)]
struct Shared {
    entries: boxcar::Vec<(Arc<str>, Arc<serde_json::Value>)>,
    /// Each name's positions in `entries`, ascending. Held while appending, so appends are
    /// serial and positions match the order they were made in.
    positions: Mutex<HashMap<Arc<str>, Vec<usize>>>,
}

impl Shared {
    fn positions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Vec<usize>>> {
        // Every update is one push into a vector: a poisoned lock still guards whole data.
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sequence {
    /// No results yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or replaces) a step's results.
    pub fn record(&mut self, step_name: impl Into<Arc<str>>, results: serde_json::Value) {
        let name = step_name.into();
        if self.len != self.shared.entries.count() {
            // An older snapshot records: it goes on from a copy of what it sees, leaving the
            // later entries to the snapshots that see them.
            let copy = Shared::default();
            for (name, value) in self.visible() {
                copy.entries.push((name.clone(), value.clone()));
            }
            let mut positions = copy.positions();
            for (at, (name, _)) in copy.entries.iter() {
                positions.entry(name.clone()).or_default().push(at);
            }
            drop(positions);
            self.shared = Arc::new(copy);
        }
        let mut positions = self.shared.positions();
        let at = self.shared.entries.push((name.clone(), Arc::new(results)));
        positions.entry(name).or_default().push(at);
        self.len = at + 1;
    }

    /// The results of the named step, if it completed.
    pub fn results_of(&self, step_name: &str) -> Option<&serde_json::Value> {
        let at = self.latest(step_name)?;
        self.shared.entries.get(at).map(|(_, value)| &**value)
    }

    /// The names of the steps with results, in the order they first completed.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        let positions = self.shared.positions();
        let names: Vec<&str> = self
            .visible()
            .enumerate()
            .filter(|(at, (name, _))| positions.get(name).and_then(|p| p.first()) == Some(at))
            .map(|(_, (name, _))| &**name)
            .collect();
        names.into_iter()
    }

    /// The position of `step_name`'s latest results this snapshot sees.
    fn latest(&self, step_name: &str) -> Option<usize> {
        let positions = self.shared.positions();
        let seen = positions.get(step_name)?;
        let before = seen.partition_point(|at| *at < self.len);
        before.checked_sub(1).map(|i| seen[i])
    }

    /// The entries this snapshot sees, oldest first.
    fn visible(&self) -> impl Iterator<Item = &(Arc<str>, Arc<serde_json::Value>)> {
        (0..self.len).filter_map(|at| self.shared.entries.get(at))
    }
}

impl fmt::Debug for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.step_names().map(|name| {
                (
                    name,
                    self.results_of(name).unwrap_or(&serde_json::Value::Null),
                )
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshots_see_what_was_recorded_before_them() {
        let mut sequence = Sequence::new();
        sequence.record("a", json!(1));
        let after_a = sequence.clone();
        sequence.record("b", json!(2));
        sequence.record("a", json!(3));
        assert_eq!(sequence.results_of("a"), Some(&json!(3)));
        assert_eq!(sequence.step_names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(after_a.results_of("a"), Some(&json!(1)));
        assert_eq!(after_a.results_of("b"), None);
        // An old snapshot that records branches off, seeing its own past and its new entry.
        let mut branch = after_a.clone();
        branch.record("c", json!(4));
        assert_eq!(branch.step_names().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(branch.results_of("a"), Some(&json!(1)));
        assert_eq!(sequence.results_of("c"), None);
        assert_eq!(
            format!("{sequence:?}"),
            r#"{"a": Number(3), "b": Number(2)}"#
        );
    }
}
