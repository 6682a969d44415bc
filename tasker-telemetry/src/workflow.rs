//! The workflow runner (cargo feature `workflow`, on by default): the reference host that gives
//! every lifecycle event a real source. A workflow is a named DAG of steps; running a task finds
//! the viable steps, runs them with bounded concurrency, retries failures with exponential
//! backoff, honours cancellation, and publishes the whole task / step / workflow / observability
//! lifecycle through the scopes (so spans and metrics follow).
//!
//! ```
//! use tasker_telemetry::workflow::{StepDef, Workflow};
//! use tasker_telemetry::{step_handler, Step, StepError, Telemetry};
//!
//! struct Hello;
//! #[step_handler]
//! impl Hello {
//!     fn process(&self, step: &Step) -> Result<String, StepError> {
//!         Ok(format!("hello from {}", step.name()))
//!     }
//! }
//!
//! let workflow = Workflow::builder("greeting")
//!     .handler(Hello)
//!     .step(StepDef::new("hello"))
//!     .step(StepDef::new("again").handler("hello").depends_on(["hello"]))
//!     .build()?;
//! let telemetry = Telemetry::new(Default::default())?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let outcome = runtime.block_on(workflow.run(&telemetry, "t-1", serde_json::json!({})));
//! assert!(outcome.is_complete());
//! assert_eq!(outcome.results["again"], serde_json::json!("hello from again"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::names;
use crate::handler::{Sequence, StepError, StepHandler, Task};
use crate::payload::{EntityKind, ErrorPayload, OrchestrationPayload, TransitionPayload};
use crate::scope::{Failure, StepCounts, TaskScope};
use crate::telemetry::Telemetry;

/// Exponential backoff between attempts: `base * 2^(attempt - 1)`, at most `max`, then scaled by
/// a random factor in `[1 - jitter, 1 + jitter]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Relative jitter, `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay before attempt `next_attempt` (2 for the first retry).
    pub fn delay(&self, next_attempt: u32) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(30);
        let raw = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return raw;
        }
        let factor = 1.0 + jitter * (2.0 * random_unit() - 1.0);
        raw.mul_f64(factor.max(0.0))
    }
}

/// A cheap pseudo-random number in [0, 1): jitter needs spread, not cryptographic quality.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

type SkipCondition = Arc<dyn Fn(&Task, &Sequence) -> Option<String> + Send + Sync>;

/// One step of a workflow: its name, the handler that runs it, its dependencies and retry
/// policy.
#[derive(Clone)]
pub struct StepDef {
    name: String,
    handler: Option<String>,
    depends_on: Vec<String>,
    retry_limit: Option<u32>,
    backoff: Backoff,
    skip_if: Option<SkipCondition>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for StepDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepDef")
            .field("name", &self.name)
            .field("handler", &self.handler)
            .field("depends_on", &self.depends_on)
            .field("retry_limit", &self.retry_limit)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StepDef {
    /// A step run by the handler of the same name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            handler: None,
            depends_on: Vec::new(),
            retry_limit: None,
            backoff: Backoff::default(),
            skip_if: None,
            timeout: None,
        }
    }

    /// Runs the step with the handler registered under `handler` (its `#[step_handler]` name).
    pub fn handler(mut self, handler: impl Into<String>) -> Self {
        self.handler = Some(handler.into());
        self
    }

    /// Steps that must complete (or be skipped) first.
    pub fn depends_on<I: IntoIterator<Item = S>, S: Into<String>>(mut self, steps: I) -> Self {
        self.depends_on.extend(steps.into_iter().map(Into::into));
        self
    }

    /// Attempts in all (default: the handler's `retry_limit`, else 1).
    pub fn retry_limit(mut self, limit: u32) -> Self {
        self.retry_limit = Some(limit.max(1));
        self
    }

    /// The delay policy between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Bounds each attempt: one still running after `limit` is stopped (its future dropped; its
    /// telemetry ends as `step.cancelled`) and counts as a failed attempt, retried while attempts
    /// remain; the step's last such attempt leaves it [`StepState::TimedOut`]. A synchronous
    /// `process()` cannot be stopped part-way: the limit applies once it returns. Default none.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Skips the step when `condition` returns a reason.
    pub fn skip_if(
        mut self,
        condition: impl Fn(&Task, &Sequence) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.skip_if = Some(Arc::new(condition));
        self
    }
}

