//! The performance monitor: measures any wrapped operation's duration and, where the platform
//! tells (Linux `/proc`), its resident-memory growth; publishes `performance.slow_operation`
//! above `slow_query_threshold_seconds` and `memory.spike_detected` above `memory_threshold_mb`;
//! records `tasker_operation_duration_seconds{operation}`. Every step attempt is measured
//! automatically (duration; memory is measured per task by the runner).

use std::time::Instant;

use crate::metrics::{HistogramVec, MetricsError};
use crate::scope::TaskScope;
use crate::scope::thresholds::{Subject, check_memory_growth, check_slow};
use crate::telemetry::Telemetry;

/// Resident memory of this process in megabytes, when the platform tells.
///
/// ```
/// if let Some(mb) = tasker_telemetry::performance::resident_megabytes() {
///     assert!(mb > 0.0);
/// }
/// ```
pub fn resident_megabytes() -> Option<f64> {
    let pages = statm::resident_pages()?;
    Some(pages as f64 * 4096.0 / (1024.0 * 1024.0))
}

/// `/proc/self/statm`, kept open: one `pread` per reading instead of an open, a read and a
/// close, which the runner would pay twice per task.
#[cfg(target_os = "linux")]
mod statm {
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::sync::OnceLock;

    static STATM: OnceLock<Option<File>> = OnceLock::new();

    /// The second field of `/proc/self/statm`: resident pages.
    pub(super) fn resident_pages() -> Option<u64> {
        let file = STATM
            .get_or_init(|| File::open("/proc/self/statm").ok())
            .as_ref()?;
        // Seven numbers of at most 20 digits each, with separators.
        let mut buf = [0u8; 160];
        let len = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..len]).ok()?;
        text.split_ascii_whitespace().nth(1)?.parse().ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod statm {
    pub(super) fn resident_pages() -> Option<u64> {
        None
    }
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
        let subject = Subject { task, step: None };
        check_slow(&self.telemetry, || operation.to_owned(), seconds, &subject);
        if let (Some(before), Some(after)) = (memory_before, resident_megabytes()) {
            check_memory_growth(
                &self.telemetry,
                || operation.to_owned(),
                after - before,
                &subject,
            );
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
