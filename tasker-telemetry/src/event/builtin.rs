//! Tasker's event catalog, spelled exactly as Tasker spells it so that existing dashboards and
//! subscribers carry over. One table generates the name constants, the catalog descriptors and
//! the name lookup, so the three cannot drift apart.

use super::registry::{EventDescriptor, EventSource};
use super::{Category, EventName};
use crate::payload::PayloadKind;

const RUNNER: &str = "workflow runner (tasker_telemetry::workflow)";
const STEP_SCOPE: &str = "StepScope (every #[step_handler] call)";
const TASK_SCOPE: &str = "TaskScope";
const MONITOR: &str = "performance monitor";
const EXPORT: &str = "metrics export pipeline";

const fn published(by: &'static str) -> EventSource {
    EventSource::Published { by }
}

const fn reserved(reason: &'static str) -> EventSource {
    EventSource::Reserved { reason }
}

macro_rules! builtin_events {
    ($(
        $konst:ident = $name:literal, $cat:ident, $kind:ident, $source:expr, $desc:literal;
    )*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u16)]
        enum Index { $($konst,)* }

        /// Every built-in event name, as constants.
        ///
        /// ```
        /// use tasker_telemetry::event::names;
        /// assert_eq!(names::TASK_START_REQUESTED.as_str(), "task.start_requested");
        /// ```
        pub mod names {
            use super::{EventName, Index};
            $(
                #[doc = concat!("`", $name, "`: ", $desc)]
                pub const $konst: EventName = EventName::new(Index::$konst as u16, $name);
            )*
        }

        /// How many built-in events there are; custom events are indexed after them.
        pub(crate) const BUILTIN_COUNT: usize = [$(Index::$konst),*].len();

        /// The built-in catalog, in index order.
        pub(crate) static BUILTIN_EVENTS: &[EventDescriptor] = &[$(
            EventDescriptor {
                name: names::$konst,
                category: Category::$cat,
                description: $desc,
                payload: PayloadKind::$kind,
                fields: PayloadKind::$kind.fields(),
                source: $source,
            },
        )*];

        /// Resolves a built-in name without allocating.
        pub(crate) fn lookup_builtin(name: &str) -> Option<EventName> {
            match name {
                $($name => Some(names::$konst),)*
                _ => None,
            }
        }
    };
}