/// Why a workflow definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The dependencies form a cycle.
    #[error("workflow {workflow:?} has a dependency cycle: {}", steps.join(" -> "))]
    Cycle {
        /// The workflow.
        workflow: String,
        /// The steps in the cycle, in order, the first repeated at the end.
        steps: Vec<String>,
    },
    /// A step depends on a step the workflow does not have.
    #[error(
        "step {step:?} depends on {dependency:?}, which is not a step of workflow {workflow:?}"
    )]
    UnknownDependency {
        /// The workflow.
        workflow: String,
        /// The step.
        step: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Two steps share a name.
    #[error("workflow {workflow:?} defines step {step:?} twice")]
    DuplicateStep {
        /// The workflow.
        workflow: String,
        /// The repeated name.
        step: String,
    },
    /// A step names a handler that was not given to the builder.
    #[error(
        "step {step:?} uses handler {handler:?}, which was not registered with .handler(...); registered: {registered}"
    )]
    UnknownHandler {
        /// The step.
        step: String,
        /// The missing handler.
        handler: String,
        /// The handlers registered with the builder.
        registered: String,
    },
    /// The workflow has no steps.
    #[error("workflow {workflow:?} has no steps")]
    Empty {
        /// The workflow.
        workflow: String,
    },
}

/// Builds a [`Workflow`]; see [`Workflow::builder`].
#[derive(Default)]
pub struct WorkflowBuilder {
    name: String,
    handlers: HashMap<String, Arc<dyn StepHandler>>,
    steps: Vec<StepDef>,
}

impl std::fmt::Debug for WorkflowBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowBuilder")
            .field("name", &self.name)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl WorkflowBuilder {
    /// Makes a handler available to the steps, under its `StepHandler::name`.
    pub fn handler(mut self, handler: impl StepHandler) -> Self {
        self.handlers
            .insert(handler.name().to_owned(), Arc::new(handler));
        self
    }

    /// Adds a step.
    pub fn step(mut self, step: StepDef) -> Self {
        self.steps.push(step);
        self
    }

    /// Validates the DAG: no duplicate step, no unknown dependency or handler, no cycle.
    pub fn build(self) -> Result<Workflow, WorkflowError> {
        let workflow = self.name.clone();
        if self.steps.is_empty() {
            return Err(WorkflowError::Empty { workflow });
        }
        let mut index = HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            if index.insert(s.name.clone(), i).is_some() {
                return Err(WorkflowError::DuplicateStep {
                    workflow,
                    step: s.name.clone(),
                });
            }
        }
        for s in &self.steps {
            if let Some(dep) = s.depends_on.iter().find(|d| !index.contains_key(*d)) {
                return Err(WorkflowError::UnknownDependency {
                    workflow,
                    step: s.name.clone(),
                    dependency: dep.clone(),
                });
            }
            let handler = s.handler.as_deref().unwrap_or(&s.name);
            if !self.handlers.contains_key(handler) {
                let mut registered: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
                registered.sort_unstable();
                return Err(WorkflowError::UnknownHandler {
                    step: s.name.clone(),
                    handler: handler.to_owned(),
                    registered: if registered.is_empty() {
                        "none".to_owned()
                    } else {
                        registered.join(", ")
                    },
                });
            }
        }
        if let Some(cycle) = find_cycle(&self.steps, &index) {
            return Err(WorkflowError::Cycle {
                workflow,
                steps: cycle,
            });
        }
        let mut dependents = vec![Vec::new(); self.steps.len()];
        for (position, def) in self.steps.iter().enumerate() {
            for dep in &def.depends_on {
                dependents[index[dep]].push(position);
            }
        }
        let steps = self
            .steps
            .into_iter()
            .enumerate()
            .map(|(position, def)| {
                let handler = self.handlers[def.handler.as_deref().unwrap_or(&def.name)].clone();
                let retry_limit = def
                    .retry_limit
                    .or(handler.retry_limit())
                    .unwrap_or(1)
                    .max(1);
                Arc::new(PlannedStep {
                    name: Arc::from(def.name.as_str()),
                    index: position,
                    deps: def.depends_on.iter().map(|d| index[d]).collect(),
                    dependents: std::mem::take(&mut dependents[position]),
                    def,
                    handler,
                    retry_limit,
                })
            })
            .collect();
        Ok(Workflow {
            step_inputs: Arc::new(serde_json::json!({ "workflow": &self.name })),
            name: Arc::from(self.name),
            steps,
        })
    }
}

