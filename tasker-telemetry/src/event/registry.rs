//! The events a process knows by name: the built-in ones and the custom ones registered at run
//! time or declared at link time, each with its descriptor. [`catalog`](crate::catalog) renders
//! and re-exports what is public here.

use std::collections::HashMap;
use std::sync::{LazyLock, Once, RwLock, Weak};

use serde::Serialize;

use super::rules::{self, NameError};
use super::{BUILTIN_COUNT, BUILTIN_EVENTS, Category, EventName, lookup_builtin};
use crate::payload::{FieldDescriptor, PayloadKind};

/// The most events (built-in plus custom) one process can know. Routing tables are sized once
/// from it so that publishing never has to grow or lock them.
pub const MAX_EVENTS: usize = 1024;

/// Whether the framework itself publishes an event, or leaves it to integrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventSource {
    /// Published by the framework on a real path.
    Published {
        /// The component that publishes it.
        by: &'static str,
    },
    /// Kept in the catalog for integrations to publish; the framework never does.
    Reserved {
        /// Why the framework does not publish it.
        reason: &'static str,
    },
    /// Declared by application code, which publishes it.
    Custom,
}

/// Everything the catalog says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EventDescriptor {
    /// The event's name.
    pub name: EventName,
    /// Its category.
    pub category: Category,
    /// What it means.
    pub description: &'static str,
    /// The payload it carries.
    pub payload: PayloadKind,
    /// The payload's fields.
    pub fields: &'static [FieldDescriptor],
    /// Who publishes it.
    pub source: EventSource,
}

/// A custom event declared in code and collected at link time (the macros emit these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CustomEventDeclaration {
    /// The event's name.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// The fields its payload carries.
    pub fields: &'static [FieldDescriptor],
    /// Source file of the declaration.
    pub file: &'static str,
    /// Source line of the declaration.
    pub line: u32,
}

inventory::collect!(CustomEventDeclaration);

/// A custom event to register at run time: name, description and payload fields.
///
/// ```
/// use tasker_telemetry::catalog::{self, CustomEvent};
///
/// let name = catalog::register_event(
///     CustomEvent::new("order.fraud_check_flagged", "A fraud check flagged an order.")
///         .field("order_id", "string", "The flagged order.")
///         .field("score", "number", "The fraud score, 0 to 1."),
/// )?;
/// assert_eq!(name.as_str(), "order.fraud_check_flagged");
/// assert!(catalog::event("order.fraud_check_flagged").is_some());
/// # Ok::<(), tasker_telemetry::catalog::CatalogError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomEvent {
    name: String,
    description: String,
    fields: Vec<(String, String, String)>,
}

impl CustomEvent {
    /// A custom event with no payload fields yet.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a payload field: its key, its type in words, and what it means.
    pub fn field(
        mut self,
        name: impl Into<String>,
        ty: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.fields
            .push((name.into(), ty.into(), description.into()));
        self
    }
}

/// Why a custom event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Rule 1: the name must contain a dot (`namespace.event`).
    #[error("custom event name {name:?} must contain a dot, as in \"orders.fraud_flagged\"")]
    MissingDot {
        /// The refused name.
        name: String,
    },
    /// Rule 2: the namespace belongs to the framework.
    #[error(
        "custom event name {name:?} uses the reserved namespace {namespace:?}; reserved: task, step, workflow, observability, test, tasker"
    )]
    ReservedNamespace {
        /// The refused name.
        name: String,
        /// The reserved namespace it used.
        namespace: String,
    },
    /// Rule 3: another event already has this name.
    #[error("custom event name {name:?} collides with an event already in the catalog")]
    Duplicate {
        /// The refused name.
        name: String,
    },
    /// The name has an empty segment or a character outside `[A-Za-z0-9_-]`.
    #[error(
        "custom event name {name:?} is malformed: segments separated by dots, each non-empty and made of A-Z, a-z, 0-9, '_' or '-'"
    )]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// The catalog has no room left.
    #[error("the catalog is full ({capacity} events); custom event {name:?} was not registered")]
    Full {
        /// The refused name.
        name: String,
        /// How many events the catalog holds at most.
        capacity: usize,
    },
}

struct Registry {
    custom: Vec<&'static EventDescriptor>,
    by_name: HashMap<&'static str, EventName>,
    declaration_errors: Vec<(CustomEventDeclaration, CatalogError)>,
    listeners: Vec<Weak<dyn EventRegistrationListener>>,
}

/// Told about every custom event registered after it subscribed (publishers use this to route
/// namespace patterns to events that did not exist when the pattern was subscribed).
pub(crate) trait EventRegistrationListener: Send + Sync {
    fn event_registered(&self, name: EventName);
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        custom: Vec::new(),
        by_name: HashMap::new(),
        declaration_errors: Vec::new(),
        listeners: Vec::new(),
    })
});
static DECLARATIONS: Once = Once::new();

fn read_registry() -> std::sync::RwLockReadGuard<'static, Registry> {
    // A panic while holding the lock cannot leave the registry half-updated (every update is a
    // single push after validation), so poisoning is safe to ignore.
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

fn write_registry() -> std::sync::RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

