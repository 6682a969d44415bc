//! One step of a task: [`StepScope`], the identity and inputs its attempts report, and the
//! events about the step as a whole (skipped).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::{StepAttempt, TaskScope};
use crate::event::{Event, EventName, names};
use crate::metrics::StepMetrics;
use crate::payload::{Payload, StepIdentity, StepPayload};
use crate::spans::StepSpanFields;
use crate::telemetry::is_enabled;
use crate::timestamp::Timestamp;

/// One step of a task; start an attempt for each call of `process()`.
#[derive(Debug)]
pub struct StepScope {
    pub(super) task: TaskScope,
    /// Built once: every event of every attempt shares it.
    pub(super) identity: Arc<StepIdentity>,
    retry_limit: Option<u32>,
    inputs: Option<Arc<serde_json::Value>>,
    filtered_inputs: OnceLock<Arc<serde_json::Value>>,
    metrics: OnceLock<Option<Arc<StepMetrics>>>,
}

impl StepScope {
    pub(super) fn new(task: TaskScope, id: Arc<str>, name: Arc<str>) -> Self {
        let identity = Arc::new(StepIdentity::new(
            task.inner.id.clone(),
            task.inner.name.clone(),
            id,
            name,
        ));
        Self {
            task,
            identity,
            retry_limit: None,
            inputs: None,
            filtered_inputs: OnceLock::new(),
            metrics: OnceLock::new(),
        }
    }

    /// The step's metric handles, resolved on first use (none with metrics off).
    #[inline]
    pub(super) fn metrics(&self) -> Option<&StepMetrics> {
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
                Some(standard.step_cached(&self.task.inner.name, &self.identity.step_name))
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
        &self.identity.step_id
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.identity.step_name
    }

    #[cfg(feature = "workflow")]
    /// The step's id and name as shared strings.
    pub(crate) fn shared_id_and_name(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.identity.step_id, &self.identity.step_name)
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

    /// A step payload for `attempt_number` with the identifying keys (borrowed from this scope:
    /// [`into_owned`](StepPayload::into_owned) keeps it longer) and filtered inputs.
    #[inline]
    pub fn payload(&self, attempt_number: u32) -> StepPayload<'_> {
        let mut p = StepPayload::borrowing(&self.identity);
        p.attempt_number = attempt_number;
        p.retry_limit = self.retry_limit();
        p.inputs = self.filtered_inputs();
        p
    }

    /// A lifecycle event's payload, built in one piece: a payload is a few hundred bytes, and
    /// building it then setting fields costs a copy per step.
    #[inline]
    fn event_payload(&self, m: StepMoment) -> Payload<'_> {
        let (completed_at, execution_duration) = match m.ended {
            Some((at, seconds)) => (Some(at), Some(seconds)),
            None => (None, None),
        };
        Payload::Step(StepPayload {
            identity: Cow::Borrowed(&self.identity),
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

    /// Publishes a lifecycle event of one attempt (`step.before_handle`, `step.completed`,
    /// `step.cancelled`), stamped `at()`, if someone listens.
    #[inline]
    pub(super) fn publish_moment(
        &self,
        event: EventName,
        at: impl FnOnce() -> Timestamp,
        moment: impl FnOnce(Timestamp) -> StepMoment,
    ) {
        self.task
            .inner
            .telemetry
            .publisher()
            .publish_built(event, at, |now| {
                Event::stamped(
                    event,
                    now,
                    Some(Cow::Borrowed(self.task.corr())),
                    self.event_payload(moment(now)),
                )
            });
    }

    /// Publishes `event` with a payload built from this step, only if telemetry is on and someone
    /// listens.
    pub fn publish<'s, P: Into<Payload<'s>>>(
        &'s self,
        event: EventName,
        build: impl FnOnce(&'s StepScope) -> P,
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
                .step_skipped(&self.task.inner.name, &self.identity.step_name)
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
        StepAttempt::begin(
            self,
            attempt_number,
            self.retry_limit.unwrap_or(default_retry_limit),
        )
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
        let mut attempt = self.attempt(attempt_number);
        let result = attempt.in_scope(process);
        attempt.settle(&result);
        result
    }

    /// The attributes of an attempt's span.
    pub(super) fn span_fields(&self, attempt_number: u32, retry_limit: u32) -> StepSpanFields<'_> {
        let task = &self.task;
        StepSpanFields {
            correlation_id: task.correlation_id().shared(),
            task_id: &task.inner.id,
            task_name: &task.inner.name,
            step_id: &self.identity.step_id,
            step_name: &self.identity.step_name,
            attempt_number,
            retry_limit,
        }
    }
}

/// What a step event reports about one attempt.
pub(super) struct StepMoment {
    pub(super) attempt_number: u32,
    pub(super) retry_limit: u32,
    pub(super) started_at: Timestamp,
    /// When it ended and how long it ran, in seconds (end events only): the figure the
    /// duration metrics observe.
    pub(super) ended: Option<(Timestamp, f64)>,
    pub(super) step_results: Option<serde_json::Value>,
}