/// A cycle among the steps' dependencies, as the names along it (the first repeated at the
/// end). Depth-first, with its own stack: a 10,000-step chain must not recurse 10,000 deep.
fn find_cycle(steps: &[StepDef], index: &HashMap<String, usize>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::Unvisited; steps.len()];
    // The current path: each step with the position of the next dependency to look at.
    let mut path: Vec<(usize, usize)> = Vec::new();
    for root in 0..steps.len() {
        if mark[root] != Mark::Unvisited {
            continue;
        }
        mark[root] = Mark::OnPath;
        path.push((root, 0));
        while let Some((step, next)) = path.last_mut() {
            let Some(dep) = steps[*step].depends_on.get(*next) else {
                mark[*step] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            let j = index[dep];
            match mark[j] {
                Mark::OnPath => {
                    let start = path.iter().position(|(p, _)| *p == j).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|(p, _)| steps[*p].name.clone())
                        .collect();
                    cycle.push(steps[j].name.clone());
                    return Some(cycle);
                }
                Mark::Unvisited => {
                    mark[j] = Mark::OnPath;
                    path.push((j, 0));
                }
                Mark::Done => {}
            }
        }
    }
    None
}

struct PlannedStep {
    /// The step's name, allocated once: every run's scopes share it, so the step's metric
    /// handles are found by its address, not by comparing text.
    name: Arc<str>,
    /// The step's position in the workflow: a run keeps its per-step state by position.
    index: usize,
    /// The positions of the steps it depends on.
    deps: Vec<usize>,
    /// The positions of the steps that depend on it.
    dependents: Vec<usize>,
    def: StepDef,
    handler: Arc<dyn StepHandler>,
    retry_limit: u32,
}

/// A validated workflow: a named DAG of steps.
#[derive(Clone)]
pub struct Workflow {
    name: Arc<str>,
    steps: Vec<Arc<PlannedStep>>,
    /// What every step of a task gets as inputs (`{"workflow": <name>}`), built once.
    step_inputs: Arc<serde_json::Value>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<&str> = self.steps.iter().map(|s| s.def.name.as_str()).collect();
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("steps", &steps)
            .finish()
    }
}

/// A step's state in a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepState {
    /// Not run yet.
    Pending,
    /// Completed.
    Complete,
    /// Failed for good.
    Failed,
    /// Its last attempt ran past the step's [`timeout`](StepDef::timeout).
    TimedOut,
    /// Stopped while running by the task's cancellation.
    Cancelled,
    /// Skipped by its condition.
    Skipped,
}

impl StepState {
    /// Tasker's name for the state (`pending`, `complete`, `error`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Complete => "complete",
            StepState::Failed | StepState::TimedOut => "error",
            StepState::Cancelled => "cancelled",
            StepState::Skipped => "skipped",
        }
    }
}

/// How a task ended (the one status type the scopes use too).
pub use crate::scope::TaskStatus;

/// A finished task: its status, each step's state, results and errors.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// How the task ended.
    pub status: TaskStatus,
    /// Each step's final state.
    pub steps: BTreeMap<String, StepState>,
    /// Results of completed steps.
    pub results: BTreeMap<String, serde_json::Value>,
    /// Errors of failed steps (the last attempt's).
    pub errors: BTreeMap<String, String>,
    /// Attempts made per step.
    pub attempts: BTreeMap<String, u32>,
    /// How long the task took.
    pub duration: Duration,
}

impl TaskOutcome {
    /// Whether every step completed or was skipped.
    pub fn is_complete(&self) -> bool {
        self.status == TaskStatus::Complete
    }

    /// Steps in `state`.
    pub fn steps_in(&self, state: StepState) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|(_, s)| **s == state)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Stops a running task: no new step or attempt starts, and running asynchronous steps are
