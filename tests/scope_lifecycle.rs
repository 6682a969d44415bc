//! Task and step scopes publish the lifecycle with full payloads, filtered.

use std::sync::{Arc, Mutex};

use tasker_telemetry::event::names;
use tasker_telemetry::payload::{Payload, Value};
use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::{Event, TaskScope, Telemetry, subscriber};

fn recorder(telemetry: &Telemetry, events: &[&str]) -> Arc<Mutex<Vec<Event<'static>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            events,
            subscriber::from_fn("recorder", move |e| {
                sink.lock().unwrap().push(e.clone().into_owned())
            }),
        )
        .unwrap();
    seen
}

#[derive(Debug)]
struct GatewayTimeout;
impl std::fmt::Display for GatewayTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("gateway timed out")
    }
}
impl std::error::Error for GatewayTimeout {}

#[test]
fn step_attempts_publish_before_handle_then_outcome() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["step.*", "task.*"]);
    let task = TaskScope::new(&telemetry, "42", "order_processing")
        .with_context(serde_json::json!({"cart_id": 7, "customer": {"email": "a@b.c"}}));
    task.start();
    let step = task
        .step("42-2", "process_payment")
        .with_retry_limit(3)
        .with_inputs(serde_json::json!({"amount": 10, "card_token": "tok_live"}));

    let first = step.attempt(1);
    let result: Result<u32, GatewayTimeout> = Err(GatewayTimeout);
    first.finish(&result);
    let second = step.attempt(2);
    second.complete(&serde_json::json!({"charge_id": "ch_1", "api_key": "sk_live"}));
    task.complete(StepCounts {
        total: 1,
        completed: 1,
        failed: 0,
        pending: 0,
    });

    let events = seen.lock().unwrap().clone();
    let order: Vec<&str> = events.iter().map(|e| e.name().as_str()).collect();
    assert_eq!(
        order,
        [
            "task.start_requested",
            "step.before_handle",
            "step.failed",
            "step.before_handle",
            "step.completed",
            "task.completed"
        ]
    );

    let failed = &events[2];
    assert_eq!(
        failed.get("error_message").and_then(|v| v.as_str()),
        Some("gateway timed out")
    );
    assert!(
        failed
            .get("error_class")
            .and_then(|v| v.as_str())
            .unwrap()
            .ends_with("GatewayTimeout")
    );
    assert_eq!(failed.get("attempt_number"), Some(Value::U64(1)));
    assert_eq!(failed.get("retry_limit"), Some(Value::U64(3)));
    assert!(
        failed
            .get("execution_duration")
            .and_then(|v| v.as_f64())
            .is_some()
    );
    let inputs = failed.get("inputs").unwrap();
    assert_eq!(
        inputs,
        Value::Json(&serde_json::json!({"amount": 10, "card_token": "[FILTERED]"}))
    );

    let completed = &events[4];
    assert_eq!(completed.get("attempt_number"), Some(Value::U64(2)));
    let Payload::Step(p) = completed.payload() else {
        panic!("step payload expected")
    };
    assert_eq!(
        p.step_results.as_ref(),
        Some(&serde_json::json!({"charge_id": "ch_1", "api_key": "[FILTERED]"}))
    );
    assert!(p.started_at.unwrap() <= p.completed_at.unwrap());

    let done = &events[5];
    assert_eq!(done.get("total_steps"), Some(Value::U64(1)));
    let json = serde_json::to_value(done).unwrap();
    assert_eq!(json["event_type"], "task.completed");
    assert_eq!(json["context"]["customer"]["email"], "[FILTERED]");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn task_failure_and_cancel_publish_their_events() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["task.failed", "task.cancelled"]);
    let task = TaskScope::new(&telemetry, "7", "t");
    task.fail(
        &Failure::new("step charge failed for good", "StepFailed"),
        StepCounts {
            total: 3,
            completed: 1,
            failed: 1,
            pending: 1,
        },
    );
    // A task finishes once (tests/nothing_lost.rs): the cancellation is another task's.
    let other = TaskScope::new(&telemetry, "8", "t");
    other.cancel(StepCounts {
        total: 3,
        completed: 1,
        failed: 0,
        pending: 2,
    });
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].get("failed_steps"), Some(Value::U64(1)));
    assert_eq!(events[0].get("total_steps"), Some(Value::U64(3)));
    assert_eq!(
        events[0].get("error_class").and_then(|v| v.as_str()),
        Some("StepFailed")
    );
    assert_eq!(events[1].get("pending_steps"), Some(Value::U64(2)));
}

