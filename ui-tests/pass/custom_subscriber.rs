// A hand-written subscriber, registered synchronously and asynchronously, compiles against the
// public API exactly as the README shows it, and receives what is published.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tasker_telemetry::event::names;
use tasker_telemetry::payload::ErrorPayload;
use tasker_telemetry::subscriber::Delivery;
use tasker_telemetry::{Event, Publisher, Subscriber};

#[derive(Default)]
struct PagerDuty {
    final_failures: AtomicU64,
}

impl Subscriber for PagerDuty {
    fn on_event(&self, event: &Event<'_>) {
        if tasker_telemetry::subscriber::helpers::error_metrics(event).final_failure {
            self.final_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> Result<(), tasker_telemetry::publisher::SubscribeError> {
    let publisher = Publisher::new();
    let pager = Arc::new(PagerDuty::default());
    publisher.subscribe_arc(&["step.failed"], pager.clone(), Delivery::Synchronous)?;
    let queued = publisher.subscribe_with(&["task.*"], PagerDuty::default(), Delivery::Asynchronous { capacity: 64 })?;
    publisher.publish_with(names::STEP_FAILED, || {
        let mut p = ErrorPayload::for_task("1", "t", "boom", "E");
        p.attempt_number = Some(3);
        p.retry_limit = Some(3);
        p
    });
    assert_eq!(pager.final_failures.load(Ordering::Relaxed), 1);
    assert_eq!(queued.stats().dropped, 0);
    Ok(())
}
