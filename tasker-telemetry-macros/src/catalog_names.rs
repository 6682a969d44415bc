//! The built-in event names, so that the macros can check names at compile time. The runtime
//! crate cannot be a dependency of this one (it re-exports these macros); the end-to-end test
//! `macro_catalog_names` checks that this list equals the runtime catalog.

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

/// Namespaces whose events all come from the built-in catalog: a name there that is not in
/// [`BUILTIN_EVENTS`] is a typo.
pub(crate) const BUILTIN_NAMESPACES: &[&str] = &[
    "task",
    "step",
    "workflow",
    "observability",
    "tasker",
    "performance",
    "memory",
];

pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTIN_EVENTS.contains(&name)
}

pub(crate) fn in_builtin_namespace(name: &str) -> bool {
    let namespace = name.split('.').next().unwrap_or(name);
    BUILTIN_NAMESPACES.contains(&namespace)
}

/// The runtime's constant for a built-in name: upper case, dots as underscores.
pub(crate) fn const_name(name: &str) -> String {
    name.replace('.', "_").to_ascii_uppercase()
}

/// The closest built-in name, for "did you mean" in errors.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    BUILTIN_EVENTS
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
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