#[test]
fn a_panic_inside_process_is_reported_as_failed_with_class_panic() {
    std::panic::set_hook(Box::new(|_| {}));
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["step.failed"]);
    let task = TaskScope::new(&telemetry, "1", "t");
    let step = task.step("1-1", "explodes");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _attempt = step.attempt(1);
        panic!("boom");
    }));
    let _ = std::panic::take_hook();
    assert!(outcome.is_err(), "the panic is not swallowed");
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].get("error_class").and_then(|v| v.as_str()),
        Some("panic")
    );
}

#[test]
fn an_abandoned_attempt_is_reported_as_cancelled() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(
        &telemetry,
        &["step.cancelled", "step.completed", "step.failed"],
    );
    let task = TaskScope::new(&telemetry, "1", "t");
    let step = task.step("1-1", "slow");
    drop(step.attempt(1));
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name(), names::STEP_CANCELLED);
}

/// Step events borrow their scope's ids and reuse one results allocation per thread: events a
/// subscriber keeps (sync, cloned; async, queued) must stay intact after the scope is gone and
/// after later attempts, and the shared strings must be freed exactly once (a miscount would
/// show as a use-after-free or a double free, which the allocator or Miri would catch, and as
/// A step event that only synchronous subscribers receive is lent to them: it borrows the step's
/// identity from the scope, so delivering it takes no counted reference. One that an
/// asynchronous subscriber also receives is built once, owning what it names (the queued copy
/// outlives the call), and shared by all of them.
#[test]
fn step_events_borrow_from_the_scope_when_lent_and_own_when_queued() {
    use std::borrow::Cow;

    let telemetry = Telemetry::new(Default::default()).unwrap();
    let borrowed = Arc::new(Mutex::new(Vec::new()));
    let seen = borrowed.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.before_handle", "step.completed"],
            subscriber::from_fn("sync", move |e| {
                let Payload::Step(p) = e.payload() else {
                    panic!("{} without a step payload", e.name())
                };
                let lent = matches!(p.identity, Cow::Borrowed(_));
                seen.lock().unwrap().push((e.name().as_str(), lent));
            }),
        )
        .unwrap();
    let (queued, received) = std::sync::mpsc::channel();
    let queued = Mutex::new(queued);
    let handle = telemetry
        .publisher()
        .subscribe_with(
            &["step.completed"],
            subscriber::from_fn("queued", move |e| {
                let _ = queued.lock().unwrap().send(e.clone().into_owned());
            }),
            subscriber::Delivery::Asynchronous { capacity: 16 },
        )
        .unwrap();
    let task = TaskScope::new(&telemetry, "7", "flow");
    let step = task.step("7/s", "charge");
    let result: Result<u32, GatewayTimeout> = step.run_attempt(1, || Ok(1));
    assert_eq!(result.unwrap(), 1);
    drop((step, task));
    assert_eq!(
        *borrowed.lock().unwrap(),
        [("step.before_handle", true), ("step.completed", false)]
    );
    let event = received
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the queued step.completed");
    handle.unsubscribe();
    let Payload::Step(p) = event.payload() else {
        panic!("step.completed without a step payload")
    };
    // The scopes are gone; the queued event still names its step, through its own reference.
    let Cow::Owned(identity) = &p.identity else {
        panic!("the queued event borrows from a scope")
    };
    assert_eq!(&*identity.step_name, "charge");
}

