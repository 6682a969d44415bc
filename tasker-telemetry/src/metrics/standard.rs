//! The standard metrics every scope records. Labels are bounded: task and step *names* and a
//! status, never ids, correlation ids or error text.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, RwLock};

use super::registry::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, MetricsError, MetricsRegistry,
};

/// Task and step handle sets kept for reuse, each at most (beyond it, sets are resolved afresh).
const MAX_RESOLVED: usize = 4096;

/// A name known by its allocation: hosts that run a workflow again and again (the runner) pass
/// the same `Arc<str>` every time, so its address identifies the name without comparing text.
/// The key holds the `Arc`, so the address cannot be reused while it is a key.
#[derive(Debug, Clone)]
struct ByAddress(Arc<str>);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByAddress {}

impl Hash for ByAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(Arc::as_ptr(&self.0) as *const u8 as usize);
    }
}

/// Mixes addresses (already unique) with one multiply.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type ByAddressMap<K, V> = HashMap<K, V, BuildHasherDefault<AddressHasher>>;

/// Handle sets already resolved, by the names' addresses.
#[derive(Debug, Default)]
struct Resolved {
    tasks: RwLock<ByAddressMap<ByAddress, Arc<TaskMetrics>>>,
    steps: RwLock<ByAddressMap<(ByAddress, ByAddress), Arc<StepMetrics>>>,
}

fn cached<K: Hash + Eq, V>(
    map: &RwLock<ByAddressMap<K, Arc<V>>>,
    key: K,
    resolve: impl FnOnce() -> V,
) -> Arc<V> {
    if let Some(found) = map.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found.clone();
    }
    let value = Arc::new(resolve());
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    if map.len() < MAX_RESOLVED {
        map.entry(key).or_insert_with(|| value.clone()).clone()
    } else {
        value
    }
}

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
    resolved: Arc<Resolved>,
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
            resolved: Arc::default(),
        })
    }

    /// A task's handles, resolved once per task name allocation (see [`ByAddress`]).
    pub(crate) fn task_cached(&self, task_name: &Arc<str>) -> Arc<TaskMetrics> {
        cached(&self.resolved.tasks, ByAddress(task_name.clone()), || {
            self.task(task_name)
        })
    }

    /// A step's handles, resolved once per pair of name allocations (see [`ByAddress`]).
    pub(crate) fn step_cached(
        &self,
        task_name: &Arc<str>,
        step_name: &Arc<str>,
    ) -> Arc<StepMetrics> {
        let key = (ByAddress(task_name.clone()), ByAddress(step_name.clone()));
        cached(&self.resolved.steps, key, || {
            self.step(task_name, step_name)
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
