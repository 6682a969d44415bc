//! A bound on how deeply the values the filter passes on may nest.
//!
//! Cloning, dropping, comparing and serialising a `serde_json::Value` each recurse once per
//! level, so a task context nested a hundred thousand levels deep overflows any thread's stack
//! in whichever of them meets it first. The filter is the one door every payload passes through
//! to the sinks: what it lets through is at most [`MAX_VALUE_DEPTH`] deep, and what it cuts off
//! is torn down with a loop instead of recursion.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

mod serializer;

pub(crate) use serializer::{Bounded, Past};

/// `value` as JSON, its `Serialize` stopped just past [`MAX_VALUE_DEPTH`] (see [`Bounded`]):
/// `serde_json::to_value` for a value of the user's type, whatever its depth. `past` says what
/// becomes of the part beyond.
pub(crate) fn to_value_bounded<T: Serialize + ?Sized>(
    value: &T,
    past: Past,
) -> Result<Value, serde_json::Error> {
    value.serialize(Bounded::new(serde_json::value::Serializer, past))
}

/// How many objects and arrays may nest inside each other in a value the filter passes on:
/// serde_json's own limit for parsing, so whatever a sink writes, a serde_json reader reads.
pub const MAX_VALUE_DEPTH: usize = 128;

/// The text that replaces an object or array nested deeper than [`MAX_VALUE_DEPTH`].
pub const DEPTH_MASK: &str = "[TOO DEEP]";

/// A copy of `value` down to [`MAX_VALUE_DEPTH`], each deeper container replaced by
/// [`DEPTH_MASK`] and counted in `too_deep`. Recurses at most that deep.
pub(super) fn clone_bounded(value: &Value, too_deep: &AtomicU64) -> Value {
    fn copy(value: &Value, nesting: usize, too_deep: &AtomicU64) -> Value {
        match value {
            Value::Object(_) | Value::Array(_) if nesting >= MAX_VALUE_DEPTH => {
                too_deep.fetch_add(1, Ordering::Relaxed);
                Value::String(DEPTH_MASK.to_owned())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), copy(v, nesting + 1, too_deep)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| copy(v, nesting + 1, too_deep))
                    .collect(),
            ),
            scalar => scalar.clone(),
        }
    }
    copy(value, 0, too_deep)
}

/// Drops `value` without recursing: each container's children are moved onto a list before the
/// container itself is dropped, so no drop goes deeper than one level.
///
/// Anything that may own a value deeper than the stack allows (what the filter cut off, a task
/// context the runner was handed) is dropped through here.
pub(crate) fn drop_deep(value: Value) {
    // A scalar or a flat container drops with no risk: the common case pays a match.
    let container = |v: &Value| matches!(v, Value::Object(_) | Value::Array(_));
    let deep = match &value {
        Value::Array(items) => items.iter().any(container),
        Value::Object(map) => map.values().any(container),
        _ => false,
    };
    if !deep {
        return;
    }
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => pending.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(levels: usize) -> Value {
        let mut value = Value::from(1);
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    }

    fn depth_of(mut value: &Value) -> usize {
        let mut depth = 0;
        while let Value::Array(items) = value {
            depth += 1;
            value = &items[0];
        }
        depth
    }

    #[test]
    fn a_hundred_thousand_levels_are_copied_to_the_bound_and_dropped_without_overflow() {
        let deep = nested_arrays(100_000);
        let count = AtomicU64::new(0);
        let copy = clone_bounded(&deep, &count);
        assert_eq!(depth_of(&copy), MAX_VALUE_DEPTH);
        assert_eq!(count.load(Ordering::Relaxed), 1);
        drop_deep(copy);
        drop_deep(deep);
    }

    #[test]
    fn a_value_at_the_bound_is_copied_whole() {
        let at_bound = nested_arrays(MAX_VALUE_DEPTH);
        let count = AtomicU64::new(0);
        assert_eq!(clone_bounded(&at_bound, &count), at_bound);
        assert_eq!(count.load(Ordering::Relaxed), 0);
        let over = nested_arrays(MAX_VALUE_DEPTH + 1);
        assert_ne!(clone_bounded(&over, &count), over);
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}
