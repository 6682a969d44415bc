// The expansion adds no warning to user code.
#![deny(warnings, rust_2018_idioms)]

use tasker_telemetry::{subscribe_to, Event};

/// A documented subscriber.
#[derive(Default)]
pub struct Quiet;

#[subscribe_to("task.completed", "observability.step.max_retries_reached")]
impl Quiet {
    /// Handles completions.
    #[inline]
    pub fn handle_task_completed(&self, _event: &Event<'_>) {}

    /// Handles exhausted retries.
    pub fn handle_observability_step_max_retries_reached(&self, _event: &Event<'_>) {}
}

fn main() {
    use tasker_telemetry::event::names;
    use tasker_telemetry::payload::TaskPayload;

    let publisher = tasker_telemetry::Publisher::new();
    let wired = publisher.subscribe_registered().unwrap();
    assert_eq!(wired.len(), 1);
    publisher.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t"));
    assert_eq!(wired[0].stats().delivered, 1);
}
