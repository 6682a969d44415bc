//! The in-process span store: the spans of the last N tasks, kept in memory whether or not an
//! OTLP endpoint is set (the embedded default needs no backend to show a task), bounded in
//! tasks and in spans per task, and able to print a task's span tree.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use opentelemetry::Value;
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::STEP_KEYS;

/// One finished span, as kept by the [`SpanStore`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSpan {
    /// The span's name.
    pub name: String,
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// Parent span id, or empty for a root.
    pub parent_span_id: String,
    /// When the span started (wall clock).
    pub start_time: SystemTime,
    /// How long the span was open.
    pub duration: Duration,
    /// `ok`, `error: <message>` or `unset`.
    pub status: String,
    /// Attributes, as text, after the parameter filter.
    pub attributes: Vec<(String, String)>,
    /// Span event names, in order.
    pub events: Vec<String>,
    /// The `exception.type` of the span's first event that carries one (a failed attempt's
    /// error class).
    pub error_class: Option<String>,
    /// The `exception.message` beside it.
    pub error_message: Option<String>,
}

impl StoredSpan {
    /// The attribute's value as text.
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    /// use tasker_telemetry::spans::SpanStore;
    ///
    /// let store = SpanStore::new(10);
    /// let provider = SdkTracerProvider::builder().with_simple_exporter(store.clone()).build();
    /// let tracer = provider.tracer("docs");
    /// tracer
    ///     .span_builder("tasker.task.execution")
    ///     .with_attributes([KeyValue::new("tasker.task_id", "t-1")])
    ///     .start(&tracer)
    ///     .end();
    /// assert_eq!(store.spans()[0].attribute("tasker.task_id"), Some("t-1"));
    /// ```
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the span ended in error.
    pub fn is_error(&self) -> bool {
        self.status.starts_with("error")
    }

    fn from_data(data: &SpanData) -> Self {
        let text = |value: &Value| value.as_str().into_owned();
        let exception = data.events.iter().find_map(|e| {
            let get = |key: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| text(&kv.value))
            };
            get("exception.type").map(|class| (class, get("exception.message")))
        });
        let (error_class, error_message) = match exception {
            Some((class, message)) => (Some(class), message),
            None => (None, None),
        };
        Self {
            name: data.name.to_string(),
            trace_id: data.span_context.trace_id().to_string(),
            span_id: data.span_context.span_id().to_string(),
            parent_span_id: if data.parent_span_id == SpanId::INVALID {
                String::new()
            } else {
                data.parent_span_id.to_string()
            },
            start_time: data.start_time,
            duration: data
                .end_time
                .duration_since(data.start_time)
                .unwrap_or_default(),
            status: match &data.status {
                Status::Ok => "ok".to_owned(),
                Status::Error { description } => format!("error: {description}"),
                Status::Unset => "unset".to_owned(),
            },
            attributes: data
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), text(&kv.value)))
                .collect(),
            events: data.events.iter().map(|e| e.name.to_string()).collect(),
            error_class,
            error_message,
        }
    }
}

/// The spans of one trace, in the order they ended, as the exporter got them: turned into
/// [`StoredSpan`]s only when read, so that keeping a span costs the export thread a move (or,
/// beside an OTLP exporter, a clone of its shared attribute text).
#[derive(Debug, Default)]
struct Trace {
    spans: Vec<SpanData>,
    /// Spans of this trace not kept: more than [`SpanStore::MAX_SPANS_PER_TRACE`] ended.
    dropped: u64,
}

