//! One call of a step's `process()`: [`StepAttempt`], from its start to its one outcome.
//!
//! An attempt begins in [`StepAttempt::begin`] and ends once, in [`StepAttempt::end`], whatever
//! the outcome: completed, failed (an error, a panic, results that do not serialise), or
//! cancelled (dropped unfinished). The end reports to each sink in one order: the log line, the
//! slow-operation check, the metrics, the span, the event. An attempt begun with telemetry off
//! holds nothing and ends without reporting; one whose trace is sampled out has a disabled span,
//! which records nothing.

use std::cell::OnceCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use opentelemetry::trace::Status;
use serde::Serialize;

use super::results::{results_json, results_serialise};
use super::step::StepMoment;
use super::{Failure, StepScope, panic_message, thresholds};
use crate::clock;
use crate::event::{EventName, names};
use crate::logging::LIFECYCLE_TARGET;
use crate::router::Sinks;
use crate::spans::{self, StepSpanEnd};
use crate::telemetry::is_enabled;
use crate::timestamp::Timestamp;

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
    /// or once the outcome was reported.
    active: Option<Active>,
}

/// What a running attempt holds: its start on the monotonic clock and its span.
#[derive(Debug)]
struct Active {
    started: clock::Reading,
    /// The attempt's `tasker.step.execution` span (disabled when unsampled).
    span: spans::StepSpan,
}

/// How an attempt ended.
enum Outcome<'a> {
    /// `process()` returned `Ok`; the filtered results when the event carries them.
    Completed(Option<serde_json::Value>),
    /// An error, a panic, or results that could not be serialised.
    Failed(&'a Failure),
    /// Dropped before an outcome (a cancelled future).
    Cancelled,
}

impl Outcome<'_> {
    fn event(&self) -> EventName {
        match self {
            Outcome::Completed(_) => names::STEP_COMPLETED,
            Outcome::Failed(_) => names::STEP_FAILED,
            Outcome::Cancelled => names::STEP_CANCELLED,
        }
    }
}

static NO_SPAN: tracing::Span = tracing::Span::none();

impl<'s> StepAttempt<'s> {
    /// Starts attempt `attempt_number` of `scope`: its span, the retry and in-flight metrics,
    /// `step.before_handle`, and the clock. With telemetry off, an attempt that holds nothing.
    #[inline(always)]
    pub(super) fn begin(scope: &'s StepScope, attempt_number: u32, retry_limit: u32) -> Self {
        let active = is_enabled().then(|| Self::activate(scope, attempt_number, retry_limit));
        Self {
            scope,
            attempt_number,
            retry_limit,
            active,
        }
    }

