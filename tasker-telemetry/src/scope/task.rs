//! A task (one run of a workflow): [`TaskScope`], its lifecycle events, span and metrics, and
//! how it ended ([`TaskStatus`], [`StepCounts`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{Failure, StepScope};
use crate::correlation::CorrelationId;
use crate::event::{EventName, names};
use crate::logging::LIFECYCLE_TARGET;
use crate::metrics::TaskMetrics;
use crate::payload::{ErrorPayload, Payload, TaskPayload};
use crate::router::Sinks;
use crate::spans::{self, Carrier, TaskSpan, TraceContext};
use crate::telemetry::{Telemetry, is_enabled};
use crate::timestamp::Timestamp;

/// How a task ended: what [`TaskScope::complete`], [`fail`](TaskScope::fail) or
/// [`cancel`](TaskScope::cancel) recorded, and what the workflow runner reports.
///
/// ```
/// use tasker_telemetry::scope::TaskStatus;
///
/// assert_ne!(TaskStatus::Complete, TaskStatus::Cancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Every step completed or was skipped.
    Complete,
    /// A step failed for good.
    Failed,
    /// Cancelled before it could finish.
    Cancelled,
}

/// Step counts of a task, reported by task-level events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepCounts {
    /// Steps in the task.
    pub total: u64,
    /// Steps completed.
    pub completed: u64,
    /// Steps failed for good.
    pub failed: u64,
    /// Steps not yet run.
    pub pending: u64,
}

pub(super) struct TaskInner {
    pub(super) telemetry: Telemetry,
    pub(super) id: Arc<str>,
    pub(super) name: Arc<str>,
    /// Set once (see `TaskScope::with_context`).
    pub(super) context: OnceLock<serde_json::Value>,
    pub(super) filtered_context: OnceLock<Arc<serde_json::Value>>,
    pub(super) started: Instant,
    pub(super) started_at: Timestamp,
    pub(super) span: TaskSpan,
    /// Generated on first use (a task with telemetry off never pays for it).
    pub(super) correlation_id: OnceLock<CorrelationId>,
    pub(super) steps_sampled: OnceLock<bool>,
    pub(super) metrics: OnceLock<Option<Arc<TaskMetrics>>>,
    /// Set by `start()`, so the active-tasks gauge goes down exactly once and the workflow
    /// duration runs from the start request.
    pub(super) start_requested: OnceLock<Instant>,
    /// Whether `start()` raised the active-tasks gauge: whoever clears it lowers the gauge, so it
    /// goes down exactly once, whether telemetry was switched off since or the scope is dropped.
    pub(super) active_counted: AtomicBool,
    /// Set by the first of `complete` / `fail` / `cancel` (or the drop of an unfinished task).
    pub(super) finished: AtomicBool,
}

impl Drop for TaskInner {
    /// A started task whose last scope goes without completing, failing or being cancelled (a
    /// run dropped by `tokio::time::timeout`, a host that returned early or panicked) is
    /// reported as failed with class `abandoned`: event, span status and metrics, so that
    /// nothing is silent and the active-tasks gauge comes back down.
    fn drop(&mut self) {
        if *self.finished.get_mut() || self.start_requested.get().is_none() {
            // A context may nest deeper than any thread's stack could drop recursively.
            if let Some(context) = self.context.take() {
                crate::filter::drop_deep(context);
            }
            return;
        }
        // The task's parts, span included, move into a scope of their own that reports the
        // failure; finished by that report, it does not come back here.
        let scope = TaskScope {
            inner: Arc::new(TaskInner {
                telemetry: self.telemetry.clone(),
                id: self.id.clone(),
                name: self.name.clone(),
                context: std::mem::take(&mut self.context),
                filtered_context: std::mem::take(&mut self.filtered_context),
                started: self.started,
                started_at: self.started_at,
                span: std::mem::replace(&mut self.span, TaskSpan::Off),
                correlation_id: std::mem::take(&mut self.correlation_id),
                steps_sampled: std::mem::take(&mut self.steps_sampled),
                metrics: std::mem::take(&mut self.metrics),
                start_requested: std::mem::take(&mut self.start_requested),
                active_counted: AtomicBool::new(*self.active_counted.get_mut()),
                finished: AtomicBool::new(false),
            }),
        };
        scope.fail(
            &Failure::new(
                "the task's last scope was dropped before it completed, failed or was cancelled",
                "abandoned",
            ),
            StepCounts::default(),
        );
    }
}