/// stopped at their next `.await` (their state [`StepState::Cancelled`]); a synchronous
/// `process()` already running finishes.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    cancelled: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl CancelHandle {
    /// A handle nothing has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Per-run options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Steps run at once (default: the configuration's `max_concurrent_steps`, Tasker's 3).
    pub max_concurrent_steps: Option<usize>,
    /// Cancels the run.
    pub cancel: CancelHandle,
    /// The task's correlation id (from the request that asked for the task); generated when
    /// absent.
    pub correlation_id: Option<crate::correlation::CorrelationId>,
    /// The task's span in another process (a producer that created the task and handed over
    /// its `traceparent`): the steps run here become its children, in its trace, and no task
    /// span of its own is opened here. `None`: the task's span is opened here, the root of a
    /// new trace. See `examples/distributed_task.rs`.
    pub parent: Option<crate::spans::TraceContext>,
}

struct Run {
    workflow: Workflow,
    task: Arc<Task>,
    /// Each step's state, by position in the workflow, and how many are in each.
    states: Mutex<States>,
    /// Each step's id in this task (`<task id>/<step name>`), by position.
    step_ids: Vec<Arc<str>>,
    /// The steps' inputs after the parameter filter: filtered once per task, not per step.
    filtered_inputs: Option<Arc<serde_json::Value>>,
    sequence: Mutex<Sequence>,
    errors: Mutex<BTreeMap<String, String>>,
    /// Attempts made per step, by position (0: never attempted).
    attempts: Mutex<Vec<u32>>,
    cancel: CancelHandle,
}

/// The steps' states with their counts kept up to date, so that the counts every orchestration
/// event carries cost nothing however many steps the task has.
struct States {
    of: Vec<StepState>,
    counts: StepCounts,
}

impl States {
    fn new(steps: usize) -> Self {
        Self {
            of: vec![StepState::Pending; steps],
            counts: StepCounts {
                total: steps as u64,
                pending: steps as u64,
                ..StepCounts::default()
            },
        }
    }

    fn set(&mut self, step: usize, state: StepState) {
        let old = std::mem::replace(&mut self.of[step], state);
        let c = &mut self.counts;
        for (state, delta) in [(old, -1i64), (state, 1)] {
            let count = match state {
                // Cancelled: not finished, as a step that never started.
                StepState::Pending | StepState::Cancelled => &mut c.pending,
                StepState::Complete | StepState::Skipped => &mut c.completed,
                StepState::Failed | StepState::TimedOut => &mut c.failed,
            };
            *count = count.saturating_add_signed(delta);
        }
    }
}

impl Run {
    fn counts(&self) -> StepCounts {
        self.states.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    fn state(&self, step: usize) -> StepState {
        self.states.lock().unwrap_or_else(|e| e.into_inner()).of[step]
    }

    fn orchestration(&self, scope: &TaskScope) -> OrchestrationPayload {
        let c = self.counts();
        let (id, name) = scope.shared_id_and_name();
        let mut p = OrchestrationPayload::new(id.clone(), name.clone());
        p.total_steps = Some(c.total);
        p.completed_steps = Some(c.completed);
        p.failed_steps = Some(c.failed);
        p.pending_steps = Some(c.pending);
        p.execution_duration = Some(scope.elapsed().as_secs_f64());
        p
    }

    fn publish_orchestration(
        &self,
        event: crate::EventName,
        fill: impl FnOnce(&mut OrchestrationPayload),
    ) {
        let scope = self.task.scope();
        scope.publish(event, |s| {
            let mut p = self.orchestration(s);
            fill(&mut p);
            p
        });
    }

    fn set_state(&self, step: usize, state: StepState) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(step, state);
    }

    /// The step's scope for this task, with the task's shared inputs.
    fn step(&self, planned: &PlannedStep) -> crate::handler::Step {
        self.task
            .step(self.step_ids[planned.index].clone(), planned.name.clone())
            .with_shared_inputs(
                self.workflow.step_inputs.clone(),
                self.filtered_inputs.clone(),
            )
    }

    fn task_transition(&self, from: Option<&'static str>, to: &'static str) {
        self.task
            .scope()
            .publish(names::TASK_BEFORE_TRANSITION, |s| {
                let (id, name) = s.shared_id_and_name();
                TransitionPayload::new(EntityKind::Task, id.clone(), name.clone(), from, to)
            });
    }

