//! A task's timeline: its step attempts on one time axis, read from the [`SpanStore`]; what the
//! `/tasks` page draws and `/tasks/{task_id}.json` serves.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::store::{SpanStore, StoredSpan};
use super::{STEP_KEYS, STEP_SPAN, TASK_SPAN};
use crate::timestamp::Timestamp;

/// One task as the timeline lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskSummary {
    /// The task's id.
    pub task_id: String,
    /// The task's name (empty when no span of it says).
    pub task_name: String,
    /// `completed`, `failed`, `cancelled`, `open at shutdown`, `running` (no task span ended
    /// yet: its steps ran here, or the task span lives in another process).
    pub status: String,
    /// The task's correlation id, when its spans carry one.
    pub correlation_id: Option<String>,
    /// The task's trace id (32 hex digits).
    pub trace_id: String,
    /// When the first of its spans began (RFC 3339, UTC).
    pub started_at: Timestamp,
    /// From the first span's start to the last one's end, in milliseconds.
    pub duration_ms: f64,
    /// Distinct steps that ran.
    pub steps: usize,
    /// Step attempts: retries count once each.
    pub attempts: usize,
    /// Attempts that ended in error.
    pub failed_attempts: usize,
}

/// One step attempt: a bar on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AttemptBar {
    /// The attempt's number (1 for the first), when the span carries it.
    pub attempt_number: Option<u32>,
    /// The attempt span's id.
    pub span_id: String,
    /// Its start, in milliseconds after the task's start.
    pub offset_ms: f64,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
    /// `ok`, `error` or `unset` (cancelled, or ended at shutdown).
    pub status: String,
    /// The failure's class (`exception.type`), for a failed attempt.
    pub error_class: Option<String>,
    /// The failure's message (the span status's description, else `exception.message`).
    pub error_message: Option<String>,
    /// The span's attributes, as exported (after the parameter filter).
    pub attributes: BTreeMap<String, String>,
    /// The span's events, in order.
    pub events: Vec<String>,
}

impl AttemptBar {
    /// Whether the attempt failed.
    pub fn failed(&self) -> bool {
        self.status == "error"
    }
}

/// One step's attempts, retries grouped under it, in the order they began.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StepLane {
    /// The step's name.
    pub step_name: String,
    /// The step's id (empty when its spans carry none).
    pub step_id: String,
    /// Its attempts.
    pub attempts: Vec<AttemptBar>,
}

/// A task's timeline: its summary, then each step's attempts on the task's time axis.
///
/// ```
/// use tasker_telemetry::spans::{SpanStore, TaskTimeline};
///
/// let store = SpanStore::new(10);
/// assert!(TaskTimeline::of(&store, "no-such-task").is_none());
/// assert!(TaskTimeline::recent(&store, 50).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskTimeline {
    /// The task.
    #[serde(flatten)]
    pub summary: TaskSummary,
    /// Its steps, in the order their first attempts began.
    pub steps: Vec<StepLane>,
    /// Spans of the task's trace that the store did not keep (over its per-trace bound).
    pub dropped_spans: u64,
}

impl TaskTimeline {
    /// The timeline of the task with this id, from what `store` kept; `None` when it kept no
    /// span of it.
    pub fn of(store: &SpanStore, task_id: &str) -> Option<Self> {
        let (spans, dropped_spans) = store.task_spans_and_dropped(task_id);
        Self::from_spans(task_id, &spans, dropped_spans)
    }

    /// The timelines of the `limit` most recent tasks `store` kept, most recent first.
    pub fn recent(store: &SpanStore, limit: usize) -> Vec<Self> {
        store
            .recent_tasks(limit)
            .into_iter()
            .filter_map(|(id, spans, dropped)| Self::from_spans(&id, &spans, dropped))
            .collect()
    }

    fn from_spans(task_id: &str, spans: &[StoredSpan], dropped_spans: u64) -> Option<Self> {
        let task = spans
            .iter()
            .find(|s| s.name == TASK_SPAN && s.attribute(STEP_KEYS.task_id) == Some(task_id));
        let attempts: Vec<&StoredSpan> = spans.iter().filter(|s| s.name == STEP_SPAN).collect();
        let drawn: Vec<&StoredSpan> = task.into_iter().chain(attempts.iter().copied()).collect();
        let start = drawn.iter().map(|s| s.start_time).min()?;
        let end = drawn
            .iter()
            .map(|s| s.start_time + s.duration)
            .max()
            .unwrap_or(start);
        let any = |key: &str| {
            drawn
                .iter()
                .find_map(|s| s.attribute(key))
                .map(str::to_owned)
        };
        let mut steps: Vec<StepLane> = Vec::new();
        let mut ordered = attempts.clone();
        ordered.sort_by_key(|s| s.start_time);
        for span in ordered {
            let step_name = span
                .attribute(STEP_KEYS.step_name)
                .unwrap_or("(ended at shutdown)")
                .to_owned();
            let step_id = span.attribute(STEP_KEYS.step_id).unwrap_or("").to_owned();
            let bar = bar(span, start);
            match steps
                .iter_mut()
                .find(|l| l.step_name == step_name && l.step_id == step_id)
            {
                Some(lane) => lane.attempts.push(bar),
                None => steps.push(StepLane {
                    step_name,
                    step_id,
                    attempts: vec![bar],
                }),
            }
        }
        let attempts_n = steps.iter().map(|l| l.attempts.len()).sum();
        let failed_attempts = steps
            .iter()
            .flat_map(|l| &l.attempts)
            .filter(|a| a.failed())
            .count();
        Some(Self {
            summary: TaskSummary {
                task_id: task_id.to_owned(),
                task_name: any(STEP_KEYS.task_name).unwrap_or_default(),
                status: task.map_or_else(|| "running".to_owned(), task_status),
                correlation_id: any(STEP_KEYS.correlation_id),
                trace_id: drawn
                    .first()
                    .map(|s| s.trace_id.clone())
                    .unwrap_or_default(),
                started_at: Timestamp::from(start),
                duration_ms: millis(end.duration_since(start).unwrap_or_default()),
                steps: steps.len(),
                attempts: attempts_n,
                failed_attempts,
            },
            steps,
            dropped_spans,
        })
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn task_status(span: &StoredSpan) -> String {
    let event = |name: &str| span.events.iter().any(|e| e == name);
    if span.attribute(super::OPEN_AT_SHUTDOWN) == Some("true") {
        "open at shutdown"
    } else if event("task.failed") || span.is_error() {
        "failed"
    } else if event("task.cancelled") {
        "cancelled"
    } else if event("task.completed") || span.status == "ok" {
        "completed"
    } else {
        "ended"
    }
    .to_owned()
}

fn bar(span: &StoredSpan, task_start: SystemTime) -> AttemptBar {
    let status = match span.status.as_str() {
        "ok" => "ok",
        s if s.starts_with("error") => "error",
        _ => "unset",
    };
    let described = span
        .status
        .strip_prefix("error: ")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    AttemptBar {
        attempt_number: span
            .attribute(STEP_KEYS.attempt_number)
            .and_then(|n| n.parse().ok()),
        span_id: span.span_id.clone(),
        offset_ms: millis(
            span.start_time
                .duration_since(task_start)
                .unwrap_or_default(),
        ),
        duration_ms: millis(span.duration),
        status: status.to_owned(),
        error_class: span.error_class.clone(),
        error_message: described.or_else(|| span.error_message.clone()),
        attributes: span.attributes.iter().cloned().collect(),
        events: span.events.clone(),
    }
}
