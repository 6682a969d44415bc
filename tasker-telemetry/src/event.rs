//! Events: their names, the built-in Tasker catalog of names, and the [`Event`] value subscribers
//! receive.

mod builtin;
pub(crate) mod registry;
pub(crate) mod rules;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::payload::{Payload, Value};
use crate::timestamp::Timestamp;

pub use builtin::names;
pub(crate) use builtin::{BUILTIN_COUNT, BUILTIN_EVENTS, lookup_builtin};

/// The name of an event known to the catalog, resolved to a small index.
///
/// Built-in names are constants in [`names`]; custom ones come from
/// [`catalog::register_event`](crate::catalog::register_event). Comparing, hashing and routing by
/// an `EventName` never touches the string.
///
/// ```
/// use tasker_telemetry::event::{names, EventName};
///
/// assert_eq!(names::STEP_COMPLETED.as_str(), "step.completed");
/// assert_eq!(EventName::lookup("step.completed"), Some(names::STEP_COMPLETED));
/// assert_eq!(names::OBSERVABILITY_STEP_BACKOFF.namespace(), "observability");
/// ```
#[derive(Clone, Copy)]
pub struct EventName {
    index: u16,
    name: &'static str,
}

impl EventName {
    pub(crate) const fn new(index: u16, name: &'static str) -> Self {
        Self { index, name }
    }

    /// Resolves a name string against the catalog (built-in and registered custom events).
    pub fn lookup(name: &str) -> Option<EventName> {
        lookup_builtin(name).or_else(|| registry::lookup_custom(name))
    }

    /// The event's name, exactly as Tasker spells it.
    pub const fn as_str(&self) -> &'static str {
        self.name
    }

    /// The part before the first dot (`task`, `step`, `workflow`, `observability`, ...).
    pub fn namespace(&self) -> &'static str {
        self.name.split_once('.').map_or(self.name, |(ns, _)| ns)
    }

    /// The dense index of this event (stable within one process).
    pub(crate) const fn index(&self) -> usize {
        self.index as usize
    }
}

impl PartialEq for EventName {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl Eq for EventName {}

impl std::hash::Hash for EventName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

/// The broad area an event belongs to; used to group the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Task state events (`task.*`).
    Task,
    /// Step state events (`step.*`).
    Step,
    /// Orchestration events (`workflow.*`).
    Workflow,
    /// Process-tracking events (`observability.*`).
    Observability,
    /// The telemetry pipeline's own events (`tasker.telemetry.*`).
    Telemetry,
    /// Performance and resource alerts (`performance.*`, `memory.*`).
    Performance,
    /// Declared by application code.
    Custom,
}

impl Category {
    /// The category's name in catalogs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Task => "task",
            Category::Step => "step",
            Category::Workflow => "workflow",
            Category::Observability => "observability",
            Category::Telemetry => "telemetry",
            Category::Performance => "performance",
            Category::Custom => "custom",
        }
    }
}

/// One published event: its name, when it happened, and its payload.
///
/// An event may borrow what it names from the scope that publishes it (`'a`): the step
/// lifecycle events the framework lends to synchronous subscribers do, so delivering them costs
/// no counted reference. [`into_owned`](Self::into_owned) gives an `Event<'static>` to keep
/// beyond the call, as asynchronous subscribers receive.
///
/// ```
/// use tasker_telemetry::event::{names, Event};
/// use tasker_telemetry::payload::TaskPayload;
///
/// let event = Event::new(names::TASK_COMPLETED, TaskPayload::new("42", "order_processing"));
/// assert_eq!(event.get("task_id").and_then(|v| v.as_str()), Some("42"));
/// assert_eq!(event.get("event_type").and_then(|v| v.as_str()), Some("task.completed"));
/// let json = serde_json::to_value(&event).unwrap();
/// assert_eq!(json["task_name"], "order_processing");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    name: EventName,
    timestamp: Timestamp,
    correlation_id: Option<Cow<'a, Arc<str>>>,
    payload: Payload<'a>,
}

impl<'a> Event<'a> {
    /// An event stamped with the current time.
    #[inline]
    pub fn new(name: EventName, payload: impl Into<Payload<'a>>) -> Self {
        Self::at(name, Timestamp::now(), payload)
    }

