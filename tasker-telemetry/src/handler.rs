//! Step handlers: the context types `process()` receives, the [`StepHandler`] trait whose
//! `handle()` the framework owns, and the runtime half of `#[step_handler]`.
//!
//! `#[step_handler]` writes `handle()` as one call into this module's runtime half, which is not
//! public API. What a handler may return is described at [`step_handler`](crate::step_handler)
//! and in the README's "What a handler can be".

pub(crate) mod error_kind;
pub(crate) mod generated;
mod sequence;
mod step_error;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::scope::{StepScope, TaskScope};
use crate::telemetry::Telemetry;

pub use sequence::Sequence;
pub use step_error::{Retryable, StepError};

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

    #[cfg(feature = "workflow")]
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
        Self::from_boxed(Box::pin(future))
    }

    /// An outcome still to come, already boxed (the generated `handle()` of an `async fn
    /// process` boxes its future itself, so a future that is not `Send` is reported at the
    /// user's function).
    pub fn from_boxed(future: Pin<Box<dyn Future<Output = StepOutput> + Send + 'a>>) -> Self {
        Self {
            state: HandledState::Pending(future),
        }
    }

    /// The outcome if it is there after one poll (always, for a synchronous `process()`), as
    /// `futures`' `now_or_never` does; `None` drops a future that is still waiting. The outcome
    /// does not borrow what `handle()` was given.
    ///
    /// ```
    /// use tasker_telemetry::handler::Handled;
    ///
    /// assert_eq!(Handled::ready(Ok(serde_json::json!(1))).now(), Some(Ok(serde_json::json!(1))));
    /// assert_eq!(Handled::pending(std::future::pending()).now(), None);
    /// ```
    pub fn now(self) -> Option<StepOutput> {
        match self.state {
            HandledState::Ready(out) => out,
            HandledState::Pending(mut future) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(out) => Some(out),
                    Poll::Pending => None,
                }
            }
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
