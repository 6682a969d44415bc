//! The built-in event names, so that the macros can check names at compile time. The runtime
//! crate cannot be a dependency of this one (it re-exports these macros); the end-to-end test
//! `macro_catalog_names` checks that this list equals the runtime catalog. The rules for names
//! are not copied: they are the runtime's own file (`crate::rules`).

/// Every built-in event name, exactly as the runtime catalog spells it.
pub(crate) const BUILTIN_EVENTS: &[&str] = &[
    "task.initialize_requested",
    "task.start_requested",
    "task.completed",
    "task.failed",
    "task.retry_requested",
    "task.cancelled",
    "task.resolved_manually",
    "task.before_transition",
    "step.initialize_requested",
    "step.execution_requested",
    "step.before_handle",
    "step.handle",
    "step.completed",
    "step.failed",
    "step.retry_requested",
    "step.cancelled",
    "step.resolved_manually",
    "step.before_transition",
    "workflow.task_started",
    "workflow.task_completed",
    "workflow.task_failed",
    "workflow.step_completed",
    "workflow.step_failed",
    "workflow.step_execution_failed",
    "workflow.viable_steps_discovered",
    "workflow.viable_steps_batch_ready",
    "workflow.no_viable_steps",
    "workflow.orchestration_requested",
    "workflow.task_finalization_started",
    "workflow.task_finalization_completed",
    "workflow.steps_execution_started",
    "workflow.steps_execution_completed",
    "workflow.task_reenqueue_started",
    "workflow.task_reenqueue_requested",
    "workflow.task_reenqueue_failed",
    "workflow.task_reenqueue_delayed",
    "workflow.task_state_unclear",
    "observability.task.enqueue",
    "observability.task.handle",
    "observability.task.finalize",
    "observability.step.handle",
    "observability.step.find_viable",
    "observability.step.backoff",
    "observability.step.skip",
    "observability.step.max_retries_reached",
    "tasker.telemetry.cache_synced",
    "tasker.telemetry.export_requested",
    "tasker.telemetry.export_completed",
    "tasker.telemetry.export_failed",
    "tasker.telemetry.plugin_registered",
    "tasker.telemetry.plugin_unregistered",
    "performance.slow_operation",
    "memory.spike_detected",
];

pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTIN_EVENTS.contains(&name)
}

/// The runtime's constant for a built-in name: upper case, dots as underscores.
pub(crate) fn const_name(name: &str) -> String {
    name.replace('.', "_").to_ascii_uppercase()
}

/// The closest built-in name, for "did you mean" in errors.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    crate::rules::suggest(name, BUILTIN_EVENTS.iter().copied())
}
