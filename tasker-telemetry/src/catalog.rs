//! The catalog: every event (built-in and custom), step handler and subscriber the process knows,
//! with lookup by name and Markdown / JSON renderings for documentation.
//!
//! Handlers, subscribers and custom-event declarations made by the macros are collected with
//! [`inventory`](https://docs.rs/inventory) at link time; custom events can also be registered at
//! run time with [`register_event`].

use std::fmt::Write as _;

use serde::Serialize;

use crate::event::rules;
use crate::event::{Category, EventName};
use crate::payload::PayloadKind;

pub use crate::event::registry::{
    CatalogError, CustomEvent, CustomEventDeclaration, EventDescriptor, EventSource, MAX_EVENTS,
    builtin_events, declaration_errors, event, events, register_event,
};
pub(crate) use crate::event::registry::{EventRegistrationListener, add_registration_listener};

/// Namespaces custom events may not use (compared ignoring ASCII case): they belong to
/// Tasker's own events and test fixtures.
///
/// ```
/// assert!(tasker_telemetry::catalog::RESERVED_NAMESPACES.contains(&"task"));
/// ```
pub const RESERVED_NAMESPACES: &[&str] = rules::RESERVED_NAMESPACES;

/// A step handler, registered by `#[step_handler]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HandlerDescriptor {
    /// The handler's step name.
    pub name: &'static str,
    /// The Rust type implementing it.
    pub type_path: &'static str,
    /// How many attempts it may make, if it declares a limit.
    pub retry_limit: Option<u32>,
    /// The p95 duration it should stay within, if it declares one
    /// (`#[step_handler(objective = "250ms")]`): the generated alerts watch it (see
    /// [`operator`](crate::operator)).
    #[serde(serialize_with = "seconds")]
    pub objective: Option<std::time::Duration>,
    /// Source file of the declaration.
    pub file: &'static str,
    /// Source line of the declaration.
    pub line: u32,
}

/// A duration in catalogs: seconds, as the metrics measure them.
fn seconds<S: serde::Serializer>(
    d: &Option<std::time::Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serializer.serialize_some(&d.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// A subscriber, registered by `#[subscribe_to]`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SubscriberDescriptor {
    /// The subscriber's name.
    pub name: &'static str,
    /// The Rust type implementing it.
    pub type_path: &'static str,
    /// The events (or `namespace.*` patterns) it listens to.
    pub events: &'static [&'static str],
    /// Source file of the declaration.
    pub file: &'static str,
    /// Source line of the declaration.
    pub line: u32,
    /// Builds an instance to subscribe, for [`Publisher::subscribe_registered`]; `None` when the
    /// subscriber is wired by hand.
    ///
    /// [`Publisher::subscribe_registered`]: crate::Publisher::subscribe_registered
    #[serde(skip)]
    pub constructor: Option<fn() -> std::sync::Arc<dyn crate::Subscriber>>,
}

inventory::collect!(HandlerDescriptor);
inventory::collect!(SubscriberDescriptor);

/// Every event whose name matches `pattern`: an exact name, `namespace.*` (any depth below that
/// prefix), or `*` (everything).
pub fn matching(pattern: &str) -> Vec<EventName> {
    events()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| pattern_matches(pattern, n.as_str()))
        .collect()
}

pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    rules::pattern_matches(pattern, name)
}

/// The closest known event name to `name`, for "did you mean" suggestions.
pub fn suggest(name: &str) -> Option<&'static str> {
    rules::suggest(name, events().into_iter().map(|d| d.name.as_str()))
}

/// Every step handler registered by `#[step_handler]` in the linked program.
pub fn handlers() -> Vec<HandlerDescriptor> {
    let mut v: Vec<_> = inventory::iter::<HandlerDescriptor>
        .into_iter()
        .copied()
        .collect();
    v.sort_by_key(|h| h.name);
    v
}

/// Every subscriber registered by `#[subscribe_to]` in the linked program.
pub fn subscribers() -> Vec<SubscriberDescriptor> {
    let mut v: Vec<_> = inventory::iter::<SubscriberDescriptor>
        .into_iter()
        .copied()
        .collect();
    v.sort_by_key(|s| s.name);
    v
}

/// A snapshot of the whole catalog, for rendering.
///
/// ```
/// let catalog = tasker_telemetry::catalog::Catalog::snapshot();
/// assert!(catalog.to_markdown().contains("`task.completed`"));
/// assert!(catalog.to_json()["events"].as_array().unwrap().len() >= 50);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// Every event.
    pub events: Vec<EventDescriptor>,
    /// Every registered step handler.
    pub handlers: Vec<HandlerDescriptor>,
    /// Every registered subscriber.
    pub subscribers: Vec<SubscriberDescriptor>,
}

impl Catalog {
    /// The catalog as it is now.
    pub fn snapshot() -> Self {
        Self {
            events: events(),
            handlers: handlers(),
            subscribers: subscribers(),
        }
    }

