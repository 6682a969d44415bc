//! Task and step scopes: the instrumentation core that `#[step_handler]`, the workflow runner and
//! hand-written hosts drive.
//!
//! A [`TaskScope`] stands for one run of a workflow; a [`StepScope`] for one step of it; a
//! [`StepAttempt`] for one call of the step's `process()`, whose outcome, when it fails, is a
//! [`Failure`]. Each publishes its lifecycle events with full payloads, building a payload only
//! when someone listens. When telemetry is switched off
//! ([`set_enabled(false)`](crate::set_enabled)) starting an attempt costs one relaxed atomic load
//! and a branch.

mod attempt;
mod failure;
mod results;
mod step;
mod task;
pub(crate) mod thresholds;

pub use attempt::StepAttempt;
pub use failure::Failure;
pub(crate) use failure::panic_message;
pub use step::StepScope;
pub use task::{StepCounts, TaskScope, TaskStatus};
