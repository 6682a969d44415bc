//! Step handlers: the context types `process()` receives, the [`StepHandler`] trait whose
//! `handle()` the framework owns, and the runtime half of `#[step_handler]`.
//!
//! `#[step_handler]` writes `handle()` as one call to [`instrument`] or [`instrument_async`]:
//! everything that does not depend on the user's types lives here, not in every expansion.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;

use crate::scope::{Failure, StepAttempt, StepScope, TaskScope};
use crate::telemetry::{Telemetry, is_enabled};

/// The task a step belongs to, as `process()` sees it: id, name, context, and its telemetry
/// scope.
///
/// ```
/// use tasker_telemetry::handler::Task;
/// use tasker_telemetry::Telemetry;
///
/// let task = Task::new(Telemetry::global(), "42", "order_processing", serde_json::json!({"cart_id": 7}));
/// assert_eq!(task.context()["cart_id"], 7);
/// let step = task.step("42-1", "fetch_cart");
/// assert_eq!(step.attempt_number(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Task {
    scope: TaskScope,
}

static NULL: serde_json::Value = serde_json::Value::Null;

impl Task {
    /// A task with the given context.
    pub fn new(
        telemetry: &Telemetry,
        id: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        context: serde_json::Value,
    ) -> Self {
        Self {
            scope: TaskScope::new(telemetry, id, name).with_context(context),
        }
    }

    /// A task around an existing scope.
    pub fn from_scope(scope: TaskScope) -> Self {
        Self { scope }
    }

    /// The task's id.
    pub fn id(&self) -> &str {
        self.scope.id()
    }

    /// The task's workflow name.
    pub fn name(&self) -> &str {
        self.scope.name()
    }

    /// The task's context (unfiltered: it is the step's input); `null` when it has none.
    pub fn context(&self) -> &serde_json::Value {
        self.scope.context().unwrap_or(&NULL)
    }

    /// The task's telemetry scope.
    pub fn scope(&self) -> &TaskScope {
        &self.scope
    }

    /// A step of this task, at attempt 1.
    pub fn step(&self, id: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Step {
        Step {
            scope: self.scope.step(id, name),
            attempt_number: 1,
        }
    }
}

/// One step attempt, as `process()` sees it: id, name, inputs, attempt number and retry limit.
#[derive(Debug)]
pub struct Step {
    scope: StepScope,
    attempt_number: u32,
}

impl Step {
    /// Sets the attempt number (from 1).
    pub fn with_attempt(mut self, attempt_number: u32) -> Self {
        self.attempt_number = attempt_number;
        self
    }

    /// Moves to attempt `attempt_number` (hosts that retry a step reuse its context).
    pub fn set_attempt(&mut self, attempt_number: u32) {
        self.attempt_number = attempt_number;
    }

    /// Sets the retry limit (otherwise the handler's declared `retry_limit` applies, else 1).
    pub fn with_retry_limit(mut self, retry_limit: u32) -> Self {
        self.scope = self.scope.with_retry_limit(retry_limit);
        self
    }

    /// Sets the step's inputs.
    pub fn with_inputs(mut self, inputs: serde_json::Value) -> Self {
        self.scope = self.scope.with_inputs(inputs);
        self
    }

    /// Sets inputs shared with other steps (see `StepScope::with_shared_inputs`).
    pub(crate) fn with_shared_inputs(
        mut self,
        inputs: Arc<serde_json::Value>,
        filtered: Option<Arc<serde_json::Value>>,
    ) -> Self {
        self.scope = self.scope.with_shared_inputs(inputs, filtered);
        self
    }

    /// The step's id.
    pub fn id(&self) -> &str {
        self.scope.id()
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        self.scope.name()
    }

    /// The step's inputs (unfiltered); `null` when it has none.
    pub fn inputs(&self) -> &serde_json::Value {
        self.scope.inputs().unwrap_or(&NULL)
    }

    /// Which attempt this is, from 1.
    pub fn attempt_number(&self) -> u32 {
        self.attempt_number
    }

    /// The step's telemetry scope.
    pub fn scope(&self) -> &StepScope {
        &self.scope
    }
}

/// The results of the task's steps so far, by step name (Tasker's `sequence`).
///
/// ```
/// use tasker_telemetry::handler::Sequence;
///
/// let mut sequence = Sequence::new();
/// sequence.record("fetch_cart", serde_json::json!({"items": 2}));
/// assert_eq!(sequence.results_of("fetch_cart").unwrap()["items"], 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    // Shared: every running step gets a snapshot, so a clone must not copy the results.
    results: Arc<Vec<(Arc<str>, Arc<serde_json::Value>)>>,
}

