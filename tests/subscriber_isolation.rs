//! A subscriber that panics on every event never disturbs the publisher, the other subscribers,
//! or the caller: every panic is caught and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tasker_telemetry::event::names;
use tasker_telemetry::payload::StepPayload;
use tasker_telemetry::{Publisher, subscriber};

#[test]
fn panicking_subscriber_is_isolated_over_10_000_publishes() {
    // The default hook would print 10,000 panic messages; the behaviour under test does not
    // depend on the hook.
    std::panic::set_hook(Box::new(|_| {}));

    let publisher = Publisher::new();
    let panicky = publisher
        .subscribe(
            &["step.*"],
            subscriber::from_fn("always_panics", |_| panic!("subscriber bug")),
        )
        .expect("subscribe panicky");
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let healthy = publisher
        .subscribe(
            &["step.completed"],
            subscriber::from_fn("healthy", move |event| {
                assert_eq!(event.name(), names::STEP_COMPLETED);
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .expect("subscribe healthy");

    const N: u64 = 10_000;
    for i in 0..N {
        let delivered = publisher.publish_with(names::STEP_COMPLETED, || {
            StepPayload::new(i.to_string(), "checkout", format!("{i}-1"), "charge")
        });
        assert!(delivered);
    }

    assert_eq!(received.load(Ordering::Relaxed), N);
    assert_eq!(healthy.stats().delivered, N);
    assert_eq!(healthy.stats().panics, 0);
    assert_eq!(panicky.stats().panics, N);
    assert_eq!(panicky.stats().delivered, 0);
    let totals = publisher.stats();
    assert_eq!(totals.subscriber_panics, N);
    assert_eq!(totals.published, N);
    let per_subscriber = publisher.subscriber_stats();
    let panics_of = |name: &str| {
        per_subscriber
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, s)| s.panics)
    };
    assert_eq!(panics_of("always_panics"), Some(N));
    assert_eq!(panics_of("healthy"), Some(0));
    let _ = std::panic::take_hook();
}
