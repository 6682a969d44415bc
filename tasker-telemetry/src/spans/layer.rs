//! The `tracing` layer that turns spans into OpenTelemetry spans.
//!
//! It is `tracing-opentelemetry`'s layer with one difference: the scopes' lifecycle log lines
//! (target `tasker::lifecycle`) are not copied onto spans as span events, because the span
//! already carries those moments as its own events. That one rule is applied here, in
//! `on_event`, rather than with a per-layer filter: `tracing-subscriber`'s per-layer filtering
//! adds bookkeeping to every span callback, and spans are the hot path of a traced step.

use std::any::TypeId;

use opentelemetry_sdk::trace::SdkTracer;
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
    pub(super) fn new(inner: OpenTelemetryLayer<S, SdkTracer>) -> Self {
        Self { inner }
    }
}

impl<S> Layer<S> for SpanLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != LIFECYCLE_TARGET {
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
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // `tracing-opentelemetry`'s span extension methods (`set_parent`, `add_event`, ...) find the
    // inner layer by downcasting through the subscriber stack.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded unchanged; the inner layer upholds `downcast_raw`'s contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}
