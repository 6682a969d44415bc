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

/// `levels` arrays nested inside each other around `{"password": "hunter2"}`, built without
/// recursion.
fn nested(levels: usize) -> serde_json::Value {
    let mut value = serde_json::json!({"password": "hunter2", "note": "ada@example.com"});
    for _ in 0..levels {
        value = serde_json::Value::Array(vec![value]);
    }
    value
}

/// Takes `value` apart without recursion (a deep value's own drop would recurse once per level).
fn dismantle(value: serde_json::Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            serde_json::Value::Array(items) => pending.extend(items),
            serde_json::Value::Object(map) => pending.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn too_deep_series(telemetry: &Telemetry) -> u64 {
    prometheus_text(&telemetry.metrics().snapshot())
        .lines()
        .find(|l| {
            l.starts_with("tasker_telemetry_dropped_total{") && l.contains("reason=\"too_deep\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Returns results nested 10,000 levels deep, whatever its task.
struct DeepResults;

#[tasker_telemetry::step_handler]
impl DeepResults {
    fn process(&self) -> Result<DeepResult, tasker_telemetry::StepError> {
        Ok(DeepResult(nested(10_000)))
    }
}

/// A user's results type around a value of any depth: serialised by its own `Serialize`, and
/// taken apart without recursion when dropped.
#[derive(serde::Serialize)]
struct DeepResult(serde_json::Value);

impl Drop for DeepResult {
    fn drop(&mut self) {
        dismantle(std::mem::take(&mut self.0));
    }
}

#[test]
fn deeply_nested_values_are_cut_at_the_bound_and_counted_by_the_filter_and_the_payloads() {
    use tasker_telemetry::filter::{DEPTH_MASK, MAX_VALUE_DEPTH};
    for levels in [10_000, 100_000] {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let filter = telemetry.filter().clone();
        let (deep, mut twin) = (nested(levels), nested(levels));
        let (copy, deep) = on_small_stack(move || {
            let copy = filter.filtered(&deep);
            filter.filter_in_place(&mut twin);
            // Cut in place: what is left is shallow enough to drop as it is.
            drop(twin);
            (copy, deep)
        });
        let mut depth = 0;
        let mut innermost = &copy;
        while let serde_json::Value::Array(items) = innermost {
            depth += 1;
            innermost = &items[0];
        }
        assert_eq!(depth, MAX_VALUE_DEPTH, "{levels} levels");
        assert_eq!(innermost, &serde_json::json!(DEPTH_MASK));
        assert_eq!(telemetry.filter().depth_truncations(), 2, "{levels} levels");
        dismantle(copy);
        dismantle(deep);
    }
}

#[test]
fn the_runner_takes_deep_contexts_and_refuses_deep_results_on_its_worker_threads() {
    use tasker_telemetry::workflow::{StepDef, StepState, TaskStatus, Workflow};
    for levels in [10_000, 100_000] {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let events = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = events.clone();
        telemetry
            .publisher()
            .subscribe(
                &["*"],
                subscriber::from_fn("every_event", move |event: &Event<'_>| {
                    let json = serde_json::to_vec(event).expect("an event serialises");
                    sink.lock().unwrap().extend_from_slice(&json);
                }),
            )
            .unwrap();
        let workflow = Workflow::builder("deep_flow")
            .handler(DeepResults)
            .step(StepDef::new("deep_results"))
            .build()
            .unwrap();
        // Worker threads with tokio's default stack: what a user's runtime has.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let outcome = runtime.block_on(workflow.run(&telemetry, "deep-1", nested(levels)));
        // Results deeper than JSON readers take are refused whole, saying why: never cut, as
        // the work's own data, and never a stack overflow.
        assert_eq!(outcome.status, TaskStatus::Failed, "{levels}");
        assert_eq!(outcome.steps["deep_results"], StepState::Failed);
        let error = &outcome.errors["deep_results"];
        assert!(
            error.contains("nests deeper than 128 levels"),
            "{levels}: {error}"
        );
        runtime.shutdown_background();
        let events = events.lock().unwrap();
        let text = String::from_utf8_lossy(&events);
        assert!(
            text.contains("[TOO DEEP]"),
            "{levels}: the events carry the cut context"
        );
        assert!(!text.contains("hunter2") && !text.contains("ada@example.com"));
        assert!(too_deep_series(&telemetry) >= 1, "{levels}");
    }
}