/// One task (one run of a workflow) being instrumented.
///
/// ```
/// use tasker_telemetry::scope::{StepCounts, TaskScope};
/// use tasker_telemetry::Telemetry;
///
/// let telemetry = Telemetry::new(Default::default())?;
/// let task = TaskScope::new(&telemetry, "42", "order_processing")
///     .with_context(serde_json::json!({"cart_id": 7, "api_token": "s3cr3t"}));
/// task.start();
/// let step = task.step("42-1", "fetch_cart").with_retry_limit(3);
/// let attempt = step.attempt(1);
/// attempt.complete(&serde_json::json!({"items": 2}));
/// task.complete(StepCounts { total: 1, completed: 1, ..Default::default() });
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskScope {
    pub(super) inner: Arc<TaskInner>,
}

impl std::fmt::Debug for TaskScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskScope")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .finish()
    }
}

impl TaskScope {
    /// A scope for task `id` of workflow `name`, opening its `tasker.task.execution` span (the
    /// root of a new trace). Publishes nothing by itself.
    pub fn new(telemetry: &Telemetry, id: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        let (id, name) = (id.into(), name.into());
        let span = if is_enabled() {
            spans::task_span(&id, &name, None)
        } else {
            TaskSpan::Off
        };
        Self::with_span(telemetry, id, name, span, OnceLock::new())
    }

    /// A scope for a task whose `tasker.task.execution` span lives in another process: the
    /// steps run here join that trace as children of the task span. Publishes nothing by
    /// itself.
    ///
    /// ```
    /// use tasker_telemetry::spans::TraceContext;
    /// use tasker_telemetry::{TaskScope, Telemetry};
    ///
    /// let ctx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None)?;
    /// let task = TaskScope::remote(Telemetry::global(), "42", "order_processing", ctx.clone());
    /// assert_eq!(task.trace_context(), Some(ctx));
    /// # Ok::<(), tasker_telemetry::spans::TraceContextError>(())
    /// ```
    pub fn remote(
        telemetry: &Telemetry,
        id: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        parent: TraceContext,
    ) -> Self {
        let span = if is_enabled() {
            TaskSpan::Remote(parent)
        } else {
            TaskSpan::Off
        };
        Self::with_span(telemetry, id.into(), name.into(), span, OnceLock::new())
    }

    fn with_span(
        telemetry: &Telemetry,
        id: Arc<str>,
        name: Arc<str>,
        span: TaskSpan,
        correlation_id: OnceLock<CorrelationId>,
    ) -> Self {
        Self {
            inner: Arc::new(TaskInner {
                telemetry: telemetry.clone(),
                id,
                name,
                context: OnceLock::new(),
                filtered_context: OnceLock::new(),
                started: Instant::now(),
                started_at: Timestamp::now(),
                span,
                correlation_id,
                steps_sampled: OnceLock::new(),
                metrics: OnceLock::new(),
                start_requested: OnceLock::new(),
                active_counted: AtomicBool::new(false),
                finished: AtomicBool::new(false),
            }),
        }
    }

    /// Gives the task an incoming correlation id (from `X-Correlation-ID`, a message, a parent
    /// process); call it right after creating the scope. Validate incoming text with
    /// [`CorrelationId::accept_or_generate`] first.
    pub fn with_correlation_id(self, id: CorrelationId) -> Self {
        // First set wins: an id already handed out (to a step, an event) stays the task's id.
        let _ = self.inner.correlation_id.set(id);
        self.record_correlation_id();
        self
    }

    /// The task's correlation id (generated on first use when none was given).
    #[inline]
    pub fn correlation_id(&self) -> &CorrelationId {
        match self.inner.correlation_id.get() {
            Some(id) => id,
            None => self.generate_correlation_id(),
        }
    }

    #[cold]
    #[inline(never)]
    fn generate_correlation_id(&self) -> &CorrelationId {
        let id = self
            .inner
            .correlation_id
            .get_or_init(CorrelationId::generate);
        self.record_correlation_id();
        id
    }

    /// Records the id on the task span once it is fixed (recording it earlier would leave a
    /// stale value beside the real one).
    fn record_correlation_id(&self) {
        if let (Some(span), Some(id)) = (self.span(), self.inner.correlation_id.get()) {
            span.record("tasker.correlation_id", id.as_str());
        }
    }