/// Registers the link-time declarations once, before anything reads custom events.
fn ensure_declarations() {
    DECLARATIONS.call_once(|| {
        let mut notified = Vec::new();
        {
            let mut reg = write_registry();
            for decl in inventory::iter::<CustomEventDeclaration> {
                let descriptor = EventDescriptor {
                    name: EventName::new(0, decl.name),
                    category: Category::Custom,
                    description: decl.description,
                    payload: PayloadKind::Fields,
                    fields: decl.fields,
                    source: EventSource::Custom,
                };
                match insert_locked(&mut reg, descriptor) {
                    Ok(name) => notified.push(name),
                    Err(e) => reg.declaration_errors.push((*decl, e)),
                }
            }
        }
        notify(&notified);
    });
}

fn validate_name(name: &str) -> Result<(), CatalogError> {
    rules::check_custom_name(name).map_err(|e| match e {
        NameError::MissingDot => CatalogError::MissingDot {
            name: name.to_owned(),
        },
        NameError::Malformed => CatalogError::InvalidName {
            name: name.to_owned(),
        },
        NameError::ReservedNamespace(namespace) => CatalogError::ReservedNamespace {
            name: name.to_owned(),
            namespace,
        },
    })
}

fn insert_locked(
    reg: &mut Registry,
    mut descriptor: EventDescriptor,
) -> Result<EventName, CatalogError> {
    let name = descriptor.name.as_str();
    validate_name(name)?;
    if lookup_builtin(name).is_some() || reg.by_name.contains_key(name) {
        return Err(CatalogError::Duplicate {
            name: name.to_owned(),
        });
    }
    let index = BUILTIN_COUNT + reg.custom.len();
    if index >= MAX_EVENTS {
        return Err(CatalogError::Full {
            name: name.to_owned(),
            capacity: MAX_EVENTS,
        });
    }
    let event = EventName::new(index as u16, name);
    descriptor.name = event;
    reg.custom.push(Box::leak(Box::new(descriptor)));
    reg.by_name.insert(name, event);
    Ok(event)
}

fn notify(names: &[EventName]) {
    if names.is_empty() {
        return;
    }
    let listeners: Vec<_> = {
        let mut reg = write_registry();
        reg.listeners.retain(|w| w.strong_count() > 0);
        reg.listeners.iter().filter_map(Weak::upgrade).collect()
    };
    for listener in listeners {
        for name in names {
            listener.event_registered(*name);
        }
    }
}

/// Adds `listener`, first letting go of the listeners that have ended (a publisher dropped):
/// their weak references would otherwise keep each one's allocation until the next custom event.
pub(crate) fn add_registration_listener(listener: Weak<dyn EventRegistrationListener>) {
    let mut reg = write_registry();
    reg.listeners.retain(|w| w.strong_count() > 0);
    reg.listeners.push(listener);
}

/// Registers a custom event, checking the naming rules: the name contains a dot, does not start
/// with a reserved namespace ([`RESERVED_NAMESPACES`](crate::catalog::RESERVED_NAMESPACES)), and collides with no other event.
///
/// Each registration is kept for the life of the process (the catalog holds at most
/// [`MAX_EVENTS`] events), so register events once at start-up, not per request.
pub fn register_event(event: CustomEvent) -> Result<EventName, CatalogError> {
    ensure_declarations();
    validate_name(&event.name)?;
    let fields: Vec<FieldDescriptor> = event
        .fields
        .into_iter()
        .map(|(n, t, d)| FieldDescriptor::new(leak(n), leak(t), leak(d)))
        .collect();
    let name = {
        let mut reg = write_registry();
        if lookup_builtin(&event.name).is_some() || reg.by_name.contains_key(event.name.as_str()) {
            return Err(CatalogError::Duplicate { name: event.name });
        }
        let descriptor = EventDescriptor {
            name: EventName::new(0, leak(event.name)),
            category: Category::Custom,
            description: leak(event.description),
            payload: PayloadKind::Fields,
            fields: Box::leak(fields.into_boxed_slice()),
            source: EventSource::Custom,
        };
        insert_locked(&mut reg, descriptor)?
    };
    notify(&[name]);
    Ok(name)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub(crate) fn lookup_custom(name: &str) -> Option<EventName> {
    ensure_declarations();
    read_registry().by_name.get(name).copied()
}

/// The descriptor of the event with this name, built-in or custom.
///
/// ```
/// let d = tasker_telemetry::catalog::event("step.failed").unwrap();
/// assert_eq!(d.payload, tasker_telemetry::payload::PayloadKind::Error);
/// ```
pub fn event(name: &str) -> Option<EventDescriptor> {
    if let Some(n) = lookup_builtin(name) {
        return Some(BUILTIN_EVENTS[n.index()]);
    }
    ensure_declarations();
    let reg = read_registry();
    reg.by_name
        .get(name)
        .map(|n| *reg.custom[n.index() - BUILTIN_COUNT])
}

/// Every event: the built-in ones in Tasker's order, then custom ones in registration order.
pub fn events() -> Vec<EventDescriptor> {
    ensure_declarations();
    let reg = read_registry();
    BUILTIN_EVENTS
        .iter()
        .copied()
        .chain(reg.custom.iter().map(|d| **d))
        .collect()
}

/// The built-in events only.
pub fn builtin_events() -> &'static [EventDescriptor] {
    BUILTIN_EVENTS
}

/// Link-time custom-event declarations that broke a naming rule, with the rule they broke.
pub fn declaration_errors() -> Vec<(CustomEventDeclaration, CatalogError)> {
    ensure_declarations();
    read_registry().declaration_errors.clone()
}
