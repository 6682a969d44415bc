//! The standard metrics every scope records. Labels are bounded: task and step *names* and a
//! status, never ids, correlation ids or error text.

use super::registry::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, MetricsError, MetricsRegistry,
};

/// The families the scopes record into.
#[derive(Debug, Clone)]
pub(crate) struct StandardMetrics {
    tasks_started: CounterVec,
    tasks: CounterVec,
    steps: CounterVec,
    step_retries: CounterVec,
    max_retries: CounterVec,
    task_duration: HistogramVec,
    step_duration: HistogramVec,
    workflow_duration: HistogramVec,
    tasks_active: GaugeVec,
    steps_active: GaugeVec,
    operations: HistogramVec,
}

/// One task's handles, resolved once per task.
#[derive(Debug)]
pub(crate) struct TaskMetrics {
    pub(crate) started: Counter,
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) duration_completed: Histogram,
    pub(crate) duration_failed: Histogram,
    pub(crate) duration_cancelled: Histogram,
    pub(crate) workflow_duration: Histogram,
    pub(crate) active: Gauge,
}

/// One step's handles, resolved once per step scope.
#[derive(Debug)]
pub(crate) struct StepMetrics {
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) duration_completed: Histogram,
    pub(crate) duration_failed: Histogram,
    pub(crate) retries: Counter,
    pub(crate) max_retries_reached: Counter,
    pub(crate) active: Gauge,
    /// `tasker_operation_duration_seconds{operation="step.<name>"}`.
    pub(crate) operation: Histogram,
}

impl StandardMetrics {
    pub(crate) fn register(r: &MetricsRegistry) -> Result<Self, MetricsError> {
        Ok(Self {
            tasks_started: r.counter("tasker_tasks_started_total", "Tasks started, by task name.", &["task_name"])?,
            tasks: r.counter(
                "tasker_tasks_total",
                "Tasks finished, by task name and terminal status (completed, failed, cancelled).",
                &["task_name", "status"],
            )?,
            steps: r.counter(
                "tasker_steps_total",
                "Step attempts finished, by task name, step name and status (completed, failed, skipped).",
                &["task_name", "step_name", "status"],
            )?,
            step_retries: r.counter(
                "tasker_step_retries_total",
                "Step attempts after the first (retries), by task and step name.",
                &["task_name", "step_name"],
            )?,
            max_retries: r.counter(
                "tasker_step_max_retries_reached_total",
                "Steps that failed on their last allowed attempt, by task and step name.",
                &["task_name", "step_name"],
            )?,
            task_duration: r.histogram(
                "tasker_task_duration_seconds",
                "Task duration in seconds, from scope creation to its terminal event, by task name and status.",
                Some("seconds"),
                &["task_name", "status"],
                None,
            )?,
            step_duration: r.histogram(
                "tasker_step_duration_seconds",
                "Step attempt duration in seconds (process() time), by task name, step name and status.",
                Some("seconds"),
                &["task_name", "step_name", "status"],
                None,
            )?,
            workflow_duration: r.histogram(
                "tasker_workflow_duration_seconds",
                "Workflow duration in seconds, from the start request to finalization, by task name.",
                Some("seconds"),
                &["task_name"],
                None,
            )?,
            tasks_active: r.gauge("tasker_tasks_active", "Tasks started and not yet finished.", &[])?,
            steps_active: r.gauge("tasker_steps_active", "Step attempts running now, by step name.", &["step_name"])?,
            operations: r.histogram(
                "tasker_operation_duration_seconds",
                "Duration of measured operations (every step attempt, and whatever the performance monitor wraps), in seconds.",
                Some("seconds"),
                &["operation"],
                None,
            )?,
        })
    }

    pub(crate) fn task(&self, task_name: &str) -> TaskMetrics {
        let status = |s: &str| self.tasks.with(&[task_name, s]);
        let duration = |s: &str| self.task_duration.with(&[task_name, s]);
        TaskMetrics {
            started: self.tasks_started.with(&[task_name]),
            completed: status("completed"),
            failed: status("failed"),
            cancelled: status("cancelled"),
            duration_completed: duration("completed"),
            duration_failed: duration("failed"),
            duration_cancelled: duration("cancelled"),
            workflow_duration: self.workflow_duration.with(&[task_name]),
            active: self.tasks_active.with(&[]),
        }
    }

    pub(crate) fn step(&self, task_name: &str, step_name: &str) -> StepMetrics {
        StepMetrics {
            completed: self.steps.with(&[task_name, step_name, "completed"]),
            failed: self.steps.with(&[task_name, step_name, "failed"]),
            duration_completed: self
                .step_duration
                .with(&[task_name, step_name, "completed"]),
            duration_failed: self.step_duration.with(&[task_name, step_name, "failed"]),
            retries: self.step_retries.with(&[task_name, step_name]),
            max_retries_reached: self.max_retries.with(&[task_name, step_name]),
            active: self.steps_active.with(&[step_name]),
            operation: self.operations.with(&[&format!("step.{step_name}")]),
        }
    }

    /// The `skipped` series of a step, for hosts (the runner) that skip steps.
    pub(crate) fn step_skipped(&self, task_name: &str, step_name: &str) -> Counter {
        self.steps.with(&[task_name, step_name, "skipped"])
    }
}
