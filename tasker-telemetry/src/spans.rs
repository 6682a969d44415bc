//! Spans: `tasker.task.execution` as the root of a task's trace, `tasker.step.execution` per step
//! attempt beneath it, through `tracing` (so any `tracing` layer sees them) and
//! `tracing-opentelemetry` (so any OTLP backend does); W3C trace-context propagation; the export
//! pipeline that [`init`](crate::init) installs, or that you add to your own subscriber as a
//! layer.

mod attribute_filter;
mod context;
mod layer;
mod pipeline;
mod store;
mod timeline;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};
use tracing::Span;
use tracing::field::{Empty, Field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::ExemplarIds;

pub use context::{
    Carrier, TRACEPARENT, TRACESTATE, TraceContext, TraceContextError, rejected_traceparents,
};
pub use layer::SpanLayer;
pub use pipeline::{SpanExportReport, SpanPipeline};
pub use store::{SpanStore, StoredSpan};
pub use timeline::{AttemptBar, StepLane, TaskSummary, TaskTimeline};

/// The name of a task's root span.
pub const TASK_SPAN: &str = "tasker.task.execution";
/// The name of a step attempt's span.
pub const STEP_SPAN: &str = "tasker.step.execution";
/// The `tracing` target of every span and event this crate creates.
pub const TARGET: &str = "tasker";
/// The module path on the step span's metadata.
const MODULE: &str = module_path!();

/// The trace a task's spans belong to.
#[derive(Debug, Clone)]
pub(crate) enum TaskSpan {
    /// The task's own root span, in this process.
    Local(Span),
    /// The task span lives in another process; steps here parent under it.
    Remote(TraceContext),
    /// Telemetry was off when the task started.
    Off,
}

pub(crate) fn task_span(id: &str, name: &str, parent: Option<&TraceContext>) -> TaskSpan {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "tasker.task.execution",
        tasker.task_id = id,
        tasker.task_name = name,
        tasker.correlation_id = Empty,
        tasker.total_steps = Empty,
        tasker.completed_steps = Empty,
        tasker.failed_steps = Empty,
        tasker.execution_duration = Empty,
        tasker.ended = Empty,
        tasker.open_at_shutdown = Empty,
        otel.status_code = Empty,
        otel.status_message = Empty,
    );
    if let Some(parent) = parent {
        // Fails only when no OpenTelemetry layer is installed, where a parent means nothing.
        let _ = span.set_parent(parent.to_otel_context());
    }
    if span.is_disabled() {
        warn_if_filtered_out();
    }
    TaskSpan::Local(span)
}

/// The fix for a stack whose global filter disables this crate's spans, for the one warning.
const FILTERED_OUT: &str = "tasker-telemetry: a global filter disables the `tasker` spans, so the span pipeline exports no task or step span. Filter the other layers instead (per-layer filtering): registry().with(fmt_layer.with_filter(EnvFilter::from_default_env())).with(pipeline.layer()), or let target `tasker` through (RUST_LOG=tasker=info,...)";

/// Says once, as an `error` event, that a [`SpanLayer`] is installed but a filter in front of
/// it disabled the task span (as `.with(EnvFilter::from_default_env())` does with `RUST_LOG`
/// unset): otherwise no span is exported and nothing says why. `error`, because that is what
/// such a filter still lets through (`EnvFilter`'s default is `error`).
#[cold]
#[inline(never)]
fn warn_if_filtered_out() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.load(std::sync::atomic::Ordering::Relaxed)
        || !layer::OpenSpans::in_current_dispatcher()
    {
        return;
    }
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    tracing::error!(target: "tasker_telemetry::spans", "{FILTERED_OUT}");
}

impl TaskSpan {
    /// Whether steps of this task should get spans: not when the task's trace was sampled out
    /// (then steps do no span work at all).
    pub(crate) fn sampled(&self) -> bool {
        match self {
            TaskSpan::Local(span) => {
                if span.is_disabled() {
                    return false;
                }
                let otel = span.context();
                let sc = otel.span().span_context().clone();
                !sc.is_valid() || sc.is_sampled()
            }
            TaskSpan::Remote(ctx) => ctx.is_sampled(),
            TaskSpan::Off => false,
        }
    }

