//! The runtime half of `#[step_handler]`: the generated `handle()` is one call to [`instrument`]
//! or [`instrument_async`], so everything that does not depend on the user's types lives here,
//! not in every expansion. Reached only through `__private_v0_1`.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;

use super::{Handled, Step, StepError, StepOutput};
use crate::scope::{Failure, StepAttempt};
use crate::telemetry::is_enabled;

/// What `process()` may return on success: anything `serde::Serialize` (it becomes the step's
/// results). Exists to give a clear compile error; never implement it by hand.
#[diagnostic::on_unimplemented(
    message = "process() returns `{Self}` on success, which must implement `serde::Serialize` to become the step's results",
    label = "`{Self}` is not `Serialize`",
    note = "derive it: #[derive(serde::Serialize)]"
)]
pub trait StepResults: Serialize {}
impl<T: Serialize + ?Sized> StepResults for T {}

/// What a generic handler type must be for `#[step_handler]`'s impl to apply: the supertraits of
/// `StepHandler`, as one bound so that a use with the wrong arguments is one error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Send + Sync + 'static`, which a step handler must be",
    label = "`{Self}` cannot be a step handler",
    note = "handlers are shared by the threads that run steps: give the handler's type arguments `Send + Sync + 'static` types (an `Arc` rather than an `Rc`, owned data rather than borrowed)"
)]
pub trait SharedHandler: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> SharedHandler for T {}

/// What `#[step_handler]` knows about a handler at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerInfo {
    /// The step name.
    pub name: &'static str,
    /// The declared retry limit.
    pub retry_limit: Option<u32>,
}

/// Converts what `process()` returned into the step's output, reporting it on the attempt.
/// The user's `Display` (in `error`) and `Serialize` run here: a panic in either is the
/// attempt's one failure, with class `panic`, and goes no further.
fn conclude<T: Serialize, E>(
    attempt: StepAttempt<'_>,
    result: Result<T, E>,
    error: impl FnOnce(E) -> StepError,
) -> StepOutput {
    let output = match result {
        Ok(value) => guarded("serialising the step results", || step_output(Ok(value))),
        Err(e) => guarded("formatting the step's error", || Err(error(e))),
    };
    match &output {
        Ok(json) => attempt.complete(json),
        Err(error) => attempt.fail_with(&error.failure()),
    }
    output
}

/// `f()`, or the step error saying that `what` panicked.
fn guarded(what: &str, f: impl FnOnce() -> StepOutput) -> StepOutput {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(StepError::permanent(format!(
            "{what} panicked: {}",
            crate::scope::panic_message(&*payload).unwrap_or("(no message)")
        ))
        .with_class("panic"))
    })
}

/// The step's output for what `process()` returned: its results as JSON, or its error.
fn step_output<T: Serialize>(result: Result<T, StepError>) -> StepOutput {
    result.and_then(|value| {
        // Bounded: a value nested deeper than the stack could serialise is refused whole (the
        // step fails, saying so) instead of overflowing the worker thread's stack.
        crate::filter::to_value_bounded(&value, crate::filter::Past::Refused).map_err(|e| {
            StepError::permanent(format!("step results could not be serialised: {e}"))
                .with_class("serde_json::Error")
        })
    })
}

#[cold]
fn panicked(attempt: StepAttempt<'_>, payload: Box<dyn Any + Send>) -> ! {
    let message = crate::scope::panic_message(&*payload).unwrap_or("process() panicked");
    attempt.fail_with(&Failure::new(message, "panic"));
    resume_unwind(payload)
}

/// Runs a synchronous `process()` as one instrumented attempt of `step`; `error` turns its
/// error into a [`StepError`] (the generated code chooses how by the error's type).
pub fn instrument<T, E>(
    info: &HandlerInfo,
    step: &Step,
    process: impl FnOnce() -> Result<T, E>,
    error: impl FnOnce(E) -> StepError,
) -> Handled<'static>
where
    T: StepResults,
{
    if !is_enabled() {
        // Nothing to report: no attempt is built, and a panic simply continues.
        return Handled::ready(guarded("reporting the step", || {
            step_output(process().map_err(error))
        }));
    }
    let attempt = step
        .scope()
        .attempt_with_default_limit(step.attempt_number(), info.retry_limit.unwrap_or(1));
    // Entered exactly around process(): spans and events inside become the step's children.
    let outcome = attempt.in_scope(|| catch_unwind(AssertUnwindSafe(process)));
    match outcome {
        Ok(result) => Handled::ready(conclude(attempt, result, error)),
        Err(payload) => panicked(attempt, payload),
    }
}

/// Runs an asynchronous `process()` as one instrumented attempt of `step`. The future is not
/// required to be `Send` here: the generated code boxes it as `dyn Future + Send` at the user's
/// `async fn`, so a value held across an `.await` that is not `Send` is reported there.
pub async fn instrument_async<'a, T, E>(
    info: &'static HandlerInfo,
    step: &'a Step,
    process: impl Future<Output = Result<T, E>> + 'a,
    error: impl FnOnce(E) -> StepError + 'a,
) -> StepOutput
where
    T: StepResults,
{
    if !is_enabled() {
        let result = process.await;
        return guarded("reporting the step", || step_output(result.map_err(error)));
    }
    let attempt = step
        .scope()
        .attempt_with_default_limit(step.attempt_number(), info.retry_limit.unwrap_or(1));
    let process = tracing::Instrument::instrument(process, attempt.span().clone());
    match (CatchUnwind { future: process }).await {
        Ok(result) => conclude(attempt, result, error),
        Err(payload) => panicked(attempt, payload),
    }
}

pin_project_lite::pin_project! {
    /// Polls a future inside `catch_unwind`, so a panic in `process()` can be reported before it
    /// continues.
    struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