impl Trace {
    /// The task ids its spans carry, in the order the spans ended.
    fn task_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for span in &self.spans {
            if let Some(id) = attribute(span, STEP_KEYS.task_id)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// The spans of task `task_id` in this trace: those carrying its id, and every span beneath
    /// one of them.
    fn members(&self, task_id: &str) -> Vec<&SpanData> {
        let mut ids: Vec<SpanId> = self
            .spans
            .iter()
            .filter(|s| attribute(s, STEP_KEYS.task_id).as_deref() == Some(task_id))
            .map(|s| s.span_context.span_id())
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        // A parent may end after its children: repeat until nothing joins.
        let mut member = vec![false; self.spans.len()];
        loop {
            let mut grew = false;
            for (i, span) in self.spans.iter().enumerate() {
                let own = span.span_context.span_id();
                if !member[i] && (ids.contains(&own) || ids.contains(&span.parent_span_id)) {
                    member[i] = true;
                    ids.push(own);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        self.spans
            .iter()
            .zip(member)
            .filter(|(_, m)| *m)
            .map(|(s, _)| s)
            .collect()
    }
}

/// Traces in the order they were first seen, at most `capacity` of them.
#[derive(Debug, Default)]
struct Traces {
    order: VecDeque<TraceId>,
    by_id: HashMap<TraceId, Trace>,
}

impl Traces {
    fn entry(&mut self, id: TraceId, capacity: usize) -> &mut Trace {
        if !self.by_id.contains_key(&id) {
            while self.order.len() >= capacity {
                if let Some(old) = self.order.pop_front() {
                    self.by_id.remove(&old);
                }
            }
            self.order.push_back(id);
        }
        self.by_id.entry(id).or_default()
    }

    fn remove(&mut self, id: TraceId) -> Option<Trace> {
        let trace = self.by_id.remove(&id)?;
        self.order.retain(|known| *known != id);
        Some(trace)
    }

    fn in_order(&self) -> impl Iterator<Item = &Trace> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Traces with a task's spans in them (a span carrying `tasker.task_id`).
    tasks: Traces,
    /// Every other trace (a user's spans outside any task), kept apart so that they cannot push
    /// tasks out.
    other: Traces,
}

/// The spans of the last `tasks` tasks, kept in memory.
///
/// [`init`](crate::init) records every exported span here (after the parameter filter) unless
/// `span_store_tasks` is 0, also when an OTLP endpoint is set: the `/tasks` timeline page
/// (cargo feature `http`) reads it, and [`task_tree`](Self::task_tree) prints one task's
/// spans. A task is its own trace, so the store keeps the last `tasks` traces that hold a
/// task's spans, each with at most [`MAX_SPANS_PER_TRACE`](Self::MAX_SPANS_PER_TRACE) spans
/// (the rest are counted in [`dropped_spans`](Self::dropped_spans)); traces of spans outside
/// any task are kept the same way, apart, so they never push a task out.
///
/// ```
/// use tasker_telemetry::spans::SpanStore;
///
/// let store = SpanStore::new(100);
/// assert_eq!(store.capacity(), 100);
/// assert!(store.spans().is_empty());
/// assert!(store.task_ids().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct SpanStore {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl SpanStore {
    /// The most spans kept of one trace; the ones after are dropped and counted.
    pub const MAX_SPANS_PER_TRACE: usize = 1_000;

    /// An empty store keeping the spans of at most `tasks` tasks (at least 1).
    pub fn new(tasks: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity: tasks.max(1),
        }
    }

    /// How many tasks' traces the store keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Poisoned only by a panic in this module's own code while holding it; what is stored
        // is still whole spans.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `batch` (already through the parameter filter).
    pub(crate) fn record(&self, batch: Vec<SpanData>) {
        let mut inner = self.lock();
        for data in batch {
            let is_task = attribute(&data, STEP_KEYS.task_id).is_some();
            let id = data.span_context.trace_id();
            // A trace is a task's once any span of it names the task: a user's span that
            // ended before its step joins the task's trace then.
            let traces = if is_task || inner.tasks.by_id.contains_key(&id) {
                if let Some(earlier) = inner.other.remove(id) {
                    let trace = inner.tasks.entry(id, self.capacity);
                    trace.spans.extend(earlier.spans);
                    trace.dropped += earlier.dropped;
                }
                &mut inner.tasks
            } else {
                &mut inner.other
            };
            let trace = traces.entry(id, self.capacity);
            if trace.spans.len() < Self::MAX_SPANS_PER_TRACE {
                trace.spans.push(data);
            } else {
                trace.dropped += 1;
            }
        }
    }

    /// Every span kept, trace by trace, oldest trace first, tasks' traces before the others.
    pub fn spans(&self) -> Vec<StoredSpan> {
        let kept: Vec<SpanData> = {
            let inner = self.lock();
            inner
                .tasks
                .in_order()
                .chain(inner.other.in_order())
                .flat_map(|t| t.spans.iter().cloned())
                .collect()
        };
        kept.iter().map(StoredSpan::from_data).collect()
    }

    /// Spans not kept because their trace already had
    /// [`MAX_SPANS_PER_TRACE`](Self::MAX_SPANS_PER_TRACE), over the traces still kept.
    pub fn dropped_spans(&self) -> u64 {
        let inner = self.lock();
        inner
            .tasks
            .in_order()
            .chain(inner.other.in_order())
            .map(|t| t.dropped)
            .sum()
    }

    /// The ids of the tasks whose spans are kept, most recent first.
    pub fn task_ids(&self) -> Vec<String> {
        let inner = self.lock();
        let mut ids: Vec<String> = Vec::new();
        for trace in inner.tasks.in_order().collect::<Vec<_>>().into_iter().rev() {
            for id in trace.task_ids() {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// The spans of the task with this id, in the order they ended: every span carrying its
    /// `tasker.task_id`, and every span beneath one of those (a user's own spans inside
    /// `process()`). Another task that shares its trace is not included.
    pub fn task_spans(&self, task_id: &str) -> Vec<StoredSpan> {
        self.task_spans_and_dropped(task_id).0
    }

    /// [`task_spans`](Self::task_spans), with how many spans of those traces were not kept.
    pub(crate) fn task_spans_and_dropped(&self, task_id: &str) -> (Vec<StoredSpan>, u64) {
        let mut found: Vec<SpanData> = Vec::new();
        let mut dropped = 0;
        {
            let inner = self.lock();
            for trace in inner.tasks.in_order() {
                let members = trace.members(task_id);
                if !members.is_empty() {
                    dropped += trace.dropped;
                    found.extend(members.into_iter().cloned());
                }
            }
        }
        (found.iter().map(StoredSpan::from_data).collect(), dropped)
    }

    /// The most recent `limit` tasks: each task's id, spans and the spans of its trace not
    /// kept, newest first, in one pass over the store.
    pub(crate) fn recent_tasks(&self, limit: usize) -> Vec<(String, Vec<StoredSpan>, u64)> {
        let mut picked: Vec<(String, Vec<SpanData>, u64)> = Vec::new();
        {
            let inner = self.lock();
            let newest_first: Vec<&Trace> = inner.tasks.in_order().collect();
            'traces: for trace in newest_first.into_iter().rev() {
                for id in trace.task_ids() {
                    if picked.len() == limit {
                        break 'traces;
                    }
                    if picked.iter().any(|(known, _, _)| *known == id) {
                        continue;
                    }
                    let members = trace.members(&id).into_iter().cloned().collect();
                    picked.push((id, members, trace.dropped));
                }
            }
        }
        picked
            .into_iter()
            .map(|(id, spans, dropped)| {
                (
                    id,
                    spans.iter().map(StoredSpan::from_data).collect(),
                    dropped,
                )
            })
            .collect()
    }

    /// One task's spans as an indented tree:
    /// `tasker.task.execution 12.3ms ok` with each step attempt beneath it.
    ///
    /// ```
    /// # use tasker_telemetry::spans::SpanStore;
    /// assert_eq!(SpanStore::new(10).task_tree("no-such-task"), "");
    /// ```
    pub fn task_tree(&self, task_id: &str) -> String {
        let spans = self.task_spans(task_id);
        let mut out = String::new();
        let roots: Vec<&StoredSpan> = spans
            .iter()
            .filter(|s| {
                s.parent_span_id.is_empty() || !spans.iter().any(|p| p.span_id == s.parent_span_id)
            })
            .collect();
        for root in roots {
            render(&spans, root, 0, &mut out);
        }
        out
    }
}

fn render(spans: &[StoredSpan], span: &StoredSpan, depth: usize, out: &mut String) {
    let label = match (
        span.attribute(STEP_KEYS.step_name),
        span.attribute(STEP_KEYS.attempt_number),
    ) {
        (Some(step), Some(attempt)) => format!(" {step} attempt {attempt}"),
        _ => span
            .attribute(STEP_KEYS.task_name)
            .map(|t| format!(" {t}"))
            .unwrap_or_default(),
    };
    let _ = writeln!(
        out,
        "{:indent$}{}{} {:.1?} {}",
        "",
        span.name,
        label,
        span.duration,
        span.status,
        indent = depth * 2
    );
    for child in spans.iter().filter(|s| s.parent_span_id == span.span_id) {
        render(spans, child, depth + 1, out);
    }
}

/// The store as an exporter of its own, for a tracer provider you build yourself. Spans reach
/// it as the provider's processor hands them over: put a parameter filter in front of it if
/// their attributes may carry secrets (the pipeline [`init`](crate::init) builds does).
impl SpanExporter for SpanStore {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.record(batch);
        Ok(())
    }
}

/// A span attribute's value as text.
fn attribute(data: &SpanData, key: &str) -> Option<String> {
    data.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    fn provider(store: &SpanStore) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_simple_exporter(store.clone())
            .build()
    }

    /// However many tasks end, the store holds the traces of at most its capacity of them, the
    /// newest.
    #[test]
    fn keeps_the_last_n_tasks() {
        let store = SpanStore::new(3);
        let tracer = provider(&store).tracer("store-test");
        for i in 0..50 {
            tracer
                .span_builder("tasker.task.execution")
                .with_attributes([KeyValue::new("tasker.task_id", format!("t-{i}"))])
                .start(&tracer)
                .end();
        }
        assert_eq!(store.task_ids(), ["t-49", "t-48", "t-47"]);
        assert_eq!(store.spans().len(), 3);
    }

    /// The page's list reads the newest tasks first, and only as many as it shows.
    #[test]
    fn recent_tasks_are_the_newest_first_up_to_the_limit() {
        let store = SpanStore::new(10);
        let tracer = provider(&store).tracer("store-test");
        for i in 0..5 {
            tracer
                .span_builder("tasker.task.execution")
                .with_attributes([KeyValue::new("tasker.task_id", format!("t-{i}"))])
                .start(&tracer)
                .end();
        }
        let recent: Vec<String> = store
            .recent_tasks(2)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(recent, ["t-4", "t-3"]);
        assert_eq!(store.recent_tasks(99).len(), 5);
    }

    /// Spans outside any task are bounded too, and never push a task out.
    #[test]
    fn spans_outside_tasks_do_not_evict_tasks() {
        let store = SpanStore::new(2);
        let tracer = provider(&store).tracer("store-test");
        tracer
            .span_builder("tasker.task.execution")
            .with_attributes([KeyValue::new("tasker.task_id", "kept")])
            .start(&tracer)
            .end();
        for i in 0..20 {
            tracer.start(format!("request-{i}")).end();
        }
        assert_eq!(store.task_ids(), ["kept"]);
        assert_eq!(store.spans().len(), 3);
    }

    /// A trace keeps at most `MAX_SPANS_PER_TRACE` spans; the rest are counted.
    #[test]
    fn a_trace_is_bounded_in_spans_and_the_excess_counted() {
        let store = SpanStore::new(1);
        let tracer = provider(&store).tracer("store-test");
        let root = tracer
            .span_builder("tasker.task.execution")
            .with_attributes([KeyValue::new("tasker.task_id", "big")])
            .start(&tracer);
        let cx = opentelemetry::Context::current_with_span(root);
        let extra = 25;
        for _ in 0..SpanStore::MAX_SPANS_PER_TRACE + extra {
            tracer
                .span_builder("tasker.step.execution")
                .with_attributes([KeyValue::new("tasker.task_id", "big")])
                .start_with_context(&tracer, &cx)
                .end();
        }
        assert_eq!(
            store.task_spans("big").len(),
            SpanStore::MAX_SPANS_PER_TRACE
        );
        assert_eq!(store.dropped_spans(), extra as u64);
    }
}
