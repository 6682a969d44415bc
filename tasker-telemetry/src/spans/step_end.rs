//! A step span's successful end, handed to the pipeline's span processor as the span closes.
//!
//! Written through the OpenTelemetry span API, a step's end costs a lock and a dynamic call per
//! attribute, for the seven step attributes, the duration, the status and the `step.completed`
//! event. The span ends on the scope's own thread, while the scope drops its handle, and the
//! SDK then gives the pipeline's processor the span's data by value: the processor writes the
//! end straight into it ([`apply`]), one reservation and a push per value.
//!
//! The scope stages the end for the length of that drop ([`close_with`]). If the span does not
//! end then (someone else still holds it, or the provider is shut down), the end is left to the
//! scope, which writes it through the span API as before.

use std::cell::Cell;
use std::time::SystemTime;

use opentelemetry::trace::{Event, SpanId, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanLimits};

use super::{STEP_KEYS, StepSpanFields};

/// What a step span's successful end writes.
pub(crate) struct StagedEnd<'a> {
    /// The span it belongs to: no other span ending meanwhile takes it.
    pub(super) span_id: SpanId,
    pub(super) fields: StepSpanFields<'a>,
    pub(super) duration_secs: f64,
    /// The lifecycle event, when the router sends it to traces, and its time.
    pub(super) event: Option<(&'static str, SystemTime)>,
    /// Set once the processor has written it.
    written: Cell<bool>,
}

impl<'a> StagedEnd<'a> {
    /// How many attributes it adds: the step's, and the duration.
    const ATTRIBUTES: usize = StepSpanFields::COUNT + 1;

    pub(super) fn new(
        span_id: SpanId,
        fields: StepSpanFields<'a>,
        duration_secs: f64,
        event: Option<(&'static str, SystemTime)>,
    ) -> Self {
        Self {
            span_id,
            fields,
            duration_secs,
            event,
            written: Cell::new(false),
        }
    }

    fn duration(&self) -> KeyValue {
        KeyValue::new(STEP_KEYS.execution_duration, Value::F64(self.duration_secs))
    }
}

thread_local! {
    /// The end staged by [`close_with`] on this thread, for as long as its `close` runs (null:
    /// none). A raw pointer: the end lives on the scope's stack, and never outlives the call.
    static STAGED: Cell<*const StagedEnd<'static>> = const { Cell::new(std::ptr::null()) };
}

/// Puts back the staged end that was there before, also if `close` unwinds: the pointer must
/// not outlive the end it points to.
struct Restore(*const StagedEnd<'static>);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = STAGED.try_with(|staged| staged.set(self.0));
    }
}

/// Runs `close` (the drop of the scope's handle on the span) with `end` staged, and returns
/// whether the pipeline's processor wrote it into the span as the span ended.
pub(super) fn close_with(end: &StagedEnd<'_>, close: impl FnOnce()) -> bool {
    // Only the lifetime is erased: the pointer is reset before `end` can go away.
    let ptr = std::ptr::from_ref(end).cast::<StagedEnd<'static>>();
    let Ok(previous) = STAGED.try_with(|staged| staged.replace(ptr)) else {
        close();
        return false;
    };
    let restore = Restore(previous);
    close();
    drop(restore);
    end.written.get()
}

/// Writes the end staged on this thread into `span`, if it is that end's span. Called by the
/// pipeline's processor for every span that ends.
#[inline]
pub(super) fn apply(span: &mut SpanData) {
    let Ok(ptr) = STAGED.try_with(Cell::get) else {
        return;
    };
    // SAFETY: a non-null pointer was set by `close_with` on this thread, from a reference that
    // outlives the `close` call this runs inside of (it is reset when that call returns or
    // unwinds).
    let Some(end) = (unsafe { ptr.as_ref() }) else {
        return;
    };
    if end.written.get() || end.span_id != span.span_context.span_id() {
        return;
    }
    end.written.set(true);
    write(end, span);
}

/// The writes `Span::set_attribute`, `set_status` and `add_event_with_timestamp` would make,
/// within the same limits (the pipeline's provider keeps the SDK's default ones).
fn write(end: &StagedEnd<'_>, span: &mut SpanData) {
    let limits = SpanLimits::default();
    let max_attributes = limits.max_attributes_per_span as usize;
    let attributes = &mut span.attributes;
    if attributes.len() + StagedEnd::ATTRIBUTES <= max_attributes {
        // Pushed one by one, each built in place: taken from an iterator, each value was
        // copied once more on the way.
        attributes.reserve_exact(StagedEnd::ATTRIBUTES);
        end.fields.push_into(attributes);
        attributes.push(end.duration());
    } else {
        write_over_limit(end, span, max_attributes);
    }
    span.status = Status::Ok;
    if let Some((name, at)) = end.event {
        let events = &mut span.events.events;
        if events.len() < limits.max_events_per_span as usize {
            // Usually the span's only event: room for one, not the four a first push makes.
            events.reserve_exact(1);
            events.push(Event::new(name, at, Vec::new(), 0));
        } else {
            span.events.dropped_count += 1;
        }
    }
}