    /// The task span's ids for an exemplar, when it is local and sampled.
    pub(crate) fn exemplar_ids(&self) -> Option<ExemplarIds> {
        match self {
            TaskSpan::Local(span) => exemplar_ids(span),
            TaskSpan::Remote(_) | TaskSpan::Off => None,
        }
    }

    pub(crate) fn trace_context(&self) -> Option<TraceContext> {
        match self {
            TaskSpan::Local(span) => {
                TraceContext::from_span_context(span.context().span().span_context().clone())
            }
            TaskSpan::Remote(ctx) => Some(ctx.clone()),
            TaskSpan::Off => None,
        }
    }

    pub(crate) fn span(&self) -> Option<&Span> {
        match self {
            TaskSpan::Local(span) => Some(span),
            _ => None,
        }
    }
}

/// A step span's attributes, the text as the scope holds it: shared, so that the exported span
/// can share it too instead of copying each value into a new `String` per attempt. The keys are
/// written twice: as the `tracing` fields of [`step_span`], and as the attributes
/// [`StepSpan::end`] adds under `SpanLayer`; `tests/spans_local.rs` checks both paths export
/// the same attributes.
pub(crate) struct StepSpanFields<'a> {
    pub(crate) correlation_id: &'a Arc<str>,
    pub(crate) task_id: &'a Arc<str>,
    pub(crate) task_name: &'a Arc<str>,
    pub(crate) step_id: &'a Arc<str>,
    pub(crate) step_name: &'a Arc<str>,
    pub(crate) attempt_number: u32,
    pub(crate) retry_limit: u32,
}

impl StepSpanFields<'_> {
    /// How many attributes [`attributes`](Self::attributes) yields.
    const COUNT: usize = 7;

    /// The attributes, in [`StepKeys::all`]'s order (which the export thread's filter expects
    /// first), the text shared.
    fn attributes(&self) -> impl Iterator<Item = KeyValue> + '_ {
        (0..Self::COUNT).map(move |index| self.attribute(index))
    }

    fn attribute(&self, index: usize) -> KeyValue {
        let keys = &STEP_KEYS;
        let text = |key: &'static str, value: &Arc<str>| KeyValue::new(key, Arc::clone(value));
        match index {
            0 => text(keys.correlation_id, self.correlation_id),
            1 => text(keys.task_id, self.task_id),
            2 => text(keys.task_name, self.task_name),
            3 => text(keys.step_id, self.step_id),
            4 => text(keys.step_name, self.step_name),
            5 => KeyValue::new(keys.attempt_number, i64::from(self.attempt_number)),
            _ => KeyValue::new(keys.retry_limit, i64::from(self.retry_limit)),
        }
    }
}

/// The attribute keys [`step_span`] and [`StepSpan`] write to the OpenTelemetry span
/// themselves. Read from this one static, every exported step span's keys point at the same
/// bytes, so the export thread recognises them by address instead of hashing each one per span
/// (see `attribute_filter`).
pub(crate) struct StepKeys {
    correlation_id: &'static str,
    task_id: &'static str,
    task_name: &'static str,
    step_id: &'static str,
    step_name: &'static str,
    attempt_number: &'static str,
    retry_limit: &'static str,
    /// Also the task span's duration attribute (in seconds), there as a `tracing` field.
    execution_duration: &'static str,
}

/// The step span's own attribute keys.
pub(crate) static STEP_KEYS: StepKeys = StepKeys {
    correlation_id: "tasker.correlation_id",
    task_id: "tasker.task_id",
    task_name: "tasker.task_name",
    step_id: "tasker.step_id",
    step_name: "tasker.step_name",
    attempt_number: "tasker.attempt_number",
    retry_limit: "tasker.retry_limit",
    execution_duration: "tasker.execution_duration",
};

impl StepKeys {
    /// How many keys there are.
    pub(crate) const COUNT: usize = 8;

    /// Every key.
    pub(crate) fn all(&self) -> [&'static str; Self::COUNT] {
        [
            self.correlation_id,
            self.task_id,
            self.task_name,
            self.step_id,
            self.step_name,
            self.attempt_number,
            self.retry_limit,
            self.execution_duration,
        ]
    }
}

