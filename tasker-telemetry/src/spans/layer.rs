//! The `tracing` layer that turns spans into OpenTelemetry spans.
//!
//! It is `tracing-opentelemetry`'s layer with one difference: the scopes' lifecycle log lines
//! (target `tasker::lifecycle`) are not copied onto spans as span events, because the span
//! already carries those moments as its own events. That one rule is applied here, in
//! `on_event`, rather than with a per-layer filter: `tracing-subscriber`'s per-layer filtering
//! adds bookkeeping to every span callback, and spans are the hot path of a traced step.
//!
//! The other difference is the step span's text attributes (ids and names). Handed over as
//! `tracing` fields, tracing-opentelemetry copies each into a new `String` per attempt, and
//! the export thread frees them again: on glibc the two threads then fight over the step
//! thread's allocator arena, which made those five copies the largest cost of a traced step.
//! So the layer passes every step span on without its values, and the scope, which knows a
//! `SpanLayer` is in the dispatcher (see [`OpenSpans::in_current_dispatcher`]), adds the
//! attributes itself when the attempt ends, the text as shared `Arc<str>` values, with the
//! outcome (duration, status, event), through the OpenTelemetry span API.

use std::any::TypeId;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry_sdk::trace::SdkTracer;
use tracing::dispatcher::WeakDispatch;
use tracing::field::Field;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::logging::LIFECYCLE_TARGET;

/// A [`SpanPipeline`](super::SpanPipeline)'s layer: add it to a `tracing-subscriber` registry.
///
/// ```
/// use tasker_telemetry::spans::SpanPipeline;
/// use tasker_telemetry::TelemetryConfig;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let pipeline = SpanPipeline::new(&TelemetryConfig::default())?;
/// let subscriber = tracing_subscriber::registry().with(pipeline.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("work").entered();
/// });
/// assert_eq!(pipeline.shutdown().exported, 1);
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
pub struct SpanLayer<S> {
    inner: OpenTelemetryLayer<S, SdkTracer>,
    /// The task and step spans this layer has open, their callsites (once `tracing` has
    /// registered them with this layer), and how to end them at shutdown.
    open: Arc<OpenSpans>,
}

/// The fields a span's end at shutdown records: the marker, and the status it ends with.
struct ShutdownFields {
    open_at_shutdown: Field,
    status_code: Field,
    status_message: Field,
}

impl ShutdownFields {
    fn of(metadata: &'static Metadata<'static>) -> Option<Self> {
        let fields = metadata.fields();
        Some(Self {
            open_at_shutdown: fields.field(super::OPEN_AT_SHUTDOWN)?,
            status_code: fields.field("otel.status_code")?,
            status_message: fields.field("otel.status_message")?,
        })
    }

    /// Records, on the inner layer, what an end at shutdown says: the marker and status error.
    fn mark<S>(
        &self,
        metadata: &'static Metadata<'static>,
        what: &'static str,
        inner: &OpenTelemetryLayer<S, SdkTracer>,
        span: &Id,
        ctx: Context<'_, S>,
    ) where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let marked: [(&Field, Option<&dyn tracing::Value>); 3] = [
            (&self.open_at_shutdown, Some(&true)),
            (&self.status_code, Some(&"error")),
            (&self.status_message, Some(&what)),
        ];
        let marked = metadata.fields().value_set(&marked);
        inner.on_record(span, &Record::new(&marked), ctx);
    }
}

/// Is `metadata` this crate's `name` span (task or step)? String compares, but once per
/// callsite: the hot path compares addresses.
fn is_own_span(metadata: &Metadata<'_>, name: &str) -> bool {
    metadata.is_span()
        && metadata.name() == name
        && metadata.target() == super::TARGET
        && metadata.module_path() == Some(super::MODULE)
}

