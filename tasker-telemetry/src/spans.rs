//! Spans: `tasker.task.execution` as the root of a task's trace, `tasker.step.execution` per step
//! attempt beneath it, through `tracing` (so any `tracing` layer sees them) and
//! `tracing-opentelemetry` (so any OTLP backend does); W3C trace-context propagation; the export
//! pipeline that [`init`](crate::init) installs, or that you add to your own subscriber as a
//! layer.

mod attribute_filter;
mod context;
mod layer;
mod pipeline;
mod step_end;
mod store;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};
use tracing::Span;
use tracing::field::{Empty, Field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use context::{
    Carrier, TRACEPARENT, TRACESTATE, TraceContext, TraceContextError, rejected_traceparents,
};
pub use layer::SpanLayer;
pub use pipeline::{SpanExportReport, SpanPipeline};
pub(crate) use step_end::StagedEnd;
pub use store::{SpanStore, StoredSpan};

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
/// written twice in [`step_span`] (the `tracing` fields, and the attributes added under
/// `SpanLayer`); `tests/spans_local.rs` checks both paths export the same attributes.
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
    /// first), the text shared. Made one at a time as the span takes them: handing over the
    /// seven built in an array copied all of them twice on the way to the span's lock.
    fn attributes(&self) -> impl Iterator<Item = KeyValue> + '_ {
        (0..Self::COUNT).map(move |index| self.attribute(index))
    }

    /// Appends the attributes to `attributes`, which has room for them: each built in place.
    fn push_into(&self, attributes: &mut Vec<KeyValue>) {
        let keys = &STEP_KEYS;
        let text = |key: &'static str, value: &Arc<str>| KeyValue::new(key, Arc::clone(value));
        attributes.push(text(keys.correlation_id, self.correlation_id));
        attributes.push(text(keys.task_id, self.task_id));
        attributes.push(text(keys.task_name, self.task_name));
        attributes.push(text(keys.step_id, self.step_id));
        attributes.push(text(keys.step_name, self.step_name));
        attributes.push(KeyValue::new(
            keys.attempt_number,
            i64::from(self.attempt_number),
        ));
        attributes.push(KeyValue::new(keys.retry_limit, i64::from(self.retry_limit)));
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

/// A step attempt's span, and its OpenTelemetry span when [`SpanLayer`] lets the scope write
/// to it directly.
#[derive(Debug)]
pub(crate) struct StepSpan {
    span: Span,
    /// Set under `SpanLayer`: the span's attributes and outcome then go to the OpenTelemetry
    /// span directly, not through the subscriber (which would copy each text and look the span
    /// up in the registry per part). They go on at the end, once: a successful end through the
    /// pipeline's processor as the span closes (see `step_end`), any other end through the
    /// span API.
    ///
    /// Filled when the scope first enters the span (the context tracing-opentelemetry activates
    /// on entering is handed over for the price of a thread-local read), or else when the
    /// scope first needs it (then looked up in the registry).
    otel: Option<OnceLock<opentelemetry::Context>>,
    /// The same context, when the scope first entered the span through `&mut self`
    /// ([`in_scope_mut`](Self::in_scope_mut)): stored without the cell's atomic
    /// initialisation.
    entered: Option<opentelemetry::Context>,
}

impl StepSpan {
    /// No span: telemetry off, or the trace sampled out.
    pub(crate) fn none() -> Self {
        Self {
            span: Span::none(),
            otel: None,
            entered: None,
        }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Whether this is [`none`](Self::none): no span, nothing held.
    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        self.otel.is_none() && self.entered.is_none() && self.span.is_none()
    }

    /// Whether outcomes recorded on this span go anywhere.
    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        !self.span.is_disabled()
    }

    /// Records a successful end: duration, `OK` status, and the lifecycle event stamped `at`
    /// (the moment the attempt's duration ends, which its `step.completed` event carries too).
    /// Under `SpanLayer` these are returned instead, to go on as the span closes: pass them to
    /// [`close`](Self::close).
    #[inline]
    pub(crate) fn record_success<'f>(
        &self,
        fields: impl FnOnce() -> StepSpanFields<'f>,
        event: Option<&'static str>,
        duration_secs: f64,
        at: impl FnOnce() -> SystemTime,
    ) -> Option<StagedEnd<'f>> {
        // Checked here, inlined: an untraced attempt should not pay a call to learn it.
        if !self.is_recording() {
            return None;
        }
        let Some(cx) = self.otel() else {
            record_end(
                &self.span,
                None,
                step_duration_field(&self.span),
                EndEvent {
                    name: event,
                    at: Some(at),
                },
                duration_secs,
                || Status::Ok,
                Vec::new,
            );
            return None;
        };
        Some(self.stage_success(cx, fields(), event.map(|name| (name, at())), duration_secs))
    }

    /// [`record_success`](Self::record_success) under `SpanLayer`: the `tracing` record of the
    /// duration (for other layers; `SpanLayer` leaves it alone), and the end to stage.
    fn stage_success<'f>(
        &self,
        cx: &opentelemetry::Context,
        fields: StepSpanFields<'f>,
        event: Option<(&'static str, SystemTime)>,
        duration_secs: f64,
    ) -> StagedEnd<'f> {
        let field = step_duration_field(&self.span);
        layer::record_written_directly(|| {
            match field {
                Some(field) => self.span.record(field, duration_secs),
                None => self
                    .span
                    .record(STEP_KEYS.execution_duration, duration_secs),
            };
        });
        StagedEnd::new(
            cx.span().span_context().span_id(),
            fields,
            duration_secs,
            event,
        )
    }

    /// Closes the span (drops this handle on it) with `end` staged for the pipeline's processor,
    /// which writes it into the span's data as the span ends. If the span outlives this handle
    /// (the caller still holds it), `end` goes on through the span API instead.
    pub(crate) fn close(&mut self, end: StagedEnd<'_>) {
        let span = std::mem::replace(&mut self.span, Span::none());
        if step_end::close_with(&end, || drop(span)) {
            return;
        }
        let entered = self.entered.as_ref();
        let Some(cx) = entered.or_else(|| self.otel.as_ref().and_then(OnceLock::get)) else {
            return;
        };
        let otel = cx.span();
        otel.set_attributes(end.fields.attributes());
        otel.set_attribute(KeyValue::new(
            STEP_KEYS.execution_duration,
            end.duration_secs,
        ));
        otel.set_status(Status::Ok);
        if let Some((name, at)) = end.event {
            otel.add_event_with_timestamp(name, at, Vec::new());
        }
    }

    /// Records a failure: see [`record_failure`].
    pub(crate) fn record_failure<'f>(
        &self,
        fields: impl FnOnce() -> StepSpanFields<'f>,
        event: Option<&'static str>,
        duration_secs: f64,
        class: &str,
        message: &str,
    ) {
        record_end(
            &self.span,
            self.otel_with_attributes(fields),
            step_duration_field(&self.span),
            EndEvent::now(event),
            duration_secs,
            || Status::error(message.to_owned()),
            || exception(class, message),
        );
    }

    /// Adds a lifecycle event (`step.cancelled`).
    pub(crate) fn record_event<'f>(
        &self,
        fields: impl FnOnce() -> StepSpanFields<'f>,
        event: &'static str,
    ) {
        match self.otel_with_attributes(fields) {
            Some(cx) => cx.span().add_event(event, Vec::new()),
            None => record_event(&self.span, event),
        }
    }

    /// Runs `f` inside the span. Under `SpanLayer`, the first time through here also takes the
    /// OpenTelemetry context activated on entering.
    #[inline]
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.otel {
            Some(cell) if self.entered.is_none() && cell.get().is_none() => {
                let (entered, cx) = layer::enter_capturing_context(&self.span);
                if let Some(cx) = cx {
                    let _ = cell.set(cx);
                }
                let result = f();
                drop(entered);
                result
            }
            _ => self.span.in_scope(f),
        }
    }

    /// Runs `f` with the span's OpenTelemetry context current, for the attempt's lifecycle log
    /// lines, written after `process()` has left the span: they name the attempt's span as a
    /// line written inside it does.
    pub(crate) fn with_context_current<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.otel() {
            Some(cx) => {
                let _current = cx.clone().attach();
                f()
            }
            None => self.span.in_scope(f),
        }
    }

    /// [`in_scope`](Self::in_scope) for an owner: the context taken on the first entry is
    /// stored without the cell's atomic initialisation.
    #[inline]
    pub(crate) fn in_scope_mut<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &self.otel {
            Some(cell) if self.entered.is_none() && cell.get().is_none() => {
                let (entered, cx) = layer::enter_capturing_context(&self.span);
                let result = f();
                drop(entered);
                self.entered = cx;
                result
            }
            _ => self.span.in_scope(f),
        }
    }

    /// Gives the OpenTelemetry span its attributes, for an end that records nothing else on
    /// it.
    pub(crate) fn settle_attributes<'f>(&self, fields: impl FnOnce() -> StepSpanFields<'f>) {
        let _ = self.otel_with_attributes(fields);
    }

    /// The OpenTelemetry span's context under `SpanLayer`.
    fn otel(&self) -> Option<&opentelemetry::Context> {
        let cell = self.otel.as_ref()?;
        Some(match &self.entered {
            Some(cx) => cx,
            None => cell.get_or_init(|| self.span.context()),
        })
    }

    /// [`otel`](Self::otel), after giving the span its attributes: for the ends written through
    /// the span API, each of which is an attempt's only end.
    fn otel_with_attributes<'f>(
        &self,
        fields: impl FnOnce() -> StepSpanFields<'f>,
    ) -> Option<&opentelemetry::Context> {
        let cx = self.otel()?;
        cx.span().set_attributes(fields().attributes());
        Some(cx)
    }
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
    // Under `SpanLayer`, the OpenTelemetry span is left without these attributes:
    // tracing-opentelemetry would copy each text into a new `String`. The scope adds them
    // at the end (see `StepSpan`), the text shared.
    let otel = layer::took_step_attributes(&span).then(OnceLock::new);
    StepSpan {
        span,
        otel,
        entered: None,
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
    record_end(
        span,
        None,
        None,
        EndEvent::now(event),
        duration_secs,
        || Status::Ok,
        Vec::new,
    );
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
        None,
        None,
        EndEvent::now(event),
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

/// The lifecycle event a span's end records: its name (`None` when the router keeps it off the
/// trace sink) and, when the caller already read the clock for that moment, its time.
struct EndEvent<At> {
    name: Option<&'static str>,
    at: Option<At>,
}

impl EndEvent<fn() -> SystemTime> {
    /// An event stamped when it is recorded.
    fn now(name: Option<&'static str>) -> Self {
        Self { name, at: None }
    }
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

/// The end of a task or step span. With `otel` (a step span under `SpanLayer`), the
/// OpenTelemetry span is written directly; the `tracing` field is still recorded for other
/// layers, and `SpanLayer` leaves that record alone. `duration_field` is the span's
/// duration field when the caller has it at hand; otherwise it is looked up by name.
fn record_end<At: FnOnce() -> SystemTime>(
    span: &Span,
    otel: Option<&opentelemetry::Context>,
    duration_field: Option<&Field>,
    event: EndEvent<At>,
    duration_secs: f64,
    status: impl FnOnce() -> Status,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) {
    if span.is_disabled() {
        return;
    }
    // For the other layers; `SpanLayer` takes the value from the `tracing` record only when the
    // scope does not write it to the OpenTelemetry span itself.
    let record = || {
        match duration_field {
            Some(field) => span.record(field, duration_secs),
            None => span.record(STEP_KEYS.execution_duration, duration_secs),
        };
    };
    match otel {
        Some(cx) => {
            layer::record_written_directly(record);
            let otel = cx.span();
            otel.set_attribute(KeyValue::new(STEP_KEYS.execution_duration, duration_secs));
            otel.set_status(status());
            if let Some(name) = event.name {
                match event.at {
                    Some(at) => otel.add_event_with_timestamp(name, at(), attributes()),
                    None => otel.add_event(name, attributes()),
                }
            }
        }
        None => {
            record();
            span.set_status(status());
            if let Some(name) = event.name {
                match event.at {
                    Some(at) => span.add_event_with_timestamp(name, at(), attributes()),
                    None => span.add_event(name, attributes()),
                }
            }
        }
    }
}
