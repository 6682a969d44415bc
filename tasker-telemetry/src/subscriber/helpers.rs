//! The helpers of Tasker's `BaseSubscriber`, typed: safe key access, core / step attributes,
//! timing, error and performance metrics, metric tags and names, numeric extraction.
//!
//! ```
//! use tasker_telemetry::event::{names, Event};
//! use tasker_telemetry::payload::ErrorPayload;
//! use tasker_telemetry::subscriber::helpers::{self, ErrorType};
//!
//! let mut p = ErrorPayload::for_task("42", "checkout", "upstream timed out after 30s", "GatewayTimeout");
//! p.attempt_number = Some(3);
//! p.retry_limit = Some(3);
//! let event = Event::new(names::STEP_FAILED, p);
//!
//! let errors = helpers::error_metrics(&event);
//! assert_eq!(errors.error_type, ErrorType::Timeout);
//! assert!(errors.final_failure);
//! assert_eq!(helpers::number(&event, "attempt_number", 0.0), 3.0);
//! ```

use std::fmt;

use crate::event::Event;
use crate::payload::Value;
use crate::timestamp::Timestamp;

/// The text under `key`, or `default` when the key is missing or not text (Tasker's `safe_get`).
pub fn get_str<'a>(event: &'a Event<'_>, key: &str, default: &'a str) -> &'a str {
    event.get(key).and_then(|v| v.as_str()).unwrap_or(default)
}

/// The number under `key` (numbers, or text that parses as one), or `default` (Tasker's
/// `extract_numeric_metric`). Non-finite values count as missing.
pub fn number(event: &Event<'_>, key: &str, default: f64) -> f64 {
    event
        .get(key)
        .and_then(|v| v.as_f64())
        .filter(|n| n.is_finite())
        .unwrap_or(default)
}

/// The whole number under `key`, or `default`.
pub fn integer(event: &Event<'_>, key: &str, default: u64) -> u64 {
    event.get(key).and_then(|v| v.as_u64()).unwrap_or(default)
}

/// The attributes every event has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreAttributes<'a> {
    /// The event's name.
    pub event_type: &'a str,
    /// When it was published.
    pub timestamp: Timestamp,
    /// The task's id, if the event concerns a task.
    pub task_id: Option<&'a str>,
    /// The task's name.
    pub task_name: Option<&'a str>,
    /// The step's id, if the event concerns a step.
    pub step_id: Option<&'a str>,
    /// The step's name.
    pub step_name: Option<&'a str>,
}

/// Reads the core attributes (Tasker's `extract_core_attributes`).
pub fn core_attributes<'e>(event: &'e Event<'_>) -> CoreAttributes<'e> {
    let s = |k| event.get(k).and_then(|v: Value<'_>| v.as_str());
    CoreAttributes {
        event_type: event.name().as_str(),
        timestamp: event.timestamp(),
        task_id: s("task_id"),
        task_name: s("task_name"),
        step_id: s("step_id"),
        step_name: s("step_name"),
    }
}

/// The attributes of a step event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepAttributes<'a> {
    /// The step's id.
    pub step_id: &'a str,
    /// The step's name.
    pub step_name: &'a str,
    /// Which attempt, from 1 (1 when the event does not say).
    pub attempt_number: u64,
    /// The retry limit (1 when the event does not say).
    pub retry_limit: u64,
}

/// Reads the step attributes, or `None` for events that do not concern a step.
pub fn step_attributes<'e>(event: &'e Event<'_>) -> Option<StepAttributes<'e>> {
    let step_id = event.get("step_id")?.as_str()?;
    Some(StepAttributes {
        step_id,
        step_name: get_str(event, "step_name", "unknown_step"),
        attempt_number: integer(event, "attempt_number", 1),
        retry_limit: integer(event, "retry_limit", 1),
    })
}

/// Timing of the event's subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingMetrics {
    /// Duration in seconds (0 when the event does not say).
    pub execution_duration: f64,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
    /// Steps in the task, for task events.
    pub total_steps: Option<u64>,
    /// Steps completed, for task events.
    pub completed_steps: Option<u64>,
    /// Steps failed, for task events.
    pub failed_steps: Option<u64>,
}

/// Reads timing metrics (Tasker's `extract_timing_metrics`).
pub fn timing_metrics(event: &Event<'_>) -> TimingMetrics {
    let ts = |k| match event.get(k) {
        Some(Value::Timestamp(t)) => Some(t),
        _ => None,
    };
    let n = |k| event.get(k).and_then(|v: Value<'_>| v.as_u64());
    TimingMetrics {
        execution_duration: number(event, "execution_duration", 0.0),
        started_at: ts("started_at"),
        completed_at: ts("completed_at"),
        total_steps: n("total_steps"),
        completed_steps: n("completed_steps"),
        failed_steps: n("failed_steps"),
    }
}

/// The kind of an error, for alerting and metric labels (a bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Something took too long.
    Timeout,
    /// A connection could not be made or was lost.
    Network,
    /// Something looked up was not there.
    NotFound,
    /// Authentication or authorisation was refused.
    Auth,
    /// A rate limit or throttle was hit.
    RateLimit,
    /// The request was wrong (4xx-like).
    ClientError,
    /// The other side failed (5xx-like).
    ServerError,
    /// A bug or invariant violation in the step itself (panics included).
    Runtime,
    /// Anything else.
    Other,
}

