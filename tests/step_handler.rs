//! `#[step_handler]`: the generated `handle()` publishes the step lifecycle around `process()`,
//! for both forms, sync and async, and registers the handler in the catalog.

mod support;

use std::sync::{Arc, Mutex};

use support::executor::block_on;

use tasker_telemetry::payload::Value;
use tasker_telemetry::{
    Event, Sequence, Step, StepError, StepHandler, Task, Telemetry, catalog, step_handler,
    subscriber,
};

fn setup() -> (Telemetry, Arc<Mutex<Vec<Event<'static>>>>) {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.*"],
            subscriber::from_fn("recorder", move |e| {
                sink.lock().unwrap().push(e.clone().into_owned())
            }),
        )
        .unwrap();
    (telemetry, seen)
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.name().as_str()).collect()
}

#[derive(Debug)]
struct GatewayTimeout;
impl std::fmt::Display for GatewayTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("gateway timed out")
    }
}
impl std::error::Error for GatewayTimeout {}

/// Charges the card; fails until the third attempt.
struct ProcessPayment;

#[step_handler(retry_limit = 3)]
impl ProcessPayment {
    fn process(&self, task: &Task, step: &Step) -> Result<serde_json::Value, GatewayTimeout> {
        if step.attempt_number() < 3 {
            return Err(GatewayTimeout);
        }
        Ok(serde_json::json!({"charged": task.context()["amount"], "api_key": "sk_live"}))
    }
}

#[test]
fn sync_impl_publishes_failed_then_completed_with_payloads() {
    let (telemetry, seen) = setup();
    let task = Task::new(
        &telemetry,
        "t1",
        "checkout",
        serde_json::json!({"amount": 10}),
    );
    let sequence = Sequence::new();
    let mut outputs = Vec::new();
    for attempt in 1..=3 {
        let step = task.step("t1-2", "process_payment").with_attempt(attempt);
        outputs.push(
            ProcessPayment
                .handle(&task, &sequence, &step)
                .now()
                .expect("sync is ready"),
        );
    }
    assert!(outputs[0].is_err() && outputs[1].is_err());
    assert_eq!(
        outputs[2],
        Ok(serde_json::json!({"charged": 10, "api_key": "sk_live"}))
    );
    let err = outputs[0].clone().unwrap_err();
    assert_eq!(err.message(), "gateway timed out");
    assert!(err.class().ends_with("GatewayTimeout"));

    let events = seen.lock().unwrap().clone();
    assert_eq!(
        names(&events),
        [
            "step.before_handle",
            "step.failed",
            "step.before_handle",
            "step.failed",
            "step.before_handle",
            "step.completed"
        ]
    );
    let failed = &events[1];
    assert!(
        failed
            .get("error_class")
            .and_then(|v| v.as_str())
            .unwrap()
            .ends_with("step_handler::GatewayTimeout")
    );
    assert_eq!(failed.get("attempt_number"), Some(Value::U64(1)));
    assert_eq!(
        failed.get("retry_limit"),
        Some(Value::U64(3)),
        "the handler's retry_limit applies"
    );
    let completed = &events[5];
    assert!(
        completed
            .get("execution_duration")
            .and_then(|v| v.as_f64())
            .is_some()
    );
    assert_eq!(
        completed.get("step_results"),
        Some(Value::Json(
            &serde_json::json!({"charged": 10, "api_key": "[FILTERED]"})
        ))
    );
}

/// Fetches the cart, asynchronously.
#[step_handler(name = "fetch_cart")]
async fn load_cart(task: &Task, _sequence: &Sequence) -> Result<u64, StepError> {
    std::future::ready(()).await;
    task.context()["items"]
        .as_u64()
        .ok_or_else(|| StepError::permanent("no items").with_class("EmptyCart"))
}