/// wrong text here).
#[test]
fn kept_step_events_outlive_their_scope_and_later_attempts() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let kept = recorder(&telemetry, &["step.before_handle", "step.completed"]);
    let queued = Arc::new(Mutex::new(Vec::new()));
    let sink = queued.clone();
    let handle = telemetry
        .publisher()
        .subscribe_with(
            &["step.completed"],
            subscriber::from_fn("queue", move |e| {
                sink.lock().unwrap().push(e.clone().into_owned())
            }),
            subscriber::Delivery::Asynchronous { capacity: 1024 },
        )
        .unwrap();
    for i in 0..200u64 {
        let task = TaskScope::new(&telemetry, format!("task-{i}"), format!("flow-{i}"));
        let step = task
            .step(format!("task-{i}/s"), format!("step-{i}"))
            .with_inputs(serde_json::json!({ "n": i }));
        let result: Result<u64, GatewayTimeout> = step.run_attempt(1, || Ok(i * 10));
        assert_eq!(result.unwrap(), i * 10);
        // Scope and task dropped here: only the events' own references remain.
    }
    handle.unsubscribe();
    let check = |events: &[Event<'_>], name: &str| {
        let events: Vec<&Event<'_>> = events
            .iter()
            .filter(|e| e.name().as_str() == name)
            .collect();
        assert_eq!(events.len(), 200, "{name}");
        for (i, e) in events.iter().enumerate() {
            let Payload::Step(p) = e.payload() else {
                panic!("{name} without a step payload")
            };
            assert_eq!(&*p.identity.task_id, format!("task-{i}"));
            assert_eq!(&*p.identity.task_name, format!("flow-{i}"));
            assert_eq!(&*p.identity.step_id, format!("task-{i}/s"));
            assert_eq!(&*p.identity.step_name, format!("step-{i}"));
            assert_eq!(p.inputs.as_deref(), Some(&serde_json::json!({ "n": i })));
            assert!(e.correlation_id().is_some_and(|c| !c.is_empty()));
            if name == "step.completed" {
                assert_eq!(
                    p.step_results.as_ref(),
                    Some(&serde_json::json!(i as u64 * 10)),
                    "results of attempt {i} were overwritten by a later one"
                );
            }
        }
    };
    let kept = kept.lock().unwrap();
    check(&kept, "step.before_handle");
    check(&kept, "step.completed");
    // The async queue is drained by its thread once unsubscribed; wait for it by polling the
    // delivered count, not by sleeping a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while queued.lock().unwrap().len() < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "async deliveries missing"
        );
        std::thread::yield_now();
    }
    check(&queued.lock().unwrap(), "step.completed");
}

/// `run_attempt` reports the outcome it returns, and a panic as `step.failed` (class `panic`)
/// before letting it continue.
#[test]
fn run_attempt_reports_outcomes_and_panics() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["step.*"]);
    let task = TaskScope::new(&telemetry, "7", "checkout");
    let step = task.step("7-1", "charge").with_retry_limit(2);
    let failed: Result<u32, GatewayTimeout> = step.run_attempt(1, || Err(GatewayTimeout));
    assert!(failed.is_err());
    let ok: Result<u32, GatewayTimeout> = step.run_attempt(2, || Ok(5));
    assert_eq!(ok.unwrap(), 5);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<u32, GatewayTimeout> = step.run_attempt(2, || panic!("boom"));
    }));
    assert!(panicked.is_err());
    let events = seen.lock().unwrap().clone();
    let order: Vec<&str> = events.iter().map(|e| e.name().as_str()).collect();
    assert_eq!(
        order,
        [
            "step.before_handle",
            "step.failed",
            "step.before_handle",
            "step.completed",
            "step.before_handle",
            "step.failed",
        ]
    );
    assert_eq!(
        events[1].get("error_message"),
        Some(Value::Str("gateway timed out"))
    );
    assert_eq!(events[5].get("error_class"), Some(Value::Str("panic")));
}
