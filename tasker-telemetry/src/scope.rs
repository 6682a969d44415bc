//! Task and step scopes: the instrumentation core that `#[step_handler]`, the workflow runner and
//! hand-written hosts drive.
//!
//! A [`TaskScope`] stands for one run of a workflow; a [`StepScope`] for one step of it; a
//! [`StepAttempt`] for one call of the step's `process()`. Each publishes its lifecycle events with
//! full payloads, building a payload only when someone listens. When telemetry is switched off
//! ([`set_enabled(false)`](crate::set_enabled)) starting an attempt costs one relaxed atomic load
//! and a branch.

pub(crate) mod thresholds;
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock;
use crate::correlation::CorrelationId;
use crate::event::{Event, EventName, names};
use crate::logging::LIFECYCLE_TARGET;
use crate::metrics::{StepMetrics, TaskMetrics};
use crate::payload::{ErrorPayload, Payload, StepPayload, TaskPayload};
use crate::router::Sinks;
use crate::spans::{self, Carrier, StepSpanFields, TaskSpan, TraceContext};
use crate::telemetry::{Telemetry, is_enabled};
use crate::timestamp::Timestamp;

/// A failure as events report it: message, error class and optional backtrace.
///
/// ```
/// use tasker_telemetry::scope::Failure;
///
/// let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "gateway timed out");
/// let failure = Failure::from_error(&err);
/// assert_eq!(failure.message(), "gateway timed out");
/// assert_eq!(failure.class(), "std::io::error::Error");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    message: Arc<str>,
    class: Cow<'static, str>,
    backtrace: Option<Arc<str>>,
}

impl Failure {
    /// A failure with an explicit message and class.
    pub fn new(message: impl Into<Arc<str>>, class: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            class: class.into(),
            backtrace: None,
        }
    }

    /// A failure from an error value: its `Display` text followed by each of its sources
    /// (`outer: inner: root`, as `#[step_handler]` reports it), and its concrete type's name as
    /// the class.
    pub fn from_error<E: std::error::Error + ?Sized>(error: &E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            message.push_str(": ");
            message.push_str(&e.to_string());
            cause = e.source();
        }
        Self::new(message, std::any::type_name::<E>())
    }

    /// Attaches a backtrace.
    pub fn with_backtrace(mut self, backtrace: impl Into<Arc<str>>) -> Self {
        self.backtrace = Some(backtrace.into());
        self
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's class (type name, or `panic`).
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The captured backtrace, if any.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }
}

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

struct TaskInner {
    telemetry: Telemetry,
    id: Arc<str>,
    name: Arc<str>,
    /// Set once (see `TaskScope::with_context`).
    context: OnceLock<serde_json::Value>,
    filtered_context: OnceLock<Arc<serde_json::Value>>,
    started: Instant,
    started_at: Timestamp,
    span: TaskSpan,
    /// Generated on first use (a task with telemetry off never pays for it).
    correlation_id: OnceLock<CorrelationId>,
    steps_sampled: OnceLock<bool>,
    metrics: OnceLock<Option<Arc<TaskMetrics>>>,
    /// Set by `start()`, so the active-tasks gauge goes down exactly once and the workflow
    /// duration runs from the start request.
    start_requested: OnceLock<Instant>,
    /// Whether `start()` raised the active-tasks gauge: whoever clears it lowers the gauge, so it
    /// goes down exactly once, whether telemetry was switched off since or the scope is dropped.
    active_counted: AtomicBool,
    /// Set by the first of `complete` / `fail` / `cancel` (or the drop of an unfinished task).
    finished: AtomicBool,
}