impl ErrorType {
    /// The label value (`timeout`, `network`, `not_found`, `auth`, `rate_limit`, `client_error`,
    /// `server_error`, `runtime`, `other`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::Network => "network",
            ErrorType::NotFound => "not_found",
            ErrorType::Auth => "auth",
            ErrorType::RateLimit => "rate_limit",
            ErrorType::ClientError => "client_error",
            ErrorType::ServerError => "server_error",
            ErrorType::Runtime => "runtime",
            ErrorType::Other => "other",
        }
    }

    /// Classifies an error by its class name and message, ASCII case-insensitively. The class is
    /// consulted first; the first matching rule wins, in the order of the variants above (so a
    /// "connection timed out" is a timeout, not a network error).
    pub fn classify(error_class: &str, error_message: &str) -> ErrorType {
        Self::from_text(error_class)
            .or_else(|| Self::from_text(error_message))
            .unwrap_or(ErrorType::Other)
    }

    fn from_text(text: &str) -> Option<ErrorType> {
        const RULES: &[(ErrorType, &[&str])] = &[
            (
                ErrorType::Timeout,
                &["timeout", "timed out", "timedout", "deadline", "elapsed"],
            ),
            (
                ErrorType::Network,
                &[
                    "network",
                    "connection",
                    "connect",
                    "socket",
                    "dns",
                    "unreachable",
                    "broken pipe",
                    "reset by peer",
                ],
            ),
            (
                ErrorType::NotFound,
                &["notfound", "not_found", "not found", "404", "no such"],
            ),
            (
                ErrorType::Auth,
                &[
                    "unauthorized",
                    "unauthorised",
                    "forbidden",
                    "permission",
                    "auth",
                    "401",
                    "403",
                    "credential",
                ],
            ),
            (
                ErrorType::RateLimit,
                &[
                    "ratelimit",
                    "rate_limit",
                    "rate limit",
                    "throttl",
                    "too many requests",
                    "429",
                ],
            ),
            (
                ErrorType::ClientError,
                &[
                    "client",
                    "badrequest",
                    "bad_request",
                    "bad request",
                    "invalid",
                    "400",
                    "422",
                ],
            ),
            (
                ErrorType::ServerError,
                &[
                    "server",
                    "internal",
                    "unavailable",
                    "bad gateway",
                    "500",
                    "502",
                    "503",
                    "504",
                ],
            ),
            (
                ErrorType::Runtime,
                &[
                    "panic",
                    "runtime",
                    "overflow",
                    "unwrap",
                    "assertion",
                    "index out of bounds",
                ],
            ),
        ];
        RULES
            .iter()
            .find(|(_, needles)| needles.iter().any(|n| contains_ignore_case(text, n)))
            .map(|(t, _)| *t)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What a failure event says about the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMetrics<'a> {
    /// The classified kind of error.
    pub error_type: ErrorType,
    /// The error's class (`unknown` when absent).
    pub error_class: &'a str,
    /// The error's message (empty when absent).
    pub error_message: &'a str,
    /// Which attempt failed (1 when absent).
    pub attempt_number: u64,
    /// The retry limit (1 when absent).
    pub retry_limit: u64,
    /// Whether this was the last attempt: `attempt_number >= retry_limit`.
    pub final_failure: bool,
}

/// Reads error metrics (Tasker's `extract_error_metrics`).
pub fn error_metrics<'e>(event: &'e Event<'_>) -> ErrorMetrics<'e> {
    let error_class = get_str(event, "error_class", "unknown");
    let error_message = get_str(event, "error_message", "");
    let attempt_number = integer(event, "attempt_number", 1);
    let retry_limit = integer(event, "retry_limit", 1);
    ErrorMetrics {
        error_type: ErrorType::classify(error_class, error_message),
        error_class,
        error_message,
        attempt_number,
        retry_limit,
        final_failure: attempt_number >= retry_limit,
    }
}

/// What a performance event says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerformanceMetrics<'a> {
    /// The operation measured (`unknown` when absent).
    pub operation: &'a str,
    /// The measured value (0 when absent).
    pub value: f64,
    /// The threshold crossed (0 when absent).
    pub threshold: f64,
    /// The unit of both (empty when absent).
    pub unit: &'a str,
    /// The event's duration in seconds, where it carries one (0 otherwise).
    pub execution_duration: f64,
}

