//! The in-process span store: where spans go when no OTLP endpoint is configured (the embedded
//! default), bounded, and able to print a task's span tree.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::trace::Status;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// One finished span, as kept by the [`SpanStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpan {
    /// The span's name.
    pub name: String,
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// Parent span id, or empty for a root.
    pub parent_span_id: String,
    /// How long the span was open.
    pub duration: Duration,
    /// `ok`, `error: <message>` or `unset`.
    pub status: String,
    /// Attributes, as text.
    pub attributes: Vec<(String, String)>,
    /// Span event names, in order.
    pub events: Vec<String>,
}

impl StoredSpan {
    /// The attribute's value as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Finished spans kept in memory, newest last, at most `capacity` of them (the oldest are
/// dropped first).
///
/// `init()` without an OTLP endpoint sends spans here; [`SpanStore::task_tree`] prints one task's
/// spans as an indented tree with durations, attempts and status.
#[derive(Debug, Clone)]
pub struct SpanStore {
    inner: Arc<Mutex<VecDeque<StoredSpan>>>,
    capacity: usize,
}

impl SpanStore {
    /// An empty store keeping at most `capacity` spans.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(VecDeque::new())),
            capacity: capacity.max(1),
        }
    }

    /// Every span kept, oldest first.
    pub fn spans(&self) -> Vec<StoredSpan> {
        self.inner
            .lock()
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The spans of the task with this id: its `tasker.task.execution` span and every span in
    /// the same trace.
    pub fn task_spans(&self, task_id: &str) -> Vec<StoredSpan> {
        let spans = self.spans();
        let traces: Vec<String> = spans
            .iter()
            .filter(|s| s.attribute("tasker.task_id") == Some(task_id))
            .map(|s| s.trace_id.clone())
            .collect();
        spans
            .into_iter()
            .filter(|s| traces.contains(&s.trace_id))
            .collect()
    }

    /// One task's spans as an indented tree:
    /// `tasker.task.execution 12.3ms ok` with each step attempt beneath it.
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
        span.attribute("tasker.step_name"),
        span.attribute("tasker.attempt_number"),
    ) {
        (Some(step), Some(attempt)) => format!(" {step} attempt {attempt}"),
        _ => span
            .attribute("tasker.task_name")
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

fn text(value: &Value) -> String {
    value.as_str().into_owned()
}

impl SpanExporter for SpanStore {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let Ok(mut spans) = self.inner.lock() else {
            return Ok(());
        };
        for data in batch {
            let parent = data.parent_span_id;
            let status = match &data.status {
                Status::Ok => "ok".to_owned(),
                Status::Error { description } => format!("error: {description}"),
                Status::Unset => "unset".to_owned(),
            };
            spans.push_back(StoredSpan {
                name: data.name.to_string(),
                trace_id: data.span_context.trace_id().to_string(),
                span_id: data.span_context.span_id().to_string(),
                parent_span_id: if parent == opentelemetry::trace::SpanId::INVALID {
                    String::new()
                } else {
                    parent.to_string()
                },
                duration: data
                    .end_time
                    .duration_since(data.start_time)
                    .unwrap_or_default(),
                status,
                attributes: data
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), text(&kv.value)))
                    .collect(),
                events: data.events.iter().map(|e| e.name.to_string()).collect(),
            });
            while spans.len() > self.capacity {
                spans.pop_front();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// The store is what the embedded default keeps of every task: however many spans end, it
    /// holds at most its capacity, the newest.
    #[test]
    fn keeps_at_most_capacity_spans_newest_last() {
        let store = SpanStore::new(3);
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(store.clone())
            .build();
        let tracer = provider.tracer("store-test");
        for i in 0..50 {
            tracer.start(format!("span-{i}")).end();
        }
        let names: Vec<String> = store.spans().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["span-47", "span-48", "span-49"]);
    }
}