impl Drop for TaskInner {
    /// A started task whose last scope goes without completing, failing or being cancelled (a
    /// run dropped by `tokio::time::timeout`, a host that returned early or panicked) is
    /// reported as failed with class `abandoned`: event, span status and metrics, so that
    /// nothing is silent and the active-tasks gauge comes back down.
    fn drop(&mut self) {
        if *self.finished.get_mut() || self.start_requested.get().is_none() {
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
    inner: Arc<TaskInner>,
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
        histogram.observe(elapsed);
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
    fn sinks(&self, event: EventName) -> Sinks {
        if is_enabled() {
            self.inner.telemetry.route(event)
        } else {
            Sinks::NONE
        }
    }

    fn steps_sampled(&self) -> bool {
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
    pub fn publish<P: Into<Payload>>(
        &self,
        event: EventName,
        build: impl FnOnce(&TaskScope) -> P,
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
    fn error_payload(&self, failure: &Failure, completed_at: Timestamp) -> ErrorPayload {
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
        StepScope {
            task: self.clone(),
            id: id.into(),
            name: name.into(),
            retry_limit: None,
            inputs: None,
            filtered_inputs: OnceLock::new(),
            metrics: OnceLock::new(),
        }
    }
}

/// One step of a task; start an attempt for each call of `process()`.
#[derive(Debug)]
pub struct StepScope {
    task: TaskScope,
    id: Arc<str>,
    name: Arc<str>,
    retry_limit: Option<u32>,
    inputs: Option<Arc<serde_json::Value>>,
    filtered_inputs: OnceLock<Arc<serde_json::Value>>,
    metrics: OnceLock<Option<Arc<StepMetrics>>>,
}

impl StepScope {
    /// The step's metric handles, resolved on first use (none with metrics off).
    #[inline]
    fn metrics(&self) -> Option<&StepMetrics> {
        match self.metrics.get() {
            Some(metrics) => metrics.as_deref(),
            None => self.resolve_metrics(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve_metrics(&self) -> Option<&StepMetrics> {
        self.metrics
            .get_or_init(|| {
                let standard = self.task.inner.telemetry.standard_metrics()?;
                Some(standard.step_cached(&self.task.inner.name, &self.name))
            })
            .as_deref()
    }

    /// Sets how many attempts the step may make in all (default: the handler's `retry_limit`,
    /// else 1).
    pub fn with_retry_limit(mut self, retry_limit: u32) -> Self {
        self.retry_limit = Some(retry_limit);
        self
    }

    /// Attaches the step's inputs; payloads carry them after the parameter filter.
    pub fn with_inputs(mut self, inputs: serde_json::Value) -> Self {
        self.inputs = Some(Arc::new(inputs));
        self.filtered_inputs = OnceLock::new();
        self
    }

    #[cfg(feature = "workflow")]
    /// Attaches inputs shared with other steps, with their filtered form when already known
    /// (the runner gives every step of a task the same inputs: filtered once, not per step).
    pub(crate) fn with_shared_inputs(
        mut self,
        inputs: Arc<serde_json::Value>,
        filtered: Option<Arc<serde_json::Value>>,
    ) -> Self {
        self.inputs = Some(inputs);
        self.filtered_inputs = filtered.map_or_else(OnceLock::new, OnceLock::from);
        self
    }

    /// The step's inputs as given (unfiltered), if any.
    pub fn inputs(&self) -> Option<&serde_json::Value> {
        self.inputs.as_deref()
    }

    /// The owning task.
    pub fn task(&self) -> &TaskScope {
        &self.task
    }

    /// The step's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[cfg(feature = "workflow")]
    /// The step's id and name as shared strings.
    pub(crate) fn shared_id_and_name(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.id, &self.name)
    }

    /// How many attempts the step may make (1 unless set).
    pub fn retry_limit(&self) -> u32 {
        self.retry_limit.unwrap_or(1)
    }

    /// The retry limit set on this step, if any (a handler's own limit applies otherwise).
    pub fn explicit_retry_limit(&self) -> Option<u32> {
        self.retry_limit
    }

    pub(crate) fn filtered_inputs(&self) -> Option<Arc<serde_json::Value>> {
        self.inputs.as_ref()?;
        Some(self.filtered_inputs_ref().clone())
    }

    /// The filtered inputs, computed on first use (call only when the step has inputs).
    fn filtered_inputs_ref(&self) -> &Arc<serde_json::Value> {
        self.filtered_inputs.get_or_init(|| {
            let raw = self.inputs.as_deref().unwrap_or(&serde_json::Value::Null);
            Arc::new(self.task.inner.telemetry.filter().filtered(raw))
        })
    }

    /// A step payload for `attempt_number` with the identifying keys and filtered inputs.
    #[inline]
    pub fn payload(&self, attempt_number: u32) -> StepPayload {
        let task = &self.task.inner;
        let mut p = StepPayload::new(
            task.id.clone(),
            task.name.clone(),
            self.id.clone(),
            self.name.clone(),
        );
        p.attempt_number = attempt_number;
        p.retry_limit = self.retry_limit();
        p.inputs = self.filtered_inputs();
        p
    }

    /// A lifecycle event's payload, built in one piece: a payload is ~200 bytes, and building it
    /// then setting fields costs a copy per step.
    #[inline]
    fn event_payload(&self, m: StepMoment) -> Payload {
        let task = &self.task.inner;
        let (completed_at, execution_duration) = match m.ended {
            Some((at, seconds)) => (Some(at), Some(seconds)),
            None => (None, None),
        };
        Payload::Step(StepPayload {
            task_id: task.id.clone(),
            task_name: task.name.clone(),
            step_id: self.id.clone(),
            step_name: self.name.clone(),
            attempt_number: m.attempt_number,
            retry_limit: m.retry_limit,
            started_at: Some(m.started_at),
            completed_at,
            execution_duration,
            backoff_seconds: None,
            skip_reason: None,
            inputs: self.filtered_inputs(),
            step_results: m.step_results,
        })
    }

    /// Publishes a step lifecycle event (`step.before_handle`, `step.completed`) for the moment
    /// `moment` builds from the event's timestamp, if someone listens.
    ///
    /// The hottest events there are: the event borrows this scope's ids, correlation id and
    /// inputs instead of counting a reference to each (ten locked increments and decrements per
    /// attempt, on counters that every task of a workflow shares).
    ///
    /// The event is stamped with `at()` when given (the moment a reading just taken marks),
    /// else now.
    #[inline]
    fn publish_moment(
        &self,
        event: EventName,
        at: Option<impl FnOnce() -> Timestamp>,
        moment: impl FnOnce(Timestamp) -> StepMoment,
    ) {
        let task = &self.task.inner;
        let build = |now| {
            let m = moment(now);
            let corr = self.task.corr();
            let inputs = self.inputs.as_ref().map(|_| self.filtered_inputs_ref());
            let (completed_at, execution_duration) = match m.ended {
                Some((at, seconds)) => (Some(at), Some(seconds)),
                None => (None, None),
            };
            // SAFETY: every alias is of an `Arc` held by `self` (or its task), which outlives
            // the call; `release` below takes out the one field the event owns.
            unsafe {
                Event::stamped(
                    event,
                    now,
                    Some(alias(corr)),
                    Payload::Step(StepPayload {
                        task_id: alias(&task.id),
                        task_name: alias(&task.name),
                        step_id: alias(&self.id),
                        step_name: alias(&self.name),
                        attempt_number: m.attempt_number,
                        retry_limit: m.retry_limit,
                        started_at: Some(m.started_at),
                        completed_at,
                        execution_duration,
                        backoff_seconds: None,
                        skip_reason: None,
                        inputs: inputs.map(|i| alias(i)),
                        step_results: m.step_results,
                    }),
                )
            }
        };
        let release = |event: &mut Event| {
            if let Payload::Step(p) = event.payload_mut()
                && let Some(results) = p.step_results.take()
            {
                results_cell::recycle(results);
            }
        };
        // SAFETY: as above: the aliased `Arc`s outlive the call and `release` takes out the
        // only owned one.
        let stamp = || at.map_or_else(Timestamp::now, |at| at());
        unsafe {
            task.telemetry
                .publisher()
                .publish_aliased(event, stamp, build, release)
        };
    }

    /// Publishes `event` with a payload built from this step, only if telemetry is on and someone
    /// listens.
    pub fn publish<P: Into<Payload>>(
        &self,
        event: EventName,
        build: impl FnOnce(&StepScope) -> P,
    ) -> bool {
        is_enabled()
            && self.task.inner.telemetry.publisher().publish_correlated(
                event,
                self.task.corr(),
                || build(self),
            )
    }

    /// Reports that the step will not run: publishes `observability.step.skip` with the reason
    /// and counts it in `tasker_steps_total{status="skipped"}`.
    pub fn skip(&self, reason: impl Into<Cow<'static, str>>) {
        if !is_enabled() {
            return;
        }
        if let Some(standard) = self.task.inner.telemetry.standard_metrics() {
            standard
                .step_skipped(&self.task.inner.name, &self.name)
                .inc();
        }
        let reason = reason.into();
        self.publish(names::OBSERVABILITY_STEP_SKIP, |s| {
            let mut p = s.payload(0);
            p.skip_reason = Some(reason);
            p
        });
    }

    /// Starts attempt `attempt_number` (from 1): publishes `step.before_handle` and starts the
    /// monotonic clock. Finish it with [`StepAttempt::complete`], [`StepAttempt::fail`] or
    /// [`StepAttempt::finish`].
    #[inline(always)]
    pub fn attempt(&self, attempt_number: u32) -> StepAttempt<'_> {
        self.attempt_with_default_limit(attempt_number, 1)
    }

    /// Like [`attempt`](Self::attempt), with the retry limit to report when the step sets none
    /// (a handler's declared `retry_limit`).
    #[inline(always)]
    pub fn attempt_with_default_limit(
        &self,
        attempt_number: u32,
        default_retry_limit: u32,
    ) -> StepAttempt<'_> {
        let retry_limit = self.retry_limit.unwrap_or(default_retry_limit);
        if !is_enabled() {
            return StepAttempt {
                scope: self,
                attempt_number,
                retry_limit,
                active: None,
            };
        }
        self.begin(attempt_number, retry_limit)
    }

    /// Runs `process` as attempt `attempt_number` of this step and reports its outcome: the
    /// closure form of [`attempt`](Self::attempt) + [`StepAttempt::in_scope`] +
    /// [`StepAttempt::finish`], and what `#[step_handler]` expands to.
    ///
    /// With telemetry off this is one relaxed load, a branch and the call: no attempt is built.
    /// A panic in `process` is reported as `step.failed` (class `panic`) and continues.
    ///
    /// ```
    /// use tasker_telemetry::{TaskScope, Telemetry};
    ///
    /// let telemetry = Telemetry::new(Default::default())?;
    /// let task = TaskScope::new(&telemetry, "42", "checkout");
    /// let step = task.step("42-1", "charge_card");
    /// let charged: Result<u32, std::io::Error> = step.run_attempt(1, || Ok(4_200));
    /// assert_eq!(charged.unwrap(), 4_200);
    /// # Ok::<(), tasker_telemetry::Error>(())
    /// ```
    #[inline(always)]
    pub fn run_attempt<T: Serialize, E: std::error::Error>(
        &self,
        attempt_number: u32,
        process: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if !is_enabled() {
            return process();
        }
        let mut attempt = self.begin(attempt_number, self.retry_limit.unwrap_or(1));
        let result = attempt.in_scope_mut(process);
        // Settled where `begin` wrote it: `finish` takes the attempt by value, and the move
        // compiles to a copy that reloads what `begin` has just stored, stalling on every field.
        attempt.settle(&result);
        std::mem::forget(attempt);
        result
    }

    /// The attributes of an attempt's span.
    fn span_fields(&self, attempt_number: u32, retry_limit: u32) -> StepSpanFields<'_> {
        let task = &self.task;
        StepSpanFields {
            correlation_id: task.correlation_id().shared(),
            task_id: &task.inner.id,
            task_name: &task.inner.name,
            step_id: &self.id,
            step_name: &self.name,
            attempt_number,
            retry_limit,
        }
    }

    #[inline(never)]
    fn begin(&self, attempt_number: u32, retry_limit: u32) -> StepAttempt<'_> {
        let task = &self.task;
        let span = if task.steps_sampled() {
            spans::step_span(
                &task.inner.span,
                &self.span_fields(attempt_number, retry_limit),
            )
        } else {
            spans::StepSpan::none()
        };
        if let Some(m) = self.metrics() {
            if attempt_number > 1 {
                m.retries.inc();
            }
            m.active.inc();
        }
        self.publish_moment(
            names::STEP_BEFORE_HANDLE,
            None::<fn() -> Timestamp>,
            |now| StepMoment {
                attempt_number,
                retry_limit,
                started_at: now,
                ended: None,
                step_results: None,
            },
        );
        let started = clock::now();
        StepAttempt {
            scope: self,
            attempt_number,
            retry_limit,
            active: Some(Active { started, span }),
        }
    }
}

/// An uncounted copy of `arc`, for an event that borrows it (see `StepScope::publish_moment`).
///
/// # Safety
/// The copy must not outlive `arc`, and must be forgotten, never dropped.
#[inline(always)]
unsafe fn alias<T: ?Sized>(arc: &Arc<T>) -> Arc<T> {
    // SAFETY: the same allocation, still alive (`arc` holds a count); the caller never drops the
    // copy, so the count stays balanced.
    unsafe { Arc::from_raw(Arc::as_ptr(arc)) }
}

/// The `Arc` a `step.completed` event carries its results in, reused on each thread: once the
/// event is delivered, no one else holds it (unless a subscriber kept a clone), so the next
/// attempt's results go into the same allocation instead of a new one.
mod results_cell {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::atomic::{Ordering, fence};

    use serde_json::Value;

    thread_local! {
        static SPARE: Cell<Option<Arc<Value>>> = const { Cell::new(None) };
    }

    /// `value` in an `Arc`: the spare one when this thread has it.
    #[inline]
    pub(super) fn wrap(value: Value) -> Arc<Value> {
        match SPARE.try_with(Cell::take).ok().flatten() {
            Some(arc) => {
                // SAFETY: a spare is unique: `recycle` keeps an `Arc` only when no other `Arc` or
                // `Weak` to it exists, and none can be made while it sits in this thread's cell.
                // The pointer is the allocation's own (it came from `Arc::new`), so it may write;
                // the value it overwrites owns no memory (`recycle` leaves a scalar or `Null`),
                // so it need not be dropped.
                unsafe { Arc::as_ptr(&arc).cast_mut().write(value) };
                arc
            }
            None => Arc::new(value),
        }
    }

    /// Keeps `arc` as this thread's spare if no one else holds it; its value is dropped now.
    #[inline]
    pub(super) fn recycle(arc: Arc<Value>) {
        if !is_unique(&arc) {
            return;
        }
        // SAFETY: `arc` is unique (above), and its pointer is the allocation's own.
        let slot = unsafe { &mut *Arc::as_ptr(&arc).cast_mut() };
        // Large results are freed now, not when the spare is next used.
        if !matches!(slot, Value::Null | Value::Bool(_) | Value::Number(_)) {
            *slot = Value::Null;
        }
        let _ = SPARE.try_with(|spare| spare.set(Some(arc)));
    }

    /// Whether `arc` is the only `Arc` or `Weak` to its value, checked with loads where
    /// `Arc::get_mut` takes a locked compare-and-swap (it must also stop other holders from
    /// making a `Weak` meanwhile; with no other holder, there is none to stop).
    #[inline]
    fn is_unique(arc: &Arc<Value>) -> bool {
        if Arc::strong_count(arc) != 1 {
            return false;
        }
        // Pairs with the release decrement of the last other holder's drop: its uses of the
        // value, and any `Weak` it made, are visible from here on.
        fence(Ordering::Acquire);
        Arc::weak_count(arc) == 0
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        /// Empties this thread's spare, so that each test starts from none.
        fn clear() {
            SPARE.with(Cell::take);
        }

        #[test]
        fn a_unique_arc_is_reused_for_the_next_results() {
            clear();
            let first = wrap(json!(1));
            let address = Arc::as_ptr(&first);
            recycle(first);
            let second = wrap(json!("two"));
            assert_eq!(Arc::as_ptr(&second), address);
            assert_eq!(*second, json!("two"));
        }

        #[test]
        fn an_arc_someone_else_holds_is_left_to_them() {
            clear();
            let first = wrap(json!(1));
            let kept = Arc::clone(&first);
            recycle(first);
            let second = wrap(json!(2));
            assert_ne!(Arc::as_ptr(&second), Arc::as_ptr(&kept));
            assert_eq!((*kept).clone(), json!(1));
        }

        #[test]
        fn an_arc_with_a_weak_reference_is_not_reused() {
            clear();
            let first = wrap(json!(1));
            let weak = Arc::downgrade(&first);
            let address = Arc::as_ptr(&first);
            recycle(first);
            assert!(weak.upgrade().is_none(), "the value was dropped, not kept");
            let second = wrap(json!(2));
            assert_ne!(Arc::as_ptr(&second), address);
        }

        #[test]
        fn a_clone_dropped_on_another_thread_frees_the_arc_for_reuse() {
            clear();
            let first = wrap(json!({"big": [1, 2, 3]}));
            let address = Arc::as_ptr(&first);
            let clone = Arc::clone(&first);
            std::thread::spawn(move || assert_eq!(clone["big"][2], json!(3)))
                .join()
                .unwrap();
            recycle(first);
            // A non-scalar value is dropped as the Arc is kept.
            SPARE.with(|spare| {
                let kept = spare.take().expect("kept as the spare");
                assert_eq!(*kept, serde_json::Value::Null);
                spare.set(Some(kept));
            });
            assert_eq!(Arc::as_ptr(&wrap(json!(4))), address);
        }
    }
}

/// What a step event reports about one attempt.
struct StepMoment {
    attempt_number: u32,
    retry_limit: u32,
    started_at: Timestamp,
    /// When it ended and how long it ran, in seconds (end events only): the figure the
    /// duration metrics observe.
    ended: Option<(Timestamp, f64)>,
    step_results: Option<Arc<serde_json::Value>>,
}

/// One call of a step's `process()`, from start to outcome.
///
/// Dropping an attempt without an outcome reports it: during a panic as `step.failed` with error
/// class `panic`; otherwise (a cancelled future) as `step.cancelled`.
#[derive(Debug)]
#[must_use = "finish the attempt with complete(), fail() or finish()"]
pub struct StepAttempt<'s> {
    scope: &'s StepScope,
    attempt_number: u32,
    retry_limit: u32,
    /// `None` when telemetry was off at the start (so the off path carries no span to drop),
    /// or once an outcome was reported.
    active: Option<Active>,
}

/// What a running attempt holds: its start on the monotonic clock and its span.
#[derive(Debug)]
struct Active {
    started: clock::Reading,
    /// The attempt's `tasker.step.execution` span (disabled when unsampled).
    span: spans::StepSpan,
}

static NO_SPAN: tracing::Span = tracing::Span::none();

impl<'s> StepAttempt<'s> {
    /// Which attempt this is.
    pub fn attempt_number(&self) -> u32 {
        self.attempt_number
    }