    /// The catalog as JSON: `{"events": [...], "handlers": [...], "subscribers": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        // Every field is a plain string, number or list, so serialisation cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The catalog as a Markdown document: one table per event category, then handlers and
    /// subscribers.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Tasker telemetry catalog\n");
        let categories = [
            Category::Task,
            Category::Step,
            Category::Workflow,
            Category::Observability,
            Category::Telemetry,
            Category::Performance,
            Category::Custom,
        ];
        for category in categories {
            let events: Vec<_> = self
                .events
                .iter()
                .filter(|e| e.category == category)
                .collect();
            if events.is_empty() {
                continue;
            }
            let _ = write!(out, "\n## {} events\n\n", category.as_str());
            out.push_str("| event | payload | source | description |\n|---|---|---|---|\n");
            for e in events {
                let source = match e.source {
                    EventSource::Published { by } => format!("published by {by}"),
                    EventSource::Reserved { reason } => format!("reserved: {reason}"),
                    EventSource::Custom => "application".to_owned(),
                };
                let payload = if e.payload == PayloadKind::Fields && !e.fields.is_empty() {
                    let keys: Vec<_> = e.fields.iter().map(|f| format!("`{}`", f.name)).collect();
                    keys.join(", ")
                } else {
                    e.payload.as_str().to_owned()
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    e.name,
                    payload,
                    md_escape(&source),
                    md_escape(e.description)
                );
            }
        }
        out.push_str("\n## Step handlers\n\n");
        if self.handlers.is_empty() {
            out.push_str("(none registered)\n");
        } else {
            out.push_str("| name | type | retry limit | declared at |\n|---|---|---|---|\n");
            for h in &self.handlers {
                let limit = h
                    .retry_limit
                    .map_or_else(|| "default".to_owned(), |l| l.to_string());
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} | {}:{} |",
                    h.name, h.type_path, limit, h.file, h.line
                );
            }
        }
        out.push_str("\n## Subscribers\n\n");
        if self.subscribers.is_empty() {
            out.push_str("(none registered)\n");
        } else {
            out.push_str("| name | type | events | declared at |\n|---|---|---|---|\n");
            for s in &self.subscribers {
                let events: Vec<_> = s.events.iter().map(|e| format!("`{e}`")).collect();
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} | {}:{} |",
                    s.name,
                    s.type_path,
                    events.join(", "),
                    s.file,
                    s.line
                );
            }
        }
        out
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BUILTIN_COUNT, BUILTIN_EVENTS, lookup_builtin};
    use std::collections::HashSet;

    #[test]
    fn builtin_names_are_unique_and_indexed_in_order() {
        let mut seen = HashSet::new();
        for (i, d) in BUILTIN_EVENTS.iter().enumerate() {
            assert!(seen.insert(d.name.as_str()), "duplicate {}", d.name);
            assert_eq!(d.name.index(), i);
            assert_eq!(lookup_builtin(d.name.as_str()), Some(d.name));
        }
        assert_eq!(BUILTIN_EVENTS.len(), BUILTIN_COUNT);
    }

    #[test]
    fn naming_rules_are_typed_errors() {
        let reg = |n: &str| register_event(CustomEvent::new(n, "d"));
        assert!(matches!(reg("nodot"), Err(CatalogError::MissingDot { .. })));
        for ns in RESERVED_NAMESPACES {
            let err = reg(&format!("{ns}.custom_thing")).unwrap_err();
            assert!(
                matches!(err, CatalogError::ReservedNamespace { .. }),
                "{ns}: {err}"
            );
        }
        assert!(matches!(
            reg("Step.custom"),
            Err(CatalogError::ReservedNamespace { .. })
        ));
        assert!(matches!(
            reg("performance.slow_operation"),
            Err(CatalogError::Duplicate { .. })
        ));
        assert!(matches!(reg("a..b"), Err(CatalogError::InvalidName { .. })));
        assert!(matches!(
            reg("a.b c"),
            Err(CatalogError::InvalidName { .. })
        ));
        let first = reg("catalog_test.once").unwrap();
        assert!(first.index() >= BUILTIN_COUNT);
        assert!(matches!(
            reg("catalog_test.once"),
            Err(CatalogError::Duplicate { .. })
        ));
        assert_eq!(EventName::lookup("catalog_test.once"), Some(first));
    }

    #[test]
    fn patterns_match_namespaces_at_dot_boundaries() {
        assert!(pattern_matches("step.*", "step.completed"));
        assert!(!pattern_matches("step.*", "steps.completed"));
        assert!(!pattern_matches("step.*", "step"));
        assert!(pattern_matches(
            "observability.step.*",
            "observability.step.backoff"
        ));
        assert!(pattern_matches("*", "task.completed"));
        assert!(pattern_matches("task.completed", "task.completed"));
        assert!(!pattern_matches("task.completed", "task.failed"));
    }

    #[test]
    fn suggestions_find_near_misses() {
        assert_eq!(suggest("task.complted"), Some("task.completed"));
        assert_eq!(suggest("step.faild"), Some("step.failed"));
        assert_eq!(suggest("zzzzzzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn renders_list_every_event() {
        let catalog = Catalog::snapshot();
        let md = catalog.to_markdown();
        let json = catalog.to_json();
        let listed: HashSet<&str> = json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        // Other tests register custom events concurrently: check against the same snapshot.
        assert!(catalog.events.len() >= BUILTIN_COUNT);
        for d in &catalog.events {
            assert!(
                md.contains(&format!("| `{}` |", d.name)),
                "markdown lacks {}",
                d.name
            );
            assert!(listed.contains(d.name.as_str()), "json lacks {}", d.name);
        }
    }
}
