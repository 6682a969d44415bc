//! # tasker-telemetry
//!
//! Instrumentation for workflow step handlers. Wrap a step's `process()` and get, without writing
//! telemetry code: lifecycle events (with Tasker's names and payloads) delivered to subscribers,
//! and (in later releases) spans, metrics and structured logs.
//!
//! The pieces, one module each:
//! - [`event`], [`payload`]: what is published, with typed payloads readable by key;
//! - [`catalog`]: every event, handler and subscriber the process knows, as Markdown or JSON;
//! - [`publisher`], [`subscriber`]: who hears what, panic-isolated, sync or bounded-async;
//! - [`filter`]: the sensitive-data filter every sink applies;
//! - [`scope`]: [`TaskScope`] / [`StepScope`], the instrumentation core;
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
pub mod config;
mod error;
pub mod event;
pub mod filter;
mod init;
pub mod payload;
pub mod publisher;
pub mod scope;
pub mod subscriber;
mod telemetry;
mod timestamp;

pub use config::{ConfigError, TelemetryConfig};
pub use error::Error;
pub use event::{Event, EventName};
pub use filter::{FilterError, ParameterFilter};
pub use init::{TelemetryGuard, init, init_with};
pub use publisher::Publisher;
pub use scope::{StepAttempt, StepScope, TaskScope};
pub use subscriber::Subscriber;
pub use telemetry::{Telemetry, is_enabled, set_enabled};
pub use timestamp::Timestamp;

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the macros' generated code needs. Not a public API: names here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
