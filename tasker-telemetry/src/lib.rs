//! # tasker-telemetry
//!
//! Instrumentation for workflow step handlers. Wrap a step's `process()` and get, without writing
//! telemetry code: lifecycle events (with Tasker's names and payloads) delivered to subscribers,
//! spans (`tracing` + OpenTelemetry), metrics (Prometheus and friends) and structured logs, all
//! carrying the task's correlation id and passed through the sensitive-data filter.
//!
//! The pieces, one module each:
//! - [`event`], [`payload`]: what is published, with typed payloads readable by key;
//! - [`catalog`]: every event, handler and subscriber the process knows, as Markdown or JSON;
//! - [`publisher`], [`subscriber`]: who hears what, panic-isolated, sync or bounded-async;
//! - [`filter`]: the sensitive-data filter every sink applies;
//! - [`scope`], [`handler`]: [`TaskScope`] / [`StepScope`], and the `#[step_handler]` runtime;
//! - [`spans`], [`metrics`], [`logging`], [`correlation`], [`router`], [`performance`]: the sinks
//!   and what feeds them; [`export`] for exporter plugins; `http` (feature) for endpoints;
//! - `workflow` (feature, default): the runner;
//! - [`config`], [`init()`]: configuration with Tasker's defaults, and one-call setup.
//!
//! ```
//! use tasker_telemetry::scope::{StepCounts, TaskScope};
//! use tasker_telemetry::{subscriber, Telemetry};
//!
//! let telemetry = Telemetry::new(Default::default())?;
//! telemetry.publisher().subscribe(&["step.completed"], subscriber::from_fn("log", |event| {
//!     let duration = event.get("execution_duration").and_then(|v| v.as_f64());
//!     assert!(duration.is_some());
//! }))?;
//!
//! let task = TaskScope::new(&telemetry, "42", "order_processing");
//! let step = task.step("42-1", "fetch_cart");
//! let attempt = step.attempt(1);
//! attempt.complete(&"cart fetched");
//! task.complete(StepCounts { total: 1, completed: 1, ..Default::default() });
//! # Ok::<(), tasker_telemetry::Error>(())
//! ```
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod catalog;
mod clock;
pub mod config;
pub mod correlation;
mod error;
pub mod event;
pub mod export;
mod fast_hash;
pub mod filter;
pub mod handler;
#[cfg(feature = "http")]
pub mod http;
mod init;
pub mod logging;
pub mod metrics;
pub mod operator;
mod otlp;
pub mod payload;
pub mod performance;
pub mod publisher;
mod redact;
mod results_check;
pub mod router;
pub mod scope;
pub mod spans;
pub mod subscriber;
mod telemetry;
mod timestamp;
#[cfg(feature = "workflow")]
pub mod workflow;

pub use config::{ConfigError, TelemetryConfig};
pub use error::Error;
pub use event::{Event, EventName, EventPayload};
pub use filter::{FilterError, ParameterFilter};
pub use handler::{Sequence, Step, StepError, StepHandler, Task};
pub use init::{TelemetryGuard, init, init_with};
pub use publisher::Publisher;
pub use scope::{StepAttempt, StepScope, TaskScope};
pub use subscriber::Subscriber;
pub use telemetry::{Telemetry, is_enabled, set_enabled};
pub use timestamp::Timestamp;

/// Makes a step handler: you write `process()`, the framework owns `handle()`.
///
/// Two forms:
/// - on the inherent `impl` block of a handler type that defines
///   `fn process(&self, task: &Task, sequence: &Sequence, step: &Step) -> Result<T, E>` (sync or
///   `async`, taking any of the three contexts in any order), it implements [`StepHandler`] for
///   the type;
/// - on a free function (`#[step_handler] async fn fetch_cart(task: &Task, step: &Step) ->
///   Result<T, E>`), it also generates the handler type, named after the function (`FetchCart`).
///
/// `T` is `serde::Serialize` (the step's results); `E` is any `std::error::Error + 'static`, or
/// [`StepError`]. The generated `handle()` publishes `step.before_handle`, runs `process()`, then
/// publishes `step.completed` (duration and filtered results) or `step.failed` (message, the
/// concrete error type's name as `error_class`, attempt number, retry limit). A panic in
/// `process()` is published as `step.failed` with class `panic`, then resumed.
///
/// Arguments: `name = "..."` (default: the type's name in snake_case, or the function's name),
/// `retry_limit = N` (the default limit of steps using this handler), `objective = "250ms"` (the
/// p95 duration the step should stay within, which the generated alerts of
/// [`operator`] watch), `crate = path` (when
/// `tasker_telemetry` is reached through a re-export). The handler is listed in the
/// [catalog](crate::catalog::handlers) with its type, file and line.
///
/// ```
/// use tasker_telemetry::{step_handler, Sequence, Step, StepHandler, Task, Telemetry};
///
/// #[derive(Debug)]
/// struct OutOfStock(String);
/// impl std::fmt::Display for OutOfStock {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "{} is out of stock", self.0)
///     }
/// }
/// impl std::error::Error for OutOfStock {}
///
/// /// Checks every product of the cart.
/// struct ValidateProducts;
///
/// #[step_handler(retry_limit = 3)]
/// impl ValidateProducts {
///     fn process(&self, task: &Task, _sequence: &Sequence, _step: &Step) -> Result<u64, OutOfStock> {
///         let items = task.context()["items"].as_u64().unwrap_or(0);
///         if items == 0 { Err(OutOfStock("everything".into())) } else { Ok(items) }
///     }
/// }
///
/// let task = Task::new(Telemetry::global(), "42", "order_processing", serde_json::json!({"items": 2}));
/// let step = task.step("42-2", "validate_products");
/// let output = ValidateProducts.handle(&task, &Default::default(), &step).now().unwrap();
/// assert_eq!(output, Ok(serde_json::json!(2)));
/// assert_eq!(ValidateProducts.name(), "validate_products");
/// assert_eq!(ValidateProducts.retry_limit(), Some(3));
/// ```
pub use tasker_telemetry_macros::step_handler;