/// The task span's callsite: recording `tasker.ended` (when the task finishes) ends the span
/// then; recording `tasker.open_at_shutdown` (the pipeline, at shutdown) ends it marked so.
struct TaskCallsite {
    metadata: &'static Metadata<'static>,
    ended: Field,
    shutdown: ShutdownFields,
}

impl TaskCallsite {
    fn recognise(metadata: &'static Metadata<'static>) -> Option<Self> {
        if !is_own_span(metadata, super::TASK_SPAN) {
            return None;
        }
        Some(Self {
            metadata,
            ended: metadata.fields().field(super::TASK_ENDED)?,
            shutdown: ShutdownFields::of(metadata)?,
        })
    }
}

/// Span ids, sharded by a hash of the id: steps begin and end on every worker thread, and one
/// lock for all of them would be a point they all meet at.
struct IdSet {
    shards: [Mutex<HashSet<u64, BuildHasherDefault<IdHasher>>>; ID_SHARDS],
}

const ID_SHARDS: usize = 16;

/// Hashes a span id with one multiplication: the ids are the registry's own (no one chooses
/// them to collide), and a byte-wise hash of each cost as much as the set's lookup.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Default for IdSet {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl IdSet {
    fn shard(
        &self,
        id: u64,
    ) -> std::sync::MutexGuard<'_, HashSet<u64, BuildHasherDefault<IdHasher>>> {
        // The product's high bits depend on every bit of the id: registry ids of one thread
        // share their high bits, and a slot reused by the next span shares all of them.
        let index = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % ID_SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, id: u64) {
        self.shard(id).insert(id);
    }

    fn remove(&self, id: u64) -> bool {
        self.shard(id).remove(&id)
    }

    fn drain(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        for shard in &self.shards {
            ids.extend(shard.lock().unwrap_or_else(|e| e.into_inner()).drain());
        }
        ids
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// One layer's open task and step spans, shared with its pipeline: a span is in its set from
/// its creation until it ends, so that the pipeline can end what is left when it shuts down.
/// One entry per running task and per running attempt; no span is kept past its end.
#[derive(Default)]
pub(super) struct OpenSpans {
    task: OnceLock<TaskCallsite>,
    step: OnceLock<StepCallsite>,
    dispatch: OnceLock<WeakDispatch>,
    tasks: IdSet,
    steps: IdSet,
}

impl std::fmt::Debug for OpenSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSpans")
            .field("tasks", &self.tasks.len())
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

impl OpenSpans {
    /// Notes `metadata` if it is the task or the step span's callsite, until both are known:
    /// afterwards their spans are recognised by the metadata's address.
    #[inline]
    fn recognise(&self, metadata: &'static Metadata<'static>) {
        if self.step.get().is_none()
            && let Some(step) = StepCallsite::recognise(metadata)
        {
            let _ = self.step.set(step);
        }
        if self.task.get().is_none()
            && let Some(task) = TaskCallsite::recognise(metadata)
        {
            let _ = self.task.set(task);
        }
    }

    /// Whether the current dispatcher has a [`SpanLayer`].
    pub(super) fn in_current_dispatcher() -> bool {
        tracing::dispatcher::get_default(|dispatch| dispatch.downcast_ref::<OpenSpans>().is_some())
    }

    /// Ends every task and step span still open, exported with status error and the attribute
    /// `tasker.open_at_shutdown = true`; returns how many there were.
    pub(super) fn end_all_at_shutdown(&self) -> u64 {
        // Steps first: each ends before the task span it belongs to.
        let steps = self.steps.drain();
        let tasks = self.tasks.drain();
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        let end = |metadata: &'static Metadata<'static>, marker: &Field, ids: &[u64]| {
            let Some(dispatch) = &dispatch else {
                return;
            };
            let values = [(marker, Some(&true as &dyn tracing::Value))];
            let values = metadata.fields().value_set(&values);
            for id in ids {
                // A span closing on another thread meanwhile is skipped by the layer; should
                // the inner layer still find it gone, its panic stays here.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    dispatch.record(&Id::from_u64(*id), &Record::new(&values));
                }));
            }
        };
        if let Some(step) = self.step.get() {
            end(step.metadata, &step.shutdown.open_at_shutdown, &steps);
        }
        if let Some(task) = self.task.get() {
            end(task.metadata, &task.shutdown.open_at_shutdown, &tasks);
        }
        (steps.len() + tasks.len()) as u64
    }
}