/// [`write`]'s attributes when the span is close to its limit (a caller added many of its
/// own): those that fit, the rest counted as dropped.
#[cold]
fn write_over_limit(end: &StagedEnd<'_>, span: &mut SpanData, max_attributes: usize) {
    let all = end
        .fields
        .attributes()
        .chain(std::iter::once(end.duration()));
    for attribute in all {
        if span.attributes.len() < max_attributes {
            span.attributes.push(attribute);
        } else {
            span.dropped_attributes_count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceId, TraceState};

    use super::*;

    fn span(id: u64, attributes: usize) -> SpanData {
        let context = SpanContext::new(
            TraceId::from(1_u128),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        SpanData {
            span_context: context,
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "tasker.step.execution".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: (0..attributes)
                .map(|i| KeyValue::new(format!("user.{i}"), 1_i64))
                .collect(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    struct Texts(Arc<str>);

    impl Texts {
        fn fields(&self) -> StepSpanFields<'_> {
            StepSpanFields {
                correlation_id: &self.0,
                task_id: &self.0,
                task_name: &self.0,
                step_id: &self.0,
                step_name: &self.0,
                attempt_number: 2,
                retry_limit: 3,
            }
        }
    }

    fn end(texts: &Texts, id: u64) -> StagedEnd<'_> {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7);
        StagedEnd::new(
            SpanId::from(id),
            texts.fields(),
            0.5,
            Some(("step.completed", at)),
        )
    }

    fn keys(span: &SpanData) -> Vec<&str> {
        span.attributes.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn a_staged_end_goes_into_its_own_span_only_and_only_while_staged() {
        let texts = Texts("t".into());
        let staged = end(&texts, 1);
        let (mut own, mut other, mut later) = (span(1, 0), span(2, 0), span(1, 0));
        let written = close_with(&staged, || {
            apply(&mut other);
            apply(&mut own);
            // Written once: a second span with the same id gets nothing.
            apply(&mut later);
        });
        assert!(written);
        let mut expected = STEP_KEYS.all().to_vec();
        expected.truncate(StagedEnd::ATTRIBUTES);
        assert_eq!(keys(&own), expected);
        assert_eq!(own.attributes[5].value, Value::I64(2));
        assert_eq!(own.attributes[7].value, Value::F64(0.5));
        assert_eq!(own.status, Status::Ok);
        let events: Vec<_> = own.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(events, ["step.completed"]);
        assert_eq!(own.events[0].timestamp, staged.event.unwrap().1);
        for untouched in [&other, &later] {
            assert!(untouched.attributes.is_empty());
            assert!(untouched.events.is_empty());
            assert_eq!(untouched.status, Status::Unset);
        }
        // Nothing is staged once `close_with` has returned.
        let mut after = span(1, 0);
        apply(&mut after);
        assert!(after.attributes.is_empty());
    }

    #[test]
    fn an_end_that_finds_no_span_ending_reports_it() {
        let texts = Texts("t".into());
        let staged = end(&texts, 1);
        assert!(!close_with(&staged, || {}));
        let mut other = span(2, 0);
        assert!(!close_with(&staged, || apply(&mut other)));
        assert!(other.attributes.is_empty());
    }

    #[test]
    fn a_span_near_its_attribute_limit_keeps_what_fits_and_counts_the_rest() {
        let texts = Texts("t".into());
        let limit = SpanLimits::default().max_attributes_per_span as usize;
        let mut full = span(1, limit - 3);
        assert!(close_with(&end(&texts, 1), || apply(&mut full)));
        assert_eq!(full.attributes.len(), limit);
        assert_eq!(full.dropped_attributes_count, 5);
        assert_eq!(keys(&full)[limit - 3..], STEP_KEYS.all()[..3]);
        assert_eq!(full.status, Status::Ok);
    }

    #[test]
    fn an_end_staged_inside_another_leaves_the_outer_one_staged() {
        let texts = Texts("t".into());
        let (outer, inner) = (end(&texts, 1), end(&texts, 2));
        let (mut outer_span, mut inner_span) = (span(1, 0), span(2, 0));
        let written = close_with(&outer, || {
            assert!(close_with(&inner, || apply(&mut inner_span)));
            apply(&mut outer_span);
        });
        assert!(written);
        assert_eq!(outer_span.attributes.len(), StagedEnd::ATTRIBUTES);
        assert_eq!(inner_span.attributes.len(), StagedEnd::ATTRIBUTES);
    }

    #[test]
    fn a_close_that_unwinds_leaves_nothing_staged() {
        let texts = Texts("t".into());
        let staged = end(&texts, 1);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            close_with(&staged, || panic!("a layer panicked"))
        }));
        assert!(unwound.is_err());
        let mut later = span(1, 0);
        apply(&mut later);
        assert!(later.attributes.is_empty());
    }
}
