//! The registry under load: exact totals under contention, the cardinality cap, and the
//! standard metrics the scopes record.

use std::sync::Arc;

use tasker_telemetry::metrics::{MetricsRegistry, OVERFLOW_LABEL_VALUE, SeriesValue};
use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::{TaskScope, Telemetry};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn eight_threads_a_million_updates_each_totals_exact() {
    const THREADS: u64 = 8;
    const N: u64 = 1_000_000;
    let registry = Arc::new(MetricsRegistry::new());
    let counter = registry
        .counter("load_total", "load", &["kind"])
        .unwrap()
        .with(&["x"]);
    let histogram = registry
        .histogram("load_seconds", "load", Some("seconds"), &[], None)
        .unwrap()
        .with(&[]);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (counter, histogram) = (counter.clone(), histogram.clone());
            std::thread::spawn(move || {
                for i in 0..N {
                    counter.inc();
                    // Values alternate between two buckets; 0.25 and 0.5 are exact in binary,
                    // so the sum is exact too.
                    histogram.observe(if (i + t) % 2 == 0 { 0.25 } else { 0.5 });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(counter.get(), THREADS * N);
    assert_eq!(histogram.count(), THREADS * N);
    let snapshot = registry.snapshot();
    let family = snapshot
        .families
        .iter()
        .find(|f| f.name == "load_seconds")
        .unwrap();
    let SeriesValue::Histogram {
        buckets,
        sum,
        count,
    } = &family.series[0].value
    else {
        panic!()
    };
    assert_eq!(*count, THREADS * N);
    assert_eq!(*sum, (THREADS * N / 2) as f64 * 0.75);
    let le = |b: f64| buckets.iter().find(|(le, _)| *le == b).unwrap().1;
    assert_eq!(le(0.25), THREADS * N / 2);
    assert_eq!(le(0.5), THREADS * N);
}

#[test]
fn a_million_task_names_stay_at_the_cap_plus_one() {
    let registry = MetricsRegistry::with_cardinality_cap(10_000);
    let tasks = registry
        .counter("tasks_total", "tasks", &["task_name"])
        .unwrap();
    // Warm up the allocator with the first series, then measure.
    tasks.with(&["warm-up"]).inc();
    let before = resident_bytes();
    for i in 0..1_000_000u32 {
        tasks.with(&[&format!("task-{i}")]).inc();
    }
    let grown = resident_bytes().saturating_sub(before);
    let snapshot = registry.snapshot();
    let family = snapshot
        .families
        .iter()
        .find(|f| f.name == "tasks_total")
        .unwrap();
    assert_eq!(family.series.len(), 10_001, "cap + one overflow series");
    let overflow = family
        .series
        .iter()
        .find(|s| s.label_values == [OVERFLOW_LABEL_VALUE])
        .unwrap();
    // 10,000 series: "warm-up" and task-0..task-9998; the rest folded.
    assert_eq!(
        overflow.value,
        SeriesValue::Counter((1_000_000 - 9_999) as f64)
    );
    let counted = snapshot
        .families
        .iter()
        .find(|f| f.name == "tasker_metrics_overflow_total")
        .unwrap();
    assert_eq!(
        counted.series[0].value,
        SeriesValue::Counter((1_000_000 - 9_999) as f64)
    );
    assert!(
        grown < 64 * 1024 * 1024,
        "resident memory grew {grown} bytes"
    );
}

#[test]
fn scopes_record_the_standard_metrics() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let ok = TaskScope::new(&telemetry, "1", "checkout");
    ok.start();
    let step = ok.step("1-1", "charge").with_retry_limit(2);
    step.attempt(1)
        .fail_with(&Failure::new("timeout", "Timeout"));
    step.attempt(2).complete(&1);
    ok.complete(StepCounts {
        total: 1,
        completed: 1,
        ..Default::default()
    });
    let bad = TaskScope::new(&telemetry, "2", "checkout");
    bad.start();
    let step = bad.step("2-1", "charge");
    step.attempt(1)
        .fail_with(&Failure::new("declined", "Declined"));
    bad.fail(
        &Failure::new("charge failed", "StepFailed"),
        StepCounts::default(),
    );
    bad.fail(&Failure::new("twice", "StepFailed"), StepCounts::default());

    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    for line in [
        "tasker_tasks_started_total{task_name=\"checkout\"} 2",
        "tasker_tasks_total{task_name=\"checkout\",status=\"completed\"} 1",
        "tasker_tasks_total{task_name=\"checkout\",status=\"failed\"} 1",
        "tasker_steps_total{task_name=\"checkout\",step_name=\"charge\",status=\"completed\"} 1",
        "tasker_steps_total{task_name=\"checkout\",step_name=\"charge\",status=\"failed\"} 2",
        "tasker_step_retries_total{task_name=\"checkout\",step_name=\"charge\"} 1",
        "tasker_step_max_retries_reached_total{task_name=\"checkout\",step_name=\"charge\"} 1",
        "tasker_tasks_active 0",
        "tasker_steps_active{step_name=\"charge\"} 0",
        "tasker_step_duration_seconds_count{task_name=\"checkout\",step_name=\"charge\",status=\"failed\"} 2",
        "tasker_workflow_duration_seconds_count{task_name=\"checkout\"} 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("tsk_"),
        "a correlation id is never a metric label"
    );
    assert!(
        !text.contains("task_id") && !text.contains("declined"),
        "no ids or error text in labels"
    );
    assert!(text.contains("tasker_build_info{version=\""));
}