    #[inline]
    pub(crate) fn corr(&self) -> &Arc<str> {
        self.correlation_id().shared()
    }

    /// Makes the task span a child of an upstream span (the caller's trace), instead of the
    /// root of a new trace. Call it before the task's first step.
    pub fn with_parent(self, parent: &TraceContext) -> Self {
        if let TaskSpan::Local(span) = &self.inner.span {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            // Fails only without an OpenTelemetry layer, where a parent means nothing.
            let _ = span.set_parent(parent.to_otel_context());
        }
        self
    }

    /// The task's trace context (its span as the parent), to hand to steps that run in another
    /// thread, task or process; `None` when telemetry is off or no OpenTelemetry layer runs.
    pub fn trace_context(&self) -> Option<TraceContext> {
        self.inner.span.trace_context()
    }

    /// Writes the task's `traceparent` / `tracestate` into a carrier (a header map, a message's
    /// metadata).
    pub fn inject(&self, carrier: &mut impl Carrier) {
        if let Some(ctx) = self.trace_context() {
            ctx.inject(carrier);
        }
    }

    /// The task's `tasker.task.execution` span, when it lives in this process.
    pub fn span(&self) -> Option<&tracing::Span> {
        self.inner.span.span()
    }

    fn metrics(&self) -> Option<&TaskMetrics> {
        self.inner
            .metrics
            .get_or_init(|| {
                let standard = self.inner.telemetry.standard_metrics()?;
                Some(standard.task_cached(&self.inner.name))
            })
            .as_deref()
    }

    /// Marks the task finished and records its terminal status: the status counter, the
    /// duration histograms, the active-tasks gauge. Returns `false` when the task had already
    /// finished: the call is then ignored and counted
    /// (`tasker_telemetry_dropped_total{sink="task",reason="already_finished"}`).
    fn record_finish(&self, status: TaskStatus) -> bool {
        if self.inner.finished.swap(true, Ordering::AcqRel) {
            self.inner.telemetry.count_repeated_finish();
            return false;
        }
        let active = self.inner.active_counted.swap(false, Ordering::AcqRel);
        let Some(m) = self.metrics() else { return true };
        if active {
            m.active.dec();
        }
        if !is_enabled() {
            return true;
        }
        let elapsed = self.elapsed().as_secs_f64();
        let (counter, histogram) = match status {
            TaskStatus::Complete => (&m.completed, &m.duration_completed),
            TaskStatus::Failed => (&m.failed, &m.duration_failed),
            TaskStatus::Cancelled => (&m.cancelled, &m.duration_cancelled),
        };
        counter.inc();
        let exemplar = self
            .inner
            .telemetry
            .config()
            .metrics_exemplars_enabled
            .then(|| self.inner.span.exemplar_ids())
            .flatten()
            .map(|ids| (ids, std::time::SystemTime::now()));
        histogram.observe_exemplar(elapsed, exemplar);
        if let Some(start) = self.inner.start_requested.get() {
            m.workflow_duration.observe(start.elapsed().as_secs_f64());
        }
        true
    }