    #[inline(never)]
    fn activate(scope: &StepScope, attempt_number: u32, retry_limit: u32) -> Active {
        let task = &scope.task;
        let span = if task.steps_sampled() {
            let fields = scope.span_fields(attempt_number, retry_limit);
            spans::step_span(&task.inner.span, &fields)
        } else {
            spans::StepSpan::none()
        };
        if let Some(m) = scope.metrics() {
            if attempt_number > 1 {
                m.retries.inc();
            }
            m.active.inc();
        }
        scope.publish_moment(names::STEP_BEFORE_HANDLE, Timestamp::now, |now| {
            StepMoment {
                attempt_number,
                retry_limit,
                started_at: now,
                ended: None,
                step_results: None,
            }
        });
        Active {
            started: clock::now(),
            span,
        }
    }

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
            Some(active) if active.span.is_recording() => active.span.in_scope(f),
            _ => f(),
        }
    }

    /// Reports success: publishes `step.completed` with the duration and the filtered results.
    #[inline(always)]
    pub fn complete<T: Serialize + ?Sized>(mut self, result: &T) {
        self.succeed(result);
    }

    /// Reports failure with an error value: publishes `step.failed`.
    #[inline(always)]
    pub fn fail<E: std::error::Error + ?Sized>(mut self, error: &E) {
        self.fail_with_error(error);
    }

    /// Reports failure with an explicit [`Failure`]: publishes `step.failed`.
    pub fn fail_with(mut self, failure: &Failure) {
        self.end(Outcome::Failed(failure));
    }

    /// Reports whichever outcome `result` holds.
    #[inline(always)]
    pub fn finish<T: Serialize, E: std::error::Error>(mut self, result: &Result<T, E>) {
        self.settle(result);
    }

    /// [`finish`](Self::finish) through a reference: the attempt's owner ends it where it lies
    /// instead of moving it into the call.
    #[inline(always)]
    pub(super) fn settle<T: Serialize, E: std::error::Error>(&mut self, result: &Result<T, E>) {
        match result {
            Ok(value) => self.succeed(value),
            Err(error) => self.fail_with_error(error),
        }
    }

    /// Serialises the results, then ends the attempt completed, or failed if they do not
    /// serialise. They are serialised whoever listens, so that a results type that fails or
    /// panics makes the attempt failed with or without subscribers; they are kept as a value only
    /// when the event will carry them.
    #[inline(always)]
    fn succeed<T: Serialize + ?Sized>(&mut self, result: &T) {
        if self.active.is_none() {
            return;
        }
        let telemetry = &self.scope.task.inner.telemetry;
        let serialised = if telemetry.publisher().has_subscribers(names::STEP_COMPLETED) {
            results_json(result, telemetry.filter()).map(Some)
        } else {
            results_serialise(result).map(|()| None)
        };
        match serialised {
            Ok(results) => self.end(Outcome::Completed(results)),
            Err(failure) => self.end(Outcome::Failed(&failure)),
        }
    }

    /// Ends the attempt failed with `error`. The user's `Display` runs here: a panic in it is
    /// this attempt's failure, reported once, and goes no further.
    #[inline(always)]
    fn fail_with_error<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        if self.active.is_none() {
            return;
        }
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
        self.end(Outcome::Failed(&failure));
    }

    /// Reports the attempt's outcome to every sink, once: the log line, the slow-operation
    /// check, the metrics, the span, the event. Nothing when the attempt holds nothing
    /// (telemetry was off at its start, or it has ended already).
    #[inline(never)]
    fn end(&mut self, outcome: Outcome<'_>) {
        // Read in place rather than taken out: the attempt was written moments ago, and a copy
        // would reload it through memory still in the store buffer.
        let Some(active) = &self.active else {
            return;
        };
        let ended = clock::now();
        // The failure every sink below reports, its secrets masked once here.
        let scrubbed;
        let outcome = match outcome {
            Outcome::Failed(failure) => {
                scrubbed = failure.scrubbed(self.scope.task.inner.telemetry.filter());
                Outcome::Failed(&scrubbed)
            }
            other => other,
        };
        let elapsed = active.started.until(ended);
        let seconds = elapsed.as_secs_f64();
        let scope = self.scope;
        let event = outcome.event();
        let sinks = scope.task.sinks(event);
        // The span's event and the published event mark the same moment: its wall-clock time is
        // derived once, and only if one of them is written.
        let ended_at = OnceCell::new();
        let ended_at = || *ended_at.get_or_init(|| Timestamp::at_reading(ended));

        let failure = match &outcome {
            Outcome::Failed(failure) => Some(*failure),
            _ => None,
        };
        if !matches!(outcome, Outcome::Cancelled) {
            // Checked before the line's fields are gathered: with no log layer listening this
            // is one load and a branch.
            if sinks.contains(Sinks::LOGS)
                && tracing::enabled!(target: LIFECYCLE_TARGET, tracing::Level::INFO)
            {
                active
                    .span
                    .with_context_current(|| self.write_line(elapsed.to_duration(), failure));
            }
            self.check_slow(seconds);
        }

        // The span's OpenTelemetry context, looked up once if the exemplar or the span's end
        // needs it.
        let cx = OnceCell::new();
        let cx = || cx.get_or_init(|| active.span.otel_context());
        if let Some(m) = scope.metrics() {
            // The duration's exemplar names this attempt's span, when it is sampled.
            let exemplar = || {
                let config = scope.task.inner.telemetry.config();
                (config.metrics_exemplars_enabled && active.span.is_recording())
                    .then(|| active.span.exemplar_ids(cx()))
                    .flatten()
                    .map(|ids| (ids, ended_at().as_system_time()))
            };
            match &outcome {
                Outcome::Completed(_) => {
                    m.completed.inc();
                    m.duration_completed
                        .observe_with_exemplar(&m.operation, seconds, exemplar());
                }
                Outcome::Failed(_) => {
                    m.failed.inc();
                    m.duration_failed
                        .observe_with_exemplar(&m.operation, seconds, exemplar());
                    if self.attempt_number >= self.retry_limit {
                        m.max_retries_reached.inc();
                    }
                }
                Outcome::Cancelled => {}
            }
            m.active.dec();
        }

        if active.span.is_recording() {
            let traced = sinks.contains(Sinks::TRACE).then_some(event.as_str());
            let (status, exception) = match &outcome {
                Outcome::Completed(_) => (Some(Status::Ok), None),
                Outcome::Failed(f) => (
                    Some(Status::error(f.message.to_string())),
                    Some((&*f.class, &*f.message)),
                ),
                Outcome::Cancelled => (None, None),
            };
            active.span.end(
                cx,
                || scope.span_fields(self.attempt_number, self.retry_limit),
                StepSpanEnd {
                    duration_secs: seconds,
                    status,
                    event: traced,
                    exception,
                },
                || ended_at().as_system_time(),
            );
        }

        let (attempt_number, retry_limit) = (self.attempt_number, self.retry_limit);
        match outcome {
            Outcome::Completed(results) => {
                scope.publish_moment(event, ended_at, |now| StepMoment {
                    attempt_number,
                    retry_limit,
                    started_at: now.minus_nanos(elapsed.as_nanos()),
                    ended: Some((now, seconds)),
                    step_results: results,
                })
            }
            Outcome::Cancelled => scope.publish_moment(event, ended_at, |now| StepMoment {
                attempt_number,
                retry_limit,
                started_at: now.minus_nanos(elapsed.as_nanos()),
                ended: Some((now, seconds)),
                step_results: None,
            }),
            Outcome::Failed(failure) => {
                let publisher = scope.task.inner.telemetry.publisher();
                publisher.publish_stamped_at(event, scope.task.corr(), ended_at, |completed_at| {
                    let mut p = scope.task.error_payload(failure, completed_at);
                    p.step_id = Some(scope.identity.step_id.clone());
                    p.step_name = Some(scope.identity.step_name.clone());
                    p.attempt_number = Some(attempt_number);
                    p.retry_limit = Some(retry_limit);
                    p.started_at = Some(completed_at.minus_nanos(elapsed.as_nanos()));
                    p.execution_duration = Some(seconds);
                    p.inputs = scope.filtered_inputs();
                    p.into()
                });
            }
        }
        // The span closes here: after its outcome is recorded and the event delivered.
        self.active = None;
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
            step: Some((&scope.identity.step_id, &scope.identity.step_name)),
        };
        thresholds::check_slow(
            &scope.task.inner.telemetry,
            || format!("step.{}", scope.identity.step_name),
            seconds,
            &subject,
        );
    }

    /// The attempt's lifecycle log line: `step completed`, or a failure (a warning while
    /// retries remain, an error with a bounded backtrace on the last attempt).
    fn write_line(&self, elapsed: Duration, failure: Option<&Failure>) {
        let task = &self.scope.task;
        let (corr, task_id, task_name, step_id, step_name) = (
            task.correlation_id().as_str(),
            &*task.inner.id,
            &*task.inner.name,
            &*self.scope.identity.step_id,
            &*self.scope.identity.step_name,
        );
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
            Some(f) if attempt < self.retry_limit => line!(
                warn,
                error_class = &*f.class,
                error_message = &*f.message,
                "step failed, will retry"
            ),
            Some(f) => {
                // A bounded backtrace: enough to place the failure, never a flood.
                let backtrace: String = f
                    .backtrace
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(2048)
                    .collect();
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

impl Drop for StepAttempt<'_> {
    /// An attempt dropped without an outcome: failed with class `panic` while its thread
    /// panics, cancelled otherwise.
    #[inline]
    fn drop(&mut self) {
        if self.active.is_some() {
            self.abandon();
        }
    }
}

impl StepAttempt<'_> {
    #[cold]
    #[inline(never)]
    fn abandon(&mut self) {
        if std::thread::panicking() {
            let backtrace = std::backtrace::Backtrace::capture();
            let mut failure = Failure::new("process() panicked", "panic");
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                failure = failure.with_backtrace(backtrace.to_string());
            }
            self.end(Outcome::Failed(&failure));
        } else {
            self.end(Outcome::Cancelled);
        }
    }
}