impl Sequence {
    /// No results yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or replaces) a step's results.
    pub fn record(&mut self, step_name: impl Into<Arc<str>>, results: serde_json::Value) {
        let name = step_name.into();
        let results = Arc::new(results);
        let entries = Arc::make_mut(&mut self.results);
        match entries.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = results,
            None => entries.push((name, results)),
        }
    }

    /// The results of the named step, if it completed.
    pub fn results_of(&self, step_name: &str) -> Option<&serde_json::Value> {
        self.results
            .iter()
            .find(|(n, _)| &**n == step_name)
            .map(|(_, v)| &**v)
    }

    /// The names of the steps with results, in the order they completed.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.results.iter().map(|(n, _)| &**n)
    }
}

/// An error a step can return when it has no error type of its own, with Tasker's
/// retryable / permanent distinction.
///
/// ```
/// use tasker_telemetry::handler::StepError;
///
/// let e = StepError::permanent("card declined").with_class("PaymentDeclined");
/// assert!(!e.is_retryable());
/// assert_eq!(e.class(), "PaymentDeclined");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    message: Cow<'static, str>,
    class: Cow<'static, str>,
    retryable: bool,
}

impl StepError {
    /// A retryable error.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            class: Cow::Borrowed("StepError"),
            retryable: true,
        }
    }

    /// An error that retrying cannot fix.
    pub fn permanent(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retryable: false,
            ..Self::new(message)
        }
    }

    /// Sets the class events report (default `StepError`).
    pub fn with_class(mut self, class: impl Into<Cow<'static, str>>) -> Self {
        self.class = class.into();
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The class events report.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// An error from any error value: its message and its concrete type's name.
    pub fn from_error<E: std::error::Error + 'static>(error: &E) -> Self {
        if let Some(step) = (error as &dyn Any).downcast_ref::<StepError>() {
            return step.clone();
        }
        let failure = Failure::from_error(error);
        Self::new(failure.message().to_owned()).with_class(failure.class().to_owned())
    }

    fn failure(&self) -> Failure {
        Failure::new(self.message.to_string(), self.class.clone())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

/// What `handle()` yields: the step's results as JSON, or its error.
pub type StepOutput = Result<serde_json::Value, StepError>;

/// The future `handle()` returns: already complete for a synchronous `process()`, so a sync
/// handler never allocates a future.
#[must_use = "a step runs when its handle() future is awaited (or read with `now`)"]
pub struct Handled<'a> {
    state: HandledState<'a>,
}

enum HandledState<'a> {
    Ready(Option<StepOutput>),
    Pending(Pin<Box<dyn Future<Output = StepOutput> + Send + 'a>>),
}

impl fmt::Debug for Handled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            HandledState::Ready(out) => f.debug_tuple("Handled::Ready").field(out).finish(),
            HandledState::Pending(_) => f.write_str("Handled::Pending"),
        }
    }
}

impl<'a> Handled<'a> {
    /// A finished outcome.
    pub fn ready(output: StepOutput) -> Self {
        Self {
            state: HandledState::Ready(Some(output)),
        }
    }

    /// An outcome still to come.
    pub fn pending(future: impl Future<Output = StepOutput> + Send + 'a) -> Self {
        Self {
            state: HandledState::Pending(Box::pin(future)),
        }
    }

    /// The outcome if it is already there (always, for a synchronous `process()`); otherwise
    /// the future back, to await.
    pub fn now(self) -> Result<StepOutput, Self> {
        match self.state {
            HandledState::Ready(Some(out)) => Ok(out),
            state => Err(Self { state }),
        }
    }
}

impl Future for Handled<'_> {
    type Output = StepOutput;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StepOutput> {
        match &mut self.state {
            HandledState::Ready(out) => match out.take() {
                Some(out) => Poll::Ready(out),
                None => Poll::Ready(Err(StepError::permanent(
                    "handle() future polled after completion",
                ))),
            },
            HandledState::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// A step handler: `#[step_handler]` implements it around your `process()`.
///
/// `handle()` is framework-owned: it publishes `step.before_handle`, runs `process()`, publishes
/// `step.completed` (with duration and results) or `step.failed` (with error message, class,
/// attempt number and retry limit), and reports a panic as `step.failed` with class `panic`
/// before letting it continue.
pub trait StepHandler: Send + Sync + 'static {
    /// The step name the handler is registered under.
    fn name(&self) -> &'static str;

    /// The retry limit the handler declares, if any.
    fn retry_limit(&self) -> Option<u32> {
        None
    }

    /// Runs one attempt of the step, instrumented.
    fn handle<'a>(&'a self, task: &'a Task, sequence: &'a Sequence, step: &'a Step) -> Handled<'a>;
}

/// What `process()` may return on success: anything `serde::Serialize` (it becomes the step's
/// results). Exists to give a clear compile error; never implement it by hand.
#[diagnostic::on_unimplemented(
    message = "process() returns `{Self}` on success, which must implement `serde::Serialize` to become the step's results",
    label = "`{Self}` is not `Serialize`",
    note = "derive it: #[derive(serde::Serialize)]"
)]
pub trait StepResults: Serialize {}
impl<T: Serialize + ?Sized> StepResults for T {}