    /// The retry limit this attempt reports.
    pub fn retry_limit(&self) -> u32 {
        self.retry_limit
    }

    /// The attempt's `tasker.step.execution` span: enter it around `process()` so that spans
    /// and events inside become its children.
    pub fn span(&self) -> &tracing::Span {
        self.active.as_ref().map_or(&NO_SPAN, |a| a.span.span())
    }

    /// Runs `f` inside the attempt's span (entered around it, so spans and events inside become
    /// its children); with telemetry off, or the trace unsampled, just runs `f`.
    ///
    /// ```
    /// use tasker_telemetry::{TaskScope, Telemetry};
    ///
    /// let telemetry = Telemetry::new(Default::default())?;
    /// let task = TaskScope::new(&telemetry, "42", "checkout");
    /// let step = task.step("42-1", "charge_card");
    /// let attempt = step.attempt(1);
    /// let result: Result<u32, std::io::Error> = attempt.in_scope(|| Ok(7));
    /// attempt.finish(&result);
    /// # Ok::<(), tasker_telemetry::Error>(())
    /// ```
    #[inline(always)]
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.active {
            Some(active) if !active.span.span().is_disabled() => active.span.in_scope(f),
            _ => f(),
        }
    }

    /// [`in_scope`](Self::in_scope) for the attempt's owner, which spares the span an atomic
    /// initialisation on the first entry (what `run_attempt` and `#[step_handler]` use).
    #[inline(always)]
    pub(crate) fn in_scope_mut<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.active {
            Some(active) if !active.span.span().is_disabled() => active.span.in_scope_mut(f),
            _ => f(),
        }
    }

    /// Reports success: publishes `step.completed` with the duration and the filtered results.
    // Always inlined so that, with telemetry off, an attempt compiles down to the switch's load
    // and a branch: the work is in the never-inlined `succeed`.
    #[inline(always)]
    pub fn complete<T: Serialize + ?Sized>(mut self, result: &T) {
        // Checked in place and the attempt forgotten rather than dropped: moving it out or
        // calling `Drop` would put the whole attempt through memory on the off path.
        if self.active.is_some() {
            self.succeed(result);
        }
        std::mem::forget(self);
    }

    /// Reports failure with an error value: publishes `step.failed`.
    #[inline(always)]
    pub fn fail<E: std::error::Error + ?Sized>(mut self, error: &E) {
        if self.active.is_some() {
            self.fail_now(error);
        }
        std::mem::forget(self);
    }

    #[inline(never)]
    fn succeed<T: Serialize + ?Sized>(&mut self, result: &T) {
        // Serialised before anything is reported, subscribers or not: a `Serialize` that fails
        // or panics makes the attempt failed (once), not completed, whoever listens. Kept as a
        // value only when the event will carry them.
        let telemetry = &self.scope.task.inner.telemetry;
        let mut results = None;
        if telemetry.publisher().has_subscribers(names::STEP_COMPLETED) {
            match results_json(result, telemetry.filter()) {
                Ok(value) => results = Some(value),
                Err(failure) => return self.fail_now_with(&failure),
            }
        } else if let Err(failure) = results_serialise(result) {
            return self.fail_now_with(&failure);
        }
        // Read in place, not moved out: the attempt was written moments ago, and copying it
        // would reload it through memory still in the store buffer.
        let end = match &self.active {
            Some(active) => {
                let ended = clock::now();
                self.report_success(
                    &active.span,
                    active.started.until(ended),
                    ended,
                    &mut results,
                )
            }
            None => None,
        };
        // Closes the span, after its outcome is recorded.
        if let (Some(end), Some(active)) = (end, &mut self.active) {
            active.span.close(end);
        }
        match &self.active {
            // SAFETY: an attempt without a span (unsampled) owns nothing that needs dropping,
            // so overwriting it forgets nothing; it spares the drop's call on that path.
            Some(active) if active.span.is_none() => unsafe {
                std::ptr::write(&mut self.active, None)
            },
            _ => self.active = None,
        }
    }

    #[cold]
    #[inline(never)]
    fn fail_now<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        // The user's `Display` runs here: a panic in it is this attempt's failure, reported
        // once, and goes no further.
        let failure = catch_unwind(AssertUnwindSafe(|| Failure::from_error(error))).unwrap_or_else(
            |payload| {
                Failure::new(
                    format!(
                        "formatting the step's error panicked: {}",
                        panic_message(&*payload).unwrap_or("(no message)")
                    ),
                    "panic",
                )
            },
        );
        self.fail_now_with(&failure);
    }

    #[cold]
    #[inline(never)]
    fn fail_now_with(&mut self, failure: &Failure) {
        if let Some(active) = self.active.take() {
            self.report_failure(&active.span, active.started.elapsed(), failure);
        }
    }

    /// Reports failure with an explicit [`Failure`]: publishes `step.failed`.
    pub fn fail_with(mut self, failure: &Failure) {
        if let Some(active) = self.active.take() {
            self.report_failure(&active.span, active.started.elapsed(), failure);
        }
    }

    /// Reports whichever outcome `result` holds.
    #[inline(always)]
    pub fn finish<T: Serialize, E: std::error::Error>(mut self, result: &Result<T, E>) {
        self.settle(result);
        std::mem::forget(self);
    }

    /// Reports whichever outcome `result` holds, leaving the attempt with nothing to report on
    /// drop.
    #[inline(always)]
    fn settle<T: Serialize, E: std::error::Error>(&mut self, result: &Result<T, E>) {
        if self.active.is_some() {
            match result {
                Ok(value) => self.succeed(value),
                Err(error) => self.fail_now(error),
            }
        }
    }

    /// Publishes `performance.slow_operation` when the attempt ran longer than
    /// `slow_query_threshold_seconds` (and performance monitoring is on).
    #[inline]
    fn check_slow(&self, seconds: f64) {
        let config = self.scope.task.inner.telemetry.config();
        if config.performance_monitoring_enabled && seconds > config.slow_query_threshold_seconds {
            self.report_slow(seconds);
        }
    }

    #[cold]
    #[inline(never)]
    fn report_slow(&self, seconds: f64) {
        let scope = self.scope;
        let subject = thresholds::Subject {
            task: Some(&scope.task),
            step: Some((&scope.id, &scope.name)),
        };
        thresholds::check_slow(
            &scope.task.inner.telemetry,
            || format!("step.{}", scope.name),
            seconds,
            &subject,
        );
    }

    fn log_attempt(&self, span: &spans::StepSpan, elapsed: Duration, failure: Option<&Failure>) {
        span.with_context_current(|| self.write_attempt_line(elapsed, failure));
    }

    fn write_attempt_line(&self, elapsed: Duration, failure: Option<&Failure>) {
        let task = &self.scope.task;
        let fields = (
            task.correlation_id().as_str(),
            &*task.inner.id,
            &*task.inner.name,
            &*self.scope.id,
            &*self.scope.name,
        );
        let (corr, task_id, task_name, step_id, step_name) = fields;
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let attempt = self.attempt_number;
        macro_rules! line {
            ($level:ident, $($extra:tt)*) => {
                tracing::$level!(
                    target: LIFECYCLE_TARGET,
                    correlation_id = corr,
                    task_id,
                    task_name,
                    step_id,
                    step_name,
                    attempt_number = attempt,
                    retry_limit = self.retry_limit,
                    duration_ms,
                    $($extra)*
                )
            };
        }
        match failure {
            None => line!(info, "step completed"),
            Some(f) => {
                // A bounded backtrace: enough to place the failure, never a flood.
                let backtrace: String = f
                    .backtrace
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(2048)
                    .collect();
                if attempt < self.retry_limit {
                    line!(
                        warn,
                        error_class = &*f.class,
                        error_message = &*f.message,
                        "step failed, will retry"
                    )
                } else {
                    line!(
                        error,
                        error_class = &*f.class,
                        error_message = &*f.message,
                        backtrace,
                        "step failed"
                    )
                }
            }
        }
    }

    /// Reports success everywhere but on the span's end, which it returns when that goes on
    /// as the span closes (see `StepSpan::record_success`).
    // Inline across crates: `succeed` is generic, so it is instantiated in the caller's crate,
    // and this non-generic half would otherwise be a call it cannot inline.
    #[inline]
    fn report_success(
        &self,
        span: &spans::StepSpan,
        elapsed: clock::Elapsed,
        ended: clock::Reading,
        results: &mut Option<serde_json::Value>,
    ) -> Option<spans::StagedEnd<'s>> {
        let seconds = elapsed.as_secs_f64();
        let sinks = self.scope.task.sinks(names::STEP_COMPLETED);
        let event = sinks.contains(Sinks::TRACE).then_some("step.completed");
        // The span event and the published event mark the same moment, so its wall-clock time
        // is derived once when the span records it (deriving it twice could straddle a clock
        // re-anchoring); untraced, only the publisher derives it, and only if someone listens.
        let traced_at =
            (event.is_some() && span.is_recording()).then(|| Timestamp::at_reading(ended));
        let ended_at = || traced_at.unwrap_or_else(|| Timestamp::at_reading(ended));
        let scope: &'s StepScope = self.scope;
        let end = span.record_success(
            || scope.span_fields(self.attempt_number, self.retry_limit),
            event,
            seconds,
            || ended_at().as_system_time(),
        );
        // Checked before the line's fields are gathered: with no log layer listening this is
        // one load and a branch.
        if sinks.contains(Sinks::LOGS)
            && tracing::enabled!(target: LIFECYCLE_TARGET, tracing::Level::INFO)
        {
            self.log_attempt(span, elapsed.to_duration(), None);
        }
        self.check_slow(seconds);
        if let Some(m) = self.scope.metrics() {
            m.completed.inc();
            m.duration_completed.observe_with(&m.operation, seconds);
            m.active.dec();
        }
        scope.publish_moment(names::STEP_COMPLETED, Some(ended_at), |now| StepMoment {
            attempt_number: self.attempt_number,
            retry_limit: self.retry_limit,
            started_at: now.minus_nanos(elapsed.as_nanos()),
            ended: Some((now, seconds)),
            step_results: results.take().map(results_cell::wrap),
        });
        end
    }

    #[cold]
    fn report_failure(&self, span: &spans::StepSpan, elapsed: clock::Elapsed, failure: &Failure) {
        let seconds = elapsed.as_secs_f64();
        let elapsed = elapsed.to_duration();
        let sinks = self.scope.task.sinks(names::STEP_FAILED);
        if sinks.contains(Sinks::LOGS) {
            self.log_attempt(span, elapsed, Some(failure));
        }
        self.check_slow(seconds);
        if let Some(m) = self.scope.metrics() {
            m.failed.inc();
            m.duration_failed.observe_with(&m.operation, seconds);
            m.active.dec();
            if self.attempt_number >= self.retry_limit {
                m.max_retries_reached.inc();
            }
        }
        span.record_failure(
            || {
                self.scope
                    .span_fields(self.attempt_number, self.retry_limit)
            },
            sinks.contains(Sinks::TRACE).then_some("step.failed"),
            seconds,
            &failure.class,
            &failure.message,
        );
        let scope = self.scope;
        scope.task.inner.telemetry.publisher().publish_stamped(
            names::STEP_FAILED,
            scope.task.corr(),
            |completed_at| {
                let mut p = scope.task.error_payload(failure, completed_at);
                p.step_id = Some(scope.id.clone());
                p.step_name = Some(scope.name.clone());
                p.attempt_number = Some(self.attempt_number);
                p.retry_limit = Some(self.retry_limit);
                p.started_at = Some(started_at(completed_at, elapsed));
                p.execution_duration = Some(seconds);
                p.inputs = scope.filtered_inputs();
                p.into()
            },
        );
    }

    #[inline]
    fn ended_payload(
        &self,
        completed_at: Timestamp,
        elapsed: Duration,
        step_results: Option<Arc<serde_json::Value>>,
    ) -> Payload {
        self.scope.event_payload(StepMoment {
            attempt_number: self.attempt_number,
            retry_limit: self.retry_limit,
            started_at: started_at(completed_at, elapsed),
            ended: Some((completed_at, elapsed.as_secs_f64())),
            step_results,
        })
    }
}