    /// Whether the task has finished (completed, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Acquire)
    }

    /// The router's decision for `event` (nothing when telemetry is off).
    pub(super) fn sinks(&self, event: EventName) -> Sinks {
        if is_enabled() {
            self.inner.telemetry.route(event)
        } else {
            Sinks::NONE
        }
    }

    pub(super) fn steps_sampled(&self) -> bool {
        *self
            .inner
            .steps_sampled
            .get_or_init(|| self.inner.span.sampled())
    }

    /// Attaches the task's context; payloads carry it after the parameter filter.
    ///
    /// It applies to this task whether or not the scope is already shared (with a step, a
    /// clone): the correlation id, trace parent and span stay the task's own. Once the task has
    /// a context and the scope is shared, a second context is ignored and counted
    /// (`tasker_telemetry_dropped_total{sink="task",reason="context_already_set"}`), because
    /// steps may already have read the first.
    ///
    /// ```
    /// use tasker_telemetry::{TaskScope, Telemetry};
    ///
    /// let task = TaskScope::new(Telemetry::global(), "42", "checkout");
    /// let step = task.step("42-1", "charge");
    /// let task = task.with_context(serde_json::json!({"cart_id": 7}));
    /// assert_eq!(step.task().context(), Some(&serde_json::json!({"cart_id": 7})));
    /// ```
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.context = OnceLock::from(context);
                inner.filtered_context = OnceLock::new();
            }
            None => {
                if self.inner.context.set(context).is_err() {
                    self.inner.telemetry.count_dropped_context();
                }
            }
        }
        self
    }

    /// The task's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The task's workflow name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    #[cfg(feature = "workflow")]
    /// The task's id and name as shared strings (payloads clone them, never copy the text).
    pub(crate) fn shared_id_and_name(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.inner.id, &self.inner.name)
    }

    /// The telemetry this task reports to.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Time since the scope was created (monotonic clock).
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The task's context as given (unfiltered), if any.
    pub fn context(&self) -> Option<&serde_json::Value> {
        self.inner.context.get()
    }

    /// The task's context after the parameter filter (filtered once, on first use).
    pub fn filtered_context(&self) -> Option<Arc<serde_json::Value>> {
        let raw = self.inner.context.get()?;
        Some(
            self.inner
                .filtered_context
                .get_or_init(|| Arc::new(self.inner.telemetry.filter().filtered(raw)))
                .clone(),
        )
    }

    /// A task payload with the identifying keys, start time and filtered context.
    pub fn payload(&self) -> TaskPayload {
        let mut p = TaskPayload::new(self.inner.id.clone(), self.inner.name.clone());
        p.started_at = Some(self.inner.started_at);
        p.context = self.filtered_context();
        p
    }

    fn payload_with(&self, counts: Option<StepCounts>, finished: bool) -> TaskPayload {
        let mut p = self.payload();
        if let Some(c) = counts {
            p.total_steps = Some(c.total);
            p.completed_steps = Some(c.completed);
            p.failed_steps = Some(c.failed);
            p.pending_steps = Some(c.pending);
        }
        if finished {
            p.completed_at = Some(Timestamp::now());
            p.execution_duration = Some(self.elapsed().as_secs_f64());
        }
        p
    }

    /// Publishes `event` with a payload built from this task, only if telemetry is on and someone
    /// listens. The runner uses this for orchestration events.
    pub fn publish<'s, P: Into<Payload<'s>>>(
        &'s self,
        event: EventName,
        build: impl FnOnce(&'s TaskScope) -> P,
    ) -> bool {
        is_enabled()
            && self
                .inner
                .telemetry
                .publisher()
                .publish_correlated(event, self.corr(), || build(self))
    }

    /// Publishes `task.initialize_requested`.
    pub fn initialize(&self) {
        self.publish(names::TASK_INITIALIZE_REQUESTED, |t| {
            t.payload_with(None, false)
        });
    }

    /// Publishes `task.start_requested` (and adds `task.started` to the task span); counts the
    /// task as started and active.
    pub fn start(&self) {
        if is_enabled()
            && self.inner.start_requested.set(Instant::now()).is_ok()
            && !self.is_finished()
            && let Some(m) = self.metrics()
        {
            m.started.inc();
            m.active.inc();
            self.inner.active_counted.store(true, Ordering::Release);
        }
        let sinks = self.sinks(names::TASK_START_REQUESTED);
        if let Some(span) = self.span().filter(|_| sinks.contains(Sinks::TRACE)) {
            spans::record_event(span, "task.started");
        }
        if sinks.contains(Sinks::LOGS) {
            self.in_span(|| {
                tracing::info!(
                    target: LIFECYCLE_TARGET,
                    correlation_id = self.correlation_id().as_str(),
                    task_id = &*self.inner.id,
                    task_name = &*self.inner.name,
                    "task started"
                )
            });
        }
        self.publish(names::TASK_START_REQUESTED, |t| t.payload_with(None, false));
    }

    /// Publishes `task.completed` with the step counts and the task's duration, and marks the
    /// task span OK. A task finishes once: after `complete`, `fail` or `cancel`, a further call
    /// of any of them is ignored and counted in
    /// `tasker_telemetry_dropped_total{sink="task",reason="already_finished"}`.
    pub fn complete(&self, counts: StepCounts) {
        if !self.record_finish(TaskStatus::Complete) {
            return;
        }
        let sinks = self.sinks(names::TASK_COMPLETED);
        if sinks.contains(Sinks::LOGS) {
            self.log_finish("task completed", None);
        }
        self.record_counts(counts);
        if let Some(span) = self.span() {
            let event = sinks.contains(Sinks::TRACE).then_some("task.completed");
            spans::record_success(span, event, self.elapsed().as_secs_f64());
            spans::end_task_span(span);
        }
        self.publish(names::TASK_COMPLETED, |t| {
            t.payload_with(Some(counts), true)
        });
    }

    /// Publishes `task.failed` with the error and the task's duration (once: see
    /// [`complete`](Self::complete)).
    pub fn fail(&self, failure: &Failure, counts: StepCounts) {
        if !self.record_finish(TaskStatus::Failed) {
            return;
        }
        let failure = &*failure.scrubbed(self.inner.telemetry.filter());
        let sinks = self.sinks(names::TASK_FAILED);
        if sinks.contains(Sinks::LOGS) {
            self.log_finish("task failed", Some(failure));
        }
        self.record_counts(counts);
        if let Some(span) = self.span() {
            spans::record_failure(
                span,
                sinks.contains(Sinks::TRACE).then_some("task.failed"),
                self.elapsed().as_secs_f64(),
                &failure.class,
                &failure.message,
            );
            spans::end_task_span(span);
        }
        self.publish(names::TASK_FAILED, |t| {
            let completed_at = Timestamp::now();
            let mut p = t.error_payload(failure, completed_at);
            p.started_at = Some(t.inner.started_at);
            p.execution_duration = Some(t.elapsed().as_secs_f64());
            p.total_steps = Some(counts.total);
            p.completed_steps = Some(counts.completed);
            p.failed_steps = Some(counts.failed);
            p.pending_steps = Some(counts.pending);
            p
        });
    }

    /// A failure payload for this task, ending at `completed_at`.
    pub(super) fn error_payload(&self, failure: &Failure, completed_at: Timestamp) -> ErrorPayload {
        let mut p = ErrorPayload::for_task(
            self.inner.id.clone(),
            self.inner.name.clone(),
            failure.message.clone(),
            failure.class.clone(),
        );
        p.backtrace = failure.backtrace.clone();
        p.completed_at = Some(completed_at);
        p
    }

    /// Runs `f` inside the task's span, so that the task's lifecycle lines name it.
    fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.span() {
            Some(span) => span.in_scope(f),
            None => f(),
        }
    }

    fn log_finish(&self, message: &'static str, failure: Option<&Failure>) {
        if is_enabled() {
            self.in_span(|| self.write_finish_line(message, failure));
        }
    }

    fn write_finish_line(&self, message: &'static str, failure: Option<&Failure>) {
        let duration_ms = self.elapsed().as_secs_f64() * 1000.0;
        let (id, name, corr) = (
            &*self.inner.id,
            &*self.inner.name,
            self.correlation_id().as_str(),
        );
        match failure {
            None => tracing::info!(
                target: LIFECYCLE_TARGET, correlation_id = corr, task_id = id, task_name = name, duration_ms, "{message}"
            ),
            Some(f) => tracing::error!(
                target: LIFECYCLE_TARGET,
                correlation_id = corr,
                task_id = id,
                task_name = name,
                duration_ms,
                error_class = &*f.class,
                error_message = &*f.message,
                "{message}"
            ),
        }
    }

    fn record_counts(&self, counts: StepCounts) {
        let _ = self.correlation_id();
        if let Some(span) = self.span() {
            // i64: OpenTelemetry has no unsigned integers (a u64 would be exported as text).
            let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            span.record("tasker.total_steps", int(counts.total));
            span.record("tasker.completed_steps", int(counts.completed));
            span.record("tasker.failed_steps", int(counts.failed));
        }
    }

    /// Publishes `task.cancelled` with the step counts (once: see [`complete`](Self::complete)).
    pub fn cancel(&self, counts: StepCounts) {
        if !self.record_finish(TaskStatus::Cancelled) {
            return;
        }
        self.record_counts(counts);
        let sinks = self.sinks(names::TASK_CANCELLED);
        if let Some(span) = self.span() {
            if sinks.contains(Sinks::TRACE) {
                spans::record_event(span, "task.cancelled");
            }
            spans::end_task_span(span);
        }
        if sinks.contains(Sinks::LOGS) {
            self.log_finish("task cancelled", None);
        }
        self.publish(names::TASK_CANCELLED, |t| {
            t.payload_with(Some(counts), true)
        });
    }

    /// A scope for one step of this task.
    pub fn step(&self, id: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> StepScope {
        StepScope::new(self.clone(), id.into(), name.into())
    }
}