builtin_events! {
    TASK_INITIALIZE_REQUESTED = "task.initialize_requested", Task, Task, published(RUNNER),
        "A task is being initialized.";
    TASK_START_REQUESTED = "task.start_requested", Task, Task, published(TASK_SCOPE),
        "A task is starting execution.";
    TASK_COMPLETED = "task.completed", Task, Task, published(TASK_SCOPE),
        "A task finished with every step complete.";
    TASK_FAILED = "task.failed", Task, Error, published(TASK_SCOPE),
        "A task finished because a step failed for good.";
    TASK_RETRY_REQUESTED = "task.retry_requested", Task, Task,
        reserved("retrying a whole task is the host job queue's decision; the runner retries steps, not tasks"),
        "A failed task is being retried.";
    TASK_CANCELLED = "task.cancelled", Task, Task, published(TASK_SCOPE),
        "A task was cancelled.";
    TASK_RESOLVED_MANUALLY = "task.resolved_manually", Task, Task,
        reserved("manual resolution is an operator action in the host application's admin tools"),
        "An operator marked a task resolved by hand.";
    TASK_BEFORE_TRANSITION = "task.before_transition", Task, Transition, published(RUNNER),
        "A task is about to change state.";

    STEP_INITIALIZE_REQUESTED = "step.initialize_requested", Step, Step, published(RUNNER),
        "A step is being initialized for a new task.";
    STEP_EXECUTION_REQUESTED = "step.execution_requested", Step, Step, published(RUNNER),
        "A step was found viable and its execution requested.";
    STEP_BEFORE_HANDLE = "step.before_handle", Step, Step, published(STEP_SCOPE),
        "A step attempt is about to call process().";
    STEP_HANDLE = "step.handle", Step, Step, published(RUNNER),
        "A step moved to in-progress and is being handled.";
    STEP_COMPLETED = "step.completed", Step, Step, published(STEP_SCOPE),
        "A step attempt succeeded; carries the duration and results.";
    STEP_FAILED = "step.failed", Step, Error, published(STEP_SCOPE),
        "A step attempt failed; carries the error, attempt number and retry limit.";
    STEP_RETRY_REQUESTED = "step.retry_requested", Step, Step, published(RUNNER),
        "A failed step will be attempted again.";
    STEP_CANCELLED = "step.cancelled", Step, Step, published(STEP_SCOPE),
        "A step attempt was abandoned before it finished (task cancelled, future dropped).";
    STEP_RESOLVED_MANUALLY = "step.resolved_manually", Step, Step,
        reserved("manual resolution is an operator action in the host application's admin tools"),
        "An operator marked a step resolved by hand.";
    STEP_BEFORE_TRANSITION = "step.before_transition", Step, Transition, published(RUNNER),
        "A step is about to change state.";

    WORKFLOW_TASK_STARTED = "workflow.task_started", Workflow, Orchestration, published(RUNNER),
        "Orchestration of a task began.";
    WORKFLOW_TASK_COMPLETED = "workflow.task_completed", Workflow, Orchestration, published(RUNNER),
        "Orchestration finished a task successfully.";
    WORKFLOW_TASK_FAILED = "workflow.task_failed", Workflow, Orchestration, published(RUNNER),
        "Orchestration finished a task in failure.";
    WORKFLOW_STEP_COMPLETED = "workflow.step_completed", Workflow, Orchestration, published(RUNNER),
        "Orchestration recorded a completed step.";
    WORKFLOW_STEP_FAILED = "workflow.step_failed", Workflow, Orchestration, published(RUNNER),
        "Orchestration recorded a failed step.";
    WORKFLOW_STEP_EXECUTION_FAILED = "workflow.step_execution_failed", Workflow, Error, published(RUNNER),
        "A step could not be executed at all (for example its handler panicked).";
    WORKFLOW_VIABLE_STEPS_DISCOVERED = "workflow.viable_steps_discovered", Workflow, Orchestration, published(RUNNER),
        "An orchestration pass found steps ready to run.";
    WORKFLOW_VIABLE_STEPS_BATCH_READY = "workflow.viable_steps_batch_ready", Workflow, Orchestration, published(RUNNER),
        "A batch of viable steps is ready for concurrent execution.";
    WORKFLOW_NO_VIABLE_STEPS = "workflow.no_viable_steps", Workflow, Orchestration, published(RUNNER),
        "An orchestration pass found nothing ready to run.";
    WORKFLOW_ORCHESTRATION_REQUESTED = "workflow.orchestration_requested", Workflow, Orchestration, published(RUNNER),
        "Orchestration of a task was requested.";
    WORKFLOW_TASK_FINALIZATION_STARTED = "workflow.task_finalization_started", Workflow, Orchestration, published(RUNNER),
        "A task's finalization began.";
    WORKFLOW_TASK_FINALIZATION_COMPLETED = "workflow.task_finalization_completed", Workflow, Orchestration, published(RUNNER),
        "A task's finalization finished.";
    WORKFLOW_STEPS_EXECUTION_STARTED = "workflow.steps_execution_started", Workflow, Orchestration, published(RUNNER),
        "A batch of steps started executing.";
    WORKFLOW_STEPS_EXECUTION_COMPLETED = "workflow.steps_execution_completed", Workflow, Orchestration, published(RUNNER),
        "A batch of steps finished executing.";
    WORKFLOW_TASK_REENQUEUE_STARTED = "workflow.task_reenqueue_started", Workflow, Orchestration,
        reserved("re-enqueueing belongs to the host's job queue; the runner keeps a task in process until it ends"),
        "A task is being put back on the job queue.";
    WORKFLOW_TASK_REENQUEUE_REQUESTED = "workflow.task_reenqueue_requested", Workflow, Orchestration,
        reserved("re-enqueueing belongs to the host's job queue; the runner keeps a task in process until it ends"),
        "Re-enqueueing a task was requested.";
    WORKFLOW_TASK_REENQUEUE_FAILED = "workflow.task_reenqueue_failed", Workflow, Orchestration,
        reserved("re-enqueueing belongs to the host's job queue; the runner keeps a task in process until it ends"),
        "Re-enqueueing a task failed.";
    WORKFLOW_TASK_REENQUEUE_DELAYED = "workflow.task_reenqueue_delayed", Workflow, Orchestration,
        reserved("re-enqueueing belongs to the host's job queue; the runner keeps a task in process until it ends"),
        "Re-enqueueing a task was delayed.";
    WORKFLOW_TASK_STATE_UNCLEAR = "workflow.task_state_unclear", Workflow, Orchestration,
        reserved("raised by persistence layers that can lose track of a task; the in-process runner always knows its state"),
        "A task's state could not be determined.";

    OBSERVABILITY_TASK_ENQUEUE = "observability.task.enqueue", Observability, Task, published(RUNNER),
        "A task was submitted for processing.";
    OBSERVABILITY_TASK_HANDLE = "observability.task.handle", Observability, Task, published(RUNNER),
        "A task handler began processing a task.";
    OBSERVABILITY_TASK_FINALIZE = "observability.task.finalize", Observability, Task, published(RUNNER),
        "Task processing was finalized.";
    OBSERVABILITY_STEP_HANDLE = "observability.step.handle", Observability, Step, published(RUNNER),
        "A step handler began processing a step.";
    OBSERVABILITY_STEP_FIND_VIABLE = "observability.step.find_viable", Observability, Orchestration, published(RUNNER),
        "Viable-step discovery ran.";
    OBSERVABILITY_STEP_BACKOFF = "observability.step.backoff", Observability, Step, published(RUNNER),
        "A step's next attempt is delayed by backoff; carries the delay.";
    OBSERVABILITY_STEP_SKIP = "observability.step.skip", Observability, Step, published(RUNNER),
        "A step was skipped; carries the reason.";
    OBSERVABILITY_STEP_MAX_RETRIES_REACHED = "observability.step.max_retries_reached", Observability, Error, published(RUNNER),
        "A step used up its retry limit.";

    TASKER_TELEMETRY_CACHE_SYNCED = "tasker.telemetry.cache_synced", Telemetry, Fields,
        reserved("Tasker syncs metrics through a shared Rails cache; each process here exposes its own registry to Prometheus"),
        "Metrics were synced to a shared cache.";
    TASKER_TELEMETRY_EXPORT_REQUESTED = "tasker.telemetry.export_requested", Telemetry, Fields, published(EXPORT),
        "A metrics export was requested.";
    TASKER_TELEMETRY_EXPORT_COMPLETED = "tasker.telemetry.export_completed", Telemetry, Fields, published(EXPORT),
        "A metrics export finished.";
    TASKER_TELEMETRY_EXPORT_FAILED = "tasker.telemetry.export_failed", Telemetry, Fields, published(EXPORT),
        "A metrics export failed.";
    TASKER_TELEMETRY_PLUGIN_REGISTERED = "tasker.telemetry.plugin_registered", Telemetry, Fields, published(EXPORT),
        "An exporter plugin was registered.";
    TASKER_TELEMETRY_PLUGIN_UNREGISTERED = "tasker.telemetry.plugin_unregistered", Telemetry, Fields, published(EXPORT),
        "An exporter plugin was unregistered.";

    PERFORMANCE_SLOW_OPERATION = "performance.slow_operation", Performance, Performance, published(MONITOR),
        "An operation took longer than slow_query_threshold_seconds.";
    MEMORY_SPIKE_DETECTED = "memory.spike_detected", Performance, Performance, published(MONITOR),
        "An operation grew memory by more than memory_threshold_mb.";
}