    /// An event stamped with the given time.
    #[inline]
    pub fn at(name: EventName, timestamp: Timestamp, payload: impl Into<Payload<'a>>) -> Self {
        Self {
            name,
            timestamp,
            correlation_id: None,
            payload: payload.into(),
        }
    }

    /// Built in one piece: events are a few hundred bytes, and each builder step would copy them.
    #[inline(always)]
    pub(crate) fn stamped(
        name: EventName,
        timestamp: Timestamp,
        correlation_id: Option<Cow<'a, Arc<str>>>,
        payload: Payload<'a>,
    ) -> Self {
        Self {
            name,
            timestamp,
            correlation_id,
            payload,
        }
    }

    /// The event's name.
    pub fn name(&self) -> EventName {
        self.name
    }

    /// When the event was published.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// Sets the correlation id of the task the event belongs to.
    #[inline]
    pub fn with_correlation_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.correlation_id = Some(Cow::Owned(id.into()));
        self
    }

    /// The same event owning everything it borrowed, to keep beyond the call that lent it.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tasker_telemetry::event::{names, Event};
    /// use tasker_telemetry::{subscriber, Publisher};
    ///
    /// let kept: Arc<Mutex<Vec<Event<'static>>>> = Arc::default();
    /// let publisher = Publisher::new();
    /// let sink = kept.clone();
    /// let _handle = publisher.subscribe(&["task.*"], subscriber::from_fn("recorder", move |e: &Event<'_>| {
    ///     sink.lock().unwrap().push(e.clone().into_owned());
    /// }))?;
    /// publisher.publish(Event::new(names::TASK_COMPLETED, tasker_telemetry::payload::TaskPayload::new("1", "t")));
    /// assert_eq!(kept.lock().unwrap().len(), 1);
    /// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
    /// ```
    pub fn into_owned(self) -> Event<'static> {
        Event {
            name: self.name,
            timestamp: self.timestamp,
            correlation_id: self.correlation_id.map(|id| Cow::Owned(id.into_owned())),
            payload: self.payload.into_owned(),
        }
    }

    /// The correlation id of the task the event belongs to, if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref().map(|id| &**id)
    }

    /// The typed payload.
    pub fn payload(&self) -> &Payload<'a> {
        &self.payload
    }

    /// The value under a standard key, borrowed from the event without allocating.
    ///
    /// Besides the payload's own fields, every event answers `event_type` (its name) and
    /// `timestamp`.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "event_type" => Some(Value::Str(self.name.as_str())),
            "timestamp" => Some(Value::Timestamp(self.timestamp)),
            "correlation_id" => self.correlation_id().map(Value::Str),
            _ => self.payload.get(key),
        }
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            event_type: &'static str,
            timestamp: Timestamp,
            #[serde(skip_serializing_if = "Option::is_none")]
            correlation_id: Option<&'a str>,
            #[serde(flatten)]
            payload: &'a Payload<'a>,
        }
        Flat {
            event_type: self.name.as_str(),
            timestamp: self.timestamp,
            correlation_id: self.correlation_id(),
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

/// A custom event's typed payload, implemented by `#[derive(Event)]`.
///
/// The derive checks the naming rules at compile time and registers the event, with its fields,
/// in the catalog; [`Telemetry::publish_event`](crate::Telemetry::publish_event) publishes a
/// value, serialising it (through the parameter filter) only when someone listens.
///
/// ```
/// use tasker_telemetry::event::EventPayload;
/// use tasker_telemetry::Event;
///
/// /// A payment went through.
/// #[derive(serde::Serialize, Event)]
/// #[event(name = "order.payment_processed")]
/// struct PaymentProcessed {
///     /// The order paid for.
///     order_id: u64,
///     /// The amount, in cents.
///     amount_cents: u64,
/// }
///
/// assert_eq!(PaymentProcessed::NAME, "order.payment_processed");
/// let declared = tasker_telemetry::catalog::event("order.payment_processed").unwrap();
/// assert_eq!(declared.description, "A payment went through.");
/// assert_eq!(declared.fields[1].name, "amount_cents");
/// ```
pub trait EventPayload: Serialize {
    /// The event's name.
    const NAME: &'static str;

    /// The event's catalog entry, resolved once and cached (`None` only if the declaration was
    /// refused: see [`catalog::declaration_errors`](crate::catalog::declaration_errors)).
    fn event_name() -> Option<EventName>;
}