/// A step attempt's span.
///
/// Under [`SpanLayer`] the OpenTelemetry span is made without the step's attributes (see
/// `layer`); [`end`](Self::end) adds them, the text shared, with the outcome. Under any other
/// layer the attributes travel as the `tracing` fields they were created with.
#[derive(Debug)]
pub(crate) struct StepSpan {
    span: Span,
    /// Whether the span was made under a [`SpanLayer`], which leaves the attributes to
    /// [`end`](Self::end).
    under_span_layer: bool,
}

/// How an attempt's span ends: what [`StepSpan::end`] records.
pub(crate) struct StepSpanEnd<'a> {
    /// How long the attempt ran, in seconds.
    pub(crate) duration_secs: f64,
    /// The span's status (`None`: left unset, for a cancelled attempt).
    pub(crate) status: Option<Status>,
    /// The lifecycle event to add (`None` when the router keeps it off the trace sink).
    pub(crate) event: Option<&'static str>,
    /// The failure's class and message, carried on the event as `exception.*`.
    pub(crate) exception: Option<(&'a str, &'a str)>,
}

impl StepSpan {
    /// No span: telemetry off, or the trace sampled out.
    pub(crate) fn none() -> Self {
        Self {
            span: Span::none(),
            under_span_layer: false,
        }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The span's OpenTelemetry context (one lookup in the dispatcher's registry), for
    /// [`exemplar_ids`](Self::exemplar_ids) and [`end`](Self::end) to share.
    pub(crate) fn otel_context(&self) -> opentelemetry::Context {
        self.span.context()
    }

    /// The span's ids for an exemplar, when it is sampled, from its `cx`.
    pub(crate) fn exemplar_ids(&self, cx: &opentelemetry::Context) -> Option<ExemplarIds> {
        if self.span.is_disabled() {
            return None;
        }
        ids_in(cx)
    }

    /// Whether outcomes recorded on this span go anywhere.
    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        !self.span.is_disabled()
    }

    /// Runs `f` inside the span.
    #[inline]
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
    }

    /// Runs `f` with the span's OpenTelemetry context current, for the attempt's lifecycle log
    /// lines, written after `process()` has left the span: they name the attempt's span as a
    /// line written inside it does.
    pub(crate) fn with_context_current<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.under_span_layer {
            let _current = self.span.context().attach();
            f()
        } else {
            self.span.in_scope(f)
        }
    }

    /// Records the attempt's end: the duration (also as a `tracing` field, for every other
    /// layer), the status, and the lifecycle event stamped `at`; under [`SpanLayer`], the step's
    /// attributes too. The span itself closes when its last handle goes.
    pub(crate) fn end<'f, 'c>(
        &self,
        cx: impl FnOnce() -> &'c opentelemetry::Context,
        fields: impl FnOnce() -> StepSpanFields<'f>,
        end: StepSpanEnd<'_>,
        at: impl FnOnce() -> SystemTime,
    ) {
        if self.span.is_disabled() {
            return;
        }
        match step_duration_field(&self.span) {
            Some(field) => self.span.record(field, end.duration_secs),
            None => self
                .span
                .record(STEP_KEYS.execution_duration, end.duration_secs),
        };
        let exception = || {
            end.exception
                .map_or_else(Vec::new, |(c, m)| exception(c, m))
        };
        if self.under_span_layer {
            let cx = cx();
            let otel = cx.span();
            let duration = KeyValue::new(STEP_KEYS.execution_duration, end.duration_secs);
            otel.set_attributes(fields().attributes().chain(std::iter::once(duration)));
            if let Some(status) = end.status {
                otel.set_status(status);
            }
            if let Some(name) = end.event {
                otel.add_event_with_timestamp(name, at(), exception());
            }
        } else {
            if let Some(status) = end.status {
                self.span.set_status(status);
            }
            if let Some(name) = end.event {
                self.span.add_event_with_timestamp(name, at(), exception());
            }
        }
    }
}

/// The ids of `span`'s OpenTelemetry span when it is recorded and sampled: what a histogram
/// observation made in it keeps as its exemplar.
pub(crate) fn exemplar_ids(span: &Span) -> Option<ExemplarIds> {
    if span.is_disabled() {
        return None;
    }
    ids_in(&span.context())
}

/// The ids of the span current in `cx`, when it is valid and sampled.
fn ids_in(cx: &opentelemetry::Context) -> Option<ExemplarIds> {
    let otel = cx.span();
    let sc = otel.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| ExemplarIds {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
    })
}