/// The step span's callsite.
struct StepCallsite {
    metadata: &'static Metadata<'static>,
    /// Recorded at the end; the scope writes it to the OpenTelemetry span itself.
    execution_duration: Field,
    shutdown: ShutdownFields,
}

impl StepCallsite {
    fn recognise(metadata: &'static Metadata<'static>) -> Option<Self> {
        if !is_own_span(metadata, super::STEP_SPAN) {
            return None;
        }
        Some(Self {
            metadata,
            execution_duration: metadata
                .fields()
                .field(super::STEP_KEYS.execution_duration)?,
            shutdown: ShutdownFields::of(metadata)?,
        })
    }

    /// `attrs` without their values, which [`super::step_span`] adds itself.
    fn without_values(&self, attrs: &Attributes<'_>, visit: impl FnOnce(&Attributes<'_>)) {
        let none: [(&Field, Option<&dyn tracing::Value>); 1] = [(&self.execution_duration, None)];
        let values = self.metadata.fields().value_set(&none);
        let bare = match attrs.parent() {
            Some(parent) => Attributes::child_of(parent.clone(), self.metadata, &values),
            None if attrs.is_root() => Attributes::new_root(self.metadata, &values),
            None => Attributes::new(self.metadata, &values),
        };
        visit(&bare);
    }
}

impl<S> std::fmt::Debug for SpanLayer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanLayer").finish_non_exhaustive()
    }
}

impl<S> SpanLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    pub(super) fn new(inner: OpenTelemetryLayer<S, SdkTracer>, open: Arc<OpenSpans>) -> Self {
        Self { inner, open }
    }

    /// The set `metadata`'s spans are tracked in while open: task and step spans.
    fn open_set(&self, metadata: &Metadata<'_>) -> Option<&IdSet> {
        let open = &*self.open;
        if open
            .step
            .get()
            .is_some_and(|step| std::ptr::eq(metadata, step.metadata))
        {
            Some(&open.steps)
        } else if open
            .task
            .get()
            .is_some_and(|task| std::ptr::eq(metadata, task.metadata))
        {
            Some(&open.tasks)
        } else {
            None
        }
    }
}