/// A step's results as the `step.completed` event carries them (filtered), or the failure to
/// report instead when their `Serialize` fails or panics. Out of line: the attempt's success path
/// stays small enough for its callees to be inlined into it.
#[inline(never)]
fn results_json<T: Serialize + ?Sized>(
    result: &T,
    filter: &crate::filter::ParameterFilter,
) -> Result<serde_json::Value, Failure> {
    let mut value = serialise_guarded(|| serde_json::to_value(result))?;
    filter.filter_in_place(&mut value);
    Ok(value)
}

/// Whether a step's results serialise, when no event carries them: the same `Serialize` run
/// [`results_json`] makes, keeping nothing (see [`results_check`](crate::results_check)), so
/// that a results type that fails is reported the same with or without subscribers.
#[inline(never)]
fn results_serialise<T: Serialize + ?Sized>(result: &T) -> Result<(), Failure> {
    serialise_guarded(|| crate::results_check::check(result))
}

/// Runs a serialisation of the step's results; its error or panic becomes the failure reported
/// for the attempt. The class is `serde_json::Error` either way: that is what the results'
/// `step.completed` payload is built with, and the report must not depend on who listens.
fn serialise_guarded<R, E: std::fmt::Display>(
    serialise: impl FnOnce() -> Result<R, E>,
) -> Result<R, Failure> {
    match catch_unwind(AssertUnwindSafe(serialise)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::new(
            format!("step results could not be serialised: {e}"),
            "serde_json::Error",
        )),
        Err(payload) => Err(Failure::new(
            format!(
                "serialising the step results panicked: {}",
                panic_message(&*payload).unwrap_or("(no message)")
            ),
            "panic",
        )),
    }
}

