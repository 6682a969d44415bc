//! The event-name rules, in one place: the grammar of names and patterns, the reserved and
//! built-in namespaces, pattern matching and "did you mean". The runtime's catalog, publisher
//! and configuration use this module, and the macro crate (which cannot depend on the runtime)
//! compiles this same file, so a name gets one verdict at compile time and at run time.
//!
//! The file depends on `std` only, for that reason.

#![allow(dead_code)] // each of the two crates uses part of it

/// Namespaces custom events may not use (compared ignoring ASCII case): they belong to Tasker's
/// own events and to test fixtures.
pub(crate) const RESERVED_NAMESPACES: &[&str] = &[
    "task",
    "step",
    "workflow",
    "observability",
    "test",
    "tasker",
];

/// Namespaces whose events all come from the built-in catalog: a name there that is not
/// built in is a typo.
pub(crate) const BUILTIN_NAMESPACES: &[&str] = &[
    "task",
    "step",
    "workflow",
    "observability",
    "tasker",
    "performance",
    "memory",
];

/// The grammar, as error messages state it.
pub(crate) const NAME_GRAMMAR: &str = "dot-separated segments of A-Z, a-z, 0-9, '_' or '-', at least two (as in \"orders.fraud_flagged\")";

/// The pattern grammar, as error messages state it.
pub(crate) const PATTERN_GRAMMAR: &str =
    "an event name, `namespace.*` (as in \"step.*\" or \"tasker.telemetry.*\") or `*`";

/// What is wrong with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameError {
    /// No dot: a name is `namespace.event`.
    MissingDot,
    /// A segment is empty or holds a character outside the grammar.
    Malformed,
    /// A custom event in a reserved namespace (the namespace as written).
    ReservedNamespace(String),
}

/// Whether `segment` is one segment of a name.
fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `name` against the grammar (not whether any event has it).
pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    if !name.contains('.') {
        return Err(NameError::MissingDot);
    }
    if !name.split('.').all(valid_segment) {
        return Err(NameError::Malformed);
    }
    Ok(())
}

/// Checks the name of a custom event: the grammar, and a namespace that is not reserved.
/// (A collision with another event is for the catalog to find.)
pub(crate) fn check_custom_name(name: &str) -> Result<(), NameError> {
    check_name(name)?;
    let namespace = name.split('.').next().unwrap_or(name);
    if RESERVED_NAMESPACES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(namespace))
    {
        return Err(NameError::ReservedNamespace(namespace.to_owned()));
    }
    Ok(())
}

/// What a subscription or filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern<'a> {
    /// One event, by name.
    Name(&'a str),
    /// Every event in a namespace (the prefix before `.*`).
    Namespace(&'a str),
    /// Every event.
    All,
}

/// Parses a name or pattern; `None` when it is neither.
pub(crate) fn parse_pattern(pattern: &str) -> Option<Pattern<'_>> {
    if pattern == "*" {
        return Some(Pattern::All);
    }
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return prefix
            .split('.')
            .all(valid_segment)
            .then_some(Pattern::Namespace(prefix));
    }
    check_name(pattern)
        .is_ok()
        .then_some(Pattern::Name(pattern))
}

/// Whether `name` matches `pattern` (a name, `namespace.*` or `*`).
pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    match parse_pattern(pattern) {
        Some(Pattern::All) => true,
        Some(Pattern::Namespace(prefix)) => {
            name.len() > prefix.len() + 1
                && name.starts_with(prefix)
                && name.as_bytes()[prefix.len()] == b'.'
        }
        Some(Pattern::Name(exact)) => exact == name,
        None => false,
    }
}

/// Whether `name`'s namespace is one whose events are all built in.
pub(crate) fn in_builtin_namespace(name: &str) -> bool {
    let namespace = name.split('.').next().unwrap_or(name);
    BUILTIN_NAMESPACES.contains(&namespace)
}

/// The candidate nearest to `name`, when it is near enough to be a likely typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(d, candidate)| *d <= candidate.len().max(name.len()) / 3 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names and patterns at the grammar's edges, with whether each is a valid name and a valid
/// pattern: the table every entry point is tested against (`tests/event_name_rules.rs`, and
/// the macro crate's unit tests).
pub(crate) const EDGE_CASES: &[(&str, bool, bool)] = &[
    // (text, a valid name, a valid pattern)
    ("orders.fraud_flagged", true, true),
    ("orders.Fraud-Flagged", true, true),
    ("ORDERS.X", true, true),
    ("a.b.c", true, true),
    ("orders", false, false),
    ("orders.", false, false),
    (".orders", false, false),
    ("orders..x", false, false),
    ("orders.fraud flagged", false, false),
    ("orders.fraud/flagged", false, false),
    ("orders.frâud", false, false),
    ("", false, false),
    ("*", false, true),
    ("orders.*", false, true),
    ("tasker.telemetry.*", false, true),
    ("orders.*.x", false, false),
    ("*.orders", false, false),
    (".*", false, false),
    ("orders*", false, false),
    ("or ders.*", false, false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_cases_get_their_verdicts() {
        for &(text, name, pattern) in EDGE_CASES {
            assert_eq!(check_name(text).is_ok(), name, "{text:?} as a name");
            assert_eq!(
                parse_pattern(text).is_some(),
                pattern,
                "{text:?} as a pattern"
            );
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(pattern_matches("step.*", "step.completed"));
        assert!(!pattern_matches("step.*", "steps.completed"));
        assert!(!pattern_matches("step.*", "step"));
        assert!(pattern_matches(
            "tasker.telemetry.*",
            "tasker.telemetry.export_failed"
        ));
        assert!(pattern_matches("*", "anything.at_all"));
        assert!(!pattern_matches("orders.*.x", "orders.a.x"));
    }

    #[test]
    fn reserved_namespaces_ignore_case() {
        assert_eq!(
            check_custom_name("Task.custom"),
            Err(NameError::ReservedNamespace("Task".to_owned()))
        );
        assert_eq!(check_custom_name("orders.Fraud-Flagged"), Ok(()));
    }
}
