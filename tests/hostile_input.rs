//! Hostile input that must never abort, hang or grow without bound: each case runs as a user's
//! code would provoke it, and checks that the work finishes and the excess is counted.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use support::process::resident_kb;
use tasker_telemetry::Event;
use tasker_telemetry::event::names;
use tasker_telemetry::metrics::prometheus_text;
use tasker_telemetry::payload::{StepPayload, TaskPayload};
use tasker_telemetry::publisher::{
    DEFAULT_QUEUE_BYTES, MAX_DELIVERY_DEPTH, MAX_NESTED_PUBLISHES, Publisher, SubscribeError,
};
use tasker_telemetry::subscriber::Delivery;
use tasker_telemetry::{Telemetry, TelemetryConfig, subscriber};

/// Runs `f` on a thread with a small stack: a recursion the bound did not stop would overflow it
/// (and abort the process) long before the default 2 MiB would.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn dropped_series(telemetry: &Telemetry) -> String {
    let text = prometheus_text(&telemetry.metrics().snapshot());
    text.lines()
        .find(|l| {
            l.starts_with("tasker_telemetry_dropped_total{")
                && l.contains("reason=\"reentrant_depth\"")
        })
        .unwrap_or_default()
        .to_owned()
}

/// Subscribes to `task.completed` a subscriber that publishes each event it handles `copies`
/// times again; counts what it handles.
fn republisher(publisher: &Publisher, copies: usize) -> Arc<AtomicU64> {
    let seen = Arc::new(AtomicU64::new(0));
    let (echo, count) = (publisher.clone(), seen.clone());
    publisher
        .subscribe(
            &["task.completed"],
            subscriber::from_fn("republisher", move |event| {
                count.fetch_add(1, Ordering::Relaxed);
                for _ in 0..copies {
                    echo.publish(event.clone());
                }
            }),
        )
        .unwrap();
    seen
}

#[test]
fn a_subscriber_that_republishes_what_it_handles_is_stopped_at_the_depth_bound() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let publisher = telemetry.publisher().clone();
    let seen = republisher(&publisher, 1);
    let first = on_small_stack(move || {
        publisher.publish_with(names::TASK_COMPLETED, || TaskPayload::new("t-1", "loop"))
    });
    assert!(first, "the outermost publish is delivered");
    assert_eq!(seen.load(Ordering::Relaxed), u64::from(MAX_DELIVERY_DEPTH));
    let stats = telemetry.publisher().stats();
    assert_eq!(stats.reentrant_dropped, 1, "{stats:?}");
    assert!(
        dropped_series(&telemetry).ends_with(" 1"),
        "{}",
        dropped_series(&telemetry)
    );

    // The bound is per nesting: the next publish from outside is delivered the same way.
    telemetry
        .publisher()
        .publish_with(names::TASK_COMPLETED, || TaskPayload::new("t-2", "loop"));
    assert_eq!(
        seen.load(Ordering::Relaxed),
        2 * u64::from(MAX_DELIVERY_DEPTH)
    );
}

#[test]
fn a_subscriber_that_publishes_two_events_per_event_is_stopped_by_the_budget() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let publisher = telemetry.publisher().clone();
    let seen = republisher(&publisher, 2);
    on_small_stack(move || {
        publisher.publish_with(names::TASK_COMPLETED, || TaskPayload::new("t-1", "fork"))
    });
    // Within the depth bound this would be 2^16 deliveries; the budget stops it at the outermost
    // one and MAX_NESTED_PUBLISHES more.
    assert_eq!(
        seen.load(Ordering::Relaxed),
        1 + u64::from(MAX_NESTED_PUBLISHES)
    );
    let dropped = telemetry.publisher().stats().reentrant_dropped;
    // Each of the 1,025 deliveries tried two publishes: the ones not delivered are counted.
    assert_eq!(
        dropped,
        2 * (1 + u64::from(MAX_NESTED_PUBLISHES)) - u64::from(MAX_NESTED_PUBLISHES)
    );
    assert!(dropped_series(&telemetry).ends_with(&format!(" {dropped}")));
}