pub(crate) fn step_span(task: &TaskSpan, f: &StepSpanFields<'_>) -> StepSpan {
    let parent = match task {
        TaskSpan::Local(parent) => parent.id(),
        TaskSpan::Remote(_) => None,
        TaskSpan::Off => return StepSpan::none(),
    };
    // One callsite, so that `SpanLayer` can recognise it by its metadata's address.
    let span = tracing::info_span!(
        target: TARGET,
        parent: parent,
        "tasker.step.execution",
        tasker.correlation_id = &**f.correlation_id,
        tasker.task_id = &**f.task_id,
        tasker.task_name = &**f.task_name,
        tasker.step_id = &**f.step_id,
        tasker.step_name = &**f.step_name,
        // i64: OpenTelemetry has no unsigned integers, and tracing-opentelemetry
        // would export a u32 / u64 as text.
        tasker.attempt_number = i64::from(f.attempt_number),
        tasker.retry_limit = i64::from(f.retry_limit),
        tasker.execution_duration = Empty,
        // Recorded only by the pipeline's shutdown, on an attempt still running then.
        tasker.open_at_shutdown = Empty,
        otel.status_code = Empty,
        otel.status_message = Empty,
    );
    if let TaskSpan::Remote(ctx) = task {
        let _ = span.set_parent(ctx.to_otel_context());
    }
    let under_span_layer = !span.is_disabled() && layer::OpenSpans::in_current_dispatcher();
    StepSpan {
        span,
        under_span_layer,
    }
}

/// Ends a task span now, whatever handles to it remain (clones of the task's scope, its steps):
/// a [`SpanLayer`](layer::SpanLayer) takes this record as the span's end and exports it, so a
/// finished task is never left open by a scope someone still holds. Called once, when the task
/// completes, fails or is cancelled.
pub(crate) fn end_task_span(span: &Span) {
    span.record(TASK_ENDED, true);
}

/// The task span's field whose record ends it (see [`end_task_span`]).
pub(crate) const TASK_ENDED: &str = "tasker.ended";

/// The task and step spans' attribute saying the span was ended by the pipeline's shutdown,
/// still open.
pub(crate) const OPEN_AT_SHUTDOWN: &str = "tasker.open_at_shutdown";

/// Adds a lifecycle event (`task.started`, ...) to a span.
pub(crate) fn record_event(span: &Span, event: &'static str) {
    if !span.is_disabled() {
        span.add_event(event, Vec::new());
    }
}

/// Records a successful end on a span: duration, `OK` status, and the lifecycle event.
/// `event` is `None` when the router keeps the event off the trace sink.
pub(crate) fn record_success(span: &Span, event: Option<&'static str>, duration_secs: f64) {
    record_end(span, event, duration_secs, || Status::Ok, Vec::new);
}

/// Records a failure on a span: duration, `ERROR` status with the message, and the lifecycle
/// event carrying `exception.type` / `exception.message` (OpenTelemetry semantic conventions).
pub(crate) fn record_failure(
    span: &Span,
    event: Option<&'static str>,
    duration_secs: f64,
    class: &str,
    message: &str,
) {
    record_end(
        span,
        event,
        duration_secs,
        || Status::error(message.to_owned()),
        || exception(class, message),
    );
}

fn exception(class: &str, message: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("exception.type", class.to_owned()),
        KeyValue::new("exception.message", message.to_owned()),
    ]
}

/// The step span's duration field, found by name once: the step span has one callsite, so
/// recording the duration per attempt needs no compare of field names. `None` until a
/// recording step span asks.
fn step_duration_field(span: &Span) -> Option<&'static Field> {
    static FIELD: OnceLock<Field> = OnceLock::new();
    if let Some(field) = FIELD.get() {
        return Some(field);
    }
    let field = span.field(STEP_KEYS.execution_duration)?;
    Some(FIELD.get_or_init(|| field))
}

/// The end of a task span: duration, status, and the lifecycle event.
fn record_end(
    span: &Span,
    event: Option<&'static str>,
    duration_secs: f64,
    status: impl FnOnce() -> Status,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) {
    if span.is_disabled() {
        return;
    }
    span.record(STEP_KEYS.execution_duration, duration_secs);
    span.set_status(status());
    if let Some(name) = event {
        span.add_event(name, attributes());
    }
}