/// Makes an inherent `impl` block a [`Subscriber`] of the named events, and registers it.
///
/// Each event maps to a method `handle_<event with '.' as '_'>` taking `(&self, event: &Event<'_>)`:
/// `"task.completed"` to `handle_task_completed`, `"observability.step.max_retries_reached"` to
/// `handle_observability_step_max_retries_reached`. Namespace patterns name their method
/// explicitly: `"step.*" => handle_step_event`. An event matched both by name and by a pattern
/// goes to its named handler only; patterns are tried in the order written.
///
/// Checked at compile time, with the error on your token: a name in a built-in namespace that is
/// not in the catalog (with the nearest valid name suggested), a missing handler method, a
/// duplicate, an empty list, an argument that is not a string. A custom event name (outside the
/// built-in namespaces) is checked when the subscriber is subscribed: an unknown one is an error
/// naming it, never silently ignored.
///
/// Registration: the subscriber is listed in the [catalog](crate::catalog::subscribers) and
/// [`Publisher::subscribe_registered`] (called by [`init`]) subscribes a `Default` instance of it.
/// Write `register = false` to wire it by hand (required for generic subscribers); write
/// `crate = path` when `tasker_telemetry` is reached through a re-export.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tasker_telemetry::{subscribe_to, Event, Publisher};
///
/// #[derive(Default)]
/// struct Pager {
///     pages: AtomicU64,
///     retries: AtomicU64,
/// }
///
/// #[subscribe_to("task.failed", "observability.step.*" => handle_step_observation)]
/// impl Pager {
///     fn handle_task_failed(&self, _event: &Event<'_>) {
///         self.pages.fetch_add(1, Ordering::Relaxed);
///     }
///
///     fn handle_step_observation(&self, _event: &Event<'_>) {
///         self.retries.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let publisher = Publisher::new();
/// publisher.subscribe_registered()?;
/// assert!(tasker_telemetry::catalog::subscribers().iter().any(|s| s.name == "Pager"));
/// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
/// ```
pub use tasker_telemetry_macros::subscribe_to;

/// Derives [`EventPayload`] for a custom event's payload struct and registers the event.
///
/// `#[event(name = "namespace.event", description = "...")]` names it; the description defaults
/// to the struct's doc comment, and each field's doc comment describes that field in the catalog.
/// The naming rules are checked at compile time, at your string: the name contains a dot, and its
/// namespace is not reserved (`task`, `step`, `workflow`, `observability`, `test`, `tasker`). A
/// collision with another custom event is reported by
/// [`catalog::declaration_errors`]. Subscribe to it by path:
/// `#[subscribe_to(PaymentProcessed)]` calls `handle_payment_processed`.
pub use tasker_telemetry_macros::Event;

/// What the macros' generated code needs. Not a public API: names here may change in any release.
/// Named for the version (`__private_v<major>_<minor>`): the macros are pinned to this crate
/// with `=`, and the name changes with each release, as serde's does.
#[doc(hidden)]
pub mod __private_v0_1 {
    pub use crate::catalog::{CustomEventDeclaration, HandlerDescriptor, SubscriberDescriptor};
    pub use crate::event::{Event, EventName, EventPayload, names};
    pub use crate::handler::error_kind::{ErrorKind, StepFailure};
    pub use crate::handler::generated::{
        HandlerInfo, SharedHandler, StepResults, instrument, instrument_async,
    };
    pub use crate::handler::{Handled, Sequence, Step, StepError, StepHandler, Task};
    pub use std::boxed::Box;
    pub use std::future::Future;
    pub use std::pin::Pin;

    /// The traits that choose how a `process()` error becomes a `StepError`
    /// (`handler/error_kind.rs`); the generated code imports them all.
    pub mod error_kinds {
        #[cfg(feature = "anyhow")]
        pub use crate::handler::error_kind::ViaAnyhow;
        #[cfg(feature = "eyre")]
        pub use crate::handler::error_kind::ViaEyre;
        pub use crate::handler::error_kind::{ViaBoxed, ViaError, ViaRetryable, ViaStepError};
    }
    pub use crate::payload::FieldDescriptor;
    pub use crate::subscriber::Subscriber;
    pub use core::option::Option;
    pub use inventory;
    pub use std::sync::Arc;
    pub use std::sync::OnceLock;
    pub use std::time::Duration;

    /// Whether `name` matches a `namespace.*` pattern (patterns are validated by the macro).
    #[inline]
    pub fn pattern_matches(pattern: &str, name: EventName) -> bool {
        crate::catalog::pattern_matches(pattern, name.as_str())
    }

    /// Whether the event has this (custom) name.
    #[inline]
    pub fn is_named(event: &Event<'_>, name: &str) -> bool {
        event.name().as_str() == name
    }

    /// A subscriber type `#[subscribe_to]` can register: it builds itself with `Default`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` must implement `Default` to be registered by #[subscribe_to]",
        label = "this subscriber cannot be built by `Publisher::subscribe_registered`",
        note = "derive or implement `Default`, or write #[subscribe_to(..., register = false)] and subscribe an instance yourself"
    )]
    pub trait RegisteredSubscriber: Subscriber + Default {}
    impl<T: Subscriber + Default> RegisteredSubscriber for T {}

    /// Builds a registered subscriber.
    pub fn construct<T: RegisteredSubscriber>() -> Arc<dyn Subscriber> {
        Arc::new(T::default())
    }
}
