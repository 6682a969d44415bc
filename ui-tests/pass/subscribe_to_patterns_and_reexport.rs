// Pattern subscriptions, a generic subscriber wired by hand, and use through a re-export with
// `crate = path`; events are observed by the subscribers.
use std::sync::atomic::{AtomicU64, Ordering};

extern crate tasker_telemetry as telemetry_reexport;

use tasker_telemetry::event::names;
use tasker_telemetry::payload::StepPayload;
use tasker_telemetry::{subscribe_to, Event, Publisher};

struct Counter<T> {
    hits: AtomicU64,
    _tag: T,
}

#[subscribe_to("step.*" => handle_step_event, register = false)]
impl<T: Send + Sync + 'static> Counter<T> {
    fn handle_step_event(&self, _event: &Event<'_>) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct ThroughReexport(AtomicU64);

#[subscribe_to("step.completed", crate = telemetry_reexport)]
impl ThroughReexport {
    fn handle_step_completed(&self, _event: &Event<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let publisher = Publisher::new();
    let generic = std::sync::Arc::new(Counter { hits: AtomicU64::new(0), _tag: "tag" });
    publisher
        .subscribe_arc(&["step.*"], generic.clone(), Default::default())
        .unwrap();
    let wired = publisher.subscribe_registered().unwrap();
    publisher.publish_with(names::STEP_COMPLETED, || StepPayload::new("1", "t", "1-1", "s"));
    publisher.publish_with(names::STEP_FAILED, || StepPayload::new("1", "t", "1-1", "s"));
    assert_eq!(generic.hits.load(Ordering::Relaxed), 2);
    assert_eq!(wired.len(), 1);
    assert_eq!(wired[0].stats().delivered, 1);
}
