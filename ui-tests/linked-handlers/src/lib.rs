//! A handler and a subscriber defined in a library crate, registered in the catalog of any
//! binary that links this crate (`use tasker_telemetry_linked_handlers as _;` is enough).

use std::sync::atomic::{AtomicU64, Ordering};

use tasker_telemetry::{Event, Step, StepError, step_handler, subscribe_to};

/// Reserves inventory for an order.
pub struct ReserveInventory;

#[step_handler(retry_limit = 2)]
impl ReserveInventory {
    /// Reserves the step's items.
    pub fn process(&self, step: &Step) -> Result<u64, StepError> {
        Ok(step.inputs()["items"].as_u64().unwrap_or(0))
    }
}

/// Counts completed tasks.
#[derive(Debug, Default)]
pub struct CompletedTasks(pub AtomicU64);

#[subscribe_to("task.completed")]
impl CompletedTasks {
    /// Counts one completion.
    pub fn handle_task_completed(&self, _event: &Event<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
