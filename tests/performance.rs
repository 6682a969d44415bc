//! The performance monitor fires at its thresholds and not below.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tasker_telemetry::performance::PerformanceMonitor;
use tasker_telemetry::{Telemetry, TelemetryConfig, subscriber};

fn busy(millis: u64) {
    let until = Instant::now() + Duration::from_millis(millis);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Event name, operation, value, threshold.
type Seen = Arc<Mutex<Vec<(String, String, f64, f64)>>>;

fn setup(config: TelemetryConfig) -> (Telemetry, PerformanceMonitor, Seen) {
    let telemetry = Telemetry::new(config).unwrap();
    let monitor = PerformanceMonitor::new(&telemetry).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["performance.slow_operation", "memory.spike_detected"],
            subscriber::from_fn("perf", move |e| {
                let get = |k| e.get(k).and_then(|v| v.as_f64()).unwrap();
                let op = e
                    .get("operation")
                    .and_then(|v| v.as_str())
                    .unwrap()
                    .to_owned();
                sink.lock().unwrap().push((
                    e.name().to_string(),
                    op,
                    get("value"),
                    get("threshold"),
                ));
            }),
        )
        .unwrap();
    (telemetry, monitor, seen)
}

#[test]
fn slow_operations_fire_above_the_threshold_only() {
    let config = TelemetryConfig::builder()
        .slow_query_threshold_seconds(0.05)
        .build()
        .unwrap();
    let (telemetry, monitor, seen) = setup(config);
    monitor.measure("fast.op", None, || busy(5));
    monitor.measure("slow.op", None, || busy(80));
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let (name, op, value, threshold) = &events[0];
    assert_eq!(
        (name.as_str(), op.as_str(), *threshold),
        ("performance.slow_operation", "slow.op", 0.05)
    );
    assert!(*value >= 0.08);
    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    assert!(text.contains("tasker_operation_duration_seconds_count{operation=\"fast.op\"} 1"));
    assert!(text.contains("tasker_operation_duration_seconds_count{operation=\"slow.op\"} 1"));
}

#[test]
fn memory_spikes_fire_above_the_threshold_only() {
    let config = TelemetryConfig::builder()
        .memory_threshold_mb(32)
        .build()
        .unwrap();
    let (_telemetry, monitor, seen) = setup(config);
    // Touched (non-zero) memory, kept alive past the measurement.
    let small = monitor.measure("small.alloc", None, || vec![1u8; 4 * 1024 * 1024]);
    let large = monitor.measure("large.alloc", None, || vec![1u8; 96 * 1024 * 1024]);
    let events = seen.lock().unwrap().clone();
    let spikes: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "memory.spike_detected")
        .collect();
    assert_eq!(spikes.len(), 1, "{events:?}");
    assert_eq!(spikes[0].1, "large.alloc");
    assert!(spikes[0].2 > 32.0 && spikes[0].3 == 32.0);
    drop((small, large));
}