/// A panic's message, for the failure that reports it (`None` for a payload that is not text).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// The attempt's start on the wall clock, derived at the end so that starting an attempt reads
/// only the monotonic clock.
#[inline]
fn started_at(completed_at: Timestamp, elapsed: Duration) -> Timestamp {
    completed_at.minus_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

impl Drop for StepAttempt<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            self.report_abandoned(&active.span, active.started.elapsed());
        }
    }
}

impl StepAttempt<'_> {
    #[cold]
    #[inline(never)]
    fn report_abandoned(&self, span: &spans::StepSpan, elapsed: clock::Elapsed) {
        if std::thread::panicking() {
            let backtrace = std::backtrace::Backtrace::capture();
            let mut failure = Failure::new("process() panicked", "panic");
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                failure = failure.with_backtrace(backtrace.to_string());
            }
            self.report_failure(span, elapsed, &failure);
        } else {
            let fields = || {
                self.scope
                    .span_fields(self.attempt_number, self.retry_limit)
            };
            if self
                .scope
                .task
                .sinks(names::STEP_CANCELLED)
                .contains(Sinks::TRACE)
            {
                span.record_event(fields, "step.cancelled");
            } else {
                span.settle_attributes(fields);
            }
            if let Some(m) = self.scope.metrics() {
                m.active.dec();
            }
            let publisher = self.scope.task.inner.telemetry.publisher();
            publisher.publish_stamped(names::STEP_CANCELLED, self.scope.task.corr(), |now| {
                self.ended_payload(now, elapsed.to_duration(), None)
            });
        }
    }
}
