//! `#[subscribe_to]`: dispatch by event, patterns, custom events, registration and wiring.

use std::sync::Mutex;

use tasker_telemetry::catalog::{self, CustomEvent};
use tasker_telemetry::event::names;
use tasker_telemetry::payload::{Fields, StepPayload, TaskPayload};
use tasker_telemetry::publisher::SubscribeError;
use tasker_telemetry::{Event, Publisher, subscribe_to};

/// Records which handler saw which event.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(&'static str, String)>>,
}

impl Recorder {
    fn note(&self, handler: &'static str, event: &Event<'_>) {
        self.calls
            .lock()
            .unwrap()
            .push((handler, event.name().to_string()));
    }
}

#[subscribe_to(
    "task.completed",
    "observability.step.max_retries_reached",
    "step.*" => handle_any_step,
    register = false,
)]
impl Recorder {
    fn handle_task_completed(&self, event: &Event<'_>) {
        self.note("task_completed", event);
    }

    fn handle_observability_step_max_retries_reached(&self, event: &Event<'_>) {
        self.note("max_retries", event);
    }

    fn handle_any_step(&self, event: &Event<'_>) {
        self.note("any_step", event);
    }
}

#[test]
fn events_reach_their_handlers() {
    use tasker_telemetry::Subscriber;
    let recorder = Recorder::default();
    let step = || StepPayload::new("1", "t", "1-1", "s");
    recorder.on_event(&Event::new(
        names::TASK_COMPLETED,
        TaskPayload::new("1", "t"),
    ));
    recorder.on_event(&Event::new(names::STEP_COMPLETED, step()));
    recorder.on_event(&Event::new(names::STEP_FAILED, step()));
    recorder.on_event(&Event::new(
        names::OBSERVABILITY_STEP_MAX_RETRIES_REACHED,
        step(),
    ));
    recorder.on_event(&Event::new(names::TASK_FAILED, TaskPayload::new("1", "t")));
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            ("task_completed", "task.completed".to_owned()),
            ("any_step", "step.completed".to_owned()),
            ("any_step", "step.failed".to_owned()),
            (
                "max_retries",
                "observability.step.max_retries_reached".to_owned()
            ),
        ],
        "task.failed is not subscribed and reaches no handler"
    );
}

/// Registered (the default): listed in the catalog and wired by `subscribe_registered`.
#[derive(Default)]
struct Audit {
    seen: Mutex<Vec<String>>,
}

#[subscribe_to("task.start_requested", "subscribe_to_test.order_flagged")]
impl Audit {
    fn handle_task_start_requested(&self, event: &Event<'_>) {
        self.seen.lock().unwrap().push(event.name().to_string());
    }

    fn handle_subscribe_to_test_order_flagged(&self, event: &Event<'_>) {
        self.seen.lock().unwrap().push(event.name().to_string());
    }
}

#[test]
fn registered_subscribers_are_listed_and_wired_and_unknown_custom_names_are_errors() {
    let listed = catalog::subscribers();
    let audit = listed
        .iter()
        .find(|s| s.name == "Audit")
        .expect("Audit is registered");
    assert_eq!(
        audit.events,
        ["task.start_requested", "subscribe_to_test.order_flagged"]
    );
    assert!(audit.type_path.ends_with("::Audit"));
    assert!(
        !listed.iter().any(|s| s.name == "Recorder"),
        "register = false keeps it out"
    );

    // The custom event is not declared yet: wiring fails, naming it, and wires nothing.
    let publisher = Publisher::new();
    let err = publisher.subscribe_registered().unwrap_err();
    assert!(
        matches!(&err, SubscribeError::UnknownEvent { name, .. } if name == "subscribe_to_test.order_flagged"),
        "{err}"
    );
    assert!(!publisher.has_subscribers(names::TASK_START_REQUESTED));

    let flagged = catalog::register_event(CustomEvent::new(
        "subscribe_to_test.order_flagged",
        "An order was flagged.",
    ))
    .unwrap();
    let handles = publisher.subscribe_registered().unwrap();
    assert_eq!(handles.len(), 1);
    publisher.publish_with(names::TASK_START_REQUESTED, || TaskPayload::new("1", "t"));
    publisher.publish_with(flagged, Fields::new);
    assert_eq!(handles[0].stats().delivered, 2);
}