impl<S> Layer<S> for SpanLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.open.dispatch.set(subscriber.downgrade());
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.open.recognise(metadata);
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let open = &*self.open;
        // `tracing` registers a callsite with every dispatcher, and a thread that finds another
        // thread registering it goes on without waiting: a span may arrive before its callsite
        // was registered here, and is recognised now instead.
        open.recognise(attrs.metadata());
        match open.step.get() {
            Some(step) if std::ptr::eq(attrs.metadata(), step.metadata) => {
                step.without_values(attrs, |bare| self.inner.on_new_span(bare, id, ctx));
                open.steps.insert(id.into_u64());
            }
            _ => {
                if let Some(task) = open.task.get()
                    && std::ptr::eq(attrs.metadata(), task.metadata)
                {
                    open.tasks.insert(id.into_u64());
                } else if crate::otlp::is_export_stack(attrs.metadata()) {
                    // Never exported: see `otlp::EXPORT_STACK`. The inner layer ignores a span it
                    // holds no data for in every later callback.
                    return;
                }
                self.inner.on_new_span(attrs, id, ctx)
            }
        }
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let open = &*self.open;
        // The task finished (or the pipeline is shutting down with it open): its span ends
        // now, handles or not. The markers themselves are not passed on as recorded.
        if let Some(task) = open.task.get()
            && (values.contains(&task.ended) || values.contains(&task.shutdown.open_at_shutdown))
        {
            if ctx.span(span).is_none() {
                return;
            }
            let at_shutdown = values.contains(&task.shutdown.open_at_shutdown);
            let was_open = open.tasks.remove(span.into_u64());
            if at_shutdown {
                let what = "the task was still open when the span pipeline shut down";
                task.shutdown
                    .mark(task.metadata, what, &self.inner, span, ctx.clone());
            }
            if was_open || at_shutdown {
                // tracing-opentelemetry builds and ends the OpenTelemetry span on close and
                // ignores a span it has already ended, so the real close later is harmless.
                self.inner.on_close(span.clone(), ctx);
            }
            return;
        }
        // A step attempt still running as the pipeline shuts down: ended now, marked. Its step
        // attributes are not on it: the scope adds them when the attempt ends.
        if let Some(step) = open.step.get()
            && values.contains(&step.shutdown.open_at_shutdown)
        {
            if ctx.span(span).is_some() {
                let what = "the step attempt was still running when the span pipeline shut down";
                step.shutdown
                    .mark(step.metadata, what, &self.inner, span, ctx.clone());
                self.inner.on_close(span.clone(), ctx);
            }
            return;
        }
        // The step span's one later field, its duration, reaches the OpenTelemetry span with
        // the step's attributes (`StepSpan::end`); passing it on too would add it twice.
        if let Some(step) = open.step.get()
            && values.contains(&step.execution_duration)
        {
            return;
        }
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.target() != LIFECYCLE_TARGET && !crate::otlp::is_export_stack(metadata) {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(data) = ctx.span(&id)
            && let Some(open) = self.open_set(data.metadata())
        {
            open.remove(id.into_u64());
        }
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // `tracing-opentelemetry`'s span extension methods (`set_parent`, `add_event`, ...) find the
    // inner layer by downcasting through the subscriber stack. The one unsafe site of the span
    // path, required by the trait; both answers are tested (`tests` below).
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<OpenSpans>() {
            // How the scopes learn, whatever `S` is, that the current dispatcher has a
            // `SpanLayer` (see `super::warn_if_filtered_out`).
            Some(Arc::as_ptr(&self.open).cast())
        } else {
            // SAFETY: forwarded unchanged; the inner layer upholds `downcast_raw`'s contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::TelemetryConfig;
    use crate::spans::SpanPipeline;

    /// `downcast_raw`'s own answer: asked for `OpenSpans`, the layer points at the set its
    /// pipeline holds, which counts the spans this layer has open.
    #[test]
    fn the_dispatcher_downcasts_to_this_layers_open_spans() {
        let pipeline = SpanPipeline::new(&TelemetryConfig::default()).unwrap();
        let subscriber = tracing_subscriber::registry().with(pipeline.layer());
        let held = pipeline.open_spans_for_tests();
        tracing::subscriber::with_default(subscriber, || {
            let task = super::super::task_span("t-1", "checkout", None);
            assert!(task.span().is_some_and(|s| !s.is_disabled()));
            tracing::dispatcher::get_default(|dispatch| {
                let found = dispatch
                    .downcast_ref::<OpenSpans>()
                    .expect("the layer answers for OpenSpans");
                assert!(std::ptr::eq(found, Arc::as_ptr(&held)));
                assert_eq!(found.tasks.len(), 1);
            });
        });
        pipeline.shutdown();
    }

    /// `downcast_raw`'s forwarded answer: tracing-opentelemetry's span extension finds the inner
    /// layer through it, so a span under `SpanLayer` has a valid OpenTelemetry context.
    #[test]
    fn the_inner_layer_is_found_through_the_forwarded_downcast() {
        let pipeline = SpanPipeline::new(&TelemetryConfig::default()).unwrap();
        let subscriber = tracing_subscriber::registry().with(pipeline.layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work");
            assert!(span.context().span().span_context().is_valid());
        });
        pipeline.shutdown();
    }
}