#[test]
fn async_free_function_generates_a_named_handler_type() {
    let (telemetry, seen) = setup();
    assert_eq!(LoadCart.name(), "fetch_cart");
    assert_eq!(LoadCart.retry_limit(), None);
    let full = Task::new(
        &telemetry,
        "t2",
        "checkout",
        serde_json::json!({"items": 4}),
    );
    let empty = Task::new(&telemetry, "t3", "checkout", serde_json::json!({}));
    let sequence = Sequence::new();
    let step = full.step("t2-1", "fetch_cart");
    assert_eq!(
        block_on(LoadCart.handle(&full, &sequence, &step)),
        Ok(serde_json::json!(4))
    );
    let step = empty.step("t3-1", "fetch_cart").with_retry_limit(5);
    let err = block_on(LoadCart.handle(&empty, &sequence, &step)).unwrap_err();
    assert_eq!((err.class(), err.is_retryable()), ("EmptyCart", false));
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        names(&events),
        [
            "step.before_handle",
            "step.completed",
            "step.before_handle",
            "step.failed"
        ]
    );
    assert_eq!(
        events[3].get("error_class").and_then(|v| v.as_str()),
        Some("EmptyCart")
    );
    assert_eq!(
        events[3].get("retry_limit"),
        Some(Value::U64(5)),
        "the step's own limit wins"
    );
}

/// Panics, synchronously or not.
struct Explodes;

#[step_handler]
impl Explodes {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        panic!("boom")
    }
}

mod nested {
    use tasker_telemetry::{Step, StepError, step_handler};

    /// Panics after an await.
    pub struct ExplodesLater;

    #[step_handler]
    impl ExplodesLater {
        pub async fn process(&self, _step: &Step) -> Result<(), StepError> {
            std::future::ready(()).await;
            panic!("boom later")
        }
    }
}

#[test]
fn panics_are_published_as_failed_then_resumed() {
    std::panic::set_hook(Box::new(|_| {}));
    let (telemetry, seen) = setup();
    let task = Task::new(&telemetry, "t4", "checkout", serde_json::Value::Null);
    let sequence = Sequence::new();
    let step = task.step("t4-1", "explodes");
    let sync = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(Explodes.handle(&task, &sequence, &step));
    }));
    let later = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(nested::ExplodesLater.handle(&task, &sequence, &step))
    }));
    let _ = std::panic::take_hook();
    assert_eq!(sync.unwrap_err().downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(
        later.unwrap_err().downcast_ref::<&str>(),
        Some(&"boom later")
    );
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        names(&events),
        [
            "step.before_handle",
            "step.failed",
            "step.before_handle",
            "step.failed"
        ]
    );
    for failed in [&events[1], &events[3]] {
        assert_eq!(
            failed.get("error_class").and_then(|v| v.as_str()),
            Some("panic")
        );
    }
    assert_eq!(
        events[3].get("error_message").and_then(|v| v.as_str()),
        Some("boom later")
    );
}

/// A generic handler type.
struct Echo<T>(T);

#[step_handler]
impl<T> Echo<T>
where
    T: serde::Serialize + Clone + Send + Sync + 'static,
{
    fn process(&self, _step: &Step) -> Result<T, StepError> {
        Ok(self.0.clone())
    }
}

#[test]
fn generic_handlers_and_registration() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let task = Task::new(&telemetry, "t5", "checkout", serde_json::Value::Null);
    let step = task.step("t5-1", "echo");
    let out = Echo("hi")
        .handle(&task, &Sequence::new(), &step)
        .now()
        .unwrap();
    assert_eq!(out, Ok(serde_json::json!("hi")));
    assert_eq!(Echo(1u8).name(), "echo");

    let handlers = catalog::handlers();
    let find = |name: &str| handlers.iter().find(|h| h.name == name).copied();
    let payment = find("process_payment").expect("registered");
    assert_eq!(payment.retry_limit, Some(3));
    assert!(
        payment.type_path.ends_with("step_handler::ProcessPayment"),
        "{}",
        payment.type_path
    );
    assert!(payment.file.ends_with("step_handler.rs") && payment.line > 0);
    assert!(
        find("fetch_cart")
            .unwrap()
            .type_path
            .ends_with("::LoadCart")
    );
    assert!(
        find("explodes_later")
            .unwrap()
            .type_path
            .contains("::nested::")
    );
    assert!(find("echo").is_some());
}
