// A hand-written subscriber, registered synchronously and asynchronously, compiles against the
// public API exactly as the README shows it.
use tasker_telemetry::subscriber::Delivery;
use tasker_telemetry::{Event, Publisher, Subscriber};

struct PagerDuty;

impl Subscriber for PagerDuty {
    fn on_event(&self, event: &Event) {
        let _final = tasker_telemetry::subscriber::helpers::error_metrics(event).final_failure;
    }
}

fn main() -> Result<(), tasker_telemetry::publisher::SubscribeError> {
    let publisher = Publisher::new();
    publisher.subscribe(&["step.failed"], PagerDuty)?;
    publisher.subscribe_with(&["task.*"], PagerDuty, Delivery::Asynchronous { capacity: 64 })?;
    Ok(())
}