    /// Runs one step to its end: attempts, retries with backoff, final state.
    async fn run_step(self: Arc<Self>, planned: Arc<PlannedStep>) {
        let name = &planned.def.name;
        let sequence = self.snapshot();
        let mut step = self.step(&planned).with_retry_limit(planned.retry_limit);
        let transition = |step: &crate::handler::Step, from: &'static str, to: &'static str| {
            step.scope().publish(names::STEP_BEFORE_TRANSITION, |s| {
                let (task_id, task_name) = s.task().shared_id_and_name();
                let (step_id, step_name) = s.shared_id_and_name();
                let mut p = TransitionPayload::new(
                    EntityKind::Step,
                    task_id.clone(),
                    task_name.clone(),
                    Some(from),
                    to,
                );
                p.step_id = Some(step_id.clone());
                p.step_name = Some(step_name.clone());
                p
            });
        };
        for attempt in 1..=planned.retry_limit {
            if self.cancel.is_cancelled() {
                return;
            }
            step.set_attempt(attempt);
            self.attempts.lock().unwrap_or_else(|e| e.into_inner())[planned.index] = attempt;
            transition(
                &step,
                if attempt == 1 { "pending" } else { "error" },
                "in_progress",
            );
            step.scope()
                .publish(names::STEP_EXECUTION_REQUESTED, |s| s.payload(attempt));
            step.scope()
                .publish(names::STEP_HANDLE, |s| s.payload(attempt));
            step.scope()
                .publish(names::OBSERVABILITY_STEP_HANDLE, |s| s.payload(attempt));
            let notified = self.cancel.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.cancel.is_cancelled() {
                return;
            }
            let handled = planned.handler.handle(&self.task, &sequence, &step);
            let bounded = async {
                match planned.def.timeout {
                    Some(limit) => tokio::time::timeout(limit, handled).await.ok(),
                    None => Some(handled.await),
                }
            };
            let outcome = tokio::select! {
                outcome = bounded => outcome,
                () = &mut notified => {
                    self.set_state(planned.index, StepState::Cancelled);
                    return;
                }
            };
            let timed_out = outcome.is_none();
            let outcome = outcome.unwrap_or_else(|| {
                let limit = planned.def.timeout.unwrap_or_default();
                Err(StepError::new(format!("timed out after {limit:?}")).with_class("Timeout"))
            });
            match outcome {
                Ok(value) => {
                    transition(&step, "in_progress", "complete");
                    self.sequence
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(planned.name.clone(), value);
                    self.set_state(planned.index, StepState::Complete);
                    self.publish_orchestration(names::WORKFLOW_STEP_COMPLETED, |p| {
                        p.step_names = Some(vec![planned.name.clone()].into());
                    });
                    return;
                }
                Err(error) => {
                    transition(&step, "in_progress", "error");
                    self.errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), error.message().to_owned());
                    let last = attempt >= planned.retry_limit || !error.is_retryable();
                    // What the events report of the error: its secrets masked, as the attempt's
                    // own `step.failed` reported it.
                    let reported = self
                        .task
                        .scope()
                        .telemetry()
                        .filter()
                        .scrub(error.message());
                    if last {
                        step.scope()
                            .publish(names::OBSERVABILITY_STEP_MAX_RETRIES_REACHED, |s| {
                                let mut p = ErrorPayload::for_task(
                                    s.task().id().to_owned(),
                                    s.task().name().to_owned(),
                                    reported.clone().into_owned(),
                                    error.class().to_owned(),
                                );
                                p.step_id = Some(s.id().into());
                                p.step_name = Some(s.name().into());
                                p.attempt_number = Some(attempt);
                                p.retry_limit = Some(planned.retry_limit);
                                p
                            });
                        let state = if timed_out {
                            StepState::TimedOut
                        } else {
                            StepState::Failed
                        };
                        self.set_state(planned.index, state);
                        self.publish_orchestration(names::WORKFLOW_STEP_FAILED, |p| {
                            p.step_names = Some(vec![planned.name.clone()].into());
                            p.reason = Some(Cow::Owned(reported.into_owned()));
                        });
                        return;
                    }
                    let delay = planned.def.backoff.delay(attempt + 1);
                    let retry_sinks = self
                        .task
                        .scope()
                        .telemetry()
                        .route(names::STEP_RETRY_REQUESTED);
                    if retry_sinks.contains(crate::router::Sinks::LOGS) {
                        tracing::warn!(
                            target: crate::logging::LIFECYCLE_TARGET,
                            correlation_id = self.task.scope().correlation_id().as_str(),
                            task_id = self.task.id(),
                            task_name = self.task.name(),
                            step_id = step.id(),
                            step_name = step.name(),
                            attempt_number = attempt + 1,
                            backoff_ms = delay.as_secs_f64() * 1000.0,
                            "step retrying"
                        );
                    }
                    step.scope()
                        .publish(names::STEP_RETRY_REQUESTED, |s| s.payload(attempt + 1));
                    step.scope()
                        .publish(names::OBSERVABILITY_STEP_BACKOFF, |s| {
                            let mut p = s.payload(attempt + 1);
                            p.backoff_seconds = Some(delay.as_secs_f64());
                            p
                        });
                    let notified = self.cancel.notify.notified();
                    if self.cancel.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = notified => return,
                    }
                }
            }
        }
    }
}