#[test]
fn a_stuck_asynchronous_subscriber_holds_at_most_its_queues_bytes() {
    const RESULT_BYTES: usize = 4 << 20;
    const EVENTS: u64 = 60;
    let publisher = Publisher::new();
    // The subscriber takes one event and then waits until the test lets it go.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (gate, entered_tx) = (
        std::sync::Mutex::new(gate),
        std::sync::Mutex::new(entered_tx),
    );
    let handle = publisher
        .subscribe_with(
            &["step.completed"],
            subscriber::from_fn("stuck", move |_| {
                let _ = entered_tx.lock().unwrap().send(());
                let _ = gate.lock().unwrap().recv();
            }),
            Delivery::Asynchronous { capacity: 1024 },
        )
        .unwrap();
    let result = serde_json::json!({ "blob": "x".repeat(RESULT_BYTES) });
    let publish = |i: u64| {
        let mut payload = StepPayload::new("t-1", "big", format!("s-{i}"), "produce");
        payload.step_results = Some(result.clone());
        publisher.publish(Event::new(names::STEP_COMPLETED, payload));
    };
    let before = resident_kb();
    // The first is in the subscriber's hands (off the queue) before the others come.
    publish(0);
    entered
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the subscriber took its first event");
    for i in 1..EVENTS {
        publish(i);
    }
    let grown_mb = (resident_kb() - before) / 1024;
    let stats = handle.stats();
    println!("stuck subscriber: {stats:?}, resident memory +{grown_mb} MB");
    // A queue of 1,024 events, but 64 MiB: 15 events of 4 MiB (and their keys) wait, one more
    // is in the subscriber's hands.
    let fits = 1 + (DEFAULT_QUEUE_BYTES / (RESULT_BYTES + 200)) as u64;
    assert_eq!(stats.dropped, EVENTS - fits, "{stats:?}");
    assert!(
        grown_mb < 2 * (DEFAULT_QUEUE_BYTES >> 20) as i64,
        "resident memory grew {grown_mb} MB"
    );
    // Let go, every queued event is delivered, and the queue takes events again.
    drop(release);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while handle.stats().delivered < fits {
        assert!(std::time::Instant::now() < deadline, "{:?}", handle.stats());
        std::thread::yield_now();
    }
    publish(EVENTS);
    assert_eq!(handle.stats().dropped, EVENTS - fits);
}

#[test]
fn a_queue_the_machine_cannot_hold_is_a_typed_error() {
    let publisher = Publisher::new();
    for delivery in [
        Delivery::Asynchronous { capacity: 1 << 40 },
        Delivery::Asynchronous {
            capacity: usize::MAX,
        },
        Delivery::AsynchronousBounded {
            capacity: 16,
            max_bytes: usize::MAX,
        },
        Delivery::AsynchronousBounded {
            capacity: 16,
            max_bytes: 0,
        },
    ] {
        let refused = publisher
            .subscribe_with(&["task.*"], subscriber::from_fn("big", |_| {}), delivery)
            .unwrap_err();
        assert!(
            matches!(refused, SubscribeError::QueueTooLarge { .. }),
            "{delivery:?}: {refused}"
        );
        assert!(
            refused.to_string().contains("at most 1048576 events"),
            "{refused}"
        );
    }
}

#[test]
fn megabyte_label_values_and_the_overflow_marker_fold_into_the_overflow_series() {
    use tasker_telemetry::metrics::{MAX_LABEL_VALUE_BYTES, OVERFLOW_LABEL_VALUE};
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let hits = telemetry
        .metrics()
        .counter("hostile_hits_total", "Hits.", &["path"])
        .unwrap();
    for i in 0..100 {
        let value = format!("{i}{}", "x".repeat(1 << 20));
        hits.with(&[value.as_str()]).inc();
    }
    hits.with(&[OVERFLOW_LABEL_VALUE]).inc();
    let longest_kept = "y".repeat(MAX_LABEL_VALUE_BYTES);
    hits.with(&[longest_kept.as_str()]).inc();
    let text = prometheus_text(&telemetry.metrics().snapshot());
    // Today's 100 series of 1 MB were 100 MB per scrape.
    assert!(text.len() < 256 * 1024, "a scrape is {} bytes", text.len());
    let mut series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hostile_hits_total{"))
        .collect();
    series.sort_unstable();
    assert_eq!(
        series,
        [
            format!("hostile_hits_total{{path=\"{OVERFLOW_LABEL_VALUE}\"}} 101").as_str(),
            format!("hostile_hits_total{{path=\"{longest_kept}\"}} 1").as_str(),
        ],
        "one overflow series, no duplicate of it"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tasker_metrics_overflow_total{")
                && l.contains("hostile_hits_total")
                && l.ends_with(" 101")),
        "{}",
        text.lines()
            .filter(|l| l.contains("overflow_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
