//! The performance monitor: measures any wrapped operation's duration and, where the platform
//! tells (Linux `/proc`), its resident-memory growth; publishes `performance.slow_operation`
//! above `slow_query_threshold_seconds` and `memory.spike_detected` above `memory_threshold_mb`;
//! records `tasker_operation_duration_seconds{operation}`. Every step attempt is measured
//! automatically (duration; memory is measured per task by the runner).

use std::time::Instant;

use crate::event::names;
use crate::metrics::{HistogramVec, MetricsError};
use crate::payload::PerformancePayload;
use crate::scope::TaskScope;
use crate::telemetry::Telemetry;

/// Resident memory of this process in megabytes, when the platform tells.
pub fn resident_megabytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

/// Measures operations; see the module docs.
///
/// ```
/// use tasker_telemetry::performance::PerformanceMonitor;
/// use tasker_telemetry::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default())?;
/// let monitor = PerformanceMonitor::new(&telemetry)?;
/// let rows = monitor.measure("db.load_cart", None, || 42);
/// assert_eq!(rows, 42);
/// let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
/// assert!(text.contains("tasker_operation_duration_seconds_count{operation=\"db.load_cart\"} 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PerformanceMonitor {
    telemetry: Telemetry,
    durations: HistogramVec,
}

impl PerformanceMonitor {
    /// A monitor reporting through `telemetry`.
    pub fn new(telemetry: &Telemetry) -> Result<Self, MetricsError> {
        Ok(Self {
            telemetry: telemetry.clone(),
            durations: operation_histogram(telemetry)?,
        })
    }

    /// Runs `operation`, measuring it; `task` adds task context to the events.
    pub fn measure<T>(
        &self,
        operation: &str,
        task: Option<&TaskScope>,
        f: impl FnOnce() -> T,
    ) -> T {
        let memory_before = resident_megabytes();
        let started = Instant::now();
        let out = f();
        self.report(
            operation,
            task,
            started.elapsed().as_secs_f64(),
            memory_before,
        );
        out
    }

    /// Awaits `future`, measuring it like [`measure`](Self::measure).
    pub async fn measure_async<F: Future>(
        &self,
        operation: &str,
        task: Option<&TaskScope>,
        future: F,
    ) -> F::Output {
        let memory_before = resident_megabytes();
        let started = Instant::now();
        let out = future.await;
        self.report(
            operation,
            task,
            started.elapsed().as_secs_f64(),
            memory_before,
        );
        out
    }

    fn report(
        &self,
        operation: &str,
        task: Option<&TaskScope>,
        seconds: f64,
        memory_before: Option<f64>,
    ) {
        self.durations.with(&[operation]).observe(seconds);
        let config = self.telemetry.config();
        if !config.performance_monitoring_enabled {
            return;
        }
        let publisher = self.telemetry.publisher();
        let with_task = |mut p: PerformancePayload| {
            if let Some(t) = task {
                p.task_id = Some(t.id().into());
                p.task_name = Some(t.name().into());
            }
            p
        };
        if seconds > config.slow_query_threshold_seconds {
            publisher.publish_with(names::PERFORMANCE_SLOW_OPERATION, || {
                with_task(PerformancePayload::new(
                    operation.to_owned(),
                    seconds,
                    config.slow_query_threshold_seconds,
                    "seconds",
                ))
            });
        }
        if let (Some(before), Some(after)) = (memory_before, resident_megabytes()) {
            let grown = after - before;
            if grown > config.memory_threshold_mb as f64 {
                publisher.publish_with(names::MEMORY_SPIKE_DETECTED, || {
                    with_task(PerformancePayload::new(
                        operation.to_owned(),
                        grown,
                        config.memory_threshold_mb as f64,
                        "megabytes",
                    ))
                });
            }
        }
    }
}

pub(crate) fn operation_histogram(telemetry: &Telemetry) -> Result<HistogramVec, MetricsError> {
    telemetry.metrics().histogram(
        "tasker_operation_duration_seconds",
        "Duration of measured operations (every step attempt, and whatever the performance monitor wraps), in seconds.",
        Some("seconds"),
        &["operation"],
        None,
    )
}
