//! Hostile input that must never abort, hang or grow without bound: each case runs as a user's
//! code would provoke it, and checks that the work finishes and the excess is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tasker_telemetry::event::names;
use tasker_telemetry::metrics::prometheus_text;
use tasker_telemetry::payload::TaskPayload;
use tasker_telemetry::publisher::{MAX_DELIVERY_DEPTH, MAX_NESTED_PUBLISHES};
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

#[test]
fn a_subscriber_that_republishes_what_it_handles_is_stopped_at_the_depth_bound() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let publisher = telemetry.publisher().clone();
    let seen = Arc::new(AtomicU64::new(0));
    let (echo, count) = (publisher.clone(), seen.clone());
    publisher
        .subscribe(
            &["task.completed"],
            subscriber::from_fn("echo", move |event| {
                count.fetch_add(1, Ordering::Relaxed);
                echo.publish(event.clone());
            }),
        )
        .unwrap();
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
    let seen = Arc::new(AtomicU64::new(0));
    let (echo, count) = (publisher.clone(), seen.clone());
    publisher
        .subscribe(
            &["task.completed"],
            subscriber::from_fn("fork", move |event| {
                count.fetch_add(1, Ordering::Relaxed);
                echo.publish(event.clone());
                echo.publish(event.clone());
            }),
        )
        .unwrap();
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
