//! The thresholds a measured duration or memory growth is held to: `performance.slow_operation`
//! above `slow_query_threshold_seconds`, `memory.spike_detected` above `memory_threshold_mb`
//! (performance monitoring on). Every step attempt is held to them here; the
//! [`PerformanceMonitor`](crate::performance::PerformanceMonitor) and the runner use the same.

use crate::event::names;
use crate::payload::PerformancePayload;
use crate::scope::TaskScope;
use crate::telemetry::Telemetry;

/// What a performance event concerns: a task, and maybe one of its steps (id, name).
pub(crate) struct Subject<'a> {
    pub(crate) task: Option<&'a TaskScope>,
    pub(crate) step: Option<(&'a str, &'a str)>,
}

/// Publishes `performance.slow_operation` when `seconds` exceeds `slow_query_threshold_seconds`
/// (performance monitoring on). The operation name is built only then.
pub(crate) fn check_slow(
    telemetry: &Telemetry,
    operation: impl FnOnce() -> String,
    seconds: f64,
    subject: &Subject<'_>,
) {
    let config = telemetry.config();
    if config.performance_monitoring_enabled && seconds > config.slow_query_threshold_seconds {
        let threshold = config.slow_query_threshold_seconds;
        publish(
            telemetry,
            names::PERFORMANCE_SLOW_OPERATION,
            subject,
            || PerformancePayload::new(operation(), seconds, threshold, "seconds"),
        );
    }
}

/// Publishes `memory.spike_detected` when resident memory grew by more than
/// `memory_threshold_mb` (performance monitoring on).
pub(crate) fn check_memory_growth(
    telemetry: &Telemetry,
    operation: impl FnOnce() -> String,
    grown_mb: f64,
    subject: &Subject<'_>,
) {
    let config = telemetry.config();
    let threshold = config.memory_threshold_mb as f64;
    if config.performance_monitoring_enabled && grown_mb > threshold {
        publish(telemetry, names::MEMORY_SPIKE_DETECTED, subject, || {
            PerformancePayload::new(operation(), grown_mb, threshold, "megabytes")
        });
    }
}

fn publish(
    telemetry: &Telemetry,
    event: crate::EventName,
    subject: &Subject<'_>,
    build: impl FnOnce() -> PerformancePayload,
) {
    let payload = || {
        let mut p = build();
        if let Some(task) = subject.task {
            p.task_id = Some(task.id().into());
            p.task_name = Some(task.name().into());
        }
        if let Some((id, name)) = subject.step {
            p.step_id = Some(id.into());
            p.step_name = Some(name.into());
        }
        p
    };
    match subject.task {
        Some(task) => telemetry
            .publisher()
            .publish_correlated(event, task.corr(), payload),
        None => telemetry.publisher().publish_with(event, payload),
    };
}