/// Reads performance metrics (Tasker's `extract_performance_metrics`).
pub fn performance_metrics<'e>(event: &'e Event<'_>) -> PerformanceMetrics<'e> {
    PerformanceMetrics {
        operation: get_str(event, "operation", "unknown"),
        value: number(event, "value", 0.0),
        threshold: number(event, "threshold", 0.0),
        unit: get_str(event, "unit", ""),
        execution_duration: number(event, "execution_duration", 0.0),
    }
}

/// Bounded tags for metrics backends (Tasker's `extract_metric_tags`): `event_type`,
/// `task_name`, `step_name`, and for failures `error_type`. Never ids, which would make the
/// series count grow without end.
///
/// ```
/// use tasker_telemetry::event::{names, Event};
/// use tasker_telemetry::payload::StepPayload;
/// use tasker_telemetry::subscriber::helpers::metric_tags;
///
/// let e = Event::new(names::STEP_COMPLETED, StepPayload::new("1", "checkout", "1-1", "charge"));
/// assert_eq!(
///     metric_tags(&e),
///     vec![("event_type", "step.completed"), ("task_name", "checkout"), ("step_name", "charge")]
/// );
/// ```
pub fn metric_tags<'e>(event: &'e Event<'_>) -> Vec<(&'static str, &'e str)> {
    let mut tags = vec![("event_type", event.name().as_str())];
    for key in ["task_name", "step_name"] {
        if let Some(v) = event.get(key).and_then(|v| v.as_str()) {
            tags.push((key, v));
        }
    }
    if event.get("error_class").is_some() {
        tags.push(("error_type", error_metrics(event).error_type.as_str()));
    }
    tags
}

