//! Asynchronous subscribers: a bounded queue that never blocks the publisher and counts drops
//! exactly.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasker_telemetry::event::names;
use tasker_telemetry::payload::TaskPayload;
use tasker_telemetry::subscriber::Delivery;
use tasker_telemetry::{Publisher, subscriber};

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let publisher = Publisher::new();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_subscriber = seen.clone();

    let handle = publisher
        .subscribe_with(
            &["task.completed"],
            subscriber::from_fn("blocked", move |event| {
                seen_by_subscriber
                    .lock()
                    .unwrap()
                    .push(event.get("task_id").unwrap().as_str().unwrap().to_owned());
                // Block on the first event until the test releases the consumer.
                let _ = entered_tx.lock().unwrap().send(());
                let _ = release_rx.lock().unwrap().recv();
            }),
            Delivery::Asynchronous { capacity: 8 },
        )
        .expect("subscribe");

    let publish = |i: u32| {
        publisher.publish_with(names::TASK_COMPLETED, || {
            TaskPayload::new(i.to_string(), "t")
        })
    };

    // Event 0 is taken off the queue by the consumer, which then blocks inside on_event.
    assert!(publish(0));
    entered_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("consumer entered on_event");

    // With the consumer blocked, 8 events fill the queue and the other 92 are dropped. If publish
    // ever blocked on the full queue this loop would never finish.
    for i in 1..=100 {
        publish(i);
    }
    assert_eq!(handle.stats().dropped, 92);
    assert_eq!(publisher.stats().dropped, 92);

    // Release the consumer for every queued event and wait until it has taken them all.
    for _ in 0..9 {
        release_tx.send(()).unwrap();
    }
    for _ in 0..8 {
        entered_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("queued event delivered");
    }
    assert!(handle.clone().unsubscribe());

    let seen = seen.lock().unwrap().clone();
    let expected: Vec<String> = (0..=8).map(|i: u32| i.to_string()).collect();
    assert_eq!(
        seen, expected,
        "the first event and the 8 queued ones, in order"
    );
    assert_eq!(handle.stats().dropped, 92);
}