/// What `process()` may return on failure: any `std::error::Error + 'static` (or [`StepError`]).
/// Exists to give a clear compile error; never implement it by hand.
#[diagnostic::on_unimplemented(
    message = "process() fails with `{Self}`, which must implement `std::error::Error` (or use tasker_telemetry::StepError)",
    label = "`{Self}` is not an error type",
    note = "implement std::error::Error for it (thiserror helps), or return StepError::new(message)"
)]
pub trait StepFailure: std::error::Error + 'static {}
impl<E: std::error::Error + 'static> StepFailure for E {}

/// What `#[step_handler]` knows about a handler at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerInfo {
    /// The step name.
    pub name: &'static str,
    /// The declared retry limit.
    pub retry_limit: Option<u32>,
}

/// Converts what `process()` returned into the step's output, reporting it on the attempt.
fn conclude<T, E>(attempt: StepAttempt<'_>, result: Result<T, E>) -> StepOutput
where
    T: Serialize,
    E: std::error::Error + 'static,
{
    let output = step_output(result);
    match &output {
        Ok(json) => attempt.complete(json),
        Err(error) => attempt.fail_with(&error.failure()),
    }
    output
}

/// The step's output for what `process()` returned: its results as JSON, or its error.
fn step_output<T, E>(result: Result<T, E>) -> StepOutput
where
    T: Serialize,
    E: std::error::Error + 'static,
{
    match result {
        Ok(value) => serde_json::to_value(&value).map_err(|e| {
            StepError::permanent(format!("step results could not be serialised: {e}"))
                .with_class("serde_json::Error")
        }),
        Err(error) => Err(StepError::from_error(&error)),
    }
}

#[cold]
fn panicked(attempt: StepAttempt<'_>, payload: Box<dyn Any + Send>) -> ! {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "process() panicked".to_owned());
    attempt.fail_with(&Failure::new(message, "panic"));
    resume_unwind(payload)
}

/// Runs a synchronous `process()` as one instrumented attempt of `step`. Called by the
/// `handle()` that `#[step_handler]` generates.
pub fn instrument<T, E>(
    info: &HandlerInfo,
    step: &Step,
    process: impl FnOnce() -> Result<T, E>,
) -> Handled<'static>
where
    T: StepResults,
    E: StepFailure,
{
    if !is_enabled() {
        // Nothing to report: no attempt is built, and a panic simply continues.
        return Handled::ready(step_output(process()));
    }
    let mut attempt = step
        .scope()
        .attempt_with_default_limit(step.attempt_number(), info.retry_limit.unwrap_or(1));
    // Entered exactly around process(): spans and events inside become the step's children.
    let outcome = attempt.in_scope_mut(|| catch_unwind(AssertUnwindSafe(process)));
    match outcome {
        Ok(result) => Handled::ready(conclude(attempt, result)),
        Err(payload) => panicked(attempt, payload),
    }
}

/// Runs an asynchronous `process()` as one instrumented attempt of `step`. Called by the
/// `handle()` that `#[step_handler]` generates.
pub fn instrument_async<'a, T, E>(
    info: &'static HandlerInfo,
    step: &'a Step,
    process: impl Future<Output = Result<T, E>> + Send + 'a,
) -> Handled<'a>
where
    T: StepResults,
    E: StepFailure,
{
    if !is_enabled() {
        return Handled::pending(async move { step_output(process.await) });
    }
    Handled::pending(async move {
        let attempt = step
            .scope()
            .attempt_with_default_limit(step.attempt_number(), info.retry_limit.unwrap_or(1));
        let process = tracing::Instrument::instrument(process, attempt.span().clone());
        match (CatchUnwind { future: process }).await {
            Ok(result) => conclude(attempt, result),
            Err(payload) => panicked(attempt, payload),
        }
    })
}

/// Polls a future inside `catch_unwind`, so a panic in `process()` can be reported before it
/// continues.
struct CatchUnwind<F> {
    future: F,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`.
        let future = unsafe { self.map_unchecked_mut(|s| &mut s.future) };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