impl Workflow {
    /// Starts defining a workflow.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The workflow's name (the task name of its tasks).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs task `id` with `context` to its end, with default options.
    pub async fn run(
        &self,
        telemetry: &Telemetry,
        id: impl Into<Arc<str>>,
        context: serde_json::Value,
    ) -> TaskOutcome {
        self.run_with(telemetry, id, context, RunOptions::default())
            .await
    }

    /// Runs task `id` with `context` to its end.
    pub async fn run_with(
        &self,
        telemetry: &Telemetry,
        id: impl Into<Arc<str>>,
        context: serde_json::Value,
        options: RunOptions,
    ) -> TaskOutcome {
        let started = Instant::now();
        // Read only when check_memory will use it: a reading is a system call.
        let resident_at_start = (crate::is_enabled()
            && telemetry.config().performance_monitoring_enabled)
            .then(crate::performance::resident_megabytes)
            .flatten();
        let id: Arc<str> = id.into();
        let mut scope = match options.parent {
            Some(parent) => TaskScope::remote(telemetry, id, self.name.clone(), parent),
            None => TaskScope::new(telemetry, id, self.name.clone()),
        };
        if let Some(correlation_id) = options.correlation_id {
            scope = scope.with_correlation_id(correlation_id);
        }
        let task = Arc::new(Task::from_scope(scope.with_context(context)));
        let max_concurrent = options
            .max_concurrent_steps
            .unwrap_or(telemetry.config().max_concurrent_steps)
            .max(1);
        let run = Arc::new(Run {
            workflow: self.clone(),
            task: task.clone(),
            states: Mutex::new(States::new(self.steps.len())),
            step_ids: self
                .steps
                .iter()
                .map(|s| Arc::from(format!("{}/{}", task.id(), s.def.name)))
                .collect(),
            filtered_inputs: crate::is_enabled()
                .then(|| Arc::new(telemetry.filter().filtered(&self.step_inputs))),
            sequence: Mutex::new(Sequence::new()),
            errors: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(vec![0; self.steps.len()]),
            cancel: options.cancel,
        });
        let scope = task.scope();

        scope.publish(names::OBSERVABILITY_TASK_ENQUEUE, |s| {
            run.orchestration_task(s)
        });
        scope.initialize();
        for planned in &self.steps {
            let step = task.step(run.step_ids[planned.index].clone(), planned.name.clone());
            step.scope()
                .publish(names::STEP_INITIALIZE_REQUESTED, |s| s.payload(0));
        }
        run.task_transition(Some("pending"), "in_progress");
        scope.start();
        run.publish_orchestration(names::WORKFLOW_ORCHESTRATION_REQUESTED, |_| {});
        run.publish_orchestration(names::WORKFLOW_TASK_STARTED, |_| {});
        scope.publish(names::OBSERVABILITY_TASK_HANDLE, |s| {
            run.orchestration_task(s)
        });

        run.schedule(&self.steps, max_concurrent).await;

        run.check_memory(telemetry, resident_at_start);
        run.publish_orchestration(names::WORKFLOW_TASK_FINALIZATION_STARTED, |_| {});
        scope.publish(names::OBSERVABILITY_TASK_FINALIZE, |s| {
            run.orchestration_task(s)
        });
        let counts = run.counts();
        let status = if run.cancel.is_cancelled() && counts.failed == 0 && counts.pending > 0 {
            TaskStatus::Cancelled
        } else if counts.failed > 0 || counts.pending > 0 {
            TaskStatus::Failed
        } else {
            TaskStatus::Complete
        };
        match status {
            TaskStatus::Complete => {
                run.task_transition(Some("in_progress"), "complete");
                scope.complete(counts);
                run.publish_orchestration(names::WORKFLOW_TASK_COMPLETED, |_| {});
            }
            TaskStatus::Failed => {
                run.task_transition(Some("in_progress"), "error");
                let errors = run.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let message = errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                scope.fail(&Failure::new(message, "StepFailed"), counts);
                run.publish_orchestration(names::WORKFLOW_TASK_FAILED, |_| {});
            }
            TaskStatus::Cancelled => {
                run.task_transition(Some("in_progress"), "cancelled");
                scope.cancel(counts);
            }
        }
        run.publish_orchestration(names::WORKFLOW_TASK_FINALIZATION_COMPLETED, |_| {});

        let steps = {
            let states = run.states.lock().unwrap_or_else(|e| e.into_inner());
            self.steps
                .iter()
                .map(|s| (s.def.name.clone(), states.of[s.index]))
                .collect()
        };
        let results = run
            .sequence
            .lock()
            .map(|s| {
                s.step_names()
                    .filter_map(|n| s.results_of(n).map(|v| (n.to_owned(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let errors = run.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let attempts = {
            let attempts = run.attempts.lock().unwrap_or_else(|e| e.into_inner());
            self.steps
                .iter()
                .filter(|s| attempts[s.index] > 0)
                .map(|s| (s.def.name.clone(), attempts[s.index]))
                .collect()
        };
        TaskOutcome {
            status,
            steps,
            results,
            errors,
            attempts,
            duration: started.elapsed(),
        }
    }
}

impl Run {
    /// Runs the steps: each starts as soon as its dependencies are done and one of
    /// `max_concurrent` slots is free (a semaphore's permits), a step that depends on a failed
    /// one never starts. Each step is looked at a constant number of times, so a run is linear in
    /// the number of steps and dependencies. Returns when no step runs and none can start.
    async fn schedule(self: &Arc<Self>, steps: &[Arc<PlannedStep>], max_concurrent: usize) {
        let slots = Arc::new(tokio::sync::Semaphore::new(max_concurrent));
        // Dependencies not yet done, per step; a step is ready at 0.
        let mut waiting: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
        let mut ready: std::collections::VecDeque<usize> =
            (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
        let mut joins = tokio::task::JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (usize, Instant)> = HashMap::new();
        let mut iteration = 0u64;
        let names_of = |indices: &[usize]| -> Arc<[Arc<str>]> {
            indices.iter().map(|&i| steps[i].name.clone()).collect()
        };
        // A step done (completed or skipped) releases its dependents.
        let release = |step: usize,
                       waiting: &mut Vec<usize>,
                       ready: &mut std::collections::VecDeque<usize>| {
            for &d in &steps[step].dependents {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push_back(d);
                }
            }
        };
        loop {
            if !self.cancel.is_cancelled() && !ready.is_empty() && slots.available_permits() > 0 {
                iteration += 1;
                self.publish_orchestration(names::OBSERVABILITY_STEP_FIND_VIABLE, |p| {
                    p.iteration = Some(iteration)
                });
                let viable: Vec<usize> = ready.iter().copied().collect();
                self.publish_orchestration(names::WORKFLOW_VIABLE_STEPS_DISCOVERED, |p| {
                    p.iteration = Some(iteration);
                    p.step_names = Some(names_of(&viable));
                    p.step_count = Some(viable.len() as u64);
                });
                let mut started = Vec::new();
                while let Some(&step) = ready.front() {
                    let planned = &steps[step];
                    if let Some(skip_if) = &planned.def.skip_if {
                        let sequence = self.snapshot();
                        if let Some(reason) = skip_if(&self.task, &sequence) {
                            ready.pop_front();
                            self.task
                                .step(self.step_ids[step].clone(), planned.name.clone())
                                .scope()
                                .skip(reason);
                            self.set_state(step, StepState::Skipped);
                            release(step, &mut waiting, &mut ready);
                            continue;
                        }
                    }
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        break;
                    };
                    ready.pop_front();
                    let run = self.clone();
                    let planned = planned.clone();
                    let handle = joins.spawn(async move {
                        let _slot = slot;
                        run.run_step(planned).await;
                    });
                    running.insert(handle.id(), (step, Instant::now()));
                    started.push(step);
                }
                if !started.is_empty() {
                    for event in [
                        names::WORKFLOW_VIABLE_STEPS_BATCH_READY,
                        names::WORKFLOW_STEPS_EXECUTION_STARTED,
                    ] {
                        self.publish_orchestration(event, |p| {
                            p.step_names = Some(names_of(&started));
                            p.step_count = Some(started.len() as u64);
                        });
                    }
                }
            }
            let Some(joined) = joins.join_next_with_id().await else {
                if !ready.is_empty() && !self.cancel.is_cancelled() {
                    // Skipped steps released more: look again.
                    continue;
                }
                break;
            };
            let id = match &joined {
                Ok((id, ())) => *id,
                Err(error) => error.id(),
            };
            let Some((step, began)) = running.remove(&id) else {
                continue;
            };
            if joined.is_err() {
                self.step_panicked(&steps[step]);
            }
            self.publish_orchestration(names::WORKFLOW_STEPS_EXECUTION_COMPLETED, |p| {
                p.step_names = Some(names_of(&[step]));
                p.step_count = Some(1);
                p.execution_duration = Some(began.elapsed().as_secs_f64());
            });
            if self.state(step) == StepState::Complete {
                release(step, &mut waiting, &mut ready);
            }
        }
        let reason = if self.counts().pending == 0 {
            "every step finished"
        } else if self.cancel.is_cancelled() {
            "the task was cancelled"
        } else {
            "pending steps wait on failed steps"
        };
        self.publish_orchestration(names::WORKFLOW_NO_VIABLE_STEPS, |p| {
            p.iteration = Some(iteration);
            p.reason = Some(Cow::Borrowed(reason));
        });
    }

    /// A handler that panicked (the attempt already published `step.failed` with class
    /// "panic"): its step fails and the task goes on to finalize.
    fn step_panicked(&self, planned: &PlannedStep) {
        let name = &planned.def.name;
        self.set_state(planned.index, StepState::Failed);
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), "process() panicked".to_owned());
        self.task
            .scope()
            .publish(names::WORKFLOW_STEP_EXECUTION_FAILED, |s| {
                let mut p = ErrorPayload::for_task(
                    s.id().to_owned(),
                    s.name().to_owned(),
                    "process() panicked",
                    "panic",
                );
                p.step_name = Some(name.as_str().into());
                p
            });
    }

    /// The results so far, as a snapshot (constant time).
    fn snapshot(&self) -> Sequence {
        self.sequence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes `memory.spike_detected` when resident memory grew by more than
    /// `memory_threshold_mb` over the task (performance monitoring on, platform permitting).
    fn check_memory(&self, telemetry: &Telemetry, at_start: Option<f64>) {
        if !crate::is_enabled() {
            return;
        }
        let Some(start) = at_start else { return };
        let Some(now) = crate::performance::resident_megabytes() else {
            return;
        };
        let scope = self.task.scope();
        let subject = crate::scope::thresholds::Subject {
            task: Some(scope),
            step: None,
        };
        crate::scope::thresholds::check_memory_growth(
            telemetry,
            || format!("task.{}", scope.name()),
            now - start,
            &subject,
        );
    }

    fn orchestration_task(&self, scope: &TaskScope) -> crate::payload::TaskPayload {
        let c = self.counts();
        let mut p = scope.payload();
        p.total_steps = Some(c.total);
        p.completed_steps = Some(c.completed);
        p.failed_steps = Some(c.failed);
        p.pending_steps = Some(c.pending);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
            jitter: 0.0,
        };
        let delays: Vec<u128> = (2..=6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        let j = Backoff { jitter: 0.5, ..b };
        for _ in 0..100 {
            let d = j.delay(2).as_millis();
            assert!((50..=150).contains(&d), "{d}");
        }
    }
}