/// A metric name from a base and an event name (Tasker's `build_metric_name`):
/// `metric_name("tasker", "step.completed")` is `tasker.step.completed`. Characters outside
/// `[A-Za-z0-9_.]` become `_`.
pub fn metric_name(base: &str, event_type: &str) -> String {
    let raw = if base.is_empty() {
        event_type.to_owned()
    } else {
        format!("{base}.{event_type}")
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The same name in Prometheus form (dots become underscores, lower case):
/// `prometheus_metric_name("tasker", "step.completed")` is `tasker_step_completed`.
pub fn prometheus_metric_name(base: &str, event_type: &str) -> String {
    metric_name(base, event_type)
        .replace('.', "_")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::names;
    use crate::payload::{ErrorPayload, PerformancePayload, StepPayload, TaskPayload};

    #[test]
    fn error_type_classification_table() {
        let cases = [
            ("Net::ReadTimeout", "", ErrorType::Timeout),
            ("reqwest::Error", "operation timed out", ErrorType::Timeout),
            (
                "tokio::time::error::Elapsed",
                "deadline has elapsed",
                ErrorType::Timeout,
            ),
            (
                "std::io::Error",
                "Connection refused (os error 111)",
                ErrorType::Network,
            ),
            (
                "hyper::Error",
                "connection reset by peer",
                ErrorType::Network,
            ),
            ("ConnectionTimeout", "", ErrorType::Timeout),
            ("RecordNotFound", "", ErrorType::NotFound),
            ("ApiError", "HTTP 404: no such cart", ErrorType::NotFound),
            ("AuthenticationError", "", ErrorType::Auth),
            ("ApiError", "403 Forbidden", ErrorType::Auth),
            ("RateLimitExceeded", "", ErrorType::RateLimit),
            ("ApiError", "429 Too Many Requests", ErrorType::RateLimit),
            ("ApiError", "request throttled", ErrorType::RateLimit),
            ("ClientError", "", ErrorType::ClientError),
            (
                "ValidationError",
                "invalid card number",
                ErrorType::ClientError,
            ),
            ("ApiError", "HTTP 400 bad request", ErrorType::ClientError),
            ("InternalServerError", "", ErrorType::ServerError),
            (
                "ApiError",
                "503 Service Unavailable",
                ErrorType::ServerError,
            ),
            ("panic", "process() panicked", ErrorType::Runtime),
            ("RuntimeError", "", ErrorType::Runtime),
            ("PaymentDeclined", "card declined", ErrorType::Other),
            ("", "", ErrorType::Other),
        ];
        for (class, message, want) in cases {
            assert_eq!(
                ErrorType::classify(class, message),
                want,
                "{class:?} / {message:?}"
            );
        }
        for t in [
            ErrorType::Timeout,
            ErrorType::NotFound,
            ErrorType::RateLimit,
            ErrorType::Other,
        ] {
            assert_eq!(t.to_string(), t.as_str());
        }
    }

    fn failed(attempt: Option<u32>, limit: Option<u32>) -> Event<'static> {
        let mut p = ErrorPayload::for_task("1", "t", "boom", "PaymentDeclined");
        p.step_id = Some("1-1".into());
        p.attempt_number = attempt;
        p.retry_limit = limit;
        Event::new(names::STEP_FAILED, p)
    }

    #[test]
    fn final_failure_when_attempts_exhausted() {
        assert!(!error_metrics(&failed(Some(1), Some(3))).final_failure);
        assert!(!error_metrics(&failed(Some(2), Some(3))).final_failure);
        assert!(error_metrics(&failed(Some(3), Some(3))).final_failure);
        assert!(error_metrics(&failed(Some(4), Some(3))).final_failure);
        // Absent numbers default to 1 of 1: a single-attempt step's failure is final.
        assert!(error_metrics(&failed(None, None)).final_failure);
        let event = failed(Some(2), Some(5));
        let m = error_metrics(&event);
        assert_eq!(
            (m.attempt_number, m.retry_limit, m.error_class),
            (2, 5, "PaymentDeclined")
        );
    }

    #[test]
    fn tags_are_bounded_and_include_error_type() {
        let event = failed(Some(1), Some(3));
        let tags = metric_tags(&event);
        assert_eq!(
            tags,
            vec![
                ("event_type", "step.failed"),
                ("task_name", "t"),
                ("error_type", "other")
            ]
        );
        assert!(tags.iter().all(|(k, _)| !k.ends_with("_id")));
        let task = Event::new(names::TASK_COMPLETED, TaskPayload::new("1", "t"));
        assert_eq!(
            metric_tags(&task),
            vec![("event_type", "task.completed"), ("task_name", "t")]
        );
    }

    #[test]
    fn metric_names() {
        assert_eq!(
            metric_name("tasker", "step.completed"),
            "tasker.step.completed"
        );
        assert_eq!(metric_name("", "task.failed"), "task.failed");
        assert_eq!(
            metric_name("my app", "order.fraud-flag"),
            "my_app.order.fraud_flag"
        );
        assert_eq!(
            prometheus_metric_name("Tasker", "step.completed"),
            "tasker_step_completed"
        );
    }

    #[test]
    fn numeric_extraction_with_defaults() {
        let mut p = StepPayload::new("1", "t", "1-1", "s");
        p.execution_duration = Some(1.25);
        p.attempt_number = 2;
        let e = Event::new(names::STEP_COMPLETED, p);
        assert_eq!(number(&e, "execution_duration", 0.0), 1.25);
        assert_eq!(number(&e, "attempt_number", 0.0), 2.0);
        assert_eq!(number(&e, "missing", 7.5), 7.5);
        assert_eq!(
            number(&e, "step_name", 7.5),
            7.5,
            "text that is not a number"
        );
        assert_eq!(integer(&e, "retry_limit", 9), 1);
        assert_eq!(integer(&e, "missing", 9), 9);
        let mut f = crate::payload::Fields::new();
        f.insert("count", "12").insert("nan", f64::NAN);
        let e = Event::new(names::TASKER_TELEMETRY_EXPORT_COMPLETED, f);
        assert_eq!(number(&e, "count", 0.0), 12.0, "numeric text parses");
        assert_eq!(number(&e, "nan", 3.0), 3.0);
    }

    #[test]
    fn attributes_and_safe_get() {
        let e = Event::new(
            names::STEP_COMPLETED,
            StepPayload::new("1", "t", "1-1", "s"),
        );
        let core = core_attributes(&e);
        assert_eq!(
            (core.event_type, core.task_id, core.step_name),
            ("step.completed", Some("1"), Some("s"))
        );
        let step = step_attributes(&e).unwrap();
        assert_eq!(
            (step.step_id, step.attempt_number, step.retry_limit),
            ("1-1", 1, 1)
        );
        let task = Event::new(names::TASK_COMPLETED, TaskPayload::new("1", "t"));
        assert!(step_attributes(&task).is_none());
        assert_eq!(get_str(&task, "step_name", "n/a"), "n/a");
        assert_eq!(get_str(&task, "task_name", "n/a"), "t");
    }

    #[test]
    fn timing_and_performance() {
        let mut p = TaskPayload::new("1", "t");
        p.execution_duration = Some(3.5);
        p.total_steps = Some(5);
        let timing = timing_metrics(&Event::new(names::TASK_COMPLETED, p));
        assert_eq!(
            (
                timing.execution_duration,
                timing.total_steps,
                timing.failed_steps
            ),
            (3.5, Some(5), None)
        );
        let perf = Event::new(
            names::PERFORMANCE_SLOW_OPERATION,
            PerformancePayload::new("step.x", 2.0, 1.0, "seconds"),
        );
        let m = performance_metrics(&perf);
        assert_eq!(
            (m.operation, m.value, m.threshold, m.unit),
            ("step.x", 2.0, 1.0, "seconds")
        );
    }
}
